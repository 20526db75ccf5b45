"""Tests for hipaug.evaluation: metrics, paired statistics, GAN quality measures, Grad-CAM and Grad-CAM++."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score
from torch import nn

from hipaug import evaluation as ev
from hipaug.book.plots import cam_overlay
from hipaug.errors import HipaugError

# ------------------------------------------------------------------ binary metrics


def test_binary_metrics_hand_checked_confusion_matrix():
    y_true = [1, 1, 1, 0, 0]
    y_score = [0.9, 0.7, 0.2, 0.4, 0.6]  # predictions at 0.5: 1, 1, 0, 0, 1
    tp, fn, tn, fp = 2, 1, 1, 1  # counted by hand from the line above
    m = ev.binary_metrics(y_true, y_score)
    assert (m["tp"], m["fn"], m["tn"], m["fp"]) == (tp, fn, tn, fp)
    sens = Fraction(tp, tp + fn)
    spec = Fraction(tn, tn + fp)
    prec = Fraction(tp, tp + fp)
    f1 = 2 * prec * sens / (prec + sens)
    assert m["accuracy"] == pytest.approx(float(Fraction(tp + tn, 5)))  # 0.6
    assert m["sensitivity"] == pytest.approx(float(sens))  # 2/3
    assert m["specificity"] == pytest.approx(float(spec))  # 1/2
    assert m["precision"] == pytest.approx(float(prec))  # 2/3
    assert m["f1"] == pytest.approx(float(f1))  # 2/3
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["balanced_accuracy"] == pytest.approx(float((sens + spec) / 2))
    mcc = (tp * tn - fp * fn) / np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    assert m["mcc"] == pytest.approx(mcc)
    assert m["note"] == ""


def test_binary_metrics_threshold_and_auc():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    m = ev.binary_metrics(y, s)
    assert m["auc"] == pytest.approx(roc_auc_score(y, s))
    # threshold: score >= threshold is positive
    m0 = ev.binary_metrics([1, 0], [0.5, 0.49])
    assert (m0["tp"], m0["tn"]) == (1, 1)
    m_hi = ev.binary_metrics([1, 0], [0.5, 0.49], threshold=0.6)
    assert (m_hi["fn"], m_hi["tn"]) == (1, 1)


def test_binary_metrics_one_class_gives_nan_auc_with_note():
    m = ev.binary_metrics([1, 1, 1], [0.9, 0.2, 0.8])
    assert np.isnan(m["auc"]) and np.isnan(m["specificity"])
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert "only one class" in m["note"]


def test_binary_metrics_rejects_bad_input():
    with pytest.raises(HipaugError, match="0/1"):
        ev.binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="items"):
        ev.binary_metrics([0, 1, 1], [0.1, 0.2])
    with pytest.raises(HipaugError, match="binarize"):
        ev.binary_metrics([0, 1], np.array([[0.2, 0.8], [0.6, 0.4]]))


def test_binarize_uses_positive_class_not_column_one():
    names = ("fracture", "normal")  # sorted: fracture is index 0
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    y, s = ev.binarize([0, 1], probs, names, positive="fracture")
    np.testing.assert_array_equal(y, [1, 0])
    np.testing.assert_allclose(s, [0.9, 0.2])
    with pytest.raises(HipaugError, match="positive"):
        ev.binarize([0, 1], probs, names, positive="broken")


def test_roc_points():
    df = ev.roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert list(df.columns) == ["fpr", "tpr", "threshold"]
    assert df["fpr"].iloc[-1] == 1 and df["tpr"].iloc[-1] == 1
    with pytest.raises(HipaugError):
        ev.roc_points([1, 1], [0.1, 0.2])


@pytest.mark.parametrize("y_true,y_score", [
    ([1, 1, 1, 0, 0, 0, 1, 0], [0.9, 0.6, 0.3, 0.7, 0.2, 0.1, 0.8, 0.4]),  # a fair classifier
    ([1, 0, 1, 0], [0.2, 0.9, 0.1, 0.8]),  # every call wrong: MCC -1
    ([1, 0, 1, 0, 0], [0.1, 0.2, 0.3, 0.4, 0.45]),  # no positive prediction
    ([1, 0, 1, 0, 0], [0.6, 0.7, 0.8, 0.9, 0.95]),  # every image called a fracture
    ([1, 1, 1], [0.9, 0.2, 0.8]),  # one class only
])
def test_precision_and_mcc_are_scikit_learns(y_true, y_score):
    from sklearn.metrics import matthews_corrcoef, precision_score

    y_pred = (np.asarray(y_score) >= 0.5).astype(int)
    m = ev.binary_metrics(y_true, y_score)
    assert m["precision"] == precision_score(y_true, y_pred, zero_division=0)
    assert m["mcc"] == matthews_corrcoef(y_true, y_pred)
    assert -1 <= m["mcc"] <= 1 and 0 <= m["precision"] <= 1
    if y_pred.sum() == 0:
        assert "precision and f1 are 0 by convention" in m["note"]


def test_precision_and_mcc_are_summarised_beside_the_papers_four():
    assert {"precision", "mcc"} <= set(ev.METRICS) and not {"precision", "mcc"} & set(ev.PAPER_METRICS)
    assert ev.METRICS[:4] == ev.PAPER_METRICS  # the paper's columns first, in its order
    rows = _scored_folds(effect=0.0)
    s = ev.summarize(rows)
    for m in ("precision", "mcc"):
        assert s.loc["with_gan", (m, "mean")] == pytest.approx(rows.loc[rows.condition == "with_gan", m].mean())
    assert {"precision", "mcc"} <= set(ev.format_mean_sd(s).columns)


def _scored_folds(effect: float, k: int = 5) -> pd.DataFrame:
    """binary_metrics of fixed random scores per fold and condition; with_gan's scores shifted by `effect`."""
    rng = np.random.default_rng(3)
    rows = []
    for fold in range(k):
        y = rng.integers(0, 2, 40)
        noise = rng.normal(0, 0.25, 40)
        for cond, shift in (("without_gan", 0.0), ("with_gan", effect)):
            s = np.clip(0.5 + (y - 0.5) * (0.4 + shift) + noise, 0, 1)
            rows.append({"condition": cond, "repeat": 0, "fold": fold, "n_test": 40, **ev.binary_metrics(y, s)})
    return pd.DataFrame(rows)


