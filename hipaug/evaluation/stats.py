"""Paired statistics over cross-validation folds: the paper's with- vs without-GAN t-test.

Table VIII of Lin & Chung (TAAI 2019) compares conditions with a paired t-test over folds
(SciPy `ttest_rel`, `bootstrap`). Because the folds' training sets overlap, the plain test is
anti-conservative (Dietterich 1998); `paired_test` also gives the corrected resampled t-test
(Nadeau & Bengio 2003; Bouckaert & Frank 2004 for repeated k-fold) and the minimum detectable
difference at 80% power.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from hipaug.evaluation.metrics import METRICS, EvaluationError, check_columns

PAIR_EXTRA_KEYS = ("repeat", "seed")  # also matched on when present (repeated cross-validation)


def _pair(
    folds: pd.DataFrame, a: str, b: str, metric: str, by: str, pair_on: str | Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    keys = [pair_on] if isinstance(pair_on, str) else list(pair_on)
    keys += [k for k in PAIR_EXTRA_KEYS if k in folds.columns and k not in keys and k != by]
    check_columns(folds, [by, metric, *keys], "folds")
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

    Rows marked `independent` (replications that share no training image) give 0: the corrected
    test is then the plain paired t-test. With an `n_test` column: within each repeat (column `repeat`, when present) the pool is the
    sum of n_test over that repeat's folds and each fold trains on the rest; the ratio is
    mean(n_test) / mean(n_train). Otherwise plain k-fold's 1/(k-1), k = distinct `fold` values
    (NaN when k < 2), and the note says so.
    """
    sub = folds.loc[folds[by] == condition] if by in folds.columns else folds.iloc[:0]
    if "independent" in sub.columns and len(sub) and sub["independent"].astype(bool).all():
        return 0.0, ""  # independent replications (own training sets): no shared training data to correct for
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
    p = float(stats.nct.sf(crit, df, nc) + stats.nct.cdf(-crit, df, nc))
    if not np.isfinite(p):  # scipy's noncentral t gives NaN far in its tails (large df): the normal limit
        p = float(stats.norm.sf(crit - nc) + stats.norm.cdf(-crit - nc))
    return p


def min_detectable_difference(
    sd_diff: float,
    n_pairs: int,
    test_train_ratio: float,
    alpha: float = 0.05,
    power: float = 0.8,
    corrected: bool = True,
) -> float:
    """Return the smallest ``|mean difference|`` a two-sided paired t-test detects with `power`.

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


def pairs_needed(target: float, sd_diff: float, test_train_ratio: float = 0.0, alpha: float = 0.05,
                 power: float = 0.8, most: int = 100_000) -> int | None:
    """The fewest independent pairs whose paired t-test detects `target` with `power` (None: more than `most`).

    With a correction ratio > 0 (CV folds) more folds never bring the MDD below
    sqrt(ratio) * sd * z: the answer can be None however many there are.
    """
    if not (np.isfinite(target) and target > 0 and np.isfinite(sd_diff) and sd_diff > 0):
        return None
    mdd = lambda n: min_detectable_difference(sd_diff, n, test_train_ratio, alpha, power)  # noqa: E731
    if mdd(most) > target:
        return None
    lo, hi = 2, 2
    while mdd(hi) > target:  # MDD falls with n: double, then bisect
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if mdd(mid) > target else (lo, mid)
    return lo


def _plain_t(va: np.ndarray, vb: np.ndarray, alpha: float) -> dict[str, float]:
    """Return the paired t-test of a - b: t, two-sided and one-sided (a > b) p, and the t-based CI."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # identical differences: t is nan
        two = stats.ttest_rel(va, vb, alternative="two-sided")
        one = stats.ttest_rel(va, vb, alternative="greater")
        t_ci = two.confidence_interval(confidence_level=1 - alpha)
    return {"t": float(two.statistic), "p_two_sided": float(two.pvalue), "p_greater": float(one.pvalue),
            "t_ci_low": float(t_ci.low), "t_ci_high": float(t_ci.high)}


