"""Run configuration: the named profiles (smoke, default, paper), assembled from the specs beside their code.

A profile fixes every choice the pipeline makes. Each section is a frozen dataclass defined next
to the code it configures (`PhantomSpec` by the phantoms, `ArchSpec` by the VGG-16, `ACGANConfig`
and `TrainConfig` by their loops, `FilterSpec` and `AblationSpec` by the realism filter,
`TransferSpec` by transfer learning, `QualitySpec` by the quality measures, `OperatingPoint` by
the gates); this module only reads a YAML file into them. The paper leaves most choices unknown
(limb classes and counts, resolutions, the AC-GAN architecture, the selection rule, the
fine-tuning protocol); each such field says so in its comment, and the book's reproducibility
page lists them. Profiles live in `hipaug/profiles/<name>.yaml`; a user may also pass the path of
a YAML file of their own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hipaug.core import check_image_size, read_yaml, torch_dtype
from hipaug.data.limits import DataSpec
from hipaug.data.phantoms import PhantomSpec
from hipaug.errors import ConfigError
from hipaug.evaluation.gates import OperatingPoint
from hipaug.evaluation.quality import QualitySpec
from hipaug.method.conditions import CONDITIONS  # noqa: F401  (re-exported: the conditions a profile may name)
from hipaug.method.filter import AblationSpec, FilterSpec
from hipaug.method.transfer import TransferSpec
from hipaug.models.vgg import ArchSpec
from hipaug.training.augment import AugmentConfig
from hipaug.training.classifier_config import TrainConfig
from hipaug.training.gan.config import ACGANConfig

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class Profile:
    """Every setting of a full run of the pipeline."""

    name: str  # profile name (smoke | default | paper | a user's file)
    image_size: int  # side of the square images everywhere (paper: unknown; VGG's native 224)
    seed: int  # the one seed every random source derives from
    device: str  # auto | cpu | cuda
    dtype: str  # float32 | float64: every network's precision (float64: the CPU's kernels change no printed result)
    phantom: PhantomSpec  # phantom data sizes (ignored for real folders)
    data: DataSpec  # how much of a folder of real radiographs a run uses (per-class caps; the phantom's size is phantom's)
    arch: ArchSpec  # VGG-16 architecture shared by all classifiers
    acgan: ACGANConfig  # the AC-GAN and its training loop
    filter_train: TrainConfig  # training of the realism filter classifier
    filter: FilterSpec  # the selection rule
    pretrain: TrainConfig  # limb pre-training (all conditions)
    finetune: TrainConfig  # pelvic fine-tuning (all conditions)
    transfer: TransferSpec  # conditions and folds
    quality: QualitySpec = field(default_factory=QualitySpec)  # evaluation settings
    ablation: AblationSpec = field(default_factory=AblationSpec)  # the ablations of chapter 6
    operating_point: OperatingPoint = field(default_factory=OperatingPoint)  # calibration targets (phantom)

    def replace(self, **changes: Any) -> "Profile":
        """Return a copy with top-level fields replaced."""
        return dataclasses.replace(self, **changes)


def list_profiles() -> list[str]:
    """Names of the built-in profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


def _build(cls: type, section: str, values: Any) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"profile section '{section}' must be a mapping, got {type(values).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown key '{section}.{unknown[0]}' in profile (known: {', '.join(sorted(names))})")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        if isinstance(v, list):
            v = tuple(v)
        kwargs[f.name] = v
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"profile section '{section}': {exc}") from None


def load_profile(name_or_path: str | Path, **overrides: Any) -> Profile:
    """Load a built-in profile by name or a YAML file by path; `overrides` replace top-level values."""

    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.is_file()):
        path = PROFILE_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ConfigError(f"unknown profile '{name_or_path}' (built-in: {', '.join(list_profiles())}; or give a .yaml path)")
    raw = read_yaml(path)
    known = {"name", "image_size", "seed", "device", "dtype", "phantom", "data", "arch", "acgan", "filter_train", "filter",
             "pretrain", "finetune", "transfer", "quality", "ablation", "operating_point"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown profile key '{unknown[0]}'")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    image_size = check_image_size(raw.get("image_size", 64))
    device = str(raw.get("device", "auto"))
    dtype = raw.get("dtype", "float32")
    torch_dtype(dtype, f"{path.name}: dtype")

    def train_cfg(section: str) -> TrainConfig:
        values = dict(raw.get(section) or {})
        if isinstance(values.get("augment"), dict):
            values["augment"] = _build(AugmentConfig, f"{section}.augment", values["augment"])
        values.setdefault("device", device)
        return _build(TrainConfig, section, values)

    acgan = dict(raw.get("acgan") or {})
    acgan.setdefault("image_size", image_size)
    acgan.setdefault("device", device)
    acgan.setdefault("dtype", dtype)
    arch = dict(raw.get("arch") or {})
    arch.setdefault("dtype", dtype)
    if arch["dtype"] != dtype or acgan["dtype"] != dtype:
        raise ConfigError(f"arch.dtype and acgan.dtype must equal dtype={dtype!r} (set the top-level dtype only)")
    if acgan["image_size"] != image_size:
        raise ConfigError(f"acgan.image_size={acgan['image_size']} differs from image_size={image_size}")
    profile = Profile(
        name=str(raw.get("name", path.stem)),
        image_size=image_size,
        seed=int(raw.get("seed", 0)),
        device=device,
        dtype=dtype,
        phantom=_build(PhantomSpec, "phantom", raw.get("phantom")),
        data=_build(DataSpec, "data", raw.get("data")),
        arch=_build(ArchSpec, "arch", arch),
        acgan=_build(ACGANConfig, "acgan", acgan),
        filter_train=train_cfg("filter_train"),
        filter=_build(FilterSpec, "filter", raw.get("filter")),
        pretrain=train_cfg("pretrain"),
        finetune=train_cfg("finetune"),
        transfer=_build(TransferSpec, "transfer", raw.get("transfer")),
        quality=_build(QualitySpec, "quality", raw.get("quality")),
        ablation=_build(AblationSpec, "ablation", raw.get("ablation")),
        operating_point=_build(OperatingPoint, "operating_point", raw.get("operating_point")),
    )
    return profile
