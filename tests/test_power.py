"""Chapter 5's power section: the MDD curve, the pairs the paper's difference needs, the cost, the front sentence."""

from __future__ import annotations

import pandas as pd
import pytest

from hipaug.book import power
from hipaug.evaluation.stats import min_detectable_difference


def row(n=10, sd=0.03, ratio=0.0):
    return pd.Series({"a": "with_gan", "b": "without_gan", "metric": "accuracy", "n": n, "sd_diff": sd,
                      "test_train_ratio": ratio, "mdd_80": min_detectable_difference(sd, n, ratio),
                      "confidence_level": 0.95})


def test_the_curve_falls_and_marks_this_run():
    curve = power.power_curve(row(n=12), 0.05)
    assert curve["MDD at 80% power (points)"].is_monotonic_decreasing
    assert curve.loc[curve["this run"], "pairs"].tolist() == [12]


def test_replications_can_reach_the_papers_difference_cv_folds_cannot():
    n = power.needs(row(), 0.76, 0.05)
    assert n is not None and min_detectable_difference(0.03, n, 0.0) <= 0.0076
    text = power.describe(row(), 0.76, n, "replications")
    assert "With 10 independent replications" in text and f"would take {n} independent replications" in text
    cv = row(ratio=0.25)
    assert power.needs(cv, 0.76, 0.05) is None
    assert "No number of folds" in power.describe(cv, 0.76, None, "cv")


def test_the_cost_of_the_papers_difference():
    t = power.compute_table(40, per_pair_seconds=30.0, per_pair_flops=2e12, paper_pair_flops=5e15, tflops=50.0)
    assert t.iloc[0]["hours"] == pytest.approx(40 * 30 / 3600)
    gpus = t.iloc[1:]
    assert gpus["hours"].is_monotonic_decreasing and gpus.iloc[0]["hours"] == pytest.approx(40 * 5e15 / 50e12 / 3600)
    assert gpus.iloc[2]["hours"] == pytest.approx(5 * 5e15 / 50e12 / 3600)  # ceil(40 / 8) pairs per GPU
    assert power.compute_table(None, 1, 1, 1, 1).empty
    two = power.compute_table(40, per_pair_seconds=30.0, per_pair_flops=2e12, paper_pair_flops=5e15, tflops=50.0,
                              concurrent=2)  # two runs at a time on this machine: half the wall time
    assert two.iloc[0]["hours"] == pytest.approx(40 * 30 / 3600 / 2) and "2 at a time" in two.index[0]
    assert "at a time" not in t.index[0]


def test_the_front_page_sentence_comes_from_the_store():
    tests = pd.DataFrame([row(n=10, sd=0.06)])
    text = power.seen_text({"paired_tests": tests, "run": {"design": "replications"}})
    mdd = min_detectable_difference(0.06, 10, 0.0) * 100
    assert text.startswith("**What this build could see:** With 10 independent replications")
    assert f"{mdd:.1f} points or more, not one of the paper's +0.8" in text
    assert power.seen_text({}) == ""