def _corrected_t(mean_d: float, sd_d: float, n: int, ratio: float, alpha: float) -> dict[str, float]:
    """Return the corrected resampled t-test (Nadeau & Bengio 2003): t, p and CI of the mean difference."""
    # Same mean; the variance of the mean is inflated by n_test/n_train for overlapping folds.
    se_c = np.sqrt((1.0 / n + ratio) * np.float64(sd_d) ** 2)
    with np.errstate(divide="ignore", invalid="ignore"):  # identical differences: the caller sets NaN
        t_c = float(mean_d / se_c)
    tdist = stats.t(n - 1)
    half = float(tdist.ppf(1 - alpha / 2) * se_c)
    return {"t_corrected": t_c, "p_corrected": float(2 * tdist.sf(abs(t_c))), "p_corrected_greater": float(tdist.sf(t_c)),
            "corrected_ci_low": float(mean_d - half), "corrected_ci_high": float(mean_d + half)}


def _bootstrap_ci(d: np.ndarray, n_boot: int, alpha: float, seed: int) -> tuple[float, float, str]:
    """Return (low, high, method) of a bootstrap CI of mean(d): BCa, percentile when BCa is degenerate."""
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DegenerateDataWarning: handled by the fallback
            res = stats.bootstrap(
                (d,), _mean_axis, n_resamples=int(n_boot), confidence_level=1 - alpha,
                method=method, vectorized=True, rng=np.random.default_rng(seed),
            )
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(lo) and np.isfinite(hi):
            return lo, hi, method
    return float("nan"), float("nan"), "none"


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
    plain, corrected = _plain_t(va, vb, alpha), _corrected_t(mean_d, sd_d, n, ratio, alpha)
    if degenerate:
        notes.append("all differences identical: t-test undefined (p = NaN), Cohen's dz undefined")
        plain, corrected, dz = dict.fromkeys(plain, float("nan")), dict.fromkeys(corrected, float("nan")), float("nan")
    else:
        dz = mean_d / sd_d
    ci_low, ci_high, ci_method = _bootstrap_ci(d, n_boot, alpha, seed)
    if ci_method == "percentile":
        notes.append("BCa interval degenerate; used percentile bootstrap")
    p_two, p_c = plain["p_two_sided"], corrected["p_corrected"]
    return {
        "metric": metric, "a": a, "b": b, "n": n, "pair_on": keys,
        "mean_a": float(va.mean()), "mean_b": float(vb.mean()),
        "mean_diff": mean_d, "sd_diff": sd_d, "cohens_dz": dz,
        "t": plain["t"], "df": n - 1,
        "p_two_sided": p_two, "p_greater": plain["p_greater"],
        "ci_low": ci_low, "ci_high": ci_high, "ci_method": ci_method, "confidence_level": 1 - alpha,
        "t_ci_low": plain["t_ci_low"], "t_ci_high": plain["t_ci_high"],
        "significant": bool(np.isfinite(p_two) and p_two < alpha),
        "test_train_ratio": ratio,
        **corrected,
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


def curve_column(history: pd.DataFrame) -> str:
    """The accuracy column a history shows per epoch: `val_acc` when there was a validation split, else `train_acc`."""
    return "val_acc" if "val_acc" in history.columns and history["val_acc"].notna().any() else "train_acc"


def training_stability(history: pd.DataFrame, by: str = "condition") -> pd.DataFrame:
    """Epoch-to-epoch jumps of accuracy in the second half of each run, per `by` group (`curve_column`).

    A protocol that settles changes little between late epochs; one that oscillates jumps by
    tens of points. Runs are told apart by `repeat` and `fold` when present. Without a validation
    split it is the training accuracy (on the augmented batches of the epoch).
    """
    col = curve_column(history)
    check_columns(history, [by, "epoch", col], "history")
    runs = [k for k in ("repeat", "fold") if k in history.columns]
    rows = []
    for key, run in history.sort_values("epoch").groupby([by, *runs], sort=False):
        late = run[run["epoch"] > run["epoch"].max() / 2][col].to_numpy(dtype=np.float64)
        jumps = np.abs(np.diff(late))
        rows.append({by: key[0], "median_jump": float(np.median(jumps)) if len(jumps) else np.nan,
                     "max_jump": float(jumps.max()) if len(jumps) else np.nan})
    df = pd.DataFrame(rows)
    return df.groupby(by, sort=False).agg(runs=("median_jump", "size"), median_jump=("median_jump", "median"),
                                          max_jump=("max_jump", "max"))
