"""Same seed, same result, whatever ran before in the process (nbval compares fresh runs)."""

from __future__ import annotations

import numpy as np
import torch

from hipaug.config import ArchSpec
from hipaug.data import from_arrays
from hipaug.method.transfer import build_model
from hipaug.training import TrainConfig, train_classifier


def _weights(disturb: int) -> torch.Tensor:
    rng = np.random.default_rng(0)
    ds = from_arrays(rng.random((96, 32, 32)).astype("float32"), rng.integers(0, 3, 96), ["a", "b", "c"])
    torch.rand(disturb + 1)  # consume the global generator differently before each run
    model = build_model(ArchSpec(width=0.125, fc_width=32, dropout=0.5), 3, 32, seed=5)
    res = train_classifier(model, ds, TrainConfig(epochs=2, batch_size=16, patience=None, device="cpu"), seed=1)
    return torch.cat([p.flatten() for p in res.model.state_dict().values() if p.is_floating_point()])


def test_classifier_training_ignores_global_rng_state():
    assert torch.equal(_weights(0), _weights(13))


def test_training_gives_the_caller_its_rng_state_back():
    torch.manual_seed(7)
    state = torch.get_rng_state()
    rng = np.random.default_rng(0)
    ds = from_arrays(rng.random((32, 32, 32)).astype("float32"), rng.integers(0, 2, 32), ["a", "b"])
    model = build_model(ArchSpec(width=0.125, fc_width=16), 2, 32, seed=1)
    train_classifier(model, ds, TrainConfig(epochs=1, batch_size=16, patience=None, device="cpu"), seed=1)
    assert torch.equal(torch.get_rng_state(), state)


def test_min_steps_trains_a_small_set_for_more_epochs():
    """`TrainConfig.min_steps`: the loop runs the planned epochs (config.json and the history say how many)."""
    from hipaug.training.classifier_config import planned_epochs

    rng = np.random.default_rng(0)
    ds = from_arrays(rng.random((40, 32, 32)).astype("float32"), rng.integers(0, 2, 40), ["a", "b"])
    model = build_model(ArchSpec(width=0.125, fc_width=16), 2, 32, seed=1)
    cfg = TrainConfig(epochs=1, batch_size=16, min_steps=7, patience=None, val_fraction=0.2, device="cpu")
    res = train_classifier(model, ds, cfg, seed=1)
    n_train = len(res.train_indices)
    assert planned_epochs(cfg, n_train) > 1 and len(res.history) == planned_epochs(cfg, n_train)
