"""Preconditions of a verdict: a run whose models did not learn, or whose realism filter failed, decides nothing.

A test needs `learned` for both conditions it compares (mean fold AUC at least `min_auc`, no
fold with sensitivity or specificity below `min_class_rate`: Table VIII's models must have
learned) and `filter_valid` when it involves a GAN condition or a GAN quality proportion (the
VGG-16 realism filter's held-out real accuracy at least `min_filter_accuracy`, and at least
`min_accepted_fraction` x n_real_train synthetic images accepted). The thresholds are the
ledger's (`Preconditions`); a test whose preconditions fail is `not_testable`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hipaug.book.claims.ledger import RESULT_KEYS, Check, Preconditions
from hipaug.method.conditions import GAN_CONDITIONS

NAN = float("nan")


@dataclass(frozen=True)
class PreconditionResult:
    """One precondition checked on a run's results."""

    name: str  # learned | filter_valid
    subject: str  # what was checked: a condition, or "realism filter"
    quantity: str  # what was measured: mean AUC, lowest class rate, held-out real accuracy, accepted fraction
    passed: bool  # False: every test that needs it is not testable
    value: float  # measured value (NaN when it could not be measured)
    threshold: float  # the threshold it is held to (the claim's or the ledger's)
    message: str  # one line naming the measured value and the threshold
    tests: tuple[str, ...] = ()  # ids of the claim's tests that need it


def fmt_against(value: float, threshold: float) -> tuple[str, str]:
    """`value` and `threshold` as text, with enough decimals that they differ if the numbers do."""
    # Enough decimals that a value on the other side of the threshold never prints equal to it.
    for d in (2, 3, 4):
        v, t = f"{value:.{d}f}", f"{threshold:.{d}f}"
        if v != t:
            break
    return v, t


def check_learned(condition: str, folds: pd.DataFrame | None, pre: Preconditions) -> list[PreconditionResult]:
    """Check `learned` for one condition: mean fold AUC >= min_auc and no near-constant fold."""

    def fail(quantity: str, threshold: float, message: str) -> PreconditionResult:
        return PreconditionResult("learned", condition, quantity, False, NAN, threshold, message)

    if folds is None:
        return [fail("mean AUC", pre.min_auc, "table8_folds not in the results store")]
    if "condition" not in folds.columns or not (folds["condition"] == condition).any():
        return [fail("mean AUC", pre.min_auc, f"no results for condition {condition!r} in table8_folds")]
    sub = folds.loc[folds["condition"] == condition].reset_index(drop=True)
    out = []
    if "auc" not in sub.columns:
        out.append(fail("mean AUC", pre.min_auc, "table8_folds has no auc column"))
    elif sub["auc"].isna().any():
        out.append(fail("mean AUC", pre.min_auc,
                        f"condition {condition!r} has NaN AUC in {int(sub['auc'].isna().sum())} of {len(sub)} folds"))
    else:
        m = float(sub["auc"].mean())
        v, t = fmt_against(m, pre.min_auc)
        ok = m >= pre.min_auc
        msg = f"condition {condition!r} learned: mean AUC {v} >= {t}" if ok else \
            f"condition {condition!r} did not learn: mean AUC {v} < {t}"
        out.append(PreconditionResult("learned", condition, "mean AUC", ok, m, pre.min_auc, msg))
    cols = ["sensitivity", "specificity"]
    missing = [c for c in cols if c not in sub.columns]
    rates = sub[cols].to_numpy(dtype=np.float64) if not missing else np.empty((0, 2))
    if missing:
        out.append(fail("lowest class rate", pre.min_class_rate, f"table8_folds has no {missing[0]} column"))
    elif not np.isfinite(rates).any():
        out.append(fail("lowest class rate", pre.min_class_rate,
                        f"sensitivity and specificity of {condition!r} are NaN in every fold"))
    else:
        i, j = np.unravel_index(np.nanargmin(rates), rates.shape)
        low, col = float(rates[i, j]), cols[j]
        # Independent replications (one model each) are named by replication, CV folds by fold and repeat.
        replications = "independent" in sub.columns and bool(sub["independent"].fillna(False).astype(bool).all())
        unit = "replication" if replications else "fold"
        if replications and "repeat" in sub.columns:
            where = f"replication {sub.loc[i, 'repeat']}"
        else:
            where = f"fold {sub.loc[i, 'fold']}" if "fold" in sub.columns else f"row {i}"
            if "repeat" in sub.columns and sub["repeat"].nunique() > 1:
                where += f" of repeat {sub.loc[i, 'repeat']}"
        v, t = fmt_against(low, pre.min_class_rate)
        ok = low >= pre.min_class_rate
        msg = f"no {unit} of {condition!r} is a near-constant predictor: lowest class rate {v} ({col}, {where}) >= {t}" \
            if ok else f"{where} of {condition!r} is a near-constant predictor: {col} {v} < {t}"
        out.append(PreconditionResult("learned", condition, "lowest class rate", ok, low, pre.min_class_rate, msg))
    return out