def test_table8_report_records_precision_and_mcc():
    from types import SimpleNamespace

    from sklearn.metrics import matthews_corrcoef

    from hipaug.pipeline.reports import TABLE8_PAIRS, flat_summary, paired_table, table_of_summary

    folds = _scored_folds(effect=0.3)
    summary = flat_summary(folds).set_index("condition")
    tests = paired_table(folds, TABLE8_PAIRS, SimpleNamespace(n_boot=200, alpha=0.05), seed=0)
    # the store's flat summary reads back as summarize's (metric, stat) table
    assert table_of_summary(flat_summary(folds)).equals(ev.summarize(folds, ev.METRICS))
    for m in ("precision", "mcc"):
        assert summary.loc["with_gan", f"{m}_mean"] == pytest.approx(folds.loc[folds.condition == "with_gan", m].mean())
        row = tests[(tests["metric"] == m) & (tests["a"] == "with_gan") & (tests["b"] == "without_gan")]
        per_fold = folds.pivot(index="fold", columns="condition", values=m)
        assert row["mean_diff"].item() == pytest.approx((per_fold["with_gan"] - per_fold["without_gan"]).mean())
    # the MCC recorded for a fold is scikit-learn's on that fold's calls
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40)
    s = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.25, 40), 0, 1)
    assert folds.loc[0, "mcc"] == matthews_corrcoef(y, (s >= 0.5).astype(int))


# ------------------------------------------------------------------ summaries and paired tests


