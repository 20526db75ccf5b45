"""Patient-level splits: k folds and a validation split that never put one patient on both sides.

Paper step: evaluation protocol (Lin & Chung, TAAI 2019, cross-validate the hip-fracture
classifier); every fold and validation split of the pipeline comes from here.
"""

from __future__ import annotations

import numpy as np

from hipaug.data.dataset import ImageDataset
from hipaug.errors import ConfigError, DataError

__all__ = ["fold_table", "patient_kfold", "patient_split"]


def _check_patients_per_class(ds: ImageDataset, n_splits: int, what: str) -> None:
    y = ds.labels.tolist()
    for c, name in enumerate(ds.class_names):
        pats = {p for p, yy in zip(ds.patient_ids, y) if yy == c}
        if len(pats) < n_splits:
            raise DataError(f"class '{name}' has {len(pats)} patient(s), fewer than {what}; "
                            f"add data or lower the number of folds")


def _group_folds(ds: ImageDataset, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    y = ds.labels.numpy()
    groups = np.asarray(ds.patient_ids, dtype=object)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=int(seed))
    folds = []
    for tr, te in cv.split(np.zeros((len(y), 1)), y, groups):
        if len(te) == 0 or len(tr) == 0:
            raise DataError(f"patient split produced an empty fold with {n_splits} folds; too few patients")
        folds.append((np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)))
    return folds


def patient_kfold(ds: ImageDataset, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds (train_idx, test_idx), stratified by label, grouped by patient.

    scikit-learn StratifiedGroupKFold(shuffle=True, random_state=seed): no patient is in two
    test folds and every image is in exactly one test fold.
    """
    k = int(k)
    if k < 2:
        raise ConfigError(f"k={k} folds: need at least 2")
    _check_patients_per_class(ds, k, f"k={k} folds")
    folds = _group_folds(ds, k, seed)
    counts = np.bincount(np.concatenate([te for _, te in folds]), minlength=len(ds))
    if not np.all(counts == 1):  # guard the contract
        raise DataError("patient_kfold: internal error, an image is not in exactly one test fold")
    return folds


def patient_split(ds: ImageDataset, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One (train_idx, val_idx) split, stratified by label and grouped by patient.

    Takes the first fold of StratifiedGroupKFold(n_splits=round(1/val_fraction), shuffle=True,
    random_state=seed), so the validation share is about 1/n_splits of the images.
    """
    vf = float(val_fraction)
    if not 0.0 < vf <= 0.5:
        raise ConfigError(f"val_fraction={val_fraction} must be in (0, 0.5]")
    n_splits = max(2, int(round(1.0 / vf)))
    _check_patients_per_class(ds, n_splits, f"the {n_splits} groups needed for val_fraction={vf:g}")
    return _group_folds(ds, n_splits, seed)[0]


def fold_table(ds: ImageDataset, folds: list[tuple[np.ndarray, np.ndarray]], positive: str):
    """One row per fold: training and test images, the test fold's share of `positive`, patients on both sides (a DataFrame)."""
    import pandas as pd

    pos = ds.class_names.index(positive)
    rows = []
    for i, (tr, te) in enumerate(folds):
        shared = {ds.patient_ids[j] for j in tr} & {ds.patient_ids[j] for j in te}
        rows.append({"fold": i, "train": len(tr), "test": len(te),
                     "test fracture share": round(float((ds.labels[te] == pos).float().mean()), 3),
                     "patients in both": len(shared)})
    return pd.DataFrame(rows)
