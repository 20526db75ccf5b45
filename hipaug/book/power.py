"""Chapter 5's power section: the smallest difference the design detects against its size, and what
detecting the paper's difference would take.

Everything comes from the run: the SD of the paired differences its tests measured
(`hipaug.evaluation.paired_test`), the correction its design needs (none for independent
replications, Nadeau & Bengio's for CV folds), the seconds its own fine-tuning runs took (each
artifact records them) and the FLOPs of the dry run's cost model (`hipaug.pipeline.cost`).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from hipaug.core.numbers import points
from hipaug.evaluation.stats import min_detectable_difference, pairs_needed

SIZES = (2, 3, 5, 10, 20, 50, 100, 200, 500, 1000)  # numbers of pairs the curve is drawn at


def comparison_row(tests: pd.DataFrame, a: str = "with_gan", b: str = "without_gan", metric: str = "accuracy"):
    """The paired test of `a` − `b` in `metric` (a row of `paired_tests`), or None."""
    if tests is None or tests.empty:
        return None
    rows = tests[(tests["a"] == a) & (tests["b"] == b) & (tests["metric"] == metric)]
    return rows.iloc[0] if len(rows) else None


def power_curve(row, alpha: float, sizes=SIZES) -> pd.DataFrame:
    """MDD at 80 % power (points) against the number of pairs, for the run's SD and correction."""
    n = sorted({*sizes, int(row["n"])})
    mdd = [min_detectable_difference(row["sd_diff"], k, row["test_train_ratio"], alpha=alpha) * 100 for k in n]
    return pd.DataFrame({"pairs": n, "MDD at 80% power (points)": mdd, "this run": [k == int(row["n"]) for k in n]})


def needs(row, paper_points: float, alpha: float) -> int | None:
    """Pairs (replications, or folds under CV's correction) to detect the paper's difference; None: none suffice."""
    return pairs_needed(abs(paper_points) / 100, float(row["sd_diff"]), float(row["test_train_ratio"]), alpha=alpha)


def compute_table(n_needed: int | None, per_pair_seconds: float, per_pair_flops: float,
                  paper_pair_flops: float, tflops: float, workers=(1, 4, 8), concurrent: int = 1) -> pd.DataFrame:
    """What `n_needed` pairs cost: this profile on this machine (measured seconds), the paper profile on GPUs.

    A pair is one fine-tuning run of every condition (a replication, or a fold); pairs are
    independent, so W workers take ceil(n / W) of them each. `concurrent`: how many runs this
    machine's build ran at once (each run's seconds are its own).
    """
    if n_needed is None:
        return pd.DataFrame()
    at_once = f", {concurrent} at a time" if concurrent > 1 else ""
    rows = [{"where": f"this profile, this machine (its own fine-tuning seconds{at_once})", "pairs": n_needed,
             "PFLOP": n_needed * per_pair_flops / 1e15, "hours": n_needed * per_pair_seconds / concurrent / 3600}]
    for w in workers:
        rows.append({"where": f"paper profile, {w} GPU{'s' if w > 1 else ''} at {tflops:g} TFLOP/s", "pairs": n_needed,
                     "PFLOP": n_needed * paper_pair_flops / 1e15,
                     "hours": math.ceil(n_needed / w) * paper_pair_flops / (tflops * 1e12) / 3600})
    return pd.DataFrame(rows).set_index("where")


def pair_unit(design: str) -> str:
    """What one paired value is under a design: an independent replication, or a fold of CV."""
    return "independent replications" if design == "replications" else "fold pairs"


def seen_sentence(row, paper_points: float, design: str) -> str:
    """One sentence: the smallest with_gan − without_gan accuracy difference this build could detect, beside the paper's."""
    if row is None or not np.isfinite(row["mdd_80"]):
        return "This build has no with_gan − without_gan comparison with a defined minimum detectable difference."
    mdd, n = float(row["mdd_80"]) * 100, int(row["n"])
    unit = pair_unit(design)
    saw = ("could have detected a with_gan − without_gan accuracy difference as small as the paper's "
           f"{points(paper_points, signed=True)} points" if mdd <= abs(paper_points) else
           f"could detect a with_gan − without_gan accuracy difference of {points(mdd)} points or more, not one of "
           f"the paper's {points(paper_points, signed=True)}")
    return f"With {n} {unit}, this build {saw} (80% power, two-sided α = {1 - float(row.get('confidence_level', 0.95)):g})."


def describe(row, paper_points: float, n_needed: int | None, design: str) -> str:
    """What this build could and could not have seen, and what the paper's difference would take."""
    text = seen_sentence(row, paper_points, design)
    if row is None or not np.isfinite(row["mdd_80"]):
        return text
    unit = pair_unit(design)
    if n_needed is None:
        return text + (" No number of folds of this cross-validation could detect the paper's difference: its "
                       "correction for shared training images keeps the detectable difference above it however many "
                       "folds are run.")
    return text + (f" Detecting the paper's difference at the SD of differences measured here "
                   f"({points(float(row['sd_diff']) * 100)} points) would take {n_needed} {unit}.")


def seen_text(store: dict) -> str:
    """The front page's sentence on what this build could see (from the results store; '' without the comparison)."""
    from hipaug.paper import paper_difference

    row = comparison_row(store.get("paired_tests"))
    if row is None:
        return ""
    design = store.get("run", {}).get("design", "cv")
    return "**What this build could see:** " + seen_sentence(row, paper_difference("accuracy", "with_gan", "without_gan"),
                                                              design)