def _folds(diff_a: np.ndarray, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = 0.85 + rng.normal(0, 0.02, size=len(diff_a))
    rows = []
    for i, (b, d) in enumerate(zip(base, diff_a, strict=True)):
        rows.append({"condition": "without_gan", "fold": i, "accuracy": b})
        rows.append({"condition": "with_gan", "fold": i, "accuracy": b + d})
    return pd.DataFrame(rows)


def test_summarize_mean_sd_ddof1_and_format():
    df = pd.DataFrame({
        "condition": ["A"] * 3 + ["B"] * 3,
        "fold": [0, 1, 2] * 2,
        "accuracy": [0.8, 0.9, 0.85, 0.7, 0.75, 0.72],
    })
    s = ev.summarize(df, metrics=["accuracy"])
    assert list(s.index) == ["A", "B"]
    a = np.array([0.8, 0.9, 0.85])
    assert s.loc["A", ("accuracy", "mean")] == pytest.approx(a.mean())
    assert s.loc["A", ("accuracy", "sd")] == pytest.approx(np.std(a, ddof=1))
    assert s.loc["A", ("accuracy", "n")] == 3
    txt = ev.format_mean_sd(s)
    assert txt.loc["A", "accuracy"] == f"{a.mean() * 100:.1f} ± {np.std(a, ddof=1) * 100:.1f}"  # percent, 1 decimal
    with pytest.raises(HipaugError, match="auc"):
        ev.summarize(df)  # default METRICS includes columns this frame lacks


def test_paired_test_detects_clear_effect():
    rng = np.random.default_rng(1)
    df = _folds(0.05 + rng.normal(0, 0.005, 5))
    r = ev.paired_test(df, "with_gan", "without_gan", "accuracy")
    assert r["n"] == 5 and r["df"] == 4
    assert r["p_two_sided"] < 0.05 and r["p_greater"] < r["p_two_sided"]
    assert r["significant"]
    assert r["mean_diff"] == pytest.approx(0.05, abs=0.01)
    assert r["ci_low"] > 0 and r["ci_high"] > r["ci_low"]
    assert 0 < r["t_ci_low"] < r["mean_diff"] < r["t_ci_high"]
    assert r["cohens_dz"] == pytest.approx(r["mean_diff"] / r["sd_diff"])


def test_paired_test_no_effect_and_opposite_direction():
    df = _folds(np.array([0.01, -0.012, 0.02, -0.018, 0.001]))
    r = ev.paired_test(df, "with_gan", "without_gan", "accuracy")
    assert r["p_two_sided"] > 0.5 and not r["significant"]
    assert r["ci_low"] < 0 < r["ci_high"] and r["t_ci_low"] < 0 < r["t_ci_high"]
    rev = ev.paired_test(df.assign(accuracy=np.where(df.condition == "with_gan", df.accuracy - 0.1, df.accuracy)),
                         "with_gan", "without_gan", "accuracy")
    assert rev["mean_diff"] < 0 and rev["p_greater"] > 0.9


def test_paired_test_pairs_by_fold_not_row_order():
    rng = np.random.default_rng(2)
    df = _folds(0.03 + rng.normal(0, 0.01, 5))
    r1 = ev.paired_test(df, "with_gan", "without_gan", "accuracy")
    shuffled = df.sample(frac=1.0, random_state=3).reset_index(drop=True)
    r2 = ev.paired_test(shuffled, "with_gan", "without_gan", "accuracy")
    for k in ("mean_diff", "sd_diff", "p_two_sided", "ci_low", "ci_high"):
        assert r1[k] == pytest.approx(r2[k])


def test_paired_test_errors_and_degenerate():
    df = _folds(np.array([0.02, 0.03]))
    with pytest.raises(HipaugError, match="at least 2 pairs"):
        ev.paired_test(df[df.fold == 0], "with_gan", "without_gan", "accuracy")
    with pytest.raises(ValueError, match="unpaired"):
        ev.paired_test(df.drop(index=0), "with_gan", "without_gan", "accuracy")
    with pytest.raises(HipaugError, match="no rows"):
        ev.paired_test(df, "with_gan", "nope", "accuracy")
    same = _folds(np.full(5, 0.02))
    r = ev.paired_test(same, "with_gan", "without_gan", "accuracy")
    assert np.isnan(r["p_two_sided"]) and "identical" in r["note"]
    assert r["ci_low"] == pytest.approx(0.02) and r["ci_high"] == pytest.approx(0.02)


def test_paired_test_matches_repeat_column_and_paired_tests_table():
    rng = np.random.default_rng(4)
    parts = []
    for rep in range(2):
        d = _folds(0.04 + rng.normal(0, 0.01, 5), seed=rep).assign(repeat=rep)
        d["f1"] = d["accuracy"] + 0.01
        parts.append(d)
    df = pd.concat(parts, ignore_index=True)
    r = ev.paired_test(df, "with_gan", "without_gan", "accuracy")
    assert r["n"] == 10 and r["pair_on"] == ["fold", "repeat"]
    table = ev.paired_tests(df, "with_gan", "without_gan", metrics=["accuracy", "f1"], n_boot=2000)
    assert list(table.index) == ["accuracy", "f1"]
    assert (table["p_fdr_bh"] >= table["p_two_sided"] - 1e-12).all()


def _folds_d(d, n_test=None, repeat=None) -> pd.DataFrame:
    """Folds whose with_gan - without_gan differences are exactly `d` (base accuracy 0.8)."""
    rows = []
    for i, x in enumerate(d):
        extra = {} if n_test is None else {"n_test": n_test[i]}
        extra.update({} if repeat is None else {"repeat": repeat})
        rows.append({"condition": "without_gan", "fold": i, "accuracy": 0.8, **extra})
        rows.append({"condition": "with_gan", "fold": i, "accuracy": 0.8 + x, **extra})
    return pd.DataFrame(rows)


def test_corrected_resampled_t_test_by_hand():
    d = np.array([0.02, -0.01, 0.03, 0.00, 0.01])
    n_test, n_total = 60, 300  # five folds of 60: each trains on the other 240
    n_train = n_total - n_test
    r = ev.paired_test(_folds_d(d, n_test=[n_test] * 5), "with_gan", "without_gan", "accuracy", alpha=0.05)
    j = d.size
    se = np.sqrt((1 / j + n_test / n_train) * np.var(d, ddof=1))
    t = np.mean(d) / se
    assert r["test_train_ratio"] == pytest.approx(n_test / n_train)
    assert r["t_corrected"] == pytest.approx(t)
    assert r["p_corrected"] == pytest.approx(2 * stats.t.sf(abs(t), j - 1))
    assert r["p_corrected_greater"] == pytest.approx(stats.t.sf(t, j - 1))
    half = stats.t.ppf(0.975, j - 1) * se
    assert (r["corrected_ci_low"], r["corrected_ci_high"]) == pytest.approx((np.mean(d) - half, np.mean(d) + half))
    # The paper's plain paired t-test is kept unchanged, and is the less conservative one.
    plain = stats.ttest_rel(0.8 + d, np.full(j, 0.8))
    assert r["t"] == pytest.approx(plain.statistic) and r["p_two_sided"] == pytest.approx(plain.pvalue)
    assert r["p_corrected"] > r["p_two_sided"]
    assert r["corrected_ci_high"] - r["corrected_ci_low"] > r["t_ci_high"] - r["t_ci_low"]
    assert r["significant_corrected"] is False and r["note"] == ""


def test_corrected_test_can_be_significant_and_uses_a_given_ratio():
    d = np.array([0.05, 0.051, 0.049, 0.052, 0.048])
    r = ev.paired_test(_folds_d(d), "with_gan", "without_gan", "accuracy", test_train_ratio=0.1)
    assert r["test_train_ratio"] == 0.1 and r["significant_corrected"] and r["p_corrected"] < 0.05
    assert r["t_corrected"] == pytest.approx(np.mean(d) / np.sqrt((1 / 5 + 0.1) * np.var(d, ddof=1)))
    with pytest.raises(HipaugError, match="test_train_ratio"):
        ev.paired_test(_folds_d(d), "with_gan", "without_gan", "accuracy", test_train_ratio=0)


def test_test_train_ratio_from_n_test_column_with_repeats():
    sizes = {0: [61, 60, 60, 59, 60], 1: [58, 62, 60, 60, 60]}  # unequal folds, two repeats
    rng = np.random.default_rng(5)
    df = pd.concat([_folds_d(rng.normal(0.01, 0.01, 5), n_test=n, repeat=rep) for rep, n in sizes.items()],
                   ignore_index=True)
    n_test = np.array(sizes[0] + sizes[1], dtype=float)
    n_train = np.array([sum(sizes[rep]) - x for rep in sizes for x in sizes[rep]], dtype=float)
    ratio, note = ev.fold_test_train_ratio(df, "with_gan")
    assert ratio == pytest.approx(n_test.mean() / n_train.mean()) and note == ""
    r = ev.paired_test(df, "with_gan", "without_gan", "accuracy")
    assert r["n"] == 10 and r["test_train_ratio"] == pytest.approx(ratio)
    # No n_test column: plain k-fold's 1/(k-1), and the note says it was assumed.
    r2 = ev.paired_test(df.drop(columns="n_test"), "with_gan", "without_gan", "accuracy")
    k = df["fold"].nunique()
    assert r2["test_train_ratio"] == pytest.approx(1 / (k - 1)) and "1/(k-1)" in r2["note"]


def test_min_detectable_difference_has_the_requested_power():
    sd, j, ratio = 0.02, 5, 0.25
    for corrected, r in ((True, ratio), (False, 0.0)):
        mdd = ev.min_detectable_difference(sd, j, ratio, alpha=0.05, power=0.8, corrected=corrected)
        crit = stats.t.ppf(0.975, j - 1)
        nc = mdd / np.sqrt((1 / j + r) * sd**2)
        power = stats.nct.sf(crit, j - 1, nc) + stats.nct.cdf(-crit, j - 1, nc)
        assert power == pytest.approx(0.8, abs=1e-6)
    assert ev.min_detectable_difference(sd, j, ratio) > ev.min_detectable_difference(sd, j, ratio, corrected=False)
    assert ev.min_detectable_difference(sd, 25, ratio) < ev.min_detectable_difference(sd, 10, ratio) \
        < ev.min_detectable_difference(sd, j, ratio)
    for bad in ((0.0, j), (np.nan, j), (sd, 1)):
        assert np.isnan(ev.min_detectable_difference(*bad, ratio))
    with pytest.raises(HipaugError, match="power"):
        ev.min_detectable_difference(sd, j, ratio, power=0.01)


def test_min_detectable_difference_by_simulation():
    sd, j, ratio = 0.02, 5, 0.0
    mdd = ev.min_detectable_difference(sd, j, ratio, corrected=False)
    rng = np.random.default_rng(0)
    d = rng.normal(mdd, sd, size=(4000, j))
    p = stats.ttest_1samp(d, 0.0, axis=1).pvalue
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.03)


