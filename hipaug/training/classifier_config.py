"""`TrainConfig`: the hyper-parameters of the classifier loop (filter, limb pre-training, pelvic fine-tuning).

Profiles set one per use (`filter_train`, `pretrain`, `finetune`); `hipaug.training.classifier`
runs them. Every field is checked on construction, so a bad YAML value fails before any training.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from hipaug.errors import ConfigError
from hipaug.training.augment import AugmentConfig

OPTIMIZERS = ("adam", "sgd")
MONITORS = ("val_loss", "val_acc")
SCHEDULES = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of `train_classifier`."""

    epochs: int = 30  # maximum number of passes over the training set
    # At least this many optimiser steps (0: `epochs` as given): a smaller training set gets more
    # epochs, so a recipe tuned on one data size still trains a small folder as long (in updates).
    min_steps: int = 0
    batch_size: int = 32  # images per optimisation step
    lr: float = 1e-3  # learning rate (Adam default; use ~1e-2 with sgd)
    weight_decay: float = 0.0  # L2 penalty passed to the optimiser
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.9  # SGD momentum (ignored by adam)
    lr_schedule: str = "constant"  # "constant" or "cosine" (cosine annealing to 0 over `epochs`)
    patience: int | None = 5  # stop after this many epochs without improvement of `monitor`; None: never stop early
    monitor: str = "val_loss"  # early-stopping / best-epoch criterion: "val_loss" (min) or "val_acc" (max)
    min_delta: float = 0.0  # smallest change of `monitor` that counts as an improvement
    val_fraction: float = 0.2  # share of patients held out when no `val` set is given (0: no validation, keep the last epoch)
    class_weights: bool = False  # inverse-frequency class weights in the cross-entropy (for imbalanced classes)
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: AugmentConfig | None = None  # classic augmentation of each training batch (None: none)
    device: str = "auto"  # "auto", "cpu" or "cuda[:k]"
    num_threads: int | None = None  # torch CPU threads during training (None: leave torch's setting)
    eval_batch_size: int = 256  # batch size for validation passes

    def __post_init__(self) -> None:
        def whole(name: str, lo: int) -> None:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ConfigError(f"train.{name}={v!r} must be an integer >= {lo}")

        whole("epochs", 1)
        whole("min_steps", 0)
        whole("batch_size", 2)  # batch norm needs at least two images per step
        whole("eval_batch_size", 1)
        if self.patience is not None:
            whole("patience", 1)
        if self.num_threads is not None:
            whole("num_threads", 1)
        for name, lo, hi in (("lr", 0.0, 10.0), ("weight_decay", 0.0, 1.0), ("momentum", 0.0, 1.0),
                             ("min_delta", 0.0, math.inf), ("val_fraction", 0.0, 0.5), ("label_smoothing", 0.0, 1.0)):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
                raise ConfigError(f"train.{name}={v!r} must be a number in [{lo}, {hi}]")
        if self.lr <= 0:
            raise ConfigError(f"train.lr={self.lr!r} must be > 0")
        if self.momentum >= 1.0:
            raise ConfigError(f"train.momentum={self.momentum!r} must be < 1")
        if self.label_smoothing >= 1.0:
            raise ConfigError(f"train.label_smoothing={self.label_smoothing!r} must be < 1")
        for name, allowed in (("optimizer", OPTIMIZERS), ("monitor", MONITORS), ("lr_schedule", SCHEDULES)):
            if getattr(self, name) not in allowed:
                raise ConfigError(f"train.{name}={getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if not isinstance(self.class_weights, bool):
            raise ConfigError(f"train.class_weights={self.class_weights!r} must be true or false")
        if isinstance(self.augment, dict):
            object.__setattr__(self, "augment", AugmentConfig.from_dict(self.augment))
        if self.augment is not None and not isinstance(self.augment, AugmentConfig):
            raise ConfigError(f"train.augment must be an AugmentConfig, a dict or None, got {type(self.augment).__name__}")
        if not isinstance(self.device, str):
            raise ConfigError(f"train.device={self.device!r} must be a string")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (augment nested as a dict or None)."""
        d = asdict(self)
        d["augment"] = self.augment.to_dict() if self.augment is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a dict (e.g. config.json); unknown keys raise ConfigError."""
        unknown = sorted(set(d) - {f.name for f in fields(cls)})
        if unknown:
            raise ConfigError(f"train: unknown field(s) {', '.join(unknown)}")
        return cls(**d)


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimiser steps in one pass over `n_train` images (a last batch of one image is dropped: batch norm)."""
    return n_train // batch_size + (1 if n_train % batch_size >= 2 else 0)


def planned_epochs(cfg: TrainConfig, n_train: int) -> int:
    """`cfg.epochs`, raised until the run takes at least `cfg.min_steps` optimiser steps on `n_train` images."""
    per = steps_per_epoch(n_train, cfg.batch_size)
    return max(cfg.epochs, math.ceil(cfg.min_steps / per)) if per else cfg.epochs
