"""Evaluation: classification metrics, paired statistics, GAN quality and Grad-CAM.

- Table VIII of Lin & Chung (TAAI 2019): accuracy, sensitivity, specificity and F1 per fold of a
  5-fold cross-validation, reported as mean +- SD (ddof=1) and compared with a paired t-test.
  Metrics come from scikit-learn, statistics from SciPy (`ttest_rel`, `bootstrap`). Because the
  folds' training sets overlap, the plain paired t-test is anti-conservative (Dietterich 1998);
  `paired_test` also gives the corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert &
  Frank 2004 for repeated k-fold) and the minimum detectable difference at 80% power.
- GAN sample quality in a learned feature space (no ImageNet weights needed): Frechet distance
  (Heusel et al. 2017), improved precision/recall (Kynkaanniemi et al. 2019), within-class
  diversity, GAN-test accuracy (Shmelkov et al. 2018).
- Grad-CAM (Selvaraju et al. 2017) for what a classifier looks at.

Everything takes numpy arrays / torch modules, so this module never imports `vgg` or `acgan`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import linalg, optimize, stats
from scipy.spatial.distance import pdist
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    pairwise_distances_chunked,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors
from torch import nn

from .errors import HipaugError

METRICS = ("accuracy", "sensitivity", "specificity", "f1", "auc")  # the paper's four plus ROC AUC
PAPER_METRICS = ("accuracy", "sensitivity", "specificity", "f1")  # Table VIII columns
PAIR_EXTRA_KEYS = ("repeat", "seed")  # also matched on when present (repeated cross-validation)


class EvaluationError(HipaugError, ValueError):
    """Inputs to an evaluation function cannot be used (one line naming the argument)."""


# --------------------------------------------------------------------------------------------
# Classification metrics
# --------------------------------------------------------------------------------------------


def _as_1d(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        raise EvaluationError(
            f"{name} must be 1-D, got shape {a.shape}; for (N, C) probabilities use "
            "binarize(labels, probs, class_names, positive='fracture') first"
        )
    return a


def binarize(
    labels: Any, probs: Any, class_names: Sequence[str], positive: str = "fracture"
) -> tuple[np.ndarray, np.ndarray]:
    """Turn class indices and (N, C) probabilities into (y_true in {0,1}, score of `positive`).

    Class names are sorted, so in ("fracture", "normal") the positive class is index 0: never
    take column 1 blindly.
    """
    names = tuple(class_names)
    if positive not in names:
        raise EvaluationError(f"positive={positive!r} is not one of class_names {names}")
    idx = names.index(positive)
    lab = _as_1d(labels, "labels").astype(np.int64)
    p = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    if p.ndim != 2 or p.shape[1] != len(names) or p.shape[0] != lab.shape[0]:
        raise EvaluationError(f"probs must have shape ({lab.shape[0]}, {len(names)}), got {p.shape}")
    return (lab == idx).astype(np.int64), p[:, idx].astype(np.float64)


def _check_binary(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    yt = _as_1d(y_true, "y_true")
    ys = _as_1d(y_score, "y_score").astype(np.float64)
    if yt.shape[0] != ys.shape[0]:
        raise EvaluationError(f"y_true has {yt.shape[0]} items but y_score has {ys.shape[0]}")
    if yt.shape[0] == 0:
        raise EvaluationError("y_true is empty")
    if not np.isin(yt, (0, 1)).all():
        raise EvaluationError(f"y_true must contain only 0/1 (1 = positive), got values {np.unique(yt)[:5].tolist()}")
    if not np.isfinite(ys).all():
        raise EvaluationError("y_score contains NaN or infinite values")
    return yt.astype(np.int64), ys


def binary_metrics(y_true: Any, y_score: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Return accuracy, sensitivity, specificity, precision, f1, mcc, auc, balanced accuracy, counts.

    `y_true` is 1 for the positive class (fracture); `y_score` is its score/probability and is
    predicted positive when `>= threshold`. Undefined values (AUC, sensitivity or specificity
    with a class absent) are NaN and explained in the `note` string ("" when all is defined).
    """
    yt, ys = _check_binary(y_true, y_score)
    yp = (ys >= threshold).astype(np.int64)
    tn, fp, fn, tp = (int(v) for v in confusion_matrix(yt, yp, labels=[0, 1]).ravel())
    notes = []
    n_pos, n_neg = int(yt.sum()), int((1 - yt).sum())
    with warnings.catch_warnings():
        # sklearn warns on one-class input; the note below says it in one line instead.
        warnings.simplefilter("ignore")
        out: dict[str, Any] = {
            "accuracy": float(accuracy_score(yt, yp)),
            "sensitivity": float(recall_score(yt, yp, pos_label=1, labels=[0, 1], zero_division=np.nan)),
            "specificity": float(recall_score(yt, yp, pos_label=0, labels=[0, 1], zero_division=np.nan)),
            "precision": float(precision_score(yt, yp, pos_label=1, labels=[0, 1], zero_division=0)),
            "f1": float(f1_score(yt, yp, pos_label=1, labels=[0, 1], zero_division=0)),
            "mcc": float(matthews_corrcoef(yt, yp)),
            "balanced_accuracy": float(balanced_accuracy_score(yt, yp)) if n_pos and n_neg else float("nan"),
        }
    if n_pos and n_neg:
        out["auc"] = float(roc_auc_score(yt, ys))
    else:
        out["auc"] = float("nan")
        absent = "positive" if n_pos == 0 else "negative"
        notes.append(
            f"only one class present (no {absent} cases): auc, balanced_accuracy and "
            f"{'sensitivity' if n_pos == 0 else 'specificity'} are undefined (NaN)"
        )
    out.update(tp=tp, fp=fp, tn=tn, fn=fn, n=int(yt.shape[0]), threshold=float(threshold), note="; ".join(notes))
    return out


