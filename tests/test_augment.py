"""Classic augmentation: shape/range, identity, determinism, flips, rotation geometry, config checks."""

from __future__ import annotations

import math

import pytest
import torch

from hipaug.training.augment import AugmentConfig, affine_theta, classic_augment
from hipaug.errors import ConfigError

ZERO = dict(hflip=0.0, vflip=0.0, rotation=0.0, scale=(1.0, 1.0), translate=0.0, brightness=0.0, contrast=0.0)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _images(n=8, s=32, seed=0):
    return torch.rand(n, 1, s, s, generator=torch.Generator().manual_seed(seed))


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_shape_dtype_range_preserved():
    x = _images()
    cfg = AugmentConfig(vflip=0.5, rotation=30, brightness=0.3, contrast=0.3)
    y = classic_augment(x, cfg, _gen(0))
    assert y.shape == x.shape and y.dtype == x.dtype and y.device == x.device
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x)


@pytest.mark.parametrize("cfg", [AugmentConfig(enabled=False), AugmentConfig(**ZERO)])
def test_identity_when_disabled_or_zero(cfg):
    x = _images()
    assert cfg.is_identity
    assert torch.equal(classic_augment(x, cfg, _gen(0)), x)


def test_deterministic_given_generator_and_seeds_differ():
    x = _images()
    cfg = AugmentConfig()
    a = classic_augment(x, cfg, _gen(3))
    b = classic_augment(x, cfg, _gen(3))
    c = classic_augment(x, cfg, _gen(4))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_flip_only_matches_torch_flip():
    x = _images(16)
    cfg = AugmentConfig(**{**ZERO, "hflip": 0.5})
    y, params = classic_augment(x, cfg, _gen(1), return_params=True)
    flipped = params["hflip"]
    assert 0 < int(flipped.sum()) < len(x)  # both cases occur with this seed
    assert torch.equal(y[flipped], torch.flip(x[flipped], dims=[-1]))
    assert torch.equal(y[~flipped], x[~flipped])
    cfg_v = AugmentConfig(**{**ZERO, "vflip": 1.0})
    assert torch.equal(classic_augment(x, cfg_v, _gen(1)), torch.flip(x, dims=[-2]))


def test_rotation_moves_a_pixel_where_expected():
    s, c = 65, 32  # odd size: the centre is a pixel
    x = torch.zeros(4, 1, s, s)
    x[:, :, c, c + 20] = 1.0  # 20 px right of the centre (blurred a bit so bilinear keeps a peak)
    x = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1) * 9
    cfg = AugmentConfig(**{**ZERO, "rotation": 90.0})
    y, params = classic_augment(x, cfg, _gen(5), return_params=True)
    for i in range(len(x)):
        a = math.radians(float(params["angle"][i]))
        # Counter-clockwise as displayed (y points down): (dx, dy) = (20, 0) -> (20 cos a, -20 sin a).
        exp_r, exp_c = c - 20 * math.sin(a), c + 20 * math.cos(a)
        r, col = divmod(int(y[i, 0].argmax()), s)
        assert abs(r - exp_r) <= 1.5 and abs(col - exp_c) <= 1.5, (params["angle"][i], r, col, exp_r, exp_c)


def test_scale_and_translate_geometry():
    theta = affine_theta(torch.tensor([0.0]), torch.tensor([2.0]), torch.tensor([0.1]), torch.tensor([0.0]))
    # Output x = 0 samples input x = -(2 * 0.1) / 2 = -0.1 (zoom 2 about the centre after shifting right).
    assert torch.allclose(theta, torch.tensor([[[0.5, 0.0, -0.1], [0.0, 0.5, 0.0]]]), atol=1e-6)


def test_device_agnostic_params_on_cpu_generator():
    x = _images(4).double()
    y = classic_augment(x, AugmentConfig(), _gen(0))
    assert y.dtype == torch.float64
    with pytest.raises(ValueError):
        classic_augment(x[0], AugmentConfig(), _gen(0))


@pytest.mark.parametrize("kwargs, field", [
    (dict(hflip=1.5), "hflip"), (dict(vflip=-0.1), "vflip"), (dict(rotation=-1), "rotation"),
    (dict(scale=(1.2, 0.8)), "scale"), (dict(scale=(0.0, 1.0)), "scale"), (dict(translate=0.7), "translate"),
    (dict(brightness=2.0), "brightness"), (dict(contrast=float("nan")), "contrast"),
    (dict(padding="wrap"), "padding"), (dict(enabled="yes"), "enabled"),
])
def test_config_validation_names_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"augment.{field}") as err:
        AugmentConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_config_dict_round_trip():
    cfg = AugmentConfig(rotation=10, scale=(0.8, 1.2))
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ConfigError, match="unknown"):
        AugmentConfig.from_dict({"flip": 0.5})


# ------------------------------------------------------------------ DiffAugment
def test_diff_augment_is_seeded_differentiable_and_off_when_empty():
    from hipaug.training.augment import check_diffaug, diff_augment

    ops = check_diffaug("brightness, contrast,translation,cutout")
    assert ops == ("brightness", "contrast", "translation", "cutout")
    x = (torch.rand(6, 1, 16, 16) * 2 - 1).requires_grad_(True)
    a = diff_augment(x, ops, torch.Generator().manual_seed(1))
    b = diff_augment(x, ops, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and a.shape == x.shape
    assert not torch.equal(a, diff_augment(x, ops, torch.Generator().manual_seed(2)))
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # gradients reach the generator's output
    g = torch.Generator().manual_seed(3)
    state = g.get_state()
    assert diff_augment(x, (), g) is x and torch.equal(g.get_state(), state)  # off: no draws, no change


def test_diff_augment_translation_shifts_and_cutout_masks_half_the_side():
    from hipaug.training.augment import diff_augment

    x = torch.ones(64, 1, 16, 16)
    cut = diff_augment(x, ("cutout",), torch.Generator().manual_seed(0))
    holes = (cut == 0).sum(dim=(1, 2, 3))
    assert holes.max() == 8 * 8 and holes.min() > 0  # a half-side square, clipped at the borders
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(64, 1, 16, 16)
    moved = diff_augment(ramp, ("translation",), torch.Generator().manual_seed(0))
    shift = moved[:, 0, 8, 8] - 8  # horizontal shift of each image, within 1/8 of the side
    assert shift.abs().max() <= 2 and (shift != 0).any()


def test_check_diffaug_names_the_bad_operation():
    from hipaug.training.augment import check_diffaug
    from hipaug.errors import ConfigError

    with pytest.raises(ConfigError, match="colour"):
        check_diffaug("translation,colour")
