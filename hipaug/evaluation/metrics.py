"""Classification metrics per fold and their mean +- SD: the paper's Table VIII (Lin & Chung, TAAI 2019).

Accuracy, sensitivity, specificity and F1 per fold of a cross-validation, reported as mean +- SD
(ddof=1); precision (PPV), the Matthews correlation coefficient (MCC), balanced accuracy and ROC
AUC beside them. The paper reports only its four; precision and MCC are here because readers of
diagnostic studies track them. Every metric comes from scikit-learn. Inputs are numpy arrays or
torch tensors, so evaluation never imports `models`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from hipaug.core.numbers import PERCENT_DECIMALS, mean_sd
from hipaug.errors import HipaugError

PAPER_METRICS = ("accuracy", "sensitivity", "specificity", "f1")  # Table VIII columns
# Per-fold metrics summarised and tested: the paper's four, then precision (PPV), MCC, ROC AUC, balanced
# accuracy and the sensitivity at a fixed specificity, which the paper does not report. On an imbalanced
# set (FracAtlas' hips are about one fracture in five) accuracy alone can be beaten by always saying
# "normal"; the last three are not.
METRICS = (*PAPER_METRICS, "precision", "mcc", "auc", "balanced_accuracy", "sens_at_spec90")
FIXED_SPECIFICITY = 0.90  # sens_at_spec90: the sensitivity at the best threshold with specificity >= this


class EvaluationError(HipaugError, ValueError):
    """Inputs to an evaluation function cannot be used (one line naming the argument)."""


def as_1d(x: Any, name: str) -> np.ndarray:
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
    lab = as_1d(labels, "labels").astype(np.int64)
    p = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    if p.ndim != 2 or p.shape[1] != len(names) or p.shape[0] != lab.shape[0]:
        raise EvaluationError(f"probs must have shape ({lab.shape[0]}, {len(names)}), got {p.shape}")
    return (lab == idx).astype(np.int64), p[:, idx].astype(np.float64)


def _check_binary(y_true: Any, y_score: Any) -> tuple[np.ndarray, np.ndarray]:
    yt = as_1d(y_true, "y_true")
    ys = as_1d(y_score, "y_score").astype(np.float64)
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
    """Return accuracy, sensitivity, specificity, precision, f1, mcc, auc, balanced accuracy, sens_at_spec90, counts.

    `y_true` is 1 for the positive class (fracture); `y_score` is its score/probability and is
    predicted positive when `>= threshold`. Undefined values (AUC, sensitivity or specificity
    with a class absent) are NaN and explained in the `note` string ("" when all is defined).
    Precision and F1 with no positive prediction are 0, and MCC of a constant prediction is 0
    (scikit-learn's conventions, said in `note`); MCC lies in [-1, 1], the others in [0, 1].
    """
    # scikit-learn is imported where it is used: it costs ~1.2 s, and most processes (a cached run, a
    # notebook re-rendered from stored results) never score a model.
    from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score,
                                 matthews_corrcoef, precision_score, recall_score, roc_auc_score, roc_curve)

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
        fpr, tpr, _ = roc_curve(yt, ys)
        out["sens_at_spec90"] = float(tpr[fpr <= 1.0 - FIXED_SPECIFICITY + 1e-12].max())
    else:
        out["auc"] = out["sens_at_spec90"] = float("nan")
        absent = "positive" if n_pos == 0 else "negative"
        notes.append(
            f"only one class present (no {absent} cases): auc, sens_at_spec90, balanced_accuracy and "
            f"{'sensitivity' if n_pos == 0 else 'specificity'} are undefined (NaN)"
        )
    if tp + fp == 0:
        notes.append("no positive prediction: precision and f1 are 0 by convention")
    if (tp + fp) * (tn + fn) * n_pos * n_neg == 0:
        notes.append("a row or column of the confusion matrix is empty: mcc is 0 by convention")
    out.update(tp=tp, fp=fp, tn=tn, fn=fn, n=int(yt.shape[0]), threshold=float(threshold), note="; ".join(notes))
    return out


def roc_points(y_true: Any, y_score: Any, drop_intermediate: bool = True) -> pd.DataFrame:
    """Return the ROC curve as a DataFrame(fpr, tpr, threshold) (sklearn `roc_curve`)."""
    from sklearn.metrics import roc_curve

    yt, ys = _check_binary(y_true, y_score)
    if yt.min() == yt.max():
        raise EvaluationError("roc_points needs both classes in y_true; got only one")
    fpr, tpr, thr = roc_curve(yt, ys, drop_intermediate=drop_intermediate)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})



def check_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise EvaluationError(f"{what} lacks column(s) {missing}; it has {list(df.columns)}")


def summarize(folds: pd.DataFrame, metrics: Sequence[str] = METRICS, by: str = "condition") -> pd.DataFrame:
    """Return mean, SD (ddof=1, the paper's +-) and n of each metric per `by` group.

    Columns are a MultiIndex (metric, stat) with stat in ("mean", "sd", "n"); groups keep the
    order of first appearance. With repeated CV (several rows per fold) the SD is over all rows.
    """
    metrics = list(metrics)
    check_columns(folds, [by, *metrics], "folds")
    g = folds.groupby(by, sort=False)[metrics]
    parts = {"mean": g.mean(), "sd": g.std(ddof=1), "n": g.count()}
    out = pd.concat(parts, axis=1).swaplevel(0, 1, axis=1)
    out = out.reindex(columns=pd.MultiIndex.from_product([metrics, ["mean", "sd", "n"]], names=["metric", "stat"]))
    return out


def format_mean_sd(summary: pd.DataFrame, scale: float = 100, decimals: int = PERCENT_DECIMALS) -> pd.DataFrame:
    """Format a `summarize` table as strings "88.5 ± 0.8" (scale=100 gives percent; `hipaug.core.numbers`)."""
    metrics = list(dict.fromkeys(summary.columns.get_level_values(0)))
    out = pd.DataFrame(index=summary.index, columns=metrics, dtype=object)
    for m in metrics:
        for idx in summary.index:
            out.loc[idx, m] = mean_sd(summary.loc[idx, (m, "mean")], summary.loc[idx, (m, "sd")], scale, decimals)
    return out
