"""Profiles: every built-in loads, bad values are refused with one line naming the field."""

from __future__ import annotations

import pytest
import yaml

from hipaug.config import CONDITIONS, list_profiles, load_profile
from hipaug.errors import ConfigError


@pytest.mark.parametrize("name", ["smoke", "default", "paper"])
def test_builtin_profiles_load(name):
    p = load_profile(name)
    assert p.name == name and p.acgan.image_size == p.image_size
    assert set(p.transfer.conditions) <= set(CONDITIONS) and p.transfer.k_folds >= 2
    assert {"smoke", "default", "paper"} <= set(list_profiles())


def test_paper_profile_is_full_width_vgg16():
    p = load_profile("paper")
    assert p.arch.width == 1.0 and p.arch.fc_width == 4096


def test_overrides_replace_top_level_values():
    p = load_profile("smoke", seed=7, device="cpu")
    assert p.seed == 7 and p.device == "cpu" and p.pretrain.device == "cpu"


def _write(tmp_path, mutate):
    raw = yaml.safe_load(open(load_profile.__globals__["PROFILE_DIR"] / "smoke.yaml"))
    mutate(raw)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r.update(image_size=48), "image_size=48"),
    (lambda r: r["filter"].update(threshold=1.5, top_k=None), "filter.threshold=1.5"),
    (lambda r: r["filter"].update(threshold=0.9, top_k=5), "exactly one"),
    (lambda r: r["transfer"].update(conditions=["with_gan", "magic"]), "magic"),
    (lambda r: r["arch"].update(depth=19), "arch.depth"),
    (lambda r: r.update(colour="blue"), "colour"),
    (lambda r: r["transfer"].update(k_folds=1), "k_folds=1"),
    (lambda r: r["ablation"].update(thresholds=[2.0]), "ablation.thresholds"),
])
def test_bad_values_raise_one_line(tmp_path, mutate, needle):
    with pytest.raises(ConfigError) as err:
        load_profile(_write(tmp_path, mutate))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg


def test_unknown_profile_names_the_builtins():
    with pytest.raises(ConfigError, match="unknown profile 'nope'.*smoke"):
        load_profile("nope")


def test_gan_train_sets_are_checked(tmp_path):
    prof = tmp_path / "p.yaml"
    prof.write_text("name: p\nquality:\n  gan_train_on: [unfiltered, accepted]\n")
    with pytest.raises(ConfigError, match="quality.gan_train_on has 'accepted'; use unfiltered and/or filtered"):
        load_profile(prof)
    assert load_profile("default").quality.gan_train_on == ("unfiltered",)
    assert set(load_profile("smoke").quality.gan_train_on) == {"unfiltered", "filtered"}


def test_min_steps_adds_epochs_to_a_small_training_set():
    """The fine-tuning budget is in optimiser steps: a smaller set gets more epochs, a large one its `epochs`."""
    from hipaug.training.classifier_config import TrainConfig, planned_epochs, steps_per_epoch

    cfg = TrainConfig(epochs=14, batch_size=32, min_steps=150)
    assert steps_per_epoch(160, 32) == 5 and steps_per_epoch(161, 32) == 5 and steps_per_epoch(162, 32) == 6
    assert planned_epochs(cfg, 160) == 30  # 150 steps at 5 per epoch
    assert planned_epochs(cfg, 2000) == 14  # 63 steps per epoch: the epochs already give more
    assert planned_epochs(TrainConfig(epochs=14, batch_size=32), 160) == 14  # min_steps 0: epochs as given
    with pytest.raises(ConfigError, match="train.min_steps=-1"):
        TrainConfig(min_steps=-1)
