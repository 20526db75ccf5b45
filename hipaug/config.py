"""Run configuration: frozen dataclasses and the named profiles (smoke, default, paper).

A profile fixes every choice the pipeline makes. The paper leaves most of them unknown
(limb classes and counts, resolutions, the AC-GAN architecture, the selection rule, the
fine-tuning protocol); each such field says so in its comment, and the book's
reproducibility page lists them. Profiles live in `hipaug/profiles/<name>.yaml`; a user may
also pass the path of a YAML file of their own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hipaug.core import check_image_size, read_yaml, torch_dtype
from hipaug.errors import ConfigError
from hipaug.method.conditions import CONDITIONS
from hipaug.models.vgg import ArchSpec
from hipaug.training.augment import AugmentConfig
from hipaug.training.classifier_config import TrainConfig
from hipaug.training.gan_config import ACGANConfig

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class PhantomSpec:
    """How many phantom radiographs to render when no real folder is given."""

    limb_per_class: int = 150  # limb images per class (paper: unknown, private data)
    limb_labels: str = "part+fracture"  # limb class scheme: part | fracture | part+fracture
    pelvic_n: int = 400  # pelvic radiographs (paper: unknown count)
    fracture_rate: float = 0.5  # share of pelvic images with a hip fracture
    difficulty: float = 1.0  # pelvic fracture conspicuity: higher = subtler (see hipaug.data.phantoms)
    limb_difficulty: float = 1.0  # limb fracture conspicuity, the same knob for the limb renderer
    limb_parts: tuple[str, ...] | None = None  # body parts rendered (None: all of phantoms.LIMB_PARTS); a
    #   subset leaves out a part whose fractures the image size cannot show (two classes per part)


@dataclass(frozen=True)
class FilterSpec:
    """The realism filter: how many synthetic images to draw and which to keep."""

    synthetic_per_class: int = 150  # AC-GAN samples drawn per limb class (paper: unknown)
    threshold: float | None = 0.9  # keep if P(generated class) >= threshold (paper's rule unknown)
    top_k: int | None = None  # alternatively keep the k best per class (set threshold to null)

    @property
    def rule(self) -> str:
        """Short description of the selection rule, e.g. 'p>=0.9' or 'top-15'."""
        return f"top-{self.top_k}" if self.top_k is not None else f"p>={self.threshold:g}"


@dataclass(frozen=True)
class TransferSpec:
    """Transfer learning and the Table VIII protocol."""

    conditions: tuple[str, ...] = CONDITIONS  # pre-training conditions compared on the same folds
    k_folds: int = 5  # stratified patient-level folds on the pelvic set (paper: five-fold CV)
    repeats: int = 1  # repeated seeds of the whole CV (paper: one run)
    freeze_blocks: int = 0  # conv blocks frozen while fine-tuning (paper: unknown)
    positive_class: str = "fracture"  # pelvic class treated as positive


@dataclass(frozen=True)
class QualitySpec:
    """GAN quality measures and statistics."""

    pr_k: int = 3  # k of the k-NN manifolds for improved precision/recall
    n_boot: int = 5000  # bootstrap resamples for CIs of mean differences
    alpha: float = 0.05  # significance level of the paired tests
    # The synthetic sets a GAN-train classifier (the filter's recipe) is trained on: "unfiltered"
    # (every sample: Shmelkov et al.'s measure of the generator) and "filtered" (the accepted ones).
    gan_train_on: tuple[str, ...] = ("unfiltered", "filtered")

    def __post_init__(self) -> None:
        bad = sorted(set(self.gan_train_on) - {"unfiltered", "filtered"})
        if bad:
            raise ConfigError(f"quality.gan_train_on has {bad[0]!r}; use unfiltered and/or filtered")


@dataclass(frozen=True)
class AblationSpec:
    """Beyond the paper: other selection rules for the with-GAN condition."""

    thresholds: tuple[float, ...] = (0.5, 0.99)  # alternative acceptance thresholds
    top_k: tuple[int, ...] = ()  # keep the k best per class (varies the number of synthetic images)


@dataclass(frozen=True)
class OperatingPoint:
    """Where a profile's phantom experiment is calibrated to sit; checked after the run (phantom data only).

    The paper's without-GAN model is at 88.46 % accuracy; a baseline far below that, or a filter
    and generator that barely work, would test a different question. Empty bounds check nothing
    (smoke, a user's own profile).
    """

    without_gan_accuracy: tuple[float, ...] = ()  # (low, high) bounds of without_gan's mean fold accuracy
    min_filter_accuracy: float | None = None  # lowest filter accuracy on held-out real limb images
    min_gan_test_ratio: float | None = None  # lowest GAN-test accuracy / filter accuracy on real images

    def __post_init__(self) -> None:
        acc = self.without_gan_accuracy
        if acc and (len(acc) != 2 or not 0.0 <= acc[0] <= acc[1] <= 1.0):
            raise ConfigError(f"operating_point.without_gan_accuracy={list(acc)} must be [low, high] within [0, 1]")
        for name in ("min_filter_accuracy", "min_gan_test_ratio"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 2.0:
                raise ConfigError(f"operating_point.{name}={v} must be in [0, 2]")


@dataclass(frozen=True)
class Profile:
    """Every setting of a full run of the pipeline."""

    name: str  # profile name (smoke | default | paper | a user's file)
    image_size: int  # side of the square images everywhere (paper: unknown; VGG's native 224)
    seed: int  # the one seed every random source derives from
    device: str  # auto | cpu | cuda
    dtype: str  # float32 | float64: every network's precision (float64: the CPU's kernels change no printed result)
    phantom: PhantomSpec  # phantom data sizes (ignored for real folders)
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
    known = {"name", "image_size", "seed", "device", "dtype", "phantom", "arch", "acgan", "filter_train", "filter",
             "pretrain", "finetune", "transfer", "quality", "ablation", "operating_point"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown profile key '{unknown[0]}'")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    image_size = check_image_size(raw.get("image_size", 64))
    device = str(raw.get("device", "auto"))
    dtype = raw.get("dtype", "float32")
    torch_dtype(dtype, f"{path.name}: dtype")

    def train_cfg(section: str) -> Any:
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
    validate(profile)
    return profile


def validate(p: Profile) -> None:
    """Check cross-field constraints; raise ConfigError naming the field."""
    if (p.filter.threshold is None) == (p.filter.top_k is None):
        raise ConfigError("filter: set exactly one of threshold and top_k (the other to null)")
    if p.filter.threshold is not None and not 0.0 <= p.filter.threshold <= 1.0:
        raise ConfigError(f"filter.threshold={p.filter.threshold} must be in [0, 1]")
    if p.filter.top_k is not None and p.filter.top_k < 1:
        raise ConfigError(f"filter.top_k={p.filter.top_k} must be >= 1")
    bad = [c for c in p.transfer.conditions if c not in CONDITIONS]
    if bad:
        raise ConfigError(f"transfer.conditions: unknown condition '{bad[0]}' (known: {', '.join(CONDITIONS)})")
    if p.transfer.k_folds < 2:
        raise ConfigError(f"transfer.k_folds={p.transfer.k_folds} must be >= 2")
    if p.arch.pretrained not in ("never", "auto", "require"):
        raise ConfigError(f"arch.pretrained={p.arch.pretrained!r} must be never, auto or require")
    for t in p.ablation.thresholds:
        if not 0.0 <= t <= 1.0:
            raise ConfigError(f"ablation.thresholds: {t} must be in [0, 1]")
    if p.phantom.limb_parts is not None:
        from hipaug.data.phantoms import LIMB_PARTS

        bad = [x for x in p.phantom.limb_parts if x not in LIMB_PARTS]
        if bad or not p.phantom.limb_parts:
            raise ConfigError(f"phantom.limb_parts: {bad[0] if bad else '(empty)'!r} is not a subset of {', '.join(LIMB_PARTS)}")
    if not 0.0 < p.phantom.fracture_rate < 1.0:
        raise ConfigError(f"phantom.fracture_rate={p.phantom.fracture_rate} must be in (0, 1)")
