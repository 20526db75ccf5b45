"""Classic augmentation of radiographs: random flips, rotation, scaling, translation, intensity jitter.

The baseline of Lin & Chung (TAAI 2019): "flipping, rotating, and scaling ... usually are not good
enough to increase diversities" -- the paper's motivation for AC-GAN augmentation. Everything is
batched on tensors (one random affine per image through `F.affine_grid` / `F.grid_sample`), runs on
any device, and is deterministic given a CPU `torch.Generator` (parameters are drawn on the CPU and
then moved to the images' device, so CPU and CUDA runs see the same random draws).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F

from hipaug.errors import ConfigError

PADDING_MODES = ("zeros", "border", "reflection")


@dataclass(frozen=True)
class AugmentConfig:
    """Random geometric and intensity perturbations applied independently to each image."""

    enabled: bool = True  # False: classic_augment returns its input unchanged
    hflip: float = 0.5  # probability of a left-right flip (limbs and pelves are roughly mirror-symmetric)
    vflip: float = 0.0  # probability of an up-down flip; 0 because radiographs are rarely shown upside down
    rotation: float = 15.0  # maximum absolute rotation in degrees, uniform in [-rotation, rotation]
    scale: tuple[float, float] = (0.9, 1.1)  # zoom factor range, uniform (>1 enlarges the anatomy)
    translate: float = 0.05  # maximum shift as a fraction of the image side, uniform per axis
    brightness: float = 0.05  # maximum additive intensity shift, uniform in [-b, b] (images are in [0, 1])
    contrast: float = 0.05  # maximum relative contrast change: factor uniform in [1-c, 1+c] about the image mean
    padding: str = "zeros"  # grid_sample fill outside the image: "zeros" (black, like a radiograph's background), "border", "reflection"

    def __post_init__(self) -> None:
        if not isinstance(self.enabled, bool):
            raise ConfigError(f"augment.enabled={self.enabled!r} must be true or false")
        for name in ("hflip", "vflip"):
            p = getattr(self, name)
            if not _is_number(p) or not 0.0 <= p <= 1.0:
                raise ConfigError(f"augment.{name}={p!r} must be a probability in [0, 1]")
        if not _is_number(self.rotation) or not 0.0 <= self.rotation <= 180.0:
            raise ConfigError(f"augment.rotation={self.rotation!r} must be degrees in [0, 180]")
        sc = self.scale
        if isinstance(sc, list):  # from JSON/YAML
            object.__setattr__(self, "scale", tuple(sc))
            sc = self.scale
        if (not isinstance(sc, tuple) or len(sc) != 2 or not all(_is_number(s) for s in sc)
                or not 0.0 < sc[0] <= sc[1] or sc[1] > 10.0):
            raise ConfigError(f"augment.scale={sc!r} must be a pair (lo, hi) with 0 < lo <= hi <= 10")
        if not _is_number(self.translate) or not 0.0 <= self.translate <= 0.5:
            raise ConfigError(f"augment.translate={self.translate!r} must be a fraction in [0, 0.5]")
        for name in ("brightness", "contrast"):
            v = getattr(self, name)
            if not _is_number(v) or not 0.0 <= v <= 1.0:
                raise ConfigError(f"augment.{name}={v!r} must be in [0, 1]")
        if self.padding not in PADDING_MODES:
            raise ConfigError(f"augment.padding={self.padding!r} is not one of {', '.join(PADDING_MODES)}")

    @property
    def geometric(self) -> bool:
        """True when the affine warp can change an image (rotation, scale or translation)."""
        return self.rotation > 0 or self.scale != (1.0, 1.0) or self.translate > 0

    @property
    def is_identity(self) -> bool:
        """True when augmentation cannot change any image."""
        return (not self.enabled or (self.hflip == 0 and self.vflip == 0 and not self.geometric
                                     and self.brightness == 0 and self.contrast == 0))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (scale as a list)."""
        d = asdict(self)
        d["scale"] = list(self.scale)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "AugmentConfig":
        """Build from a dict (e.g. config.json); unknown keys raise ConfigError."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"augment: unknown field(s) {', '.join(unknown)}")
        d = dict(d)
        if "scale" in d and isinstance(d["scale"], list):
            d["scale"] = tuple(d["scale"])
        return cls(**d)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def affine_theta(angle_deg: torch.Tensor, scale: torch.Tensor, tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    """Return `F.affine_grid` matrices (N, 2, 3) for the forward map p_out = s R(angle) p_in + t.

    Coordinates are normalised to [-1, 1] with x to the right and y down (image convention), so a
    positive angle turns the content counter-clockwise as displayed (like torchvision's `rotate`);
    `tx`, `ty` are fractions of the image side (0.1 moves content 10% right / down). affine_grid
    wants the inverse map (output -> input): theta = [M^-1 | -M^-1 t] with t in normalised units.
    Square images only (no aspect correction).
    """
    a = torch.deg2rad(angle_deg)
    cos, sin = torch.cos(a) / scale, torch.sin(a) / scale
    # M = s [[cos, sin], [-sin, cos]] (CCW on screen with y down); M^-1 = (1/s) [[cos, -sin], [sin, cos]].
    t_x, t_y = 2.0 * tx, 2.0 * ty
    row0 = torch.stack([cos, -sin, -(cos * t_x - sin * t_y)], dim=-1)
    row1 = torch.stack([sin, cos, -(sin * t_x + cos * t_y)], dim=-1)
    return torch.stack([row0, row1], dim=1)


def classic_augment(images: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None,
                    return_params: bool = False):
    """Flip, rotate, scale, translate and jitter each image of a batch independently.

    `images` is (N, C, H, W) floating point in [0, 1] on any device; the result has the same shape,
    dtype and device and is clamped to [0, 1]. Random parameters are drawn from `generator` (a CPU
    torch.Generator; None uses torch's global generator) in a fixed order whatever the config, so
    toggling one option does not reshuffle the others. Disabled or zero-magnitude steps are skipped,
    which makes an all-zero config return the input bit for bit. With `return_params=True` also
    return a dict of the per-image draws (hflip, vflip, angle, scale, tx, ty, brightness, contrast).
    """
    if images.ndim != 4 or not images.is_floating_point():
        raise ValueError(f"classic_augment expects a floating (N, C, H, W) tensor, got {tuple(images.shape)} {images.dtype}")
    n = images.shape[0]
    if generator is not None and generator.device.type != "cpu":
        raise ValueError("classic_augment draws parameters on the CPU: pass a CPU torch.Generator")

    def u(lo: float, hi: float) -> torch.Tensor:  # uniform draws on the CPU
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    params = {
        "hflip": torch.rand(n, generator=generator, dtype=torch.float64) < cfg.hflip,
        "vflip": torch.rand(n, generator=generator, dtype=torch.float64) < cfg.vflip,
        "angle": u(-cfg.rotation, cfg.rotation),
        "scale": u(cfg.scale[0], cfg.scale[1]),
        "tx": u(-cfg.translate, cfg.translate),
        "ty": u(-cfg.translate, cfg.translate),
        "brightness": u(-cfg.brightness, cfg.brightness),
        "contrast": u(1.0 - cfg.contrast, 1.0 + cfg.contrast),
    }
    out = images
    if cfg.enabled and n > 0:
        dev = images.device
        bshape = (n,) + (1,) * (images.ndim - 1)
        if cfg.hflip > 0:
            out = torch.where(params["hflip"].to(dev).view(bshape), out.flip(-1), out)
        if cfg.vflip > 0:
            out = torch.where(params["vflip"].to(dev).view(bshape), out.flip(-2), out)
        if cfg.geometric:
            theta = affine_theta(params["angle"], params["scale"], params["tx"], params["ty"])
            work = out if out.dtype in (torch.float32, torch.float64) else out.float()
            grid = F.affine_grid(theta.to(device=dev, dtype=work.dtype), list(work.shape), align_corners=False)
            # Bilinear resampling; align_corners=False keeps the pixel grid centred under rotation.
            out = F.grid_sample(work, grid, mode="bilinear", padding_mode=cfg.padding, align_corners=False).to(out.dtype)
        if cfg.contrast > 0 or cfg.brightness > 0:
            c = params["contrast"].to(device=dev, dtype=out.dtype).view(bshape)
            b = params["brightness"].to(device=dev, dtype=out.dtype).view(bshape)
            mean = out.mean(dim=(1, 2, 3), keepdim=True)
            out = (out - mean) * c + mean + b
        if out is not images:
            out = out.clamp(0.0, 1.0)
    if return_params:
        return out, params
    return out


# ------------------------------------------------------------------ differentiable augmentation
DIFFAUG_OPS = ("brightness", "contrast", "translation", "cutout")


def check_diffaug(policy: str) -> tuple[str, ...]:
    """Parse a DiffAugment policy such as "translation,cutout" ("" = off) into its operations."""
    if not isinstance(policy, str):
        raise ConfigError(f"diffaug={policy!r} must be a comma-separated string of {', '.join(DIFFAUG_OPS)}")
    ops = tuple(p.strip() for p in policy.split(",") if p.strip())
    bad = [p for p in ops if p not in DIFFAUG_OPS]
    if bad:
        raise ConfigError(f"diffaug: unknown operation '{bad[0]}' (known: {', '.join(DIFFAUG_OPS)})")
    return ops


def diff_augment(x: torch.Tensor, ops: tuple[str, ...], generator: torch.Generator) -> torch.Tensor:
    """Differentiable augmentation of a batch in [-1, 1] (Zhao et al., NeurIPS 2020, DiffAugment).

    D sees every real and every generated image through the same random transformations, so on a
    few hundred images it cannot memorise the real set, and G's gradient passes through them
    (shifts and masks are gathers and products). Parameters come from `generator` (CPU) in a fixed
    order, so a seeded run, and its resumption, repeat bit for bit. Greyscale adaptation: no
    saturation; translation by up to 1/8 of the side and cutout of a square of half the side,
    both filled with 0 as in the reference implementation.
    """
    if not ops:
        return x
    n, _, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator).to(dev)

    if "brightness" in ops:
        x = x + (rand(n, 1, 1, 1) - 0.5)
    if "contrast" in ops:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (rand(n, 1, 1, 1) + 0.5) + mean
    if "translation" in ops:
        sh, sw = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
        ty = torch.randint(-sh, sh + 1, (n, 1, 1), generator=generator).to(dev)
        tx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=generator).to(dev)
        # Index 0 and h+1 of the zero-padded batch are padding: shifted-in pixels are 0, as in the paper.
        gy = (torch.arange(h, device=dev).view(1, h, 1) + ty + 1).clamp(0, h + 1)
        gx = (torch.arange(w, device=dev).view(1, 1, w) + tx + 1).clamp(0, w + 1)
        padded = F.pad(x, (1, 1, 1, 1))
        x = padded[torch.arange(n, device=dev).view(n, 1, 1), :, gy, gx].permute(0, 3, 1, 2)
    if "cutout" in ops:
        ch, cw = h // 2, w // 2
        y0 = torch.randint(0, h, (n, 1, 1), generator=generator).to(dev) - ch // 2
        x0 = torch.randint(0, w, (n, 1, 1), generator=generator).to(dev) - cw // 2
        yy = torch.arange(h, device=dev).view(1, h, 1)
        xx = torch.arange(w, device=dev).view(1, 1, w)
        hole = (yy >= y0) & (yy < y0 + ch) & (xx >= x0) & (xx < x0 + cw)
        x = x * (~hole).unsqueeze(1).to(x.dtype)
    return x