def not_learned(conditions, folds: pd.DataFrame | None, pre: Preconditions) -> str | None:
    """Why `conditions` cannot be compared: the `learned` failures of any of them joined, or None when all learned."""
    failed = [r.message for c in conditions for r in check_learned(c, folds, pre) if not r.passed]
    return "; ".join(failed) if failed else None


def check_filter(q: dict | None, pre: Preconditions) -> list[PreconditionResult]:
    """Check `filter_valid`: the realism filter is accurate on real images and accepted enough images."""
    subject = "realism filter"

    def fail(quantity: str, threshold: float, message: str) -> PreconditionResult:
        return PreconditionResult("filter_valid", subject, quantity, False, NAN, threshold, message)

    if q is None:
        return [fail("held-out real accuracy", pre.min_filter_accuracy, "gan_quality not in the results store")]
    out = []
    acc = q.get("real_val_accuracy")
    if acc is None or not np.isfinite(float(acc)):
        out.append(fail("held-out real accuracy", pre.min_filter_accuracy, "real_val_accuracy not recorded in gan_quality"))
    else:
        acc = float(acc)
        v, t = fmt_against(acc, pre.min_filter_accuracy)
        ok = acc >= pre.min_filter_accuracy
        msg = f"realism filter accuracy on held-out real limb images {v} >= {t}" if ok else \
            f"realism filter is unreliable: accuracy on held-out real limb images {v} < {t}"
        out.append(PreconditionResult("filter_valid", subject, "held-out real accuracy", ok, acc,
                                      pre.min_filter_accuracy, msg))
    n_acc, n_real = q.get("n_accepted"), q.get("n_real_train")
    thr = pre.min_accepted_fraction
    if n_acc is None:
        out.append(fail("accepted fraction", thr, "n_accepted not recorded in gan_quality"))
    elif n_real is None:
        out.append(fail("accepted fraction", thr,
                        "n_real_train not recorded in gan_quality (the number of real limb training images)"))
    elif not float(n_real) > 0:
        out.append(fail("accepted fraction", thr, f"n_real_train is {n_real} in gan_quality"))
    else:
        frac = float(n_acc) / float(n_real)
        v, t = fmt_against(frac, thr)
        ok = frac >= thr
        what = f"{int(n_acc)} synthetic images" if ok else f"too few synthetic images: {int(n_acc)}"
        msg = (f"realism filter accepted {what} = {v} x {int(n_real)} real limb training images "
               f"{'>=' if ok else '<'} {t} x")
        out.append(PreconditionResult("filter_valid", subject, "accepted fraction", ok, frac, thr, msg))
    return out


def needed_preconditions(check: Check, requires: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The (precondition, subject) pairs a test needs: derived from what it compares, plus `requires`.

    `learned` for both conditions of a paired test; `filter_valid` when the test involves a GAN
    condition (GAN_CONDITIONS) or a gan_quality proportion, or the claim requires it.
    """
    out = []
    if RESULT_KEYS[check.result] == "paired":
        out += [("learned", check.a), ("learned", check.b)]
    gan = RESULT_KEYS[check.result] == "proportions" or bool({check.a, check.b} & set(GAN_CONDITIONS))
    if gan or "filter_valid" in requires:
        out.append(("filter_valid", "realism filter"))
    return out
