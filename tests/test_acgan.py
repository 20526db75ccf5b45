"""Fast tests of the AC-GAN: networks (hipaug.models.acgan), losses, options, runs, resume, sampling (hipaug.training)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.nn.utils import parametrize

from hipaug import data
from hipaug.errors import ConfigError
from hipaug.models.acgan import Discriminator, Generator
from hipaug.training import (
    HISTORY_COLUMNS, ACGANConfig, discriminator_loss, generator_loss, load_generator, mode_seeking_loss, sample,
    sample_dataset, sample_to_folder, train_acgan,
)
from hipaug.training.gan.losses import pair_labels

SIZES = (32, 64, 128, 256)
CLASSES = ("elbow", "hand", "knee")


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("HIPAUG_PROGRESS", "0")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_dataset(n: int = 18, size: int = 32, seed: int = 0, classes=CLASSES) -> data.ImageDataset:
    """Class-dependent blobs so the class head has something to learn."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % len(classes)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    imgs = []
    for c in labels.tolist():
        cx = -0.5 + 0.5 * c
        blob = torch.exp(-((xx - cx) ** 2 + yy**2) / 0.1)
        imgs.append((blob + 0.1 * torch.rand(size, size, generator=g)).clamp(0, 1))
    return data.from_arrays(torch.stack(imgs)[:, None], labels, classes)


def tiny_cfg(**kw) -> ACGANConfig:
    base = dict(
        image_size=32, latent_dim=8, g_width=8, d_width=8, steps=6, batch_size=4,
        log_every=2, sample_every=3, checkpoint_every=3, grid_per_class=2, device="cpu",
    )
    base.update(kw)
    return ACGANConfig(**base)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    import os

    os.environ["HIPAUG_PROGRESS"] = "0"
    ds = tiny_dataset()
    run_dir = tmp_path_factory.mktemp("acgan") / "run"
    run = train_acgan(tiny_cfg(ema_decay=0.9), ds, run_dir, seed=3)
    return run, ds


# ---------------------------------------------------------------------------- networks


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("sn,mbstd,cond", [(False, False, "concat"), (True, True, "mul")])
def test_shapes_range_and_gradients(size, sn, mbstd, cond):
    torch.manual_seed(0)
    G = Generator(3, latent_dim=8, image_size=size, width=4, conditioning=cond)
    D = Discriminator(3, image_size=size, width=4, spectral_norm=sn, minibatch_std=mbstd)
    z, y = torch.randn(2, 8), torch.tensor([0, 2])
    x = G(z, y)
    assert x.shape == (2, 1, size, size)
    assert torch.isfinite(x).all() and x.min() >= -1 and x.max() <= 1
    adv, cls = D(x)
    assert adv.shape == (2,) and cls.shape == (2, 3)
    assert torch.isfinite(adv).all() and torch.isfinite(cls).all()
    (adv.sum() + cls.sum()).backward()
    for name, p in [*G.named_parameters(prefix="G"), *D.named_parameters(prefix="D")]:
        assert p.grad is not None, f"no gradient on {name}"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"zero gradient on {name}"


@pytest.mark.parametrize("size,blocks", [(32, 3), (64, 4), (128, 5), (256, 6)])
def test_depth_follows_image_size_and_width_is_capped(size, blocks):
    G = Generator(2, latent_dim=8, image_size=size, width=4, max_mult=8)
    D = Discriminator(2, image_size=size, width=4)
    ups = [m for m in G.modules() if isinstance(m, nn.ConvTranspose2d)]
    downs = [m for m in D.modules() if isinstance(m, nn.Conv2d)]
    assert len(ups) == blocks and len(downs) == blocks
    assert max(m.in_channels for m in ups) <= 32 and max(m.out_channels for m in downs) <= 32


def test_discriminator_has_no_softmax_and_returns_raw_logits():
    D = Discriminator(4, image_size=32, width=4)
    banned = (nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.Softmax2d, nn.Sigmoid)
    assert not [m for m in D.modules() if isinstance(m, banned)]
    _, cls = D(torch.rand(3, 1, 32, 32) * 2 - 1)
    assert not torch.allclose(cls.sum(1), torch.ones(3))  # not probabilities