def test_paired_test_reports_mdd_of_both_tests():
    d = np.array([0.02, -0.01, 0.03, 0.00, 0.01])
    r = ev.paired_test(_folds_d(d, n_test=[60] * 5), "with_gan", "without_gan", "accuracy")
    assert r["mdd_80"] == pytest.approx(ev.min_detectable_difference(np.std(d, ddof=1), 5, 60 / 240))
    assert r["mdd_80_plain"] == pytest.approx(ev.min_detectable_difference(np.std(d, ddof=1), 5, 0, corrected=False))
    assert r["mdd_80"] > r["mdd_80_plain"] > 0
    same = ev.paired_test(_folds_d(np.full(5, 0.02)), "with_gan", "without_gan", "accuracy")
    assert np.isnan(same["mdd_80"]) and np.isnan(same["p_corrected"])


# ------------------------------------------------------------------ GAN quality


def test_frechet_distance_identity_symmetry_and_mean_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert ev.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = rng.normal(size=(300, 6)) + 0.3
    assert ev.frechet_distance(a, b) == pytest.approx(ev.frechet_distance(b, a), rel=1e-6)
    # identity covariance: FD = ||mu1 - mu2||^2
    shift = np.array([1.0, 1.0, 0.0, 0.0])
    x = rng.normal(size=(20000, 4))
    y = rng.normal(size=(20000, 4)) + shift
    assert ev.frechet_distance(x, y) == pytest.approx(shift @ shift, abs=0.05)
    near = ev.frechet_distance(x, rng.normal(size=(20000, 4)) + 0.5 * shift)
    assert near < ev.frechet_distance(x, y)


