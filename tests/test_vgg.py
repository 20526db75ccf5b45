"""VGG-16 (hipaug.models.vgg) and its trainer (hipaug.training): topology, pretrained loading from a fake
local cache, training, inference, checkpoints."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hipaug import training as T
from hipaug.models import vgg as V
from hipaug.training.augment import AugmentConfig
from hipaug.data import from_arrays
from hipaug.errors import ConfigError, DataError

TINY = dict(width=1 / 16, fc_width=16)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(num_classes=3, image_size=32, seed=0, **kw):
    return V.vgg16(num_classes, image_size=image_size, pretrained="never", seed=seed, **{**TINY, **kw})


# --------------------------------------------------------------------------- topology


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_forward_backward_every_size(size):
    model = _tiny(3, size)
    x = torch.rand(2, 1, size, size, generator=torch.Generator().manual_seed(size))
    logits = model(x)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    logits.sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    k = min(7, size // 32)
    feats = model.forward_features(x)
    assert feats.shape == (2, model.feature_channels, size // 32, size // 32)
    assert model.avgpool.output_size == (k, k)
    assert model.embed(x).shape == (2, 16)
    assert (model.embed(x) >= 0).all()  # post-ReLU


@pytest.mark.parametrize("batch_norm", [True, False])
def test_configuration_d_layer_counts(batch_norm):
    model = _tiny(batch_norm=batch_norm)
    count = lambda t: sum(isinstance(m, t) for m in model.modules())  # noqa: E731
    assert count(nn.Conv2d) == 13 and count(nn.Linear) == 3 and count(nn.MaxPool2d) == 5
    assert count(nn.BatchNorm2d) == (13 if batch_norm else 0)
    convs_per_block = [sum(isinstance(m, nn.Conv2d) for m in b) for b in model.blocks()]
    assert convs_per_block == [2, 2, 3, 3, 3]
    assert [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)] == \
        [4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32]


@pytest.mark.parametrize("batch_norm", [True, False])
def test_full_size_matches_torchvision_topology(batch_norm):
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):  # no memory, no init cost
        tv = (torchvision.models.vgg16_bn if batch_norm else torchvision.models.vgg16)()
        rgb = V.VGG16(1000, in_chans=3, width=1.0, fc_width=4096, image_size=224, batch_norm=batch_norm)
        grey = V.VGG16(1000, in_chans=1, width=1.0, fc_width=4096, image_size=224, batch_norm=batch_norm)
    n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert n_params(rgb) == n_params(tv) == (138365992 if batch_norm else 138357544)
    assert n_params(tv) - n_params(grey) == 64 * 2 * 3 * 3  # conv1 sees 1 channel instead of 3
    ours = {k: tuple(v.shape) for k, v in rgb.state_dict().items() if not k.startswith("input_")}
    assert ours == {k: tuple(v.shape) for k, v in tv.state_dict().items()}


def test_reset_classifier_changes_only_last_layer():
    model = _tiny(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.reset_classifier(2)
    after = model.state_dict()
    assert set(before) == set(after)
    for k in before:
        if k.startswith("classifier.6."):
            assert after[k].shape[0] == 2
        else:
            assert torch.equal(before[k], after[k]), k
    assert model.num_classes == 2 and model.config["num_classes"] == 2
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 2)


def test_normalisation_buffers_and_init_seed():
    a, b = _tiny(seed=1), _tiny(seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert float(a.input_mean.flatten()[0]) == 0.5 and float(a.input_std.flatten()[0]) == 0.25
    assert not torch.equal(_tiny(seed=2).features[0].weight, a.features[0].weight)


def test_constructor_validation():
    with pytest.raises(ConfigError, match="num_classes"):
        V.VGG16(0)
    with pytest.raises(ConfigError, match="image_size"):
        V.VGG16(2, image_size=16)
    with pytest.raises(ConfigError, match="pretrained"):
        V.vgg16(2, pretrained="download", **TINY, image_size=32)


# --------------------------------------------------------------------------- pretrained weights


def test_checkpoint_names_match_torchvision():
    torchvision = pytest.importorskip("torchvision")
    assert torchvision.models.VGG16_BN_Weights.IMAGENET1K_V1.url.endswith("/" + V.IMAGENET_FILES[True])
    assert torchvision.models.VGG16_Weights.IMAGENET1K_V1.url.endswith("/" + V.IMAGENET_FILES[False])


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A private torch hub dir (the real cache is never consulted)."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    return tmp_path / "hub"


def _fake_imagenet_state(batch_norm=True):
    """Keys and shapes of torchvision's vgg16(_bn), random values; FC tensors are stride-0 views (small file)."""
    torchvision = pytest.importorskip("torchvision")
    with torch.device("meta"):
        tv = (torchvision.models.vgg16_bn if batch_norm else torchvision.models.vgg16)()
    g = torch.Generator().manual_seed(0)
    sd = {}
    for k, v in tv.state_dict().items():
        if v.dtype == torch.int64:
            sd[k] = torch.tensor(11)
        elif k.startswith("features."):
            t = torch.randn(v.shape, generator=g) * 0.05
            sd[k] = t.abs() + 0.5 if k.endswith("running_var") else t
        else:
            row = torch.randn(v.shape[-1], generator=g) * 0.01
            sd[k] = row.expand(v.shape) if v.ndim == 2 else row
    return sd