class _FixedD(nn.Module):
    """Returns given logits, to check the losses treat D's outputs as logits."""

    def __init__(self, adv_r, cls_r, adv_f, cls_f):
        super().__init__()
        self.out = [(adv_r, cls_r), (adv_f, cls_f)]
        self.calls = 0

    def forward(self, x):
        o = self.out[self.calls % 2]
        self.calls += 1
        return o


def test_losses_take_logits_once():
    g = torch.Generator().manual_seed(0)
    adv_r, adv_f = torch.randn(5, generator=g) * 4, torch.randn(5, generator=g) * 4
    cls_r, cls_f = torch.randn(5, 3, generator=g) * 4, torch.randn(5, 3, generator=g) * 4
    yr, yf = torch.tensor([0, 1, 2, 0, 1]), torch.tensor([2, 2, 1, 0, 0])
    x = torch.zeros(5, 1, 32, 32)
    loss, _ = discriminator_loss(_FixedD(adv_r, cls_r, adv_f, cls_f), x, yr, x, yf,
                                       label_smoothing=0.1, aux_weight=0.5)
    expect = (
        F.binary_cross_entropy(torch.sigmoid(adv_r), torch.full((5,), 0.9))
        + F.binary_cross_entropy(torch.sigmoid(adv_f), torch.zeros(5))
        + 0.5 * F.nll_loss(torch.log(torch.softmax(cls_r, 1)), yr)
    )
    assert torch.allclose(loss, expect, atol=1e-5)
    loss_fake, _ = discriminator_loss(_FixedD(adv_r, cls_r, adv_f, cls_f), x, yr, x, yf,
                                            label_smoothing=0.1, aux_weight=0.5, aux_fake_in_d=True)
    assert torch.allclose(loss_fake - loss, 0.5 * F.cross_entropy(cls_f, yf), atol=1e-5)
    gl, _ = generator_loss(_FixedD(adv_f, cls_f, adv_f, cls_f), x, yf, aux_weight=2.0)
    expect_g = F.binary_cross_entropy(torch.sigmoid(adv_f), torch.ones(5)) + 2.0 * F.nll_loss(
        torch.log(torch.softmax(cls_f, 1)), yf)
    assert torch.allclose(gl, expect_g, atol=1e-5)


# ---------------------------------------------------------------------------- loss sanity


def _real_fake(n=8):
    ds = tiny_dataset(n=n)
    real = ds.images * 2 - 1
    fake = torch.rand(n, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 2 - 1
    return real, ds.labels, fake


def test_discriminator_steps_lower_its_loss_and_class_ce():
    torch.manual_seed(0)
    real, y, fake = _real_fake()
    D = Discriminator(3, image_size=32, width=8)
    opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=True)
    first = None
    for _ in range(8):
        loss, stats = discriminator_loss(D, real, y, fake, y)
        if first is None:
            first = stats.clone()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        _, last = discriminator_loss(D, real, y, fake, y)
    assert last[0] < first[0]  # total D loss
    assert last[2] < first[2]  # class CE on real images


