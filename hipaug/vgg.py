"""VGG-16 (Simonyan & Zisserman 2015, configuration D) for greyscale radiographs, and its trainer.

Lin & Chung (TAAI 2019) use one VGG-16 twice: trained on real limb radiographs it scores AC-GAN
samples (the realism filter), and the same backbone, pre-trained on limb classes with its head
replaced, is fine-tuned for hip-fracture detection on pelvic radiographs (transfer learning).
This module provides the network (torchvision's layer layout, so ImageNet checkpoints load by key),
an in-memory, seeded, bit-for-bit reproducible trainer with early stopping, inference helpers and
self-describing checkpoints.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .augment import AugmentConfig, classic_augment
from .errors import ConfigError, DataError
from .utils import atomic_torch_save, atomic_write_text, progress, resolve_device, torch_load, write_json

log = logging.getLogger(__name__)

# torchvision configuration "D" (VGG-16): 13 conv3x3 in 5 blocks, "M" = 2x2 max pool.
CFG_D: tuple[int | str, ...] = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")

# Checkpoint file names inside `torch.hub.get_dir()/checkpoints`: the basenames of
# torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1.url and VGG16_Weights.IMAGENET1K_V1.url
# (kept as constants so importing hipaug does not import torchvision; a test checks they agree).
IMAGENET_FILES = {True: "vgg16_bn-6c64b313.pth", False: "vgg16-397923af.pth"}
IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
PRETRAINED_MODES = ("never", "auto", "require")
CHECKPOINT_FORMAT = "hipaug.vgg16/1"


def scaled_channels(channels: int, width: float) -> int:
    """Channels of a conv layer at a width multiplier (rounded, at least 4)."""
    return max(4, int(round(channels * width)))


def pooled_size(image_size: int) -> int:
    """Side of the adaptive average pool before the classifier: min(7, image_size // 32)."""
    return max(1, min(7, int(image_size) // 32))


class VGG16(nn.Module):
    """VGG-16 (configuration D) on [0, 1] greyscale input, normalised inside the model.

    Layers are named like torchvision's `vgg16` / `vgg16_bn` (`features`, `avgpool`, `classifier`)
    so ImageNet state dicts map key for key. `batch_norm=True` (the vgg16_bn variant) is the default
    because narrow VGGs trained from scratch on a few thousand radiographs without BN often fail to
    start learning. The pool before the classifier is adaptive to `pooled_size(image_size)`
    (224 -> 7x7 as in torchvision, 64 -> 2x2, 32 -> 1x1). Input normalisation `(x - mean) / std`
    uses persistent buffers (0.5 / 0.25 by default; grey ImageNet statistics when ImageNet
    weights are loaded), so a checkpoint carries the normalisation it was trained with.
    """

    def __init__(self, num_classes: int, in_chans: int = 1, width: float = 1.0, fc_width: int = 4096,
                 image_size: int = 224, batch_norm: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes={num_classes!r} must be a positive integer")
        if not isinstance(in_chans, int) or in_chans < 1:
            raise ConfigError(f"in_chans={in_chans!r} must be a positive integer")
        if not isinstance(width, (int, float)) or not 0 < width <= 4:
            raise ConfigError(f"width={width!r} must be in (0, 4]")
        if not isinstance(fc_width, int) or fc_width < 1:
            raise ConfigError(f"fc_width={fc_width!r} must be a positive integer")
        if not isinstance(image_size, int) or image_size < 32:
            raise ConfigError(f"image_size={image_size!r} must be an integer >= 32 (five 2x2 poolings)")
        if not 0.0 <= dropout < 1.0:
            raise ConfigError(f"dropout={dropout!r} must be in [0, 1)")
        self.config: dict[str, Any] = dict(num_classes=num_classes, in_chans=in_chans, width=float(width),
                                           fc_width=fc_width, image_size=image_size,
                                           batch_norm=bool(batch_norm), dropout=float(dropout))
        self.num_classes = num_classes
        layers: list[nn.Module] = []
        self.block_ends: list[int] = []  # index in `features` just past each block's max pool
        c_in = in_chans
        for v in CFG_D:
            if v == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                self.block_ends.append(len(layers))
                continue
            c_out = scaled_channels(int(v), width)
            layers.append(nn.Conv2d(c_in, c_out, kernel_size=3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.ReLU(inplace=True))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.feature_channels = c_in
        k = pooled_size(image_size)
        self.avgpool = nn.AdaptiveAvgPool2d((k, k))
        self.classifier = nn.Sequential(
            nn.Linear(c_in * k * k, fc_width), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(fc_width, fc_width), nn.ReLU(inplace=True), nn.Dropout(p=dropout),
            nn.Linear(fc_width, num_classes),
        )
        self.register_buffer("input_mean", torch.full((1, in_chans, 1, 1), 0.5))
        self.register_buffer("input_std", torch.full((1, in_chans, 1, 1), 0.25))
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's VGG initialisation.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
            elif isinstance(m, nn.Linear):
                _init_linear(m)

    @property
    def fc_width(self) -> int:
        return int(self.config["fc_width"])

    def blocks(self) -> list[nn.Sequential]:
        """The five conv blocks (views into `features`, each ending with its max pool)."""
        starts = [0] + self.block_ends[:-1]
        return [self.features[a:b] for a, b in zip(starts, self.block_ends)]

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Map [0, 1] input to the normalised range the first conv expects."""
        return (x - self.input_mean) / self.input_std

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Conv trunk output (N, C5, S/32, S/32) for [0, 1] input (N, in_chans, S, S)."""
        return self.features(self.normalize(x))

    def _pool_flat(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.forward_features(x)), 1)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate FC activations (N, fc_width), post-ReLU: the feature space for FID / precision-recall."""
        return self.classifier[:5](self._pool_flat(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes)."""
        return self.classifier(self._pool_flat(x))

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the last FC layer with a fresh one for `num_classes`; FC1/FC2 keep their weights."""
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ConfigError(f"num_classes={num_classes!r} must be a positive integer")
        old = self.classifier[6]
        new = nn.Linear(old.in_features, num_classes).to(device=old.weight.device, dtype=old.weight.dtype)
        _init_linear(new)
        self.classifier[6] = new
        self.num_classes = num_classes
        self.config["num_classes"] = num_classes


def _init_linear(m: nn.Linear) -> None:
    nn.init.normal_(m.weight, 0, 0.01)
    nn.init.constant_(m.bias, 0)


# --------------------------------------------------------------------------- pretrained weights


def imagenet_checkpoint_path(batch_norm: bool = True) -> Path:
    """Where torchvision caches the ImageNet VGG-16 checkpoint (torch.hub.get_dir()/checkpoints/...)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / IMAGENET_FILES[bool(batch_norm)]


def grey_imagenet_stats() -> tuple[float, float]:
    """Grey-level mean and std used with ImageNet weights: the averages of ImageNet's RGB statistics."""
    return float(np.mean(IMAGENET_MEAN_RGB)), float(np.mean(IMAGENET_STD_RGB))


def _adapt_first_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an RGB first conv (on ImageNet-normalised input) into a 1-channel conv on grey-normalised input.

    A grey image g fed as RGB gives channel c = (g - m_c)/s_c = (s/s_c) z + (m - m_c)/s_c with
    z = (g - m)/s the model's own normalisation, so W' = sum_c W_c s/s_c and b' = b +
    sum_{c,k} W_c[k] (m - m_c)/s_c reproduce the RGB conv exactly away from the zero-padded border.
    (This is the usual "sum the kernels over RGB" with the small per-channel rescaling made explicit.)
    """
    m, s = grey_imagenet_stats()
    mc = torch.tensor(IMAGENET_MEAN_RGB, dtype=weight.dtype).view(1, 3, 1, 1)
    sc = torch.tensor(IMAGENET_STD_RGB, dtype=weight.dtype).view(1, 3, 1, 1)
    w = (weight * (s / sc)).sum(dim=1, keepdim=True)
    b = bias + (weight * ((m - mc) / sc)).sum(dim=(1, 2, 3))
    return w, b


def load_imagenet_weights(model: VGG16, path: str | Path) -> list[str]:
    """Copy torchvision ImageNet VGG-16 weights from `path` into `model`; return the groups loaded.

    The conv trunk is always loaded (first conv folded RGB -> grey when in_chans == 1). FC1 and FC2
    are loaded only when their shapes match (width 1, fc_width 4096, 7x7 pooling, i.e. image_size
    >= 224); the 1000-class ImageNet head is never loaded (the head is task specific).
    """
    path = Path(path)
    if model.config["width"] != 1.0:
        raise ConfigError(f"pretrained weights need width=1, got width={model.config['width']}")
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt / truncated / not a checkpoint
        first_line = (str(exc).splitlines() or [""])[0]
        raise ConfigError(f"cannot read ImageNet weights {path}: {type(exc).__name__}: {first_line}") from exc
    if not isinstance(sd, dict):
        raise ConfigError(f"{path} is not a state dict")
    own = model.state_dict()
    new: dict[str, torch.Tensor] = {}
    in_chans = model.config["in_chans"]
    for key, value in sd.items():
        if not key.startswith("features."):
            continue
        if key == "features.0.weight" and in_chans != value.shape[1]:
            if in_chans != 1 or value.shape[1] != 3:
                raise ConfigError(f"{path}: cannot adapt a {value.shape[1]}-channel first conv to in_chans={in_chans}")
            value, new["features.0.bias"] = _adapt_first_conv(value.float(), sd["features.0.bias"].float())
        elif key == "features.0.bias" and key in new:
            continue
        new[key] = value
    trunk_keys = {k for k in own if k.startswith("features.")}
    missing = sorted(trunk_keys - set(new))
    if missing:
        raise ConfigError(f"{path} lacks {len(missing)} conv-trunk tensors (first: {missing[0]}); not a torchvision "
                          f"{'vgg16_bn' if model.config['batch_norm'] else 'vgg16'} checkpoint")
    loaded = ["conv trunk"]
    fc_keys = [f"classifier.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")]
    if all(k in sd and tuple(sd[k].shape) == tuple(own[k].shape) for k in fc_keys):
        new.update({k: sd[k] for k in fc_keys})
        loaded.append("fc1+fc2")
    for key, value in new.items():
        if key not in own or tuple(own[key].shape) != tuple(value.shape):
            raise ConfigError(f"{path}: tensor {key} has shape {tuple(value.shape)}, model expects "
                              f"{tuple(own[key].shape) if key in own else 'no such tensor'}")
    model.load_state_dict(new, strict=False)
    m, s = grey_imagenet_stats() if in_chans == 1 else (None, None)
    with torch.no_grad():
        if in_chans == 1:
            model.input_mean.fill_(m)
            model.input_std.fill_(s)
        elif in_chans == 3:
            model.input_mean.copy_(torch.tensor(IMAGENET_MEAN_RGB).view(1, 3, 1, 1))
            model.input_std.copy_(torch.tensor(IMAGENET_STD_RGB).view(1, 3, 1, 1))
    return loaded


def vgg16(num_classes: int, width: float = 1.0, fc_width: int = 4096, image_size: int = 224,
          batch_norm: bool = True, pretrained: str = "auto", dropout: float = 0.5,
          seed: int | None = None) -> VGG16:
    """Build a greyscale VGG-16, optionally from torchvision's ImageNet weights in the local cache.

    `pretrained`: "never" (random init, the hub is not looked at), "auto" (load the cached ImageNet
    checkpoint when width == 1 and it exists, otherwise warn once and continue from random init),
    "require" (ConfigError when width != 1 or the file is absent). Nothing is ever downloaded.
    With image_size < 224 (pooled grid smaller than 7x7) or fc_width != 4096 only the conv trunk
    is loaded, with a warning. `seed` (optional) makes the random initialisation reproducible
    without touching torch's global generator.
    """
    if pretrained not in PRETRAINED_MODES:
        raise ConfigError(f"pretrained={pretrained!r} is not one of {', '.join(PRETRAINED_MODES)}")
    if seed is None:
        model = VGG16(num_classes, 1, width, fc_width, image_size, batch_norm, dropout)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = VGG16(num_classes, 1, width, fc_width, image_size, batch_norm, dropout)
    if pretrained == "never":
        return model
    name = "vgg16_bn" if batch_norm else "vgg16"
    if float(width) != 1.0:
        if pretrained == "require":
            raise ConfigError(f"pretrained='require' needs width=1 (ImageNet {name} weights), got width={width}")
        log.info("width=%s: ImageNet weights do not apply; random initialisation", width)
        return model
    path = imagenet_checkpoint_path(batch_norm)
    if not path.is_file():
        if pretrained == "require":
            raise ConfigError(f"pretrained='require' but ImageNet weights for {name} are not in the local torch "
                              f"cache ({path}); copy the file there (no download is attempted)")
        msg = f"ImageNet weights for {name} not in the local torch cache ({path}); continuing from random initialisation"
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)
        return model
    loaded = load_imagenet_weights(model, path)
    if "fc1+fc2" not in loaded:
        msg = (f"loaded only the conv trunk of ImageNet {name} from {path}: FC layers need image_size >= 224 "
               f"and fc_width=4096 (got image_size={image_size}, fc_width={fc_width}); FC layers are random")
        warnings.warn(msg, stacklevel=2)
        log.warning(msg)
    else:
        log.info("loaded ImageNet %s conv trunk and FC1/FC2 from %s", name, path)
    return model


# --------------------------------------------------------------------------- checkpoints


def save_model(model: VGG16, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save constructor kwargs + state dict (+ `extra`: plain str/int/float/bool/list/dict) atomically."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kwargs": dict(model.config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    return atomic_torch_save(payload, path)


def load_model(path: str | Path, map_location: str | torch.device = "cpu", return_extra: bool = False):
    """Rebuild a VGG16 saved by `save_model` (a file, or a run folder holding `model.pt`).

    Returns the model in eval mode, or `(model, extra)` with `return_extra=True`.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "model.pt"
    if not path.is_file():
        raise DataError(f"model checkpoint {path} does not exist")
    try:
        payload = torch_load(path, map_location=map_location)
    except Exception as exc:
        raise DataError(f"cannot read model checkpoint {path}: {type(exc).__name__}") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"{path} is not a hipaug VGG-16 checkpoint (format {CHECKPOINT_FORMAT})")
    model = VGG16(**payload["kwargs"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    if return_extra:
        return model, payload.get("extra", {})
    return model


# --------------------------------------------------------------------------- training

OPTIMIZERS = ("adam", "sgd")
MONITORS = ("val_loss", "val_acc")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of `train_classifier`."""

    epochs: int = 30  # maximum number of passes over the training set
    batch_size: int = 32  # images per optimisation step
    lr: float = 1e-3  # learning rate (Adam default; use ~1e-2 with sgd)
    weight_decay: float = 0.0  # L2 penalty passed to the optimiser
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.9  # SGD momentum (ignored by adam)
    lr_schedule: str = "constant"  # "constant" or "cosine" (cosine annealing to 0 over `epochs`)
    patience: int | None = 5  # stop after this many epochs without improvement of `monitor`; None: never stop early
    monitor: str = "val_loss"  # early-stopping / best-epoch criterion: "val_loss" (min) or "val_acc" (max)
    min_delta: float = 0.0  # smallest change of `monitor` that counts as an improvement
    val_fraction: float = 0.2  # share of patients held out when no `val` set is given (0: no validation, keep the last epoch)
    class_weights: bool = False  # inverse-frequency class weights in the cross-entropy (for imbalanced classes)
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: AugmentConfig | None = None  # classic augmentation of each training batch (None: none)
    device: str = "auto"  # "auto", "cpu" or "cuda[:k]"
    num_threads: int | None = None  # torch CPU threads during training (None: leave torch's setting)
    eval_batch_size: int = 256  # batch size for validation passes

    def __post_init__(self) -> None:
        def whole(name: str, lo: int) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"train.{name}={v!r} must be an integer >= {lo}")

        whole("epochs", 1)
        whole("batch_size", 2)  # batch norm needs at least two images per step
        whole("eval_batch_size", 1)
        if self.patience is not None:
            whole("patience", 1)
        if self.num_threads is not None:
            whole("num_threads", 1)
        for name, lo, hi in (("lr", 0.0, 10.0), ("weight_decay", 0.0, 1.0), ("momentum", 0.0, 1.0),
                             ("min_delta", 0.0, math.inf), ("val_fraction", 0.0, 0.5), ("label_smoothing", 0.0, 1.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
                raise ConfigError(f"train.{name}={v!r} must be a number in [{lo}, {hi}]")
        if self.lr <= 0:
            raise ConfigError(f"train.lr={self.lr!r} must be > 0")
        if self.momentum >= 1.0:
            raise ConfigError(f"train.momentum={self.momentum!r} must be < 1")
        if self.label_smoothing >= 1.0:
            raise ConfigError(f"train.label_smoothing={self.label_smoothing!r} must be < 1")
        for name, allowed in (("optimizer", OPTIMIZERS), ("monitor", MONITORS), ("lr_schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"train.{name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not isinstance(self.class_weights, bool):
            raise ConfigError(f"train.class_weights={self.class_weights!r} must be true or false")
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        if self.augment is not None and not isinstance(self.augment, AugmentConfig):
            raise ConfigError(f"train.augment must be an AugmentConfig, a dict or None, got {type(self.augment).__name__}")
        if not isinstance(self.device, str):
            raise ConfigError(f"train.device={self.device!r} must be a string")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (augment nested as a dict or None)."""
        d = asdict(self)
        d["augment"] = self.augment.to_dict() if self.augment is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. config.json); unknown keys raise ConfigError."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"train: unknown field(s) {', '.join(unknown)}")
        return cls(**d)


@dataclass
class TrainResult:
    """What `train_classifier` returns."""

    model: VGG16  # the model holding the best epoch's weights (eval mode)
    history: pd.DataFrame  # one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds
    best_epoch: int  # 1-based epoch whose weights were kept
    best_state: dict[str, torch.Tensor]  # CPU copy of the kept state dict
    class_weights: torch.Tensor | None = None  # loss weights used (None: unweighted)
    train_indices: np.ndarray | None = None  # indices into `train` used for training (None: all)
    val_indices: np.ndarray | None = None  # indices into `train` held out for validation (None: given `val` / none)
    extra: dict[str, Any] = field(default_factory=dict)  # timings etc.


def class_weights_from_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (C * n_c) (1 on average over samples); absent classes get weight 1."""
    counts = torch.bincount(labels.to(torch.long).cpu(), minlength=num_classes).to(torch.float32)
    n = float(counts.sum())
    w = n / (num_classes * counts.clamp(min=1.0))
    w[counts == 0] = 1.0
    return w


def _holdout_split(ds, val_fraction: float, seed: int):
    """Hold out ~val_fraction of patients, stratified by label: (train_ds, val_ds, train_idx, val_idx)."""
    from .data import patient_split

    tr, va = patient_split(ds, val_fraction, seed)
    tr, va = np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64)
    return ds.subset(tr), ds.subset(va), tr, va


def _derived_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed % 2**63, stream]).generate_state(1, dtype=np.uint64)[0] % 2**63)


def _frozen_modules(model: VGG16, freeze_blocks: int) -> list[nn.Module]:
    return list(model.blocks()[:freeze_blocks])


def _evaluate(model: VGG16, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, cfg: TrainConfig,
              device: torch.device) -> tuple[float, float]:
    """Weighted mean loss and accuracy of `model` (eval mode) on (x, y)."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    w_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    bs = _inference_chunk(model, x, cfg.eval_batch_size, device)
    with torch.inference_mode(), _autocast(device):
        for i in range(0, len(y), bs):
            xb = x[i:i + bs].to(device, non_blocking=True)
            yb = y[i:i + bs].to(device, non_blocking=True)
            logits = model(xb).float()
            losses = F.cross_entropy(logits, yb, weight=weight, reduction="none", label_smoothing=cfg.label_smoothing)
            loss_sum += losses.sum()
            w_sum += weight[yb].sum() if weight is not None else len(yb)
            correct += (logits.argmax(1) == yb).sum()
    return float(loss_sum / w_sum), float(correct) / max(1, len(y))


def _autocast(device: torch.device):
    # CUDA only: bf16 autocast; on CPU a no-op context so results stay float32 and bit-exact.
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


CPU_CHUNK_BYTES = 16 * 2**20  # activation budget of one inference chunk on CPU (first conv's output)


def _inference_chunk(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> int:
    """Images per forward pass when scoring: `batch_size`, or on CPU fewer so activations stay in cache.

    On CPU, throughput falls once a chunk's activations outgrow the caches (default profile: 2,600
    images/s at 64-128 images per pass, 1,900 at 256). The largest power of two (>= 8) whose first
    conv output fits CPU_CHUNK_BYTES is used; results do not depend on it (eval mode, per-image maths).
    """
    if device.type != "cpu" or x.ndim != 4:
        return batch_size
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    per_image = (conv.out_channels if conv is not None else 1) * x.shape[-2] * x.shape[-1] * 4
    chunk = 8
    while chunk * 2 <= batch_size and chunk * 2 * per_image <= CPU_CHUNK_BYTES:
        chunk *= 2
    return max(1, min(batch_size, chunk))


@contextlib.contextmanager
def _cpu_channels_last(model: nn.Module, device: torch.device):
    """On CPU, hold the conv weights in channels_last (NHWC) memory order while training or scoring.

    oneDNN's NHWC convolutions are markedly faster than NCHW for this network on CPU (about 1.3x per
    training step and 1.5x for inference at the default profile's sizes; benchmarks/bench_levers.py),
    and the results stay deterministic. Greyscale (N,1,S,S) input is already NHWC-compatible, so no
    input copy is made. The model's original (contiguous) layout is restored on exit, so
    checkpoints and callers never see the difference. Elsewhere (CUDA, a model already in
    channels_last) this is a no-op.
    """
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    convert = device.type == "cpu" and conv is not None and conv.weight.is_contiguous()
    if convert:
        model.to(memory_format=torch.channels_last)
    try:
        yield convert
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)


def train_classifier(model: VGG16, train, cfg: TrainConfig, seed: int, val=None, run_dir: str | Path | None = None,
                     freeze_blocks: int = 0) -> TrainResult:
    """Train `model` on `train` (an ImageDataset); return the model of the best epoch by `cfg.monitor`.

    Early stopping applies only when `cfg.patience` is set; the best epoch is kept either way.

    Without `val`, a patient-grouped, label-stratified `cfg.val_fraction` of `train` is held out
    (val_fraction 0: no validation, the last epoch is kept). Batches come from a seeded permutation
    of in-memory tensors, so CPU runs repeat bit for bit for a given seed. `freeze_blocks=k` freezes
    the first k conv blocks (weights and batch-norm statistics) for fine-tuning. With `run_dir`,
    writes `config.json`, `history.csv` and `model.pt` (`save_model` format) there.
    """
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(freeze_blocks, int) or not 0 <= freeze_blocks <= 5:
        raise ConfigError(f"freeze_blocks={freeze_blocks!r} must be an integer in [0, 5]")
    n_classes = len(train.class_names)
    if n_classes != model.num_classes:
        raise ConfigError(f"model has {model.num_classes} outputs but the training set has {n_classes} classes "
                          f"({', '.join(train.class_names)}); call model.reset_classifier({n_classes})")
    if val is not None and tuple(val.class_names) != tuple(train.class_names):
        raise DataError(f"validation classes {val.class_names} differ from training classes {train.class_names}")
    if train.images.shape[1] != model.config["in_chans"]:
        raise DataError(f"images have {train.images.shape[1]} channels, model expects {model.config['in_chans']}")
    device = resolve_device(cfg.device)
    t_start = time.perf_counter()
    perm_gen = torch.Generator().manual_seed(_derived_seed(seed, 1))
    aug_gen = torch.Generator().manual_seed(_derived_seed(seed, 2))
    # Dropout draws from the global generator: seed it from `seed`, so a run never depends on what
    # consumed random numbers before it in the process, and give the caller its state back after.
    caller_rng = torch.get_rng_state()
    torch.manual_seed(_derived_seed(seed, 3))

    train_idx = val_idx = None
    if val is None and cfg.val_fraction > 0:
        train, val, train_idx, val_idx = _holdout_split(train, cfg.val_fraction, seed)
    if len(train) < 2:
        raise DataError(f"need at least 2 training images, got {len(train)}")
    x_tr, y_tr = train.images, train.labels.to(torch.long)
    if val is not None:
        x_va, y_va = val.images, val.labels.to(torch.long)
    weight = class_weights_from_labels(y_tr, n_classes) if cfg.class_weights else None
    weight_dev = weight.to(device) if weight is not None else None

    old_threads = torch.get_num_threads()
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
    frozen = _frozen_modules(model, freeze_blocks)
    for mod in frozen:
        for p in mod.parameters():
            p.requires_grad_(False)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused optimiser kernels: one pass over parameters and state instead of one per arithmetic op
    # (on CPU, `foreach` falls back to a per-tensor loop; fused Adam is ~2.5x cheaper per step).
    impl = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **impl)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **impl)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.lr_schedule == "cosine" else None

    run_path = Path(run_dir) if run_dir is not None else None
    base_config = {
        "train": cfg.to_dict(), "seed": seed, "freeze_blocks": freeze_blocks, "model": dict(model.config),
        "class_names": list(train.class_names), "n_train": len(train), "n_val": len(val) if val is not None else 0,
        "train_fingerprint": getattr(train, "fingerprint", ""),
        "val_fingerprint": getattr(val, "fingerprint", "") if val is not None else None,
        "device": str(device), "torch": torch.__version__,
    }
    if run_path is not None:
        write_json(run_path / "config.json", base_config)

    n = len(y_tr)
    n_batches = n // cfg.batch_size + (1 if n % cfg.batch_size >= 2 else 0)  # a last batch of 1 breaks batch norm
    n_seen = min(n, n_batches * cfg.batch_size)
    sign = 1.0 if cfg.monitor == "val_acc" else -1.0
    best_score, best_epoch, best_state, since_best = -math.inf, 0, None, 0
    rows: list[dict[str, float]] = []
    use_aug = cfg.augment is not None and not cfg.augment.is_identity
    bar = progress(range(1, cfg.epochs + 1), desc="train", unit="epoch")
    layout = _cpu_channels_last(model, device)  # NHWC weights on CPU (same Parameter objects); undone in `finally`
    layout.__enter__()
    try:
        for epoch in bar:
            t0 = time.perf_counter()
            model.train()
            for mod in frozen:
                mod.eval()  # keep frozen batch-norm statistics fixed
            order = torch.randperm(n, generator=perm_gen)
            loss_sum = torch.zeros((), device=device, dtype=torch.float64)
            w_sum = torch.zeros((), device=device, dtype=torch.float64)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            for b in range(n_batches):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                xb, yb = x_tr[idx], y_tr[idx]
                if device.type == "cuda":
                    xb = xb.pin_memory().to(device, non_blocking=True)
                    yb = yb.pin_memory().to(device, non_blocking=True)
                if use_aug:
                    xb = classic_augment(xb, cfg.augment, aug_gen)
                with _autocast(device):
                    logits = model(xb).float()
                losses = F.cross_entropy(logits, yb, weight=weight_dev, reduction="none",
                                         label_smoothing=cfg.label_smoothing)
                if weight_dev is not None:
                    wb = weight_dev[yb].sum()
                else:
                    wb = torch.tensor(float(len(yb)), device=device)
                loss = losses.sum() / wb
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += losses.detach().sum()
                w_sum += wb.detach()
                correct += (logits.detach().argmax(1) == yb).sum()
            lr_used = opt.param_groups[0]["lr"]
            if sched is not None:
                sched.step()
            row = {"epoch": epoch, "train_loss": float(loss_sum / w_sum), "train_acc": float(correct) / n_seen,
                   "val_loss": float("nan"), "val_acc": float("nan"), "lr": lr_used}
            if val is not None:
                row["val_loss"], row["val_acc"] = _evaluate(model, x_va, y_va, weight_dev, cfg, device)
            row["seconds"] = time.perf_counter() - t0
            rows.append(row)
            bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_loss=f"{row['val_loss']:.3f}",
                            val_acc=f"{row['val_acc']:.3f}")
            if not math.isfinite(row["train_loss"]):
                warnings.warn(f"training loss became {row['train_loss']} at epoch {epoch}; "
                              "stopping and keeping the best epoch", stacklevel=2)
                break
            score = sign * row[cfg.monitor] if val is not None else float(epoch)
            if best_state is None or score > best_score + cfg.min_delta:
                best_score, best_epoch, since_best = score, epoch, 0
                best_state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
                              for k, v in model.state_dict().items()}
            else:
                since_best += 1
                if cfg.patience is not None and since_best >= cfg.patience:
                    break
    finally:
        bar.close()
        torch.set_rng_state(caller_rng)
        layout.__exit__(None, None, None)
        if cfg.num_threads is not None:
            torch.set_num_threads(old_threads)
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad[name])

    if best_state is None:
        raise ConfigError("training diverged in epoch 1 (non-finite loss); lower train.lr")
    model.load_state_dict(best_state)
    model.eval()
    history = pd.DataFrame(rows, columns=["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"])
    seconds = time.perf_counter() - t_start
    if run_path is not None:
        atomic_write_text(run_path / "history.csv", history.to_csv(index=False))
        save_model(model, run_path / "model.pt", extra={"class_names": list(train.class_names), "seed": seed,
                                                         "best_epoch": best_epoch, "freeze_blocks": freeze_blocks})
        write_json(run_path / "config.json", {**base_config, "best_epoch": best_epoch, "epochs_run": len(rows),
                                              "seconds": seconds})
    return TrainResult(model=model, history=history, best_epoch=best_epoch, best_state=best_state,
                       class_weights=weight, train_indices=train_idx, val_indices=val_idx,
                       extra={"seconds": seconds, "epochs_run": len(rows), "device": str(device)})