def test_frechet_distance_survives_more_dims_than_samples():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 1.0
    fd = ev.frechet_distance(a, b)
    assert np.isfinite(fd) and fd > 0
    with pytest.raises(HipaugError, match="D="):
        ev.frechet_distance(a, b[:, :32])


def test_precision_recall_identical_collapsed_and_far():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 8))
    same = ev.precision_recall(real, real.copy(), k=3)
    assert same["precision"] == pytest.approx(1.0) and same["recall"] == pytest.approx(1.0)
    collapsed = real[0] + rng.normal(0, 1e-3, size=(400, 8))
    pr = ev.precision_recall(real, collapsed, k=3)
    assert pr["precision"] > 0.95 and pr["recall"] < 0.05
    far = ev.precision_recall(real, real + 100.0, k=3)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # chunking does not change the answer
    small_mem = ev.precision_recall(real, collapsed, k=3, working_memory=1)
    assert small_mem["precision"] == pr["precision"] and small_mem["recall"] == pr["recall"]


def test_class_diversity_detects_collapsed_class():
    rng = np.random.default_rng(0)
    f = np.concatenate([rng.normal(size=(50, 5)), 3 + rng.normal(0, 0.01, size=(50, 5))])
    y = np.repeat([0, 1], 50)
    d = ev.class_diversity(f, y, class_names=("normal", "collapsed"))
    assert list(d.index) == ["normal", "collapsed", "all"]
    assert d.loc["collapsed", "mean_pairwise_distance"] < 0.1 * d.loc["normal", "mean_pairwise_distance"]
    cmp = ev.compare_diversity(f[:50], y[:50], f[50:], np.zeros(50, int))
    assert cmp.loc["0", "ratio"] < 0.1


