"""`hipaug reproduce --profile smoke` end to end (reuses the artifact cache the nbval run filled)."""

from __future__ import annotations

import pandas as pd
import pytest

from hipaug.cli import main
from hipaug.config import load_profile


@pytest.mark.slow
def test_reproduce_smoke_writes_table8(tmp_path, capsys):
    assert main(["reproduce", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    out = tmp_path / "smoke" / "phantom"
    table = pd.read_csv(out / "table8.csv", index_col=0)
    assert list(table.index) == list(load_profile("smoke").transfer.conditions)
    assert {"accuracy", "sensitivity", "specificity", "f1", "auc"} <= set(table.columns)
    assert table["accuracy"].str.match(r"^\d+\.\d ± \d+\.\d$").all()  # the book's one rounding rule (hipaug.core.numbers)
    folds = pd.read_csv(out / "table8_folds.csv")
    k = load_profile("smoke").transfer.k_folds
    assert len(folds) == k * len(table) and folds["accuracy"].between(0, 1).all()
    assert (out / "table8.md").read_text().startswith("# Table VIII analogue")
    assert (out / "run.json").is_file()


@pytest.mark.slow
def test_independent_replications_on_the_phantom(tmp_path):
    """transfer.design: replications: own training sets, one shared fresh test set, the uncorrected paired test."""
    import yaml

    from hipaug.config import PROFILE_DIR
    from hipaug.pipeline import Pipeline

    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw["name"] = "smoke-replications"
    raw["transfer"].update(design="replications", replications=3, train_n=40, test_n=60,
                           conditions=["scratch", "without_gan"])
    raw["ablation"] = {"thresholds": [], "top_k": []}
    path = tmp_path / "replications.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["reproduce", "--profile", str(path), "--out", str(tmp_path / "r")]) == 0
    out = tmp_path / "r" / "smoke-replications" / "phantom"
    folds = pd.read_csv(out / "table8_folds.csv")
    assert sorted(folds["repeat"].unique()) == [0, 1, 2] and set(folds["fold"]) == {0}
    assert folds["independent"].all() and (folds["n_test"] == 60).all() and len(folds) == 6
    tests = pd.read_csv(out / "paired_tests.csv")
    pair = tests[(tests["a"] == "without_gan") & (tests["b"] == "scratch") & (tests["metric"] == "accuracy")].iloc[0]
    assert pair["n"] == 3 and pair["test_train_ratio"] == 0
    assert pair["p_corrected"] == pytest.approx(pair["p_two_sided"]) and pair["mdd_80"] == pytest.approx(pair["mdd_80_plain"])

    pipe = Pipeline(str(path), results=tmp_path / "r")
    assert pipe.design == "replications" and len(pipe.pelvic) == 60 + 3 * 40
    train0, test0 = pipe.folds(0)[0]
    train1, test1 = pipe.folds(1)[0]
    assert list(test0) == list(test1) and not set(train0) & set(train1) and not set(train0) & set(test0)
    preds = pd.read_csv(out / "table8_predictions.csv") if (out / "table8_predictions.csv").is_file() else None
    if preds is not None:  # every model of every replication scored the same test images
        assert preds.groupby(["condition", "repeat"])["path"].apply(frozenset).nunique() == 1


def test_real_data_always_use_cross_validation(tmp_path):
    """A profile's replications design needs a generator: on real pelvic folders the run uses CV."""
    from hipaug.config import load_profile
    from hipaug.method.transfer import TransferSpec, replication_splits
    from hipaug.pipeline import Pipeline

    assert load_profile("default").transfer.design == "replications"
    (tmp_path / "limb").mkdir(), (tmp_path / "pelvic").mkdir()
    assert Pipeline("default", artifacts=tmp_path / "a").design == "replications"
    real = Pipeline("default", limb_dir=tmp_path / "limb", pelvic_dir=tmp_path / "pelvic", artifacts=tmp_path / "a")
    t = real.profile.transfer
    assert real.design == "cv" and real.splits() == [(r, f) for r in range(t.repeats) for f in range(t.k_folds)]
    with pytest.raises(Exception, match="need 260"):
        replication_splits(100, 3, 40, 140)
    with pytest.raises(Exception, match="transfer.design='loo'"):
        TransferSpec(design="loo")


@pytest.mark.slow
def test_the_default_recipe_still_learns_from_a_small_folder():
    """200 pelvic radiographs, the default profile's fine-tuning: the budget in optimiser steps keeps it learning.

    Two folds of five, from scratch (no pre-training to lean on): each must pass the verdicts' learned gate.
    """
    from hipaug.data import from_arrays
    from hipaug.data.phantoms import render_pelvic
    from hipaug.evaluation.gates import GATES
    from hipaug.method.transfer import finetune_fold, make_folds

    p = load_profile("default")
    batch = render_pelvic(200, p.image_size, 0, p.phantom.fracture_rate, p.phantom.difficulty)
    pelvic = from_arrays(batch.images, batch.labels, batch.class_names, meta=batch.meta)
    folds = make_folds(pelvic, p.transfer.k_folds, seed=0)
    for f in (0, 1):
        res = finetune_fold(None, pelvic, folds[f], p.arch, p.finetune, p.transfer, seed=0,
                            tags={"condition": "scratch", "repeat": 0, "fold": f})
        m = res.metrics
        assert res.history["lr"].iloc[0] == pytest.approx(p.transfer.scratch_lr or p.finetune.lr)  # scratch's own rate
        assert m["auc"] >= GATES.min_auc, m
        assert min(m["sensitivity"], m["specificity"]) >= GATES.min_class_rate, m


def test_data_caps_cut_folders_and_never_the_phantom(tmp_path, small_folders):
    import yaml

    from hipaug.config import PROFILE_DIR
    from hipaug.pipeline import Pipeline

    raw = yaml.safe_load((PROFILE_DIR / "smoke.yaml").read_text())
    raw.update(name="smoke-capped", data={"limb_max_per_class": 4, "pelvic_max_per_class": 5})
    path = tmp_path / "capped.yaml"
    path.write_text(yaml.safe_dump(raw))
    folders = Pipeline(str(path), limb_dir=small_folders[0], pelvic_dir=small_folders[1], artifacts=tmp_path / "a")
    assert set(folders.limb.class_counts().values()) == {4} and set(folders.pelvic.class_counts().values()) == {5}
    phantom = Pipeline(str(path), artifacts=tmp_path / "a")
    assert len(phantom.pelvic) == raw["phantom"]["pelvic_n"]
    assert set(phantom.limb.class_counts().values()) == {raw["phantom"]["limb_per_class"]}