# --------------------------------------------------------------------------- inference


def _as_image_tensor(images) -> torch.Tensor:
    if hasattr(images, "images") and hasattr(images, "labels"):  # an ImageDataset
        images = images.images
    x = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"images must be (N,S,S) or (N,C,S,S), got shape {tuple(x.shape)}")
    return x.float() if x.dtype != torch.float32 else x


def _batched_inference(model: VGG16, images, batch_size: int, device: str | torch.device, fn) -> np.ndarray:
    x = _as_image_tensor(images)
    dev = resolve_device(device)
    was_training = model.training
    try:
        orig_dev = next(model.parameters()).device
    except StopIteration:
        orig_dev = dev
    model.eval()
    model.to(dev)
    outs = []
    try:
        bs = _inference_chunk(model, x, batch_size, dev)
        with _cpu_channels_last(model, dev), torch.inference_mode(), _autocast(dev):
            for i in range(0, x.shape[0], bs):
                outs.append(fn(x[i:i + bs].to(dev, non_blocking=True)).float().cpu())
    finally:
        model.to(orig_dev)
        model.train(was_training)
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outs).numpy()


def predict_proba(model: VGG16, images, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """Softmax class probabilities (N, C) float32; the model's training mode and device are restored."""
    out = _batched_inference(model, images, batch_size, device, lambda xb: torch.softmax(model(xb).float(), dim=1))
    return out.reshape(-1, model.num_classes) if out.size == 0 else out


def extract_features(model: VGG16, images, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """Penultimate-layer embeddings (N, fc_width) float32 (see `VGG16.embed`)."""
    out = _batched_inference(model, images, batch_size, device, model.embed)
    return out.reshape(-1, model.fc_width) if out.size == 0 else out
