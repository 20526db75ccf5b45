"""Transfer learning from limb to pelvic radiographs (Lin & Chung 2019, Section III).

A VGG-16 is pre-trained on limb classes, its last layer is replaced by a binary head and it is
fine-tuned on pelvic radiographs to detect hip fractures. The conditions
(`hipaug.method.conditions`) differ only in what the backbone is pre-trained on.

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

from hipaug.core import torch_threads
from hipaug.core.seeds import derive_seed, torch_global_seed
from hipaug.data import ImageDataset, check_pelvic, concat, patient_kfold, patient_split
from hipaug.errors import ConfigError
from hipaug.evaluation import binary_metrics
from hipaug.method.conditions import CONDITIONS, condition
from hipaug.models.vgg import ArchSpec, VGG16
from hipaug.training.augment import AugmentConfig
from hipaug.training.classifier_config import TrainConfig


DESIGNS = ("cv", "replications")  # how conditions are compared (TransferSpec.design)


@dataclass(frozen=True)
class TransferSpec:
    """Transfer learning and the Table VIII protocol."""

    conditions: tuple[str, ...] = CONDITIONS  # pre-training conditions compared on the same folds
    k_folds: int = 5  # stratified patient-level folds on the pelvic set (paper: five-fold CV)
    repeats: int = 1  # repeated seeds of the whole CV (paper: one run)
    freeze_blocks: int = 0  # conv blocks frozen while fine-tuning (paper: unknown)
    positive_class: str = "fracture"  # pelvic class treated as positive
    # How conditions are compared. "cv": repeated k-fold CV on one pelvic set, the corrected
    # resampled t-test (folds share training images); what real data allow. "replications": the
    # phantom is a generator, so each replication draws its own pelvic training set and every model
    # is scored on one large fresh test set; replications are independent, so the plain paired
    # t-test across them is valid. Real data (your folders, FracAtlas) always use "cv".
    design: str = "cv"
    replications: int = 10  # "replications": independent pelvic training sets (the paired t-test's n)
    train_n: int = 200  # "replications": pelvic training images per replication (its validation split included)
    test_n: int = 2000  # "replications": fresh pelvic test images every model of every replication is scored on
    # Fine-tuning learning rate of `scratch` (random weights; None: finetune.lr). A control should be
    # the strongest scratch found: a network from random weights may need another rate than one
    # that starts from pre-trained features.
    scratch_lr: float | None = None

    def __post_init__(self) -> None:
        if self.design not in DESIGNS:
            raise ConfigError(f"transfer.design={self.design!r} is not one of {', '.join(DESIGNS)}")
        for name, lo in (("replications", 2), ("train_n", 10), ("test_n", 10)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"transfer.{name}={v!r} must be an integer >= {lo}")
        for name in self.conditions:
            try:
                condition(name)
            except ConfigError:
                raise ConfigError(f"transfer.conditions: unknown condition '{name}' (known: "
                                  f"{', '.join(CONDITIONS)})") from None
        if not isinstance(self.k_folds, int) or self.k_folds < 2:
            raise ConfigError(f"transfer.k_folds={self.k_folds} must be >= 2")
        if not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"transfer.repeats={self.repeats} must be >= 1")
        lr = self.scratch_lr
        if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not 0 < lr <= 10):
            raise ConfigError(f"transfer.scratch_lr={lr!r} must be null or a number in (0, 10]")


@dataclass(frozen=True)
class PretrainSets:
    """The limb sets every condition draws from."""

    real_train: ImageDataset  # real limb images used for training
    real_val: ImageDataset  # real limb images for early stopping (shared by all conditions)
    filtered: ImageDataset | None  # synthetic images kept by the realism filter
    unfiltered: ImageDataset | None  # synthetic images drawn without the filter


@dataclass(frozen=True)
class FoldResult:
    """One fine-tuned fold: its metrics, its test predictions, its training history and its model."""

    metrics: dict  # condition, repeat, fold, n_test, best_epoch and binary_metrics of the test fold
    predictions: pd.DataFrame  # one row per test image: path, patient_id, y_true, y_score (and the tags)
    history: pd.DataFrame  # one row per epoch (train/validation loss and accuracy)
    model: VGG16  # the fine-tuned model (eval mode)


def build_model(arch: ArchSpec, num_classes: int, image_size: int, seed: int) -> VGG16:
    """The shared VGG-16 backbone, initialised from `seed` (never from global RNG state)."""
    from hipaug.models.vgg import vgg16

    return vgg16(num_classes, width=arch.width, fc_width=arch.fc_width, image_size=image_size,
                 batch_norm=arch.batch_norm, dropout=arch.dropout, pretrained=arch.pretrained, seed=seed,
                 dtype=arch.dtype)


def pretrain_set(name: str, sets: PretrainSets, seed: int) -> ImageDataset | None:
    """Return the pre-training set of a condition (None when it is not pre-trained)."""
    c = condition(name)
    if not c.pretrained:
        return None
    if c.synthetic is None:
        return sets.real_train
    if sets.filtered is None or (c.synthetic == "unfiltered" and sets.unfiltered is None):
        raise ConfigError(f"condition '{name}' needs the {c.synthetic} synthetic set")
    if c.synthetic == "filtered":
        return concat(sets.real_train, sets.filtered) if len(sets.filtered) else sets.real_train
    # Same number of synthetic images as `with_gan`, drawn without looking at the filter's scores.
    n = len(sets.filtered)
    pick = np.random.default_rng(seed).permutation(len(sets.unfiltered))[:n]
    return concat(sets.real_train, sets.unfiltered.subset(np.sort(pick))) if n else sets.real_train


def pretrain_config(name: str, cfg: TrainConfig, n_real: int, n_train: int) -> TrainConfig:
    """The pre-training TrainConfig of a condition: classic augmentation if it augments, epochs scaled by n_real / n_train.

    Scaling keeps the number of optimiser steps about the same whatever the set's size (a set
    with synthetic images would otherwise also get more updates); `cfg.epochs` stays a cap.
    """
    augment = (cfg.augment or AugmentConfig()) if condition(name).augment else None
    epochs = max(1, int(round(cfg.epochs * n_real / n_train)))
    return dataclasses.replace(cfg, augment=augment, epochs=epochs)


def finetune_fold(pretrained: VGG16 | None, pelvic: ImageDataset, split: tuple[np.ndarray, np.ndarray],
                  arch: ArchSpec, cfg: TrainConfig, transfer: TransferSpec, seed: int, tags: dict) -> FoldResult:
    """Fine-tune a copy of the backbone (None: a fresh VGG-16) on one fold's training images and test it.

    `tags` (condition, repeat, fold) label the metrics, predictions and history rows; the fold's
    seed is derived from `seed` and its repeat and fold, so one fold never depends on another.
    """
    from hipaug.training import predict_proba, train_classifier

    pos = check_pelvic(pelvic, transfer.positive_class)
    train_idx, test_idx = split
    fold_seed = derive_seed(seed, "fold", tags["repeat"], tags["fold"])
    train_ds, test_ds = pelvic.subset(train_idx), pelvic.subset(test_idx)
    if pretrained is None:
        model = build_model(arch, 2, pelvic.image_size, fold_seed)
        if transfer.scratch_lr is not None:
            cfg = dataclasses.replace(cfg, lr=transfer.scratch_lr)
    else:
        model = build_model(dataclasses.replace(arch, pretrained="never"), pretrained_num_classes(pretrained),
                            pelvic.image_size, fold_seed)
        model.load_state_dict({k: v.detach().clone() for k, v in pretrained.state_dict().items()})
        with torch_global_seed(fold_seed, "head"):  # the new head's initialisation
            model.reset_classifier(2)
    # train_classifier holds out cfg.val_fraction of the fold's training patients (0: none, the last epoch is kept).
    result = train_classifier(model, train_ds, cfg, seed=fold_seed,
                              freeze_blocks=transfer.freeze_blocks if pretrained is not None else 0)
    with torch_threads(cfg.num_threads):  # scored at the threads it trained with: the same bytes in any process
        probs = predict_proba(result.model, test_ds.images, device=cfg.device)
    y_true = (test_ds.labels.numpy() == pos).astype(int)
    y_score = probs[:, pos]
    metrics = {**tags, "n_test": len(test_idx), "best_epoch": int(result.best_epoch), **binary_metrics(y_true, y_score)}
    preds = pd.DataFrame({**tags, "path": list(test_ds.paths), "patient_id": list(test_ds.patient_ids),
                          "y_true": y_true, "y_score": y_score})
    return FoldResult(metrics, preds, result.history.assign(**tags), result.model)


def pretrained_num_classes(model: torch.nn.Module) -> int:
    """Number of outputs of the model's last linear layer."""
    last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    return int(last.out_features)


def make_folds(pelvic: ImageDataset, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified, patient-level k folds shared by every condition (paired comparisons)."""
    return patient_kfold(pelvic, k=k, seed=seed)


def replication_splits(n: int, replications: int, train_n: int, test_n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) of each replication: its own block of `train_n` images, and the first `test_n` for all.

    The phantom renders every image independently from its own seed, so disjoint blocks are
    independent draws; no image is in two training sets or in a training and the test set.
    """
    need = test_n + replications * train_n
    if n < need:
        raise ConfigError(f"the pelvic set has {n} images; {replications} replications of {train_n} training images "
                          f"and {test_n} test images need {need}")
    test = np.arange(test_n)
    return [(np.arange(test_n + r * train_n, test_n + (r + 1) * train_n), test) for r in range(replications)]


def split_limb(limb: ImageDataset, val_fraction: float, seed: int) -> tuple[ImageDataset, ImageDataset]:
    """Split the real limb set by patient into (train, val) once for all conditions."""
    tr, va = patient_split(limb, val_fraction, seed=seed)
    return limb.subset(tr), limb.subset(va)
