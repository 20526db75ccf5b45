"""Transfer learning from limb to pelvic radiographs (Lin & Chung 2019, Section III).

A VGG-16 is pre-trained on limb classes, its last layer is replaced by a binary head and it is
fine-tuned on pelvic radiographs to detect hip fractures. The conditions differ only in what
the backbone is pre-trained on:

- `scratch`: no pre-training (fine-tuning starts from random weights);
- `classic`: the real limb set with classic augmentation (flip, rotate, scale, intensity);
- `without_gan`: the real limb set (the paper's "without GAN");
- `with_gan`: the real limb set plus AC-GAN images kept by the realism filter ("with GAN");
- `unfiltered_gan`: the real limb set plus as many AC-GAN images drawn without the filter
  (an ablation: same quantity as `with_gan`, no selection).

All conditions share the backbone, the validation images (real limb only) and the budget:
epochs are scaled by ``|real| / |train|``, so pre-training runs about the same number of optimiser
steps whatever the set size (more images per epoch would otherwise mean more updates). That
number is a cap: with `patience` set, early stopping can end a condition sooner.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from hipaug.core.seeds import derive_seed, torch_global_seed
from hipaug.data import ImageDataset, check_pelvic, concat, patient_kfold, patient_split
from hipaug.errors import ConfigError
from hipaug.evaluation import binary_metrics
from hipaug.method.conditions import CONDITIONS
from hipaug.models.vgg import ArchSpec
from hipaug.training.augment import AugmentConfig


@dataclass(frozen=True)
class PretrainSets:
    """The limb sets every condition draws from."""

    real_train: ImageDataset  # real limb images used for training
    real_val: ImageDataset  # real limb images for early stopping (shared by all conditions)
    filtered: ImageDataset | None  # synthetic images kept by the realism filter
    unfiltered: ImageDataset | None  # synthetic images drawn without the filter


def build_model(arch: ArchSpec, num_classes: int, image_size: int, seed: int) -> torch.nn.Module:
    """The shared VGG-16 backbone, initialised from `seed` (never from global RNG state)."""
    from hipaug.models.vgg import vgg16

    return vgg16(num_classes, width=arch.width, fc_width=arch.fc_width, image_size=image_size,
                 batch_norm=arch.batch_norm, dropout=arch.dropout, pretrained=arch.pretrained, seed=seed,
                 dtype=arch.dtype)


def pretrain_set(condition: str, sets: PretrainSets, seed: int) -> ImageDataset | None:
    """Return the pre-training set of a condition (None for `scratch`)."""
    if condition not in CONDITIONS:
        raise ConfigError(f"condition={condition!r} is not one of {', '.join(CONDITIONS)}")
    if condition == "scratch":
        return None
    if condition in ("classic", "without_gan"):
        return sets.real_train
    if condition == "with_gan":
        if sets.filtered is None:
            raise ConfigError("condition 'with_gan' needs the filtered synthetic set")
        return concat(sets.real_train, sets.filtered) if len(sets.filtered) else sets.real_train
    if sets.unfiltered is None or sets.filtered is None:
        raise ConfigError("condition 'unfiltered_gan' needs the unfiltered and filtered synthetic sets")
    # Same number of synthetic images as `with_gan`, drawn without looking at the filter's scores.
    n = len(sets.filtered)
    pick = np.random.default_rng(seed).permutation(len(sets.unfiltered))[:n]
    return concat(sets.real_train, sets.unfiltered.subset(np.sort(pick))) if n else sets.real_train


def pretrain_config(condition: str, cfg, n_real: int, n_train: int):
    """The pre-training TrainConfig of a condition: classic augmentation for `classic`, epochs scaled by n_real / n_train.

    Scaling keeps the number of optimiser steps about the same whatever the set's size (a set
    with synthetic images would otherwise also get more updates); `cfg.epochs` stays a cap.
    """
    augment = (cfg.augment or AugmentConfig()) if condition == "classic" else None
    epochs = max(1, int(round(cfg.epochs * n_real / n_train)))
    return dataclasses.replace(cfg, augment=augment, epochs=epochs)


def finetune_folds(condition: str, pretrained: torch.nn.Module | None, pelvic: ImageDataset, arch: ArchSpec,
                   cfg, folds: list[tuple[np.ndarray, np.ndarray]], positive_class: str, seed: int,
                   freeze_blocks: int = 0, repeat: int = 0, keep_fold: int | None = 0,
                   only: tuple[int, ...] | None = None):
    """Fine-tune a copy of the backbone on each fold (or on the folds numbered in `only`).

    Return (per-fold metrics, per-image predictions, the fine-tuned model of fold `keep_fold`
    or None, per-epoch training histories); the kept model serves Grad-CAM, the histories show
    whether fine-tuning settled. A fold depends only on its own number and seed, so folds run
    one at a time (`only=(f,)`, one task each) give the same results as all of them in one call.
    """
    from hipaug.core import progress
    from hipaug.training import predict_proba, train_classifier

    pos = check_pelvic(pelvic, positive_class)
    rows, preds, hists, kept = [], [], [], None
    state = None if pretrained is None else {k: v.detach().clone() for k, v in pretrained.state_dict().items()}
    n_pre = None if pretrained is None else pretrained_num_classes(pretrained)
    for fold in progress(range(len(folds)) if only is None else only, desc=f"fine-tune {condition}", unit="fold"):
        train_idx, test_idx = folds[fold]
        fold_seed = derive_seed(seed, "fold", repeat, fold)
        train_ds, test_ds = pelvic.subset(train_idx), pelvic.subset(test_idx)
        tr, va = patient_split(train_ds, cfg.val_fraction, seed=fold_seed)
        if state is None:
            model = build_model(arch, 2, pelvic.image_size, fold_seed)
        else:
            model = build_model(dataclasses.replace(arch, pretrained="never"), n_pre, pelvic.image_size, fold_seed)
            model.load_state_dict(state)
            with torch_global_seed(fold_seed, "head"):  # the new head's initialisation
                model.reset_classifier(2)
        result = train_classifier(model, train_ds.subset(tr), cfg, seed=fold_seed, val=train_ds.subset(va),
                                  freeze_blocks=freeze_blocks if state is not None else 0)
        probs = predict_proba(result.model, test_ds.images, device=cfg.device)
        if fold == keep_fold:
            kept = result.model
        y_true = (test_ds.labels.numpy() == pos).astype(int)
        y_score = probs[:, pos]
        m = binary_metrics(y_true, y_score)
        hists.append(result.history.assign(condition=condition, repeat=repeat, fold=fold))
        rows.append({"condition": condition, "repeat": repeat, "fold": fold, "n_test": len(test_idx),
                     "best_epoch": int(result.best_epoch), **m})
        preds.append(pd.DataFrame({"condition": condition, "repeat": repeat, "fold": fold, "path": list(test_ds.paths),
                                   "patient_id": list(test_ds.patient_ids), "y_true": y_true, "y_score": y_score}))
    return pd.DataFrame(rows), pd.concat(preds, ignore_index=True), kept, pd.concat(hists, ignore_index=True)


def pretrained_num_classes(model: torch.nn.Module) -> int:
    """Number of outputs of the model's last linear layer."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    return int(last.out_features)


def make_folds(pelvic: ImageDataset, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, patient-level k folds shared by every condition (paired comparisons)."""
    return patient_kfold(pelvic, k=k, seed=seed)


def split_limb(limb: ImageDataset, val_fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Split the real limb set by patient into (train, val) once for all conditions."""
    tr, va = patient_split(limb, val_fraction, seed=seed)
    return limb.subset(tr), limb.subset(va)