def _write_fake(hub_dir, batch_norm=True):
    sd = _fake_imagenet_state(batch_norm)
    path = hub_dir / "checkpoints" / V.IMAGENET_FILES[batch_norm]
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(sd, path)
    return sd, path


def test_never_does_not_touch_hub(monkeypatch):
    def boom():
        raise AssertionError("torch.hub.get_dir called with pretrained='never'")

    monkeypatch.setattr(torch.hub, "get_dir", boom)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        V.vgg16(2, width=1.0, fc_width=16, image_size=32, pretrained="never")


def test_auto_missing_warns_and_continues(hub):
    with pytest.warns(UserWarning, match="not in the local torch cache .*continuing from random initialisation"):
        model = V.vgg16(2, width=1.0, fc_width=16, image_size=32, pretrained="auto")
    assert float(model.input_mean.flatten()[0]) == 0.5
    with warnings.catch_warnings():  # narrow models do not look for ImageNet weights
        warnings.simplefilter("error")
        V.vgg16(2, image_size=32, pretrained="auto", **TINY)


def test_require_raises(hub):
    with pytest.raises(ConfigError, match="vgg16_bn-6c64b313.pth"):
        V.vgg16(2, width=1.0, fc_width=16, image_size=32, pretrained="require")
    with pytest.raises(ConfigError, match="width=1"):
        V.vgg16(2, image_size=32, pretrained="require", **TINY)


