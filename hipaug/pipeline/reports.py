"""The reports of the experiment, as functions of its results: Table VIII's summary and tests, the ablations, the filter.

`hipaug.pipeline.results` calls them on what its steps read; they take data frames and settings
and return data frames, so a report can be checked on any results, and never reads a store.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hipaug.evaluation import METRICS, paired_tests, summarize
from hipaug.evaluation.gates import GATES

# The paired comparisons Table VIII's report tests (a, b: is a better than b?), in the order shown.
TABLE8_PAIRS = (("with_gan", "without_gan"), ("with_gan", "classic"), ("classic", "without_gan"),
                ("without_gan", "scratch"), ("with_gan", "unfiltered_gan"))
CLASSIC_PAIRS = (("classic", "without_gan"), ("with_gan", "classic"))


def paired_table(folds: pd.DataFrame, pairs, quality, seed: int) -> pd.DataFrame:
    """Every metric's paired test for each (a, b) of `pairs` present in `folds` (`hipaug.evaluation.paired_tests`)."""
    have = set(folds["condition"])
    tests = [paired_tests(folds, a, b, METRICS, n_boot=quality.n_boot, seed=seed, alpha=quality.alpha).reset_index()
             for a, b in pairs if {a, b} <= have]
    return pd.concat(tests, ignore_index=True) if tests else pd.DataFrame()


def flat_summary(folds: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and n of every metric per condition, one column each (`accuracy_mean`, ...), as the store keeps it."""
    flat = summarize(folds, METRICS).copy()
    flat.columns = [f"{m}_{s}" for m, s in flat.columns]
    return flat.reset_index()


def table_of_summary(flat: pd.DataFrame) -> pd.DataFrame:
    """The store's flat summary back as `summarize`'s (metric, stat) columns."""
    out = flat.set_index("condition")
    out.columns = pd.MultiIndex.from_tuples([tuple(c.rsplit("_", 1)) for c in out.columns], names=["metric", "stat"])
    return out


def ablation_table(parts: list[pd.DataFrame], n_selected: dict[str, int]) -> pd.DataFrame:
    """with_gan's folds under every ablation rule, with the rule and its number of synthetic images in columns."""
    df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if df.empty:
        return df
    df["rule"] = [f"top-{int(k)}" if pd.notna(k) else f"p>={t:g}"
                  for t, k in zip(df.get("threshold", [None] * len(df)), df.get("top_k", [None] * len(df)))]
    df["n_synthetic"] = df["rule"].map(n_selected)
    return df


def filter_accuracy(val_probs: np.ndarray, val_labels: np.ndarray, scores: np.ndarray, syn_labels: np.ndarray) -> dict:
    """The filter's accuracy on held-out real limb images and on the AC-GAN's samples (GAN-test)."""
    real = float((val_probs.argmax(1) == val_labels).mean())
    gan_test = float((scores.argmax(1) == syn_labels).mean())
    return {"real_val_accuracy": real, "gan_test_accuracy": gan_test,
            "gan_test_ratio": gan_test / real if real > 0 else float("nan")}


def operating_point_table(op, acc: dict | None, folds: pd.DataFrame | None) -> pd.DataFrame:
    """The run against the profile's calibration targets; the filter is held to the verdicts' gate."""
    rows = []
    if acc is not None:
        rows.append(("filter accuracy on held-out real limb images", ">=", GATES.min_filter_accuracy, None,
                     acc["real_val_accuracy"]))
        if op.min_gan_test_ratio is not None:
            rows.append(("GAN-test accuracy / filter accuracy on real images", ">=", op.min_gan_test_ratio, None,
                         acc["gan_test_ratio"]))
    if folds is not None:
        mean = float(folds.loc[folds["condition"] == "without_gan", "accuracy"].mean())
        rows.append(("without_gan mean fold accuracy", "in", *op.without_gan_accuracy, mean))
    df = pd.DataFrame(rows, columns=["target", "rule", "low", "high", "measured"])
    df["met"] = [bool(lo <= m <= hi) if rule == "in" else bool(m >= lo)
                 for rule, lo, hi, m in zip(df["rule"], df["low"], df["high"], df["measured"])]
    return df