def test_real_vs_real_baseline_and_gan_test():
    rng = np.random.default_rng(0)
    f = rng.normal(size=(200, 4))
    y = np.repeat([0, 1], 100)
    base = ev.real_vs_real_baseline(f, y, seed=0)
    assert 0 <= base < ev.frechet_distance(f, f + 1.0)
    assert ev.real_vs_real_baseline(f, y, seed=0) == base  # seeded
    pr = ev.real_vs_real_baseline(f, y, seed=1, fn=lambda a, b: ev.precision_recall(a, b))
    assert pr["precision"] > 0.5
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    overall, per = ev.gan_test_accuracy(probs, [0, 1, 1, 1], class_names=("a", "b"))
    assert overall == pytest.approx(3 / 4)
    assert per["a"] == pytest.approx(1.0) and per["b"] == pytest.approx(2 / 3)
    t = ev.gan_train_test_table(0.9, {"acgan": (0.45, 0.9)})
    assert t.loc["acgan", "gan_train_ratio"] == pytest.approx(0.5)


# ------------------------------------------------------------------ Grad-CAM


class LeftHalfNet(nn.Module):
    """Looks only at the left half of the image: the right half is zeroed before any conv."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.act = nn.ReLU(inplace=inplace)
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.conv1.weight.abs_()
            self.conv2.weight.abs_()
            self.fc.weight.copy_(torch.tensor([[1.0] * 4, [-1.0] * 4]))
            self.fc.bias.zero_()

    def forward(self, x):
        mask = torch.zeros_like(x)
        mask[..., : x.shape[-1] // 2] = 1
        h = self.act(self.conv1(x * mask))
        h = self.act(self.conv2(h))
        return self.fc(h.mean(dim=(2, 3)))


def test_grad_cam_highlights_left_half_and_cleans_up():
    torch.manual_seed(0)
    model = LeftHalfNet().train()
    x = torch.rand(3, 1, 16, 16)
    cam = ev.grad_cam(model, x, target=0)
    assert cam.shape == (3, 16, 16) and cam.dtype == np.float32
    assert cam.min() >= 0 and cam.max() <= 1 and np.allclose(cam.max(axis=(1, 2)), 1)
    left, right = cam[:, :, :8].sum(), cam[:, :, 8:].sum()
    assert left > 5 * right
    assert model.training  # mode restored
    assert all(len(m._forward_hooks) == 0 and len(m._backward_hooks) == 0 for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    # the default layer is the last Conv2d; the predicted class is class 0 for positive inputs
    np.testing.assert_allclose(ev.grad_cam(model, x, layer="conv2"), cam, atol=1e-6)
    np.testing.assert_allclose(ev.grad_cam(model, x), cam, atol=1e-6)
    # class 1 has negative weights: no positive evidence anywhere, all-zero map
    assert ev.grad_cam(model, x, target=torch.tensor([1, 1, 1])).max() == 0
    # batching does not change results
    np.testing.assert_allclose(ev.grad_cam(model, x, target=0, batch_size=1), cam, atol=1e-6)


def test_grad_cam_inplace_relu_and_hooks_removed_on_error():
    torch.manual_seed(0)
    a, b = LeftHalfNet(inplace=False), LeftHalfNet(inplace=True)
    b.load_state_dict(a.state_dict())
    x = torch.rand(2, 1, 16, 16)
    np.testing.assert_allclose(ev.grad_cam(a, x, target=0), ev.grad_cam(b, x, target=0), atol=1e-6)
    with pytest.raises(HipaugError, match="target"):
        ev.grad_cam(b, x, target=5)
    assert len(b.conv2._forward_hooks) == 0
    with pytest.raises(HipaugError, match="no nn.Conv2d"):
        ev.grad_cam(nn.Sequential(nn.Flatten(), nn.Linear(256, 2)), x)


def _reference_cam(model, x, layer, target: int, plus: bool = False) -> np.ndarray:
    """Grad-CAM or Grad-CAM++ written out from the papers with plain autograd (no torchcam)."""
    store = {}

    def hook(_m, _i, out):
        store["a"] = out
        return out.clone()

    handle = layer.register_forward_hook(hook)
    model.eval()
    logits = model(x.clone().requires_grad_(True))
    handle.remove()
    a = store["a"]
    (g,) = torch.autograd.grad(logits[:, target].sum(), a)
    a, g = a.detach().double(), g.double()
    if plus:  # Chattopadhay et al. 2018, eq. 19 with exp(score): alpha = g^2 / (2 g^2 + sum_ab A_ab g^3)
        alpha = g**2 / (2 * g**2 + a.sum(dim=(2, 3), keepdim=True) * g**3)
        w = (torch.where(g != 0, alpha, 0.0) * g.clamp_min(0)).sum(dim=(2, 3))
    else:  # Selvaraju et al. 2017, eq. 1
        w = g.mean(dim=(2, 3))
    cam = torch.relu((w[:, :, None, None] * a).sum(1, keepdim=True))
    cam = nn.functional.interpolate(cam, size=x.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    mx = cam.flatten(1).max(1).values.view(-1, 1, 1)
    return torch.where(mx > 0, cam / mx, 0.0).numpy()


@pytest.mark.parametrize("batch_norm", [True, False])
def test_cam_maps_on_a_vgg_match_the_papers_formulas(batch_norm):
    from hipaug.models import vgg16

    model = vgg16(num_classes=2, width=0.125, fc_width=16, image_size=64, batch_norm=batch_norm, pretrained="never",
                  seed=0)
    x = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    relu = ev.last_conv_features(model)
    # the default layer is the last conv's rectified feature maps (relu5_3 of VGG-16)
    assert isinstance(relu, nn.ReLU) and relu is model.features[-2]
    for layer in (relu, ev.last_conv(model)):  # without BatchNorm an in-place ReLU follows the conv directly
        for method, plus in (("gradcam", False), ("gradcampp", True)):
            got = ev.cam_maps(model, x, target=1, method=method, layer=layer)
            np.testing.assert_allclose(got, _reference_cam(model, x, layer, 1, plus), atol=1e-5, err_msg=method)
    np.testing.assert_allclose(ev.cam_maps(model, x, 1), _reference_cam(model, x, relu, 1), atol=1e-5)
    assert all(len(m._forward_hooks) == 0 and len(m._backward_hooks) == 0 for m in model.modules())


def test_grad_cam_plus_plus_is_not_torchcams_unnormalised_weights():
    """torchcam 0.5.0's GradCAMpp skips the division of alpha; hipaug's must not (see hipaug.evaluation.cam)."""
    from torchcam.methods import GradCAMpp

    torch.manual_seed(0)
    model = LeftHalfNet().eval()
    x = torch.rand(3, 1, 16, 16)
    ours = ev.cam_maps(model, x, target=0, method="gradcampp")
    np.testing.assert_allclose(ours, _reference_cam(model, x, model.conv2, 0, plus=True), atol=1e-5)
    assert ours[:, :, :8].sum() > 5 * ours[:, :, 8:].sum()
    with GradCAMpp(model, target_layer="conv2") as extractor:
        (theirs,) = extractor(class_idx=0, scores=model(x), normalized=False)
    theirs = theirs / theirs.flatten(1).max(1).values.view(-1, 1, 1)
    assert np.abs(theirs.numpy() - ours).max() > 1e-3, "torchcam fixed GradCAMpp: drop hipaug's _GradCAMpp"
    with pytest.raises(HipaugError, match="method"):
        ev.cam_maps(model, x, method="scorecam")


def test_cam_overlay_and_localization():
    img = np.linspace(0, 1, 64).reshape(8, 8)
    cam = np.zeros((8, 8))
    cam[2, 3] = 1.0
    rgb = cam_overlay(img, cam)
    assert rgb.shape == (8, 8, 3) and rgb.min() >= 0 and rgb.max() <= 1
    mask = np.zeros((8, 8), bool)
    mask[:4, :4] = True
    loc = ev.cam_localization(cam, mask)
    assert loc.loc[0, "mass_in_mask"] == 1.0 and bool(loc.loc[0, "peak_in_mask"])


def test_pairs_needed_inverts_the_minimum_detectable_difference():
    from hipaug.evaluation.stats import min_detectable_difference, pairs_needed

    n = pairs_needed(0.0076, 0.03)
    assert min_detectable_difference(0.03, n, 0.0) <= 0.0076 < min_detectable_difference(0.03, n - 1, 0.0)
    assert pairs_needed(0.03, 0.03) < pairs_needed(0.01, 0.03) < n
    # CV's correction keeps the MDD above sqrt(ratio) * sd * z however many folds: never enough
    assert pairs_needed(0.0076, 0.03, test_train_ratio=0.25) is None
    assert pairs_needed(0.01, float("nan")) is None


def test_training_stability_reads_training_accuracy_when_nothing_was_validated():
    epochs = np.arange(1, 7)
    base = {"condition": "a", "repeat": 0, "fold": 0, "epoch": epochs}
    validated = pd.DataFrame({**base, "val_acc": [0.5, 0.6, 0.7, 0.7, 0.9, 0.7], "train_acc": np.linspace(0.5, 1.0, 6)})
    from hipaug.book.plots import curve_words

    assert ev.curve_column(validated) == "val_acc"
    assert ev.training_stability(validated).loc["a", "max_jump"] == pytest.approx(0.2)
    blind = validated.assign(val_acc=np.nan, train_acc=[0.5, 0.6, 0.7, 0.8, 0.75, 0.95])
    col, (label, caption) = ev.curve_column(blind), curve_words(blind)
    assert (col, label) == ("train_acc", "training accuracy") and "no images were held out" in caption
    assert curve_words(validated)[1] == ""
    assert ev.training_stability(blind).loc["a", "max_jump"] == pytest.approx(0.2)