def test_loads_fake_cached_trunk_only_at_64px(hub):
    sd, path = _write_fake(hub)
    with pytest.warns(UserWarning, match="only the conv trunk"):
        model = V.vgg16(2, width=1.0, fc_width=16, image_size=64, pretrained="require")
    own = model.state_dict()
    for k, v in sd.items():
        if k.startswith("features.") and k not in ("features.0.weight", "features.0.bias"):
            assert torch.equal(own[k], v), k
    m, s = V.grey_imagenet_stats()
    assert math.isclose(float(model.input_mean.flatten()[0]), m, rel_tol=1e-6)
    assert math.isclose(float(model.input_std.flatten()[0]), s, rel_tol=1e-6)
    # The folded 1-channel conv on grey-normalised input equals the RGB conv on the grey image
    # replicated and ImageNet-normalised (away from the zero-padded border).
    g = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(0))
    rgb = (g.expand(-1, 3, -1, -1) - torch.tensor(V.IMAGENET_MEAN_RGB).view(1, 3, 1, 1)) / \
        torch.tensor(V.IMAGENET_STD_RGB).view(1, 3, 1, 1)
    ref = F.conv2d(rgb, sd["features.0.weight"], sd["features.0.bias"], padding=1)
    ours = model.features[0](model.normalize(g))
    assert torch.allclose(ours[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-5)
    # The FC layers stay random; the new head is untouched.
    assert own["classifier.0.weight"].shape == (16, 512 * 2 * 2)


def test_loads_fake_cached_full_at_224px(hub):
    sd, path = _write_fake(hub)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = V.vgg16(2, image_size=224, pretrained="auto")  # width 1, fc 4096
    own = model.state_dict()
    for k in ("features.40.weight", "features.41.running_var", "classifier.0.weight", "classifier.3.bias"):
        assert torch.equal(own[k], sd[k]), k
    assert own["classifier.6.weight"].shape == (2, 4096)  # ImageNet head not loaded
    assert own["features.0.weight"].shape == (64, 1, 3, 3)


def test_no_bn_variant_and_corrupt_file(hub):
    path = hub / "checkpoints" / V.IMAGENET_FILES[False]
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read ImageNet weights"):
        V.vgg16(2, width=1.0, fc_width=16, image_size=32, batch_norm=False, pretrained="auto")
    torch.save(_fake_imagenet_state(True), path)  # a BN checkpoint does not fit the plain variant
    with pytest.raises(ConfigError, match="vgg16"):
        V.vgg16(2, width=1.0, fc_width=16, image_size=32, batch_norm=False, pretrained="auto")


# --------------------------------------------------------------------------- trainer


def _bars(n, size=32, seed=0, n_patients=None):
    """Horizontal (0) vs vertical (1) noisy bars."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2
    imgs = np.zeros((n, size, size), np.float32)
    for i, lab in enumerate(labels):
        p = rng.integers(4, size - 4)
        if lab:
            imgs[i, :, p - 2:p + 2] = 1
        else:
            imgs[i, p - 2:p + 2, :] = 1
    imgs = np.clip(imgs + rng.normal(0, 0.1, imgs.shape).astype(np.float32), 0, 1)
    pids = [f"p{i // 2 if n_patients is None else i % n_patients}" for i in range(n)]
    return from_arrays(imgs, labels, ("horizontal", "vertical"), patient_ids=pids)


FAST = dict(batch_size=16, lr=3e-3, device="cpu", num_threads=1)


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    ds = _bars(128)
    model = V.vgg16(2, image_size=32, pretrained="never", seed=0, width=1 / 16, fc_width=32)
    cfg = T.TrainConfig(epochs=12, patience=2, monitor="val_acc", val_fraction=0.25,
                        augment=AugmentConfig(rotation=5, scale=(1.0, 1.0)), **FAST)
    return ds, T.train_classifier(model, ds, cfg, seed=0, run_dir=run_dir), run_dir


def test_trainer_learns_toy_problem(toy_run):
    ds, res, _ = toy_run
    h = res.history
    assert list(h.columns[:5]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc"]
    assert h["val_acc"].max() > 0.9
    # The held-out patients are disjoint from the training patients.
    tr = {ds.patient_ids[i] for i in res.train_indices}
    va = {ds.patient_ids[i] for i in res.val_indices}
    assert tr and va and not tr & va and len(res.train_indices) + len(res.val_indices) == len(ds)


def test_early_stopping_restores_best(toy_run):
    ds, res, _ = toy_run
    h = res.history
    assert res.best_epoch == int(h.loc[h["val_acc"].idxmax(), "epoch"])
    assert res.best_epoch < len(h)  # stopped after `patience` epochs without improvement
    state = res.model.state_dict()
    assert all(torch.equal(state[k], res.best_state[k]) for k in state)
    # The restored weights reproduce the best epoch's validation accuracy.
    val = ds.subset(res.val_indices)
    p = T.predict_proba(res.model, val.images)
    acc = float((p.argmax(1) == val.labels.numpy()).mean())
    assert acc == pytest.approx(float(h.loc[h["epoch"] == res.best_epoch, "val_acc"].iloc[0]))


def test_run_dir_artifacts_reload(toy_run):
    ds, res, run_dir = toy_run
    assert {"history.csv", "config.json", "model.pt"} <= {p.name for p in run_dir.iterdir()}
    h = pd.read_csv(run_dir / "history.csv")
    assert len(h) == len(res.history)
    model, extra = V.load_model(run_dir, return_extra=True)
    assert extra["class_names"] == ["horizontal", "vertical"] and extra["best_epoch"] == res.best_epoch
    x = ds.images[:8]
    assert np.allclose(T.predict_proba(model, x), T.predict_proba(res.model, x), atol=1e-6)
    with pytest.raises(DataError):
        V.load_model(run_dir / "missing.pt")


def test_predict_and_features_restore_mode():
    model = _tiny(3)
    model.train()
    x = torch.rand(5, 1, 32, 32)
    p = T.predict_proba(model, x, batch_size=2)
    f = T.extract_features(model, x.numpy()[:, 0], batch_size=3)
    assert model.training
    assert p.shape == (5, 3) and p.dtype == np.float32 and np.allclose(p.sum(1), 1, atol=1e-5)
    assert f.shape == (5, 16) and (f >= 0).all()
    model.eval()
    with torch.no_grad():
        assert np.allclose(f, model.embed(x).numpy(), atol=1e-6)


def test_class_weights_inverse_frequency():
    w = T.class_weights_from_labels(torch.tensor([0] * 6 + [1] * 2), 3)
    assert torch.allclose(w, torch.tensor([8 / (3 * 6), 8 / (3 * 2), 1.0]))
    ds = _bars(12)
    ds = ds.subset(list(range(0, 12, 2)) + [1, 3])  # 6 horizontal, 2 vertical
    res = T.train_classifier(_tiny(2), ds, T.TrainConfig(epochs=1, class_weights=True, val_fraction=0, **FAST), seed=0)
    assert torch.allclose(res.class_weights, torch.tensor([8 / 12, 8 / 4]))


def test_same_seed_identical_weights():
    ds = _bars(40)
    cfg = T.TrainConfig(epochs=2, val_fraction=0, augment=AugmentConfig(), **FAST)
    a = T.train_classifier(_tiny(2), ds, cfg, seed=7).model.state_dict()
    b = T.train_classifier(_tiny(2), ds, cfg, seed=7).model.state_dict()
    c = T.train_classifier(_tiny(2), ds, cfg, seed=8).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_freeze_blocks_keeps_frozen_unchanged():
    ds = _bars(40)
    model = _tiny(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    T.train_classifier(model, ds, T.TrainConfig(epochs=1, val_fraction=0, **FAST), seed=0, freeze_blocks=2)
    after = model.state_dict()
    frozen = set()
    for block in model.blocks()[:2]:
        frozen |= {id(t) for t in list(block.parameters()) + list(block.buffers())}
    for k, v in model.state_dict(keep_vars=True).items():
        if id(v) in frozen:
            assert torch.equal(before[k], after[k]), k
    assert not torch.equal(before["features.14.weight"], after["features.14.weight"])  # block 3 trains
    assert all(p.requires_grad for p in model.parameters())  # flags restored


def test_trainer_input_checks():
    ds = _bars(20)
    with pytest.raises(ConfigError, match="reset_classifier"):
        T.train_classifier(_tiny(3), ds, T.TrainConfig(epochs=1, **FAST), seed=0)
    with pytest.raises(ConfigError, match="freeze_blocks"):
        T.train_classifier(_tiny(2), ds, T.TrainConfig(epochs=1, **FAST), seed=0, freeze_blocks=6)


@pytest.mark.parametrize("kwargs, field", [
    (dict(epochs=0), "epochs"), (dict(batch_size=1), "batch_size"), (dict(lr=0.0), "lr"),
    (dict(optimizer="rmsprop"), "optimizer"), (dict(monitor="auc"), "monitor"), (dict(patience=0), "patience"),
    (dict(val_fraction=0.6), "val_fraction"), (dict(class_weights="yes"), "class_weights"),
    (dict(augment=3), "augment"), (dict(momentum=1.0), "momentum"), (dict(lr_schedule="step"), "lr_schedule"),
])
def test_train_config_validation(kwargs, field):
    with pytest.raises(ConfigError, match=f"train.{field}") as err:
        T.TrainConfig(**kwargs)
    assert "\n" not in str(err.value)


def test_train_config_round_trip():
    cfg = T.TrainConfig(augment=AugmentConfig(hflip=0.2), optimizer="sgd")
    assert T.TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_divergence_raises_and_restores_caller_state():
    ds = _bars(20)
    model = _tiny(2)
    model.register_forward_hook(lambda m, i, out: out * float("nan") if m.training else out)
    state = torch.get_rng_state()
    with pytest.raises(ConfigError, match="diverged in epoch 1"), pytest.warns(UserWarning, match="became nan"):
        T.train_classifier(model, ds, T.TrainConfig(epochs=2, val_fraction=0, **FAST), seed=0, freeze_blocks=1)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(p.requires_grad and p.is_contiguous() for p in model.parameters())


def test_arch_spec_is_the_networks():
    from hipaug.config import ArchSpec

    assert ArchSpec is V.ArchSpec
    # One set of defaults: vgg16() builds what ArchSpec() describes, VGG-16 itself (width 1, 4096-unit FC).
    import inspect

    params = inspect.signature(V.vgg16).parameters
    spec = V.ArchSpec()
    assert (spec.width, spec.fc_width, spec.pretrained) == (1.0, 4096, "never")
    for name in ("width", "fc_width", "batch_norm", "dropout", "pretrained", "dtype"):
        assert params[name].default == getattr(spec, name), name
