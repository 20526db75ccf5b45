"""The transfer premise (does limb pre-training help at all?): its status, its text and the backbone table."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from hipaug.book import premise
from hipaug.book.claims import load_ledger, not_learned, premise_front

ROOT = Path(__file__).resolve().parents[1]  # the project: its ledger gates the premise


def row(diff: float, half: float, n: int = 10, mdd: float = 0.045) -> pd.Series:
    """One paired_tests row of without_gan − scratch accuracy: mean difference `diff`, CI `diff` ± `half`."""
    return pd.Series({"metric": "accuracy", "a": "without_gan", "b": "scratch", "n": n, "mean_a": 0.80 + diff,
                      "mean_b": 0.80, "mean_diff": diff, "corrected_ci_low": diff - half,
                      "corrected_ci_high": diff + half, "p_corrected": 0.01 if abs(diff) > half else 0.4,
                      "mdd_80": mdd, "confidence_level": 0.95})


@pytest.mark.parametrize("diff, half, expected", [(0.05, 0.02, "holds"), (-0.05, 0.02, "fails"),
                                                  (0.02, 0.03, "not shown"), (-0.01, 0.03, "not shown")])
def test_status_follows_the_interval(diff, half, expected):
    assert premise.status(row(diff, half)) == expected


def test_status_without_a_test_is_none():
    assert premise.status(None) is None
    assert premise.status(row(0.0, float("nan"))) is None


def test_the_row_is_without_gan_against_scratch():
    other = row(0.01, 0.02)
    other["a"], other["b"] = "with_gan", "without_gan"
    tests = pd.DataFrame([row(0.02, 0.03), other])
    got = premise.premise_row(tests)
    assert (got["a"], got["b"]) == ("without_gan", "scratch")
    assert premise.premise_row(tests[tests["a"] == "with_gan"]) is None


def test_a_premise_not_shown_says_what_it_means_for_the_gan_claims():
    text = premise.describe(row(0.02, 0.03), "replications")
    assert text.startswith("**Transfer premise: not shown.**")
    assert "+2.0 points" in text and "10 independent replications" in text and "4.5 points" in text
    assert "says little about the paper's question" in text


def test_each_status_has_its_own_consequence():
    texts = {premise.describe(row(d, h), "cv") for d, h in ((0.05, 0.02), (-0.05, 0.02), (0.02, 0.03))}
    assert len(texts) == 3
    assert "fold pairs" in premise.describe(row(0.05, 0.02), "cv")
    assert "not tested" in premise.describe(None, "cv")


def learned_folds(scratch_sensitivity: float = 0.8) -> pd.DataFrame:
    """Fold rows of scratch and without_gan that pass the `learned` gate (unless scratch's sensitivity is set low)."""
    return pd.DataFrame([{"condition": c, "repeat": r, "fold": 0, "independent": True, "auc": 0.85,
                          "sensitivity": scratch_sensitivity if (c == "scratch" and r == 2) else 0.8,
                          "specificity": 0.8} for c in ("scratch", "without_gan") for r in range(5)])


def test_front_text_reads_the_store():
    store = {"paired_tests": pd.DataFrame([row(-0.05, 0.02)]), "run": {"design": "replications"},
             "table8_folds": learned_folds()}
    text = premise_front(ROOT, store)
    assert text.startswith("**Does limb pre-training help at all?** Fails:") and "presume" in text
    assert premise_front(ROOT, {}) == ""


def test_a_model_that_did_not_learn_makes_the_premise_not_testable():
    pre = load_ledger().preconditions
    assert not_learned(premise.PAIR, learned_folds(), pre) is None
    invalid = not_learned(premise.PAIR, learned_folds(scratch_sensitivity=0.0), pre)
    assert "replication 2 of 'scratch' is a near-constant predictor" in invalid
    assert premise.status(row(0.10, 0.02), invalid) == "not testable"  # a big "gain" over a model that did not learn
    text = premise.describe(row(0.10, 0.02), "replications", invalid)
    assert text.startswith("**Transfer premise: not testable.** Replication 2 of 'scratch'")
    store = {"paired_tests": pd.DataFrame([row(0.10, 0.02)]), "run": {"design": "replications"},
             "table8_folds": learned_folds(scratch_sensitivity=0.0)}
    assert premise_front(ROOT, store).startswith("**Does limb pre-training help at all?** Not testable here:")


class Oracle(nn.Module):
    """Predicts the class written into each image's first pixel (class index / 10)."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, x):
        idx = torch.round(x[:, 0, 0, 0] * 10).long()
        return nn.functional.one_hot(idx, self.num_classes).to(x.dtype) * 10 * self.scale


def test_backbone_table_scores_the_own_task_and_fracture_against_normal():
    names = ("forearm_fracture", "forearm_normal", "knee_fracture", "knee_normal")
    y = torch.tensor([0, 0, 1, 1, 2, 3, 3, 3])
    pred = torch.tensor([0, 2, 1, 0, 2, 3, 1, 1])  # 4 of 8 right; fracture vs normal: 7 of 8 right
    images = torch.zeros(len(y), 1, 4, 4)
    images[:, 0, 0, 0] = pred / 10
    val = SimpleNamespace(labels=y, class_names=names, images=images)
    clf = SimpleNamespace(model=Oracle(len(names)), class_names=names)
    t = premise.backbone_table({"without_gan": clf}, val)
    assert t.loc["without_gan", "accuracy (%)"] == pytest.approx(100 * 4 / 8)
    assert t.loc["without_gan", "fracture vs normal (%)"] == pytest.approx(100 * 7 / 8)
    assert t.loc["without_gan", "chance: largest class (%)"] == pytest.approx(100 * 3 / 8)
    assert t.loc["without_gan", "chance: fracture vs normal (%)"] == pytest.approx(100 * 5 / 8)
    text = premise.describe_backbones(t)
    assert "the pre-trained backbone reaches 50.0 % accuracy" in text and "4 classes" in text
    assert "in 87.5 % of them" in text and "62.5 %" in text
    assert premise.describe_backbones(pd.DataFrame()) == ""


def test_backbone_table_without_fracture_classes_leaves_that_column_empty():
    names = ("a", "b")
    val = SimpleNamespace(labels=torch.tensor([0, 1]), class_names=names, images=torch.zeros(2, 1, 4, 4))
    t = premise.backbone_table({"x": SimpleNamespace(model=Oracle(2), class_names=names)}, val)
    assert np.isnan(t.loc["x", "fracture vs normal (%)"]) and t.loc["x", "accuracy (%)"] == pytest.approx(50)
    with pytest.raises(ValueError, match="differ from the limb set"):
        premise.backbone_table({"x": SimpleNamespace(model=Oracle(2), class_names=("b", "a"))}, val)


def _study_record(profile_hash: str, date: str, profile: str = "default", minus: float = 2.0) -> dict:
    rows = [{"profile": profile, "backbone": b, "linear probe on hip (%)": 50.0, "minus scratch (points)": m}
            for b, m in (("scratch", float("nan")), ("limb", minus))]
    return {"benchmark": premise.STUDY, "date": date, "cpu": "test CPU", "rows": rows, "notes": "3 replications.",
            "profiles": {profile: profile_hash}}


def test_study_shows_the_latest_record_of_the_profile(tmp_path):
    import json

    from hipaug.book.perfpage import profile_hashes

    current = profile_hashes()["default"]
    d = tmp_path / "benchmarks" / "results"
    d.mkdir(parents=True)
    recs = [_study_record(current, "2026-12-01T10:00:00", minus=1.0), _study_record(current, "2026-12-02T10:00:00"),
            _study_record("other", "2026-12-03T10:00:00", profile="paper")]
    (d / f"{premise.STUDY}.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    table, caption = premise.study(tmp_path, "default")
    assert list(table.index) == ["scratch", "limb"] and "profile" not in table.columns
    assert table.loc["limb", "minus scratch (points)"] == 2.0  # the newer of the two default records
    assert "recorded on 2026-12-02" in caption and "3 replications." in caption and "Stale" not in caption
    _, caption = premise.study(tmp_path, "paper")
    assert "**Stale:**" in caption
    table, caption = premise.study(tmp_path, "fracatlas")
    assert table is None and "study_transfer.py --profile fracatlas" in caption
    assert premise.study(None, "default")[0] is None