def roc_points(y_true: Any, y_score: Any, drop_intermediate: bool = True) -> pd.DataFrame:
    """Return the ROC curve as a DataFrame(fpr, tpr, threshold) (sklearn `roc_curve`)."""
    yt, ys = _check_binary(y_true, y_score)
    if yt.min() == yt.max():
        raise EvaluationError("roc_points needs both classes in y_true; got only one")
    fpr, tpr, thr = roc_curve(yt, ys, drop_intermediate=drop_intermediate)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


# --------------------------------------------------------------------------------------------
# Fold summaries and paired tests
# --------------------------------------------------------------------------------------------


def _check_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise EvaluationError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def summarize(folds: pd.DataFrame, metrics: Sequence[str] = METRICS, by: str = "condition") -> pd.DataFrame:
    """Return mean, SD (ddof=1, the paper's +-) and n of each metric per `by` group.

    Columns are a MultiIndex (metric, stat) with stat in ("mean", "sd", "n"); groups keep the
    order of first appearance. With repeated CV (several rows per fold) the SD is over all rows.
    """
    metrics = list(metrics)
    _check_columns(folds, [by, *metrics], "folds")
    g = folds.groupby(by, sort=False)[metrics]
    parts = {"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count()}
    out = pd.concat(parts, axis=1).swaplevel(0, 1, axis=1)
    out = out.reindex(columns=pd.MultiIndex.from_product([metrics, ["mean", "sd", "n"]], names=["metric", "stat"]))
    return out


def format_mean_sd(summary: pd.DataFrame, scale: float = 100, decimals: int = 2) -> pd.DataFrame:
    """Format a `summarize` table as strings "88.46 ± 0.80" (scale=100 gives percent)."""
    metrics = list(dict.fromkeys(summary.columns.get_level_values(0)))
    out = pd.DataFrame(index=summary.index, columns=metrics, dtype=object)
    for m in metrics:
        for idx in summary.index:
            mu, sd = summary.loc[idx, (m, "mean")], summary.loc[idx, (m, "sd")]
            mu_s = "n/a" if pd.isna(mu) else f"{mu * scale:.{decimals}f}"
            sd_s = "n/a" if pd.isna(sd) else f"{sd * scale:.{decimals}f}"
            out.loc[idx, m] = f"{mu_s} ± {sd_s}"
    return out


def _pair(
    folds: pd.DataFrame, a: str, b: str, metric: str, by: str, pair_on: str | Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    keys = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    keys += [k for k in PAIR_EXTRA_KEYS if k in folds.columns and k not in keys and k != by]
    _check_columns(folds, [by, metric, *keys], "folds")
    notes: list[str] = []
    sides = {}
    for cond in (a, b):
        sub = folds.loc[folds[by] == cond, [*keys, metric]]
        if sub.empty:
            present = list(dict.fromkeys(folds[by].tolist()))
            raise EvaluationError(f"{by}={cond!r} has no rows in folds; present: {present}")
        dup = sub.duplicated(keys)
        if dup.any():
            raise EvaluationError(f"{by}={cond!r} has duplicate rows for {keys}: {sub.loc[dup, keys].values.tolist()[:3]}")
        sides[cond] = sub.set_index(keys)[metric]
    ia, ib = sides[a].index, sides[b].index
    only_a, only_b = ia.difference(ib), ib.difference(ia)
    if len(only_a) or len(only_b):
        raise EvaluationError(
            f"unpaired {keys}: {by}={a!r} only has {only_a.tolist()}, {by}={b!r} only has {only_b.tolist()}"
        )
    ib_sorted = ia.sort_values()
    va = sides[a].reindex(ib_sorted).to_numpy(dtype=np.float64)
    vb = sides[b].reindex(ib_sorted).to_numpy(dtype=np.float64)
    ok = np.isfinite(va) & np.isfinite(vb)
    if not ok.all():
        notes.append(f"dropped {int((~ok).sum())} pair(s) with NaN {metric}")
        va, vb = va[ok], vb[ok]
    if va.shape[0] < 2:
        raise EvaluationError(f"paired test of {metric} needs at least 2 pairs of {keys}, got {va.shape[0]}")
    return va, vb, keys, notes


def _mean_axis(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _check_ratio(test_train_ratio: float) -> float:
    r = float(test_train_ratio)
    if not (np.isfinite(r) and r > 0):
        raise EvaluationError(f"test_train_ratio={test_train_ratio} must be a finite number > 0")
    return r


def fold_test_train_ratio(
    folds: pd.DataFrame, condition: str, by: str = "condition", fold: str = "fold"
) -> tuple[float, str]:
    """Return (n_test / n_train, note) for the folds of `condition`; note is "" when measured.

    With an `n_test` column: within each repeat (column `repeat`, when present) the pool is the
    sum of n_test over that repeat's folds and each fold trains on the rest; the ratio is
    mean(n_test) / mean(n_train). Otherwise plain k-fold's 1/(k-1), k = distinct `fold` values
    (NaN when k < 2), and the note says so.
    """
    sub = folds.loc[folds[by] == condition] if by in folds.columns else folds.iloc[:0]
    if "n_test" in sub.columns and len(sub) and sub["n_test"].notna().all():
        n_test = sub["n_test"].astype(np.float64)
        groups = sub["repeat"] if "repeat" in sub.columns else pd.Series(0, index=sub.index)
        n_train = n_test.groupby(groups).transform("sum") - n_test
        if (n_train > 0).all():
            return float(n_test.mean() / n_train.mean()), ""
    k = int(sub[fold].nunique()) if fold in sub.columns else 0
    if k < 2:
        return float("nan"), f"n_test/n_train unknown (no usable n_test column, {k} distinct {fold} value(s))"
    return 1.0 / (k - 1), f"n_test/n_train not recorded: assumed 1/(k-1) for k={k} folds"


def _power(delta: float, se_unit: float, df: int, alpha: float) -> float:
    # Two-sided t-test: reject when |T| > t_crit; T ~ noncentral t with nc = delta / se.
    crit = stats.t.ppf(1 - alpha / 2, df)
    nc = delta / se_unit
    return float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))


def min_detectable_difference(
    sd_diff: float,
    n_pairs: int,
    test_train_ratio: float,
    alpha: float = 0.05,
    power: float = 0.8,
    corrected: bool = True,
) -> float:
    """Return the smallest |mean difference| a two-sided paired t-test detects with `power`.

    The test statistic is mean(d) / sqrt((1/J + ratio) * sd_diff**2) with J = `n_pairs`, df = J - 1
    and ratio = `test_train_ratio` (Nadeau & Bengio's correction; 0 when `corrected` is False,
    the plain paired t-test). Power comes from the noncentral t (`scipy.stats.nct`), the root from
    `scipy.optimize.brentq`. NaN when sd_diff is 0 or NaN, J < 2 or the ratio is NaN.
    """
    if not 0 < alpha < 1:
        raise EvaluationError(f"alpha={alpha} must be in (0, 1)")
    if not alpha < power < 1:
        raise EvaluationError(f"power={power} must be in (alpha, 1) = ({alpha}, 1)")
    sd, j = float(sd_diff), int(n_pairs)
    ratio = float(test_train_ratio) if corrected else 0.0
    if ratio < 0:
        raise EvaluationError(f"test_train_ratio={test_train_ratio} must be >= 0")
    if j < 2 or not np.isfinite(sd) or sd <= 0 or not np.isfinite(ratio):
        return float("nan")
    se = float(np.sqrt((1.0 / j + ratio) * sd**2))
    df = j - 1
    hi = se
    while _power(hi, se, df, alpha) < power:  # power rises with delta: bracket the root
        hi *= 2.0
    return float(optimize.brentq(lambda x: _power(x, se, df, alpha) - power, 0.0, hi, xtol=1e-12 * se))


def paired_test(
    folds: pd.DataFrame,
    a: str,
    b: str,
    metric: str,
    by: str = "condition",
    pair_on: str | Sequence[str] = "fold",
    n_boot: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
    test_train_ratio: float | None = None,
) -> dict[str, Any]:
    """Compare condition `a` with `b` on per-fold `metric` values paired by `pair_on`.

    Difference = a - b. Returns the paired t-test (`scipy.stats.ttest_rel`, two-sided and
    one-sided for a > b: the paper's test), mean and SD of differences, Cohen's dz, a bootstrap
    CI of the mean difference (`scipy.stats.bootstrap`, BCa, percentile when BCa is degenerate)
    and the t-based CI (`t_ci_low/high`; with 5 folds the bootstrap CI is too narrow, prefer the t
    CI). Rows are also matched on `repeat` / `seed` columns when present.

    Cross-validation folds share training data, so the plain test is anti-conservative. The
    corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004) multiplies the
    variance of the mean by (1/J + n_test/n_train) instead of 1/J: keys `t_corrected`,
    `p_corrected` (two-sided), `p_corrected_greater`, `corrected_ci_low/high`,
    `significant_corrected`. `test_train_ratio` is n_test/n_train; None derives it with
    `fold_test_train_ratio` (from an `n_test` column, else 1/(k-1), said in `note`). `mdd_80` and
    `mdd_80_plain` are the minimum detectable differences at 80% power of the corrected and the
    plain test (`min_detectable_difference`).
    """
    if not 0 < alpha < 1:
        raise EvaluationError(f"alpha={alpha} must be in (0, 1)")
    va, vb, keys, notes = _pair(folds, a, b, metric, by, pair_on)
    if test_train_ratio is None:
        ratio, how = fold_test_train_ratio(folds, a, by=by, fold=keys[0])
        if how:
            notes.append(how)
    else:
        ratio = _check_ratio(test_train_ratio)
    d = va - vb
    n = int(d.shape[0])
    # Differences equal up to round-off (e.g. b + 0.02 - b) count as identical: snap them so
    # the t-test does not report p = 0 from a ~1e-17 spread.
    degenerate = float(np.ptp(d)) <= 1e-12 * max(1.0, float(np.abs(d).max()))
    if degenerate:
        d = np.full_like(d, d.mean())
    mean_d, sd_d = float(d.mean()), float(d.std(ddof=1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical differences: t is nan
        two = stats.ttest_rel(va, vb, alternative="two-sided")
        one = stats.ttest_rel(va, vb, alternative="greater")
        t_ci = two.confidence_interval(confidence_level=1 - alpha)
    t_stat, p_two, p_one = float(two.statistic), float(two.pvalue), float(one.pvalue)
    t_lo, t_hi = float(t_ci.low), float(t_ci.high)
    # Corrected resampled t-test: same mean, variance of the mean inflated for overlapping folds.
    se_c = np.sqrt((1.0 / n + ratio) * np.float64(sd_d) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):  # identical differences: handled below
        t_c = float(mean_d / se_c)
    tdist = stats.t(n - 1)
    p_c, p_c_one = float(2 * tdist.sf(abs(t_c))), float(tdist.sf(t_c))
    half = float(tdist.ppf(1 - alpha / 2) * se_c)
    c_lo, c_hi = mean_d - half, mean_d + half
    if degenerate:
        notes.append("all differences identical: t-test undefined (p = NaN), Cohen's dz undefined")
        t_stat = p_two = p_one = dz = t_lo = t_hi = float("nan")
        t_c = p_c = p_c_one = c_lo = c_hi = float("nan")
    else:
        dz = mean_d / sd_d
    ci_low = ci_high = float("nan")
    ci_method = "none"
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning: handled by the fallback
            res = stats.bootstrap(
                (d,), _mean_axis, n_resamples=int(n_boot), confidence_level=1 - alpha,
                method=method, vectorized=True, rng=np.random.default_rng(seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            ci_low, ci_high, ci_method = lo, hi, method
            break
    if ci_method == "percentile":
        notes.append("BCa interval degenerate; used percentile bootstrap")
    return {
        "metric": metric, "a": a, "b": b, "n": n, "pair_on": keys,
        "mean_a": float(va.mean()), "mean_b": float(vb.mean()),
        "mean_diff": mean_d, "sd_diff": sd_d, "cohens_dz": dz,
        "t": t_stat, "df": n - 1,
        "p_two_sided": p_two, "p_greater": p_one,
        "ci_low": ci_low, "ci_high": ci_high, "ci_method": ci_method, "confidence_level": 1 - alpha,
        "t_ci_low": t_lo, "t_ci_high": t_hi,
        "significant": bool(np.isfinite(p_two) and p_two < alpha),
        "test_train_ratio": ratio,
        "t_corrected": float(t_c), "p_corrected": p_c, "p_corrected_greater": p_c_one,
        "corrected_ci_low": float(c_lo), "corrected_ci_high": float(c_hi),
        "significant_corrected": bool(np.isfinite(p_c) and p_c < alpha),
        "mdd_80": min_detectable_difference(sd_d, n, ratio, alpha=alpha, power=0.8),
        "mdd_80_plain": min_detectable_difference(sd_d, n, ratio, alpha=alpha, power=0.8, corrected=False),
        "note": "; ".join(notes),
    }


def paired_tests(
    folds: pd.DataFrame, a: str, b: str, metrics: Sequence[str] = METRICS, **kwargs: Any
) -> pd.DataFrame:
    """Run `paired_test` for each metric; one row per metric.

    Adds `p_fdr_bh`: Benjamini-Hochberg adjusted two-sided p-values across the metrics
    (`scipy.stats.false_discovery_control`); the paper reports unadjusted tests.
    """
    rows = [paired_test(folds, a, b, m, **kwargs) for m in metrics]
    df = pd.DataFrame(rows).set_index("metric")
    p = df["p_two_sided"].to_numpy(dtype=np.float64)
    adj = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        adj[ok] = stats.false_discovery_control(p[ok], method="bh")
    df["p_fdr_bh"] = adj
    return df


def training_stability(history: pd.DataFrame, by: str = "condition") -> pd.DataFrame:
    """Epoch-to-epoch jumps of validation accuracy in the second half of each run, per `by` group.

    A protocol that settles changes little between late epochs; one that oscillates jumps by
    tens of points. Runs are told apart by `repeat` and `fold` when present.
    """
    _check_columns(history, [by, "epoch", "val_acc"], "history")
    runs = [k for k in ("repeat", "fold") if k in history.columns]
    rows = []
    for key, run in history.sort_values("epoch").groupby([by, *runs], sort=False):
        late = run[run["epoch"] > run["epoch"].max() / 2]["val_acc"].to_numpy(dtype=np.float64)
        jumps = np.abs(np.diff(late))
        rows.append({by: key[0], "median_jump": float(np.median(jumps)) if len(jumps) else np.nan,
                     "max_jump": float(jumps.max()) if len(jumps) else np.nan})
    df = pd.DataFrame(rows)
    return df.groupby(by, sort=False).agg(runs=("median_jump", "size"), median_jump=("median_jump", "median"),
                                          max_jump=("max_jump", "max"))


# --------------------------------------------------------------------------------------------
# GAN quality in a feature space
# --------------------------------------------------------------------------------------------


def _feats(x: Any, name: str, min_rows: int = 2) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise EvaluationError(f"{name} must be a 2-D (N, D) feature array, got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise EvaluationError(f"{name} needs at least {min_rows} rows, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise EvaluationError(f"{name} contains NaN or infinite values")
    return a


def feature_stats(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean, covariance) of (N, D) features (np.cov rowvar=False, ddof=1)."""
    f = _feats(feats, "feats")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance ||mu1-mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) between two Gaussians.

    Follows the reference FID code: `scipy.linalg.sqrtm` of the product; if it is not finite or
    has a non-negligible imaginary part, retry with eps*I added to both covariances.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise EvaluationError(f"feature dimensions differ: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    scale = max(1.0, float(np.trace(s1) + np.trace(s2)))

    def _sqrt_trace(a: np.ndarray, b: np.ndarray) -> float | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singular-matrix warnings: checked below
            cm = linalg.sqrtm(a @ b)
        if not np.isfinite(cm).all():
            return None
        if np.iscomplexobj(cm):
            # Tiny imaginary parts are round-off; large ones mean sqrtm failed.
            if np.abs(np.diagonal(cm).imag).max() > 1e-3 * scale:
                return None
            cm = cm.real
        return float(np.trace(cm))

    tr = _sqrt_trace(s1, s2)
    if tr is None:
        off = np.eye(s1.shape[0]) * eps
        tr = _sqrt_trace(s1 + off, s2 + off)
        if tr is None:
            raise EvaluationError("frechet_distance: matrix square root failed even with eps*I added")
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr)
    return max(fd, 0.0)  # round-off can make identical sets slightly negative


def frechet_distance(feats_a: Any, feats_b: Any, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets (FID without Inception).

    Biased upwards for small N; compare generators at equal N and against
    `real_vs_real_baseline`.
    """
    fa, fb = _feats(feats_a, "feats_a"), _feats(feats_b, "feats_b")
    if fa.shape[1] != fb.shape[1]:
        raise EvaluationError(f"feats_a has D={fa.shape[1]} but feats_b has D={fb.shape[1]}")
    return frechet_distance_from_stats(*feature_stats(fa), *feature_stats(fb), eps=eps)


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    # k+1 neighbours: the first is the point itself (distance 0).
    nn_ = NearestNeighbors(n_neighbors=k + 1).fit(x)
    dist, _ = nn_.kneighbors(x)
    return dist[:, k]


def _inside_manifold(queries: np.ndarray, support: np.ndarray, radii: np.ndarray, working_memory: int) -> np.ndarray:
    def reduce(chunk: np.ndarray, start: int) -> np.ndarray:
        return (chunk <= radii[None, :]).any(axis=1)

    parts = pairwise_distances_chunked(queries, support, reduce_func=reduce, working_memory=working_memory)
    return np.concatenate(list(parts))


def precision_recall(real: Any, fake: Any, k: int = 3, working_memory: int = 256) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of `fake` against `real` features.

    Each real sample's hypersphere has the radius of its k-th nearest real neighbour (itself
    excluded); precision = fraction of fakes inside any real hypersphere. Recall is the same with
    the roles swapped. Distances are computed in chunks of about `working_memory` MiB.
    """
    if int(k) < 1:
        raise EvaluationError(f"k={k} must be >= 1")
    k = int(k)
    r, f = _feats(real, "real", k + 1), _feats(fake, "fake", k + 1)
    if r.shape[1] != f.shape[1]:
        raise EvaluationError(f"real has D={r.shape[1]} but fake has D={f.shape[1]}")
    rr, rf = _knn_radii(r, k), _knn_radii(f, k)
    precision = float(_inside_manifold(f, r, rr, working_memory).mean())
    recall = float(_inside_manifold(r, f, rf, working_memory).mean())
    return {"precision": precision, "recall": recall, "k": int(k), "n_real": int(r.shape[0]), "n_fake": int(f.shape[0])}


def _label_names(labels: np.ndarray, class_names: Sequence[str] | None) -> list[str]:
    uniq = np.unique(labels)
    if class_names is None:
        return [str(u) for u in uniq]
    names = tuple(class_names)
    bad = [int(u) for u in uniq if not 0 <= int(u) < len(names)]
    if bad:
        raise EvaluationError(f"labels {bad} are out of range for class_names {names}")
    return [names[int(u)] for u in uniq]


def class_diversity(
    feats: Any,
    labels: Any,
    class_names: Sequence[str] | None = None,
    metric: str = "euclidean",
    max_per_class: int | None = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Return the mean pairwise distance within each class and overall ("all" row).

    A class whose synthetic samples are much less diverse than its real ones has collapsed.
    Classes larger than `max_per_class` are subsampled (seeded) to bound the O(N^2) cost.
    """
    f = _feats(feats, "feats", 1)
    lab = _as_1d(labels, "labels")
    if lab.shape[0] != f.shape[0]:
        raise EvaluationError(f"feats has {f.shape[0]} rows but labels has {lab.shape[0]}")
    rng = np.random.default_rng(seed)

    def mean_dist(x: np.ndarray) -> float:
        if max_per_class is not None and x.shape[0] > max_per_class:
            x = x[rng.choice(x.shape[0], size=max_per_class, replace=False)]
        return float(pdist(x, metric=metric).mean()) if x.shape[0] >= 2 else float("nan")

    rows = []
    for u, name in zip(np.unique(lab), _label_names(lab, class_names), strict=True):
        sel = f[lab == u]
        rows.append({"class": name, "n": int(sel.shape[0]), "mean_pairwise_distance": mean_dist(sel)})
    rows.append({"class": "all", "n": int(f.shape[0]), "mean_pairwise_distance": mean_dist(f)})
    return pd.DataFrame(rows).set_index("class")


def compare_diversity(
    real_feats: Any, real_labels: Any, fake_feats: Any, fake_labels: Any,
    class_names: Sequence[str] | None = None, **kwargs: Any,
) -> pd.DataFrame:
    """Return per-class diversity of real vs synthetic features and their ratio (fake / real)."""
    r = class_diversity(real_feats, real_labels, class_names, **kwargs)
    f = class_diversity(fake_feats, fake_labels, class_names, **kwargs)
    out = pd.DataFrame({
        "n_real": r["n"], "n_fake": f["n"],
        "real": r["mean_pairwise_distance"], "fake": f["mean_pairwise_distance"],
    })
    out["ratio"] = out["fake"] / out["real"]
    return out


def real_vs_real_baseline(
    feats: Any,
    labels: Any = None,
    seed: int = 0,
    fn: Callable[[np.ndarray, np.ndarray], Any] = frechet_distance,
) -> Any:
    """Split real features into two (label-stratified) halves and return `fn(half_a, half_b)`.

    This is the floor a generator's score should be compared to; note each half has N/2 samples.
    """
    f = _feats(feats, "feats", 4)
    strat = None if labels is None else _as_1d(labels, "labels")
    if strat is not None and strat.shape[0] != f.shape[0]:
        raise EvaluationError(f"feats has {f.shape[0]} rows but labels has {strat.shape[0]}")
    try:
        a, b = train_test_split(f, test_size=0.5, random_state=seed, stratify=strat)
    except ValueError as e:
        raise EvaluationError(f"cannot split feats into stratified halves: {e}") from None
    return fn(a, b)


def gan_test_accuracy(
    probs: Any, intended_labels: Any, class_names: Sequence[str] | None = None
) -> tuple[float, pd.Series]:
    """GAN-test (Shmelkov et al. 2018): how often a real-trained classifier gives the intended class.

    Returns (overall accuracy, per-class accuracy Series; NaN for classes with no samples).
    High GAN-test alone can hide collapse: report diversity/recall beside it.
    """
    p = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    lab = _as_1d(intended_labels, "intended_labels").astype(np.int64)
    if p.ndim != 2 or p.shape[0] != lab.shape[0]:
        raise EvaluationError(f"probs must have shape ({lab.shape[0]}, C), got {p.shape}")
    c = p.shape[1]
    if lab.size and (lab.min() < 0 or lab.max() >= c):
        raise EvaluationError(f"intended_labels must be in [0, {c}), got range [{lab.min()}, {lab.max()}]")
    names = list(class_names) if class_names is not None else list(range(c))
    if len(names) != c:
        raise EvaluationError(f"class_names has {len(names)} names but probs has {c} columns")
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per = recall_score(lab, pred, labels=list(range(c)), average=None, zero_division=np.nan)
    return float(accuracy_score(lab, pred)), pd.Series(per, index=pd.Index(names, name="class"), name="gan_test")


def gan_train_test_table(real_acc: float, results: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Tabulate GAN-train / GAN-test accuracies per generator against the real-on-real accuracy.

    `results` maps a generator name to (gan_train, gan_test); `*_ratio` columns divide by
    `real_acc` (GAN-train close to 1 means the samples are diverse and realistic enough to
    train on; GAN-test alone rewards collapsed, class-typical samples).
    """
    rows = [{"generator": k, "gan_train": float(t), "gan_test": float(s)} for k, (t, s) in results.items()]
    df = pd.DataFrame(rows, columns=["generator", "gan_train", "gan_test"]).set_index("generator")
    df["gan_train_ratio"] = df["gan_train"] / real_acc
    df["gan_test_ratio"] = df["gan_test"] / real_acc
    df.attrs["real_acc"] = float(real_acc)
    return df


# --------------------------------------------------------------------------------------------
# Grad-CAM
# --------------------------------------------------------------------------------------------


def last_conv(model: nn.Module) -> nn.Conv2d:
    """Return the last `nn.Conv2d` in module registration order."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise EvaluationError(f"{type(model).__name__} has no nn.Conv2d layer; pass layer= explicitly")
    return convs[-1]


def _select_logits(out: Any, select: Callable[[Any], torch.Tensor] | None) -> torch.Tensor:
    if select is not None:
        out = select(out)
    if not isinstance(out, torch.Tensor):
        raise EvaluationError(
            f"model returned {type(out).__name__}, not a logits tensor; pass select=lambda out: out[1] (or similar)"
        )
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise EvaluationError(f"model logits must be (N,) or (N, C), got shape {tuple(out.shape)}")
    return out


def grad_cam(
    model: nn.Module,
    images: Any,
    target: int | Sequence[int] | torch.Tensor | np.ndarray | None = None,
    layer: nn.Module | str | None = None,
    batch_size: int = 32,
    select: Callable[[Any], torch.Tensor] | None = None,
) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for `images` (N, C, H, W) and the target class logits.

    `target`: None = predicted class, an int for every image, or one index per image. `layer`:
    module or its dotted name; default the last nn.Conv2d. Channel weights are the spatially
    averaged gradients of the target logit; the map is ReLU(sum_k w_k A_k), bilinearly upsampled
    to the input size and divided by its per-image max (all-zero when no positive evidence).
    The model is in eval mode during the call and its modes are restored; gradients are taken
    with `torch.autograd.grad`, so parameters' `.grad` are left untouched; hooks are always removed.
    `select` picks the logits from a model that returns a tuple.
    """
    x_all = torch.as_tensor(images.detach() if isinstance(images, torch.Tensor) else np.asarray(images))
    if x_all.ndim == 3:
        x_all = x_all[:, None]
    if x_all.ndim != 4:
        raise EvaluationError(f"images must be (N, C, H, W), got shape {tuple(x_all.shape)}")
    n, _, h, w = x_all.shape
    bs = max(1, int(batch_size))
    if isinstance(layer, str):
        try:
            layer = model.get_submodule(layer)
        except AttributeError:
            raise EvaluationError(f"layer={layer!r} is not a submodule of {type(model).__name__}") from None
    layer = last_conv(model) if layer is None else layer
    if target is None:
        tgt = None
    elif isinstance(target, (int, np.integer)):
        tgt = torch.full((n,), int(target), dtype=torch.int64)
    else:
        tgt = torch.as_tensor(np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)).long().reshape(-1)
        if tgt.shape[0] != n:
            raise EvaluationError(f"target has {tgt.shape[0]} entries for {n} images")
    try:
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32

    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        captured.append(out)
        # Downstream in-place ops (ReLU(inplace=True)) then act on a copy, keeping `out` intact.
        return out.clone()

    modes = {m: m.training for m in model.modules()}
    handle = layer.register_forward_hook(hook)
    cams = []
    try:
        model.eval()
        with torch.enable_grad():
            for s in range(0, n, bs):
                captured.clear()
                x = x_all[s : s + bs].to(device=device, dtype=dtype).requires_grad_(True)
                logits = _select_logits(model(x), select)
                if not captured:
                    raise EvaluationError(f"layer {type(layer).__name__} was not called in the forward pass")
                act = captured[-1]
                t = logits.argmax(dim=1) if tgt is None else tgt[s : s + bs].to(logits.device)
                if t.min() < 0 or t.max() >= logits.shape[1]:
                    raise EvaluationError(f"target indices must be in [0, {logits.shape[1]}), got {t.tolist()}")
                score = logits.gather(1, t[:, None]).sum()
                (grad,) = torch.autograd.grad(score, act)
                weights = grad.mean(dim=(2, 3), keepdim=True)
                cam = torch.relu((weights * act).sum(dim=1, keepdim=True)).detach()
                cam = torch.nn.functional.interpolate(cam.float(), size=(h, w), mode="bilinear", align_corners=False)
                cam = cam[:, 0].clamp_min(0)
                mx = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
                cam = torch.where(mx > 0, cam / mx.clamp_min(1e-12), torch.zeros_like(cam))
                cams.append(cam.cpu().numpy().astype(np.float32))
    finally:
        handle.remove()
        captured.clear()
        for m, mode in modes.items():
            m.training = mode
    return np.concatenate(cams, axis=0) if cams else np.zeros((0, h, w), dtype=np.float32)


def cam_overlay(image: Any, cam: Any, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a grey image (H, W) in [0, 1] with a CAM (H, W) in [0, 1]; return RGB (H, W, 3) in [0, 1]."""
    import matplotlib  # lazy: only figures need it

    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    img = np.squeeze(img).astype(np.float64)
    c = np.squeeze(np.asarray(cam, dtype=np.float64))
    if img.ndim != 2 or c.shape != img.shape:
        raise EvaluationError(f"image {img.shape} and cam {c.shape} must be the same (H, W)")
    heat = matplotlib.colormaps[cmap](np.clip(c, 0, 1))[..., :3]
    grey = np.repeat(np.clip(img, 0, 1)[..., None], 3, axis=2)
    return np.clip((1 - alpha) * grey + alpha * heat, 0, 1)


def cam_localization(cams: Any, masks: Any) -> pd.DataFrame:
    """Per image: fraction of CAM mass inside a boolean mask and whether the CAM peak is inside.

    The pointing-game view of "Grad-CAM localised the fracture" (Cheng et al. 2019).
    """
    c = np.asarray(cams, dtype=np.float64)
    m = np.asarray(masks).astype(bool)
    if c.ndim == 2:
        c = c[None]
    if m.ndim == 2:
        m = m[None]
    if c.shape != m.shape or c.ndim != 3:
        raise EvaluationError(f"cams {c.shape} and masks {m.shape} must both be (N, H, W)")
    total = c.reshape(len(c), -1).sum(axis=1)
    inside = (c * m).reshape(len(c), -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = np.where(total > 0, inside / total, np.nan)
    peak = m.reshape(len(m), -1)[np.arange(len(c)), c.reshape(len(c), -1).argmax(axis=1)]
    return pd.DataFrame({"mass_in_mask": mass, "peak_in_mask": peak})