def test_generator_steps_raise_real_logit_on_fakes():
    torch.manual_seed(0)
    G = Generator(3, latent_dim=8, image_size=32, width=8)
    D = Discriminator(3, image_size=32, width=8, spectral_norm=True)
    D.requires_grad_(False)
    z, y = torch.randn(8, 8), torch.arange(8) % 3
    opt = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.999), foreach=True)

    def adv_logit():
        with torch.no_grad():
            return D(G(z, y))[0].mean()

    before = adv_logit()
    for _ in range(5):
        loss, _ = generator_loss(D, G(z, y), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert adv_logit() > before


# ---------------------------------------------------------------------------- options


def test_spectral_norm_option_applies_to_discriminator_layers():
    D = Discriminator(3, image_size=64, width=4, spectral_norm=True)
    layers = [m for m in D.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers and all(parametrize.is_parametrized(m, "weight") for m in layers)
    assert not [m for m in D.modules() if isinstance(m, nn.BatchNorm2d)]
    plain = Discriminator(3, image_size=64, width=4, spectral_norm=False)
    assert not any(parametrize.is_parametrized(m) for m in plain.modules())
    assert [m for m in plain.modules() if isinstance(m, nn.BatchNorm2d)]


def test_discriminator_without_batchnorm():
    D = Discriminator(3, image_size=32, width=4, batch_norm=False)
    assert not [m for m in D.modules() if isinstance(m, nn.BatchNorm2d)]
    assert not any(parametrize.is_parametrized(m) for m in D.modules())


def test_mode_seeking_pairs_and_ratio():
    y = pair_labels(torch.tensor([3, 1, 4, 1, 5]))
    assert y.tolist() == [3, 1, 3, 1, 5]
    z = torch.randn(4, 8)
    same = torch.ones(4, 1, 32, 32)  # a generator that ignores z
    loss, ratio = mode_seeking_loss(same, z)
    assert ratio == 0 and loss > 1e4
    varied = torch.cat([torch.zeros(2, 1, 32, 32), torch.ones(2, 1, 32, 32)])
    loss2, ratio2 = mode_seeking_loss(varied, z)
    assert ratio2 > 0 and loss2 < loss


def test_ema_differs_from_g_after_training(trained_run):
    run, _ = trained_run
    ck = torch.load(run.checkpoint_path, weights_only=True)
    diffs = [not torch.equal(ck["G"][k], ck["G_ema"][k]) for k in ck["G"] if ck["G"][k].is_floating_point()]
    assert any(diffs)


def test_ema_equals_g_when_disabled(tmp_path):
    run = train_acgan(tiny_cfg(steps=3, ema_decay=0.0, sample_every=0), tiny_dataset(), tmp_path / "r", seed=0)
    ck = torch.load(run.checkpoint_path, weights_only=True)
    assert ck["G"].keys() == ck["G_ema"].keys()
    assert all(torch.equal(ck["G"][k], ck["G_ema"][k]) for k in ck["G"])


@pytest.mark.parametrize(
    "field,value",
    [
        ("image_size", 48), ("steps", -1), ("steps", 0), ("batch_size", 0), ("latent_dim", 0),
        ("g_width", 0), ("lr_g", 0.0), ("lr_d", -1e-3), ("betas", (0.5, 1.0)), ("label_smoothing", 0.6),
        ("ema_decay", 1.0), ("n_critic", 0), ("aux_weight", -1.0), ("device", "tpu"),
        ("conditioning", "film"), ("spectral_norm", "yes"), ("checkpoint_every", -5), ("log_every", 0),
        ("mode_seeking", -1.0), ("minibatch_std", 1), ("max_mult", 0), ("diffaug", "colour"), ("diffaug", 1),
    ],
)
def test_config_validation(field, value):
    with pytest.raises(ConfigError) as e:
        ACGANConfig(**{field: value})
    msg = str(e.value)
    assert field in msg and "\n" not in msg


def test_config_roundtrip_and_frozen():
    cfg = tiny_cfg(betas=[0.0, 0.9])
    assert cfg.betas == (0.0, 0.9)
    assert ACGANConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(Exception):
        cfg.steps = 10  # type: ignore[misc]
    with pytest.raises(ConfigError, match="nonsense"):
        ACGANConfig.from_dict({"nonsense": 1})


def test_dataset_size_must_match_config(tmp_path):
    with pytest.raises(ConfigError, match="image_size"):
        train_acgan(tiny_cfg(image_size=64), tiny_dataset(), tmp_path / "r", seed=0)


# ---------------------------------------------------------------------------- runs and resume


def test_run_files(trained_run):
    run, ds = trained_run
    assert run.step == 6
    hist = pd.read_csv(run.history_path)
    assert list(hist.columns) == ["step", *HISTORY_COLUMNS]
    assert hist["step"].tolist() == [2, 4, 6]
    assert np.isfinite(hist.drop(columns="step").to_numpy()).all()
    pd.testing.assert_frame_equal(hist, run.history, check_dtype=False)
    rec = json.loads(run.config_path.read_text())
    assert rec["seed"] == 3 and rec["class_names"] == list(CLASSES)
    assert rec["dataset_fingerprint"] == ds.fingerprint and rec["hipaug_version"]
    assert ACGANConfig.from_dict(rec["config"]) == run.cfg
    grids = sorted(p.name for p in run.samples_dir.glob("*.png"))
    assert grids == ["step_000003.png", "step_000006.png"]
    grid = np.asarray(Image.open(run.samples_dir / "step_000006.png"))
    assert grid.shape == (2 + 3 * 34, 2 + 2 * 34, 3)  # one row per class, 2 columns, 2 px padding
    assert (grid == grid[..., :1]).all()  # grey: torchvision writes R = G = B
    assert (grid[:2] == 255).all() and (grid[:, 34:36] == 255).all()  # white padding


def _states(path):
    ck = torch.load(path, weights_only=True)
    return ck


def _assert_same(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}/{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("variant", [
    {},
    {"spectral_norm": True, "minibatch_std": True, "n_critic": 2, "label_smoothing": 0.1, "mode_seeking": 0.0},
    {"diffaug": "brightness,contrast,translation,cutout"},
])
def test_resume_is_bit_identical(tmp_path, variant):
    ds = tiny_dataset()
    cfg = tiny_cfg(sample_every=0, **variant)
    full = train_acgan(cfg, ds, tmp_path / "full", seed=5)
    part = train_acgan(cfg, ds, tmp_path / "part", seed=5, stop_after=4)  # "killed" after step 4
    assert part.step == 4
    assert torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["step"] == 3
    resumed = train_acgan(cfg, ds, tmp_path / "part", seed=5, resume=True)
    assert resumed.step == full.step == 6
    a, b = _states(full.checkpoint_path), _states(resumed.checkpoint_path)
    for key in ("G", "D", "G_ema", "opt_G", "opt_D", "rng", "acc", "history", "step"):
        _assert_same(a[key], b[key], key)
    pd.testing.assert_frame_equal(full.history, resumed.history)


def test_resume_refuses_mismatch(trained_run, tmp_path):
    run, ds = trained_run
    cfg = run.cfg
    with pytest.raises(ConfigError, match="lr_g"):
        train_acgan(tiny_cfg(ema_decay=0.9, lr_g=1e-3), ds, run.run_dir, seed=3, resume=True)
    with pytest.raises(ConfigError, match="seed"):
        train_acgan(cfg, ds, run.run_dir, seed=4, resume=True)
    with pytest.raises(ConfigError, match="fingerprint"):
        train_acgan(cfg, tiny_dataset(seed=9), run.run_dir, seed=3, resume=True)
    with pytest.raises(ConfigError, match="resume=True"):
        train_acgan(cfg, ds, run.run_dir, seed=3)
    # Resuming a finished run with the same settings is a no-op that returns its history.
    again = train_acgan(cfg, ds, run.run_dir, seed=3, resume=True)
    assert again.step == 6 and len(again.history) == 3


# ---------------------------------------------------------------------------- sampling


def test_load_generator_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_generator(tmp_path / "missing")
    with pytest.raises(ConfigError, match="checkpoint"):
        load_generator(tmp_path)


def test_sample_is_seeded_batch_independent_and_in_range(trained_run):
    run, _ = trained_run
    G, names, cfg = load_generator(run.run_dir)
    assert names == CLASSES and cfg == run.cfg and not G.training
    labels = torch.tensor([0, 1, 2, 2, 1])
    a = sample(G, labels, seed=11)
    b = sample(G, labels, seed=11, batch_size=2)
    c = sample(G, labels, seed=12)
    assert a.shape == (5, 1, 32, 32) and a.dtype == torch.float32
    assert a.min() >= 0 and a.max() <= 1
    assert torch.allclose(a, b, atol=1e-6) and not torch.equal(a, c)
    raw, _, _ = load_generator(run.run_dir, ema=False)
    assert not torch.equal(sample(raw, labels, seed=11), a)
    with pytest.raises(ConfigError):
        sample(G, torch.tensor([3]), seed=0)


def test_sample_dataset(trained_run):
    run, _ = trained_run
    ds = sample_dataset(run.run_dir, per_class=3, seed=2)
    assert ds.class_names == CLASSES and ds.images.shape == (9, 1, 32, 32)
    assert ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert {"generated_class", "seed", "index"} <= set(ds.meta.columns)
    assert ds.meta["generated_class"].tolist() == [CLASSES[i] for i in ds.labels.tolist()]
    assert len(set(ds.patient_ids)) == 9


def test_sample_to_folder(trained_run, tmp_path):
    run, _ = trained_run
    out = sample_to_folder(run.run_dir, tmp_path / "gen", per_class=2, seed=0)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == list(CLASSES)
    man = pd.read_csv(out / "manifest.csv")
    assert {"path", "label", "patient_id"} <= set(man.columns) and len(man) == 6
    for rel in man["path"]:
        img = Image.open(out / rel)
        assert img.mode == "L" and img.size == (32, 32)
    for c in CLASSES:
        assert len(list((out / c).glob("*.png"))) == 2
