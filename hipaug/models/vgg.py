"""VGG-16 (Simonyan & Zisserman 2015, configuration D) for greyscale radiographs: the network and its checkpoints.

Lin & Chung (TAAI 2019) use one VGG-16 twice: trained on real limb radiographs it scores AC-GAN
samples (the realism filter), and the same backbone, pre-trained on limb classes with its head
replaced, is fine-tuned for hip-fracture detection on pelvic radiographs (transfer learning).
This module holds the network (torchvision's layer layout, so ImageNet checkpoints load by key),
`ArchSpec` (the one VGG every step uses), ImageNet weight loading and self-describing checkpoints.
Training and inference live in `hipaug.training`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hipaug.core import atomic_torch_save, default_dtype, torch_dtype, torch_load
from hipaug.core.seeds import torch_global_seed
from hipaug.errors import ConfigError, DataError

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


@dataclass(frozen=True)
class ArchSpec:
    """The VGG-16 used everywhere (filter, pre-training, fine-tuning); the defaults are VGG-16's own (vgg16_bn).

    `vgg16()` takes its defaults from here, so the network a profile describes and the one the
    function builds never disagree. Profiles narrow it (`width`, `fc_width`) for a CPU.
    """

    width: float = 1.0  # channel multiplier of configuration D (the paper's VGG-16: 1)
    fc_width: int = 4096  # units in the two hidden FC layers (VGG-16: 4096)
    batch_norm: bool = True  # vgg16_bn variant: narrow VGGs train unreliably from scratch without BN
    dropout: float = 0.5  # dropout in the FC layers, as in VGG
    pretrained: str = "never"  # ImageNet weights: never | auto (only if in the local torch cache) | require
    dtype: str = "float32"  # the weights' and the arithmetic's precision: float32, or float64 (results the
    #   CPU's kernels do not change at printed precision: the smoke profile, slower)

    def __post_init__(self) -> None:
        if self.pretrained not in PRETRAINED_MODES:
            raise ConfigError(f"arch.pretrained={self.pretrained!r} must be one of {', '.join(PRETRAINED_MODES)}")
        torch_dtype(self.dtype, "arch.dtype")


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


def vgg16(num_classes: int, width: float = ArchSpec.width, fc_width: int = ArchSpec.fc_width, image_size: int = 224,
          batch_norm: bool = ArchSpec.batch_norm, pretrained: str = ArchSpec.pretrained,
          dropout: float = ArchSpec.dropout, seed: int | None = None, dtype: str | torch.dtype = ArchSpec.dtype) -> VGG16:
    """Build a greyscale VGG-16, optionally from torchvision's ImageNet weights in the local cache.

    `pretrained`: "never" (random init, the hub is not looked at), "auto" (load the cached ImageNet
    checkpoint when width == 1 and it exists, otherwise warn once and continue from random init),
    "require" (ConfigError when width != 1 or the file is absent). Nothing is ever downloaded.
    With image_size < 224 (pooled grid smaller than 7x7) or fc_width != 4096 only the conv trunk
    is loaded, with a warning. `seed` (optional) makes the random initialisation reproducible
    without touching torch's global generator. `dtype` (float32 or float64) is the precision the
    weights are drawn and kept in.
    """
    if pretrained not in PRETRAINED_MODES:
        raise ConfigError(f"pretrained={pretrained!r} is not one of {', '.join(PRETRAINED_MODES)}")
    # Drawn in the model's own dtype: float32 draws differ in their last bit between CPU kernels.
    with default_dtype(dtype), torch_global_seed(seed, "init") if seed is not None else contextlib.nullcontext():
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
    state = payload["state_dict"]
    # The checkpoint's precision (float32 or float64) is the precision the model is rebuilt in.
    dtype = next((v.dtype for v in state.values() if v.is_floating_point()), torch.float32)
    with default_dtype(dtype):
        model = VGG16(**payload["kwargs"])
    model.load_state_dict(state)
    model.eval()
    if return_extra:
        return model, payload.get("extra", {})
    return model
