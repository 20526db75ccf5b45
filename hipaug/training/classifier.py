"""The classifier training loop: seeded, bit-for-bit reproducible on CPU, with early stopping and run folders.

One loop trains every VGG-16 of Lin & Chung (TAAI 2019): the realism filter on real limb
radiographs, limb pre-training for each condition, and hip-fracture fine-tuning on the pelvic
folds (Table VIII). `train_classifier` reads as its steps: set up (seeds, validation split,
frozen blocks, optimiser), one epoch, validation, best-epoch tracking, the run folder.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from hipaug.core import (atomic_write_text, default_dtype, module_dtype, progress, resolve_device, torch_threads, upcast,
                         write_json)
from hipaug.core.seeds import torch_generator, torch_global_seed
from hipaug.data import patient_split
from hipaug.errors import ConfigError, DataError
from hipaug.models.vgg import VGG16, save_model
from hipaug.training.augment import classic_augment
from hipaug.training.classifier_config import TrainConfig, planned_epochs, steps_per_epoch
from hipaug.training.inference import autocast, cpu_channels_last, inference_chunk


@dataclass
class TrainResult:
    """What `train_classifier` returns."""

    model: VGG16  # the model holding the best epoch's weights (eval mode)
    history: pd.DataFrame  # one row per epoch: epoch, train_loss, train_acc, val_loss, val_acc, lr, seconds
    best_epoch: int  # 1-based epoch whose weights were kept
    best_state: dict[str, torch.Tensor]  # CPU copy of the kept state dict
    class_weights: torch.Tensor | None = None  # loss weights used (None: unweighted)
    train_indices: np.ndarray | None = None  # indices into `train` used for training (None: all)
    val_indices: np.ndarray | None = None  # indices into `train` held out for validation (None: given `val` / none)
    extra: dict[str, Any] = field(default_factory=dict)  # timings etc.


def class_weights_from_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights n / (C * n_c) (1 on average over samples); absent classes get weight 1."""
    counts = torch.bincount(labels.to(torch.long).cpu(), minlength=num_classes).to(torch.float32)
    n = float(counts.sum())
    w = n / (num_classes * counts.clamp(min=1.0))
    w[counts == 0] = 1.0
    return w


# --------------------------------------------------------------------------- the loop's steps

_HISTORY_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds")


@dataclass
class _Loop:
    """What every epoch of one run uses (fixed once the run is set up)."""

    model: VGG16  # the network being trained (on `device`)
    cfg: TrainConfig  # the run's hyper-parameters
    device: torch.device  # where the steps run
    dtype: torch.dtype  # the model's precision: images, losses and class weights follow it
    x: torch.Tensor  # training images (N, C, S, S), in memory
    y: torch.Tensor  # training labels (N,) int64
    x_val: torch.Tensor | None  # validation images (None: no validation)
    y_val: torch.Tensor | None  # validation labels (None: no validation)
    weight: torch.Tensor | None  # class weights of the loss, on `device` (None: unweighted)
    frozen: list[nn.Module]  # frozen conv blocks, kept in eval mode
    opt: torch.optim.Optimizer  # optimiser over the trainable parameters
    sched: Any  # learning-rate scheduler stepped once per epoch (None: constant rate)
    perm_gen: torch.Generator  # draws each epoch's batch order
    aug_gen: torch.Generator  # draws the augmentation of each batch


@dataclass
class _BestEpoch:
    """The best epoch so far by `cfg.monitor` (without validation: the latest), and the early-stopping count."""

    sign: float  # +1 when a higher monitor value is better (val_acc), -1 when a lower one is (val_loss)
    min_delta: float  # smallest score gain that counts as an improvement
    patience: int | None  # epochs without improvement before stopping (None: never stop early)
    score: float = -math.inf  # best score so far
    epoch: int = 0  # 1-based epoch whose weights `state` holds (0: none yet)
    state: dict[str, torch.Tensor] | None = None  # CPU copy of that epoch's state dict
    since: int = 0  # epochs since the last improvement

    def update(self, model: nn.Module, epoch: int, score: float) -> bool:
        """Keep `model`'s weights when `score` improves on the best; return True when training should stop."""
        if self.state is None or score > self.score + self.min_delta:
            self.score, self.epoch, self.since = score, epoch, 0
            # Contiguous copies: on CPU the live weights are channels_last while training.
            self.state = {k: v.detach().to("cpu", memory_format=torch.contiguous_format, copy=True)
                          for k, v in model.state_dict().items()}
            return False
        self.since += 1
        return self.patience is not None and self.since >= self.patience


def _check_arguments(model: VGG16, train, cfg: TrainConfig, val, freeze_blocks: int) -> None:
    """Raise when the settings, the model and the data do not fit together."""
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"cfg must be a TrainConfig, got {type(cfg).__name__}")
    if not isinstance(freeze_blocks, int) or not 0 <= freeze_blocks <= 5:
        raise ConfigError(f"freeze_blocks={freeze_blocks!r} must be an integer in [0, 5]")
    n_classes = len(train.class_names)
    if n_classes != model.num_classes:
        raise ConfigError(f"model has {model.num_classes} outputs but the training set has {n_classes} classes "
                          f"({', '.join(train.class_names)}); call model.reset_classifier({n_classes})")
    if val is not None and tuple(val.class_names) != tuple(train.class_names):
        raise DataError(f"validation classes {val.class_names} differ from training classes {train.class_names}")
    if train.images.shape[1] != model.config["in_chans"]:
        raise DataError(f"images have {train.images.shape[1]} channels, model expects {model.config['in_chans']}")


def _split_validation(train, val, val_fraction: float, seed: int):
    """Return (train, val, train_idx, val_idx); without `val`, hold out ~val_fraction of patients by label."""
    train_idx = val_idx = None
    if val is None and val_fraction > 0:
        tr, va = patient_split(train, val_fraction, seed)
        train_idx, val_idx = np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64)
        train, val = train.subset(train_idx), train.subset(val_idx)
    if len(train) < 2:
        raise DataError(f"need at least 2 training images, got {len(train)}")
    return train, val, train_idx, val_idx


@contextlib.contextmanager
def _frozen_blocks(model: VGG16, freeze_blocks: int):
    """Freeze the first `freeze_blocks` conv blocks' parameters; yield the blocks; restore every flag on exit."""
    requires_grad = {n: p.requires_grad for n, p in model.named_parameters()}
    frozen = list(model.blocks()[:freeze_blocks])
    for mod in frozen:
        for p in mod.parameters():
            p.requires_grad_(False)
    try:
        yield frozen
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(requires_grad[name])


def _optimizer(model: VGG16, cfg: TrainConfig, device: torch.device):
    """Return the optimiser over the trainable parameters and the learning-rate scheduler (None: constant)."""
    params = [p for p in model.parameters() if p.requires_grad]
    # Fused optimiser kernels: one pass over parameters and state instead of one per arithmetic op
    # (on CPU, `foreach` falls back to a per-tensor loop; fused Adam is ~2.5x cheaper per step).
    impl = {"fused": True} if device.type in ("cpu", "cuda") else {"foreach": True}
    if cfg.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **impl)
    else:
        opt = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, **impl)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs) if cfg.lr_schedule == "cosine" else None
    return opt, sched


def _run_config(model: VGG16, train, val, cfg: TrainConfig, seed: int, freeze_blocks: int,
                device: torch.device) -> dict[str, Any]:
    """What `config.json` records about a run before its first epoch."""
    return {
        "train": cfg.to_dict(), "seed": seed, "freeze_blocks": freeze_blocks, "model": dict(model.config),
        "class_names": list(train.class_names), "n_train": len(train), "n_val": len(val) if val is not None else 0,
        "train_fingerprint": getattr(train, "fingerprint", ""),
        "val_fingerprint": getattr(val, "fingerprint", "") if val is not None else None,
        "device": str(device), "torch": torch.__version__,
    }


def _train_step(loop: _Loop, xb: torch.Tensor, yb: torch.Tensor):
    """One optimiser step on a batch; return its summed loss, summed sample weight and correct count (detached)."""
    with autocast(loop.device, loop.dtype):
        logits = upcast(loop.model(xb))
    losses = F.cross_entropy(logits, yb, weight=loop.weight, reduction="none",
                             label_smoothing=loop.cfg.label_smoothing)
    if loop.weight is not None:
        wb = loop.weight[yb].sum()
    else:
        wb = torch.tensor(float(len(yb)), device=loop.device)
    loss = losses.sum() / wb
    loop.opt.zero_grad(set_to_none=True)
    loss.backward()
    loop.opt.step()
    return losses.detach().sum(), wb.detach(), (logits.detach().argmax(1) == yb).sum()


def _train_epoch(loop: _Loop) -> tuple[float, float]:
    """One pass over a seeded permutation of the training set; return (weighted mean loss, accuracy)."""
    cfg, device = loop.cfg, loop.device
    loop.model.train()
    for mod in loop.frozen:
        mod.eval()  # keep frozen batch-norm statistics fixed
    n = len(loop.y)
    n_batches = steps_per_epoch(n, cfg.batch_size)  # a last batch of 1 breaks batch norm
    use_aug = cfg.augment is not None and not cfg.augment.is_identity
    order = torch.randperm(n, generator=loop.perm_gen)
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    w_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for b in range(n_batches):
        idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
        xb, yb = loop.x[idx], loop.y[idx]
        if device.type == "cuda":
            xb = xb.pin_memory().to(device, non_blocking=True)
            yb = yb.pin_memory().to(device, non_blocking=True)
        if use_aug:
            xb = classic_augment(xb, cfg.augment, loop.aug_gen)
        batch_loss, batch_weight, batch_correct = _train_step(loop, xb, yb)
        loss_sum += batch_loss
        w_sum += batch_weight
        correct += batch_correct
    return float(loss_sum / w_sum), float(correct) / min(n, n_batches * cfg.batch_size)


def _evaluate(model: VGG16, x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None, cfg: TrainConfig,
              device: torch.device, dtype: torch.dtype) -> tuple[float, float]:
    """Weighted mean loss and accuracy of `model` (eval mode) on (x, y)."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    w_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    bs = inference_chunk(model, x, cfg.eval_batch_size, device)
    with torch.inference_mode(), autocast(device, dtype):
        for i in range(0, len(y), bs):
            xb = x[i:i + bs].to(device, non_blocking=True)
            yb = y[i:i + bs].to(device, non_blocking=True)
            logits = upcast(model(xb))
            losses = F.cross_entropy(logits, yb, weight=weight, reduction="none", label_smoothing=cfg.label_smoothing)
            loss_sum += losses.sum()
            w_sum += weight[yb].sum() if weight is not None else len(yb)
            correct += (logits.argmax(1) == yb).sum()
    return float(loss_sum / w_sum), float(correct) / max(1, len(y))



def _epoch(loop: _Loop, epoch: int) -> dict[str, float]:
    """Train one epoch, step the schedule and validate; return the epoch's history row."""
    t0 = time.perf_counter()
    train_loss, train_acc = _train_epoch(loop)
    lr_used = loop.opt.param_groups[0]["lr"]
    if loop.sched is not None:
        loop.sched.step()
    row = {"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
           "val_loss": float("nan"), "val_acc": float("nan"), "lr": lr_used}
    if loop.x_val is not None:
        row["val_loss"], row["val_acc"] = _evaluate(loop.model, loop.x_val, loop.y_val, loop.weight, loop.cfg,
                                                    loop.device, loop.dtype)
    row["seconds"] = time.perf_counter() - t0
    return row


def _fit(loop: _Loop, bar) -> tuple[list[dict[str, float]], _BestEpoch]:
    """Run the epochs of `bar` until the last, a non-finite loss or early stopping; return (rows, best epoch)."""
    cfg = loop.cfg
    best = _BestEpoch(sign=1.0 if cfg.monitor == "val_acc" else -1.0, min_delta=cfg.min_delta, patience=cfg.patience)
    rows: list[dict[str, float]] = []
    for epoch in bar:
        row = _epoch(loop, epoch)
        rows.append(row)
        bar.set_postfix(loss=f"{row['train_loss']:.3f}", val_loss=f"{row['val_loss']:.3f}",
                        val_acc=f"{row['val_acc']:.3f}")
        if not math.isfinite(row["train_loss"]):
            warnings.warn(f"training loss became {row['train_loss']} at epoch {epoch}; "
                          "stopping and keeping the best epoch", stacklevel=3)  # 3: train_classifier's caller
            break
        score = best.sign * row[cfg.monitor] if loop.x_val is not None else float(epoch)
        if best.update(loop.model, epoch, score):
            break
    return rows, best


def _save_run(run_path: Path, result: TrainResult, config: dict[str, Any]) -> None:
    """Write a finished run's `history.csv`, `model.pt` (`save_model` format) and final `config.json`.

    The one way a trained classifier is saved (the pipeline's steps and `hipaug train-classifier`
    alike); `load_classifier` reads it back.
    """
    atomic_write_text(run_path / "history.csv", result.history.to_csv(index=False))
    save_model(result.model, run_path / "model.pt", extra={
        "class_names": list(config["class_names"]), "seed": config["seed"], "best_epoch": result.best_epoch,
        "freeze_blocks": config["freeze_blocks"], "train_fingerprint": config["train_fingerprint"]})
    write_json(run_path / "config.json", {**config, "best_epoch": result.best_epoch,
                                          "epochs_run": result.extra["epochs_run"], "seconds": result.extra["seconds"]})


@dataclass(frozen=True)
class TrainedClassifier:
    """A classifier run folder read back: the model (eval mode), its classes and its training history."""

    model: VGG16  # the weights of the best epoch, in eval mode
    class_names: tuple[str, ...]  # what its outputs mean, in order
    history: pd.DataFrame  # one row per epoch
    path: Path  # the run folder


def load_classifier(run_dir: str | Path) -> TrainedClassifier:
    """Read a run folder written by `train_classifier(..., run_dir=...)`; one-line errors naming it."""
    from hipaug.models.vgg import load_model

    run_dir = Path(run_dir)
    if not (run_dir / "model.pt").is_file():
        raise ConfigError(f"{run_dir}: no model.pt (train one with `hipaug train-classifier`)")
    model, extra = load_model(run_dir / "model.pt", return_extra=True)
    classes = tuple(extra.get("class_names") or ())
    if not classes:
        raise ConfigError(f"{run_dir / 'model.pt'}: the checkpoint records no class names")
    history = pd.read_csv(run_dir / "history.csv") if (run_dir / "history.csv").is_file() else pd.DataFrame()
    return TrainedClassifier(model, classes, history, run_dir)


# --------------------------------------------------------------------------- the loop


def train_classifier(model: VGG16, train, cfg: TrainConfig, seed: int, val=None, run_dir: str | Path | None = None,
                     freeze_blocks: int = 0) -> TrainResult:
    """Train `model` on `train` (an ImageDataset); return the model of the best epoch by `cfg.monitor`.

    Early stopping applies only when `cfg.patience` is set; the best epoch is kept either way.

    Without `val`, a patient-grouped, label-stratified `cfg.val_fraction` of `train` is held out
    (val_fraction 0: no validation, the last epoch is kept). Batches come from a seeded permutation
    of in-memory tensors, so CPU runs repeat bit for bit for a given seed. `freeze_blocks=k` freezes
    the first k conv blocks (weights and batch-norm statistics) for fine-tuning. With `run_dir`,
    writes `config.json`, `history.csv` and `model.pt` (`save_model` format) there. Training runs in
    the model's precision (float32, or float64 for results independent of the CPU's kernels).
    """
    _check_arguments(model, train, cfg, val, freeze_blocks)
    device = resolve_device(cfg.device)
    dtype = module_dtype(model)
    t_start = time.perf_counter()
    perm_gen = torch_generator(seed, "batches")
    aug_gen = torch_generator(seed, "augment")
    with contextlib.ExitStack() as stack:
        # Dropout draws from the global generator: seed it from `seed`, so a run never depends on what
        # consumed random numbers before it in the process, and give the caller its state back after.
        stack.enter_context(torch_global_seed(seed, "dropout"))
        stack.enter_context(default_dtype(dtype))  # dropout masks and every new tensor in the model's precision
        train, val, train_idx, val_idx = _split_validation(train, val, cfg.val_fraction, seed)
        cfg = replace(cfg, epochs=planned_epochs(cfg, len(train)))  # min_steps: as many updates on a small set
        y = train.labels.to(torch.long)
        weight = class_weights_from_labels(y, len(train.class_names)) if cfg.class_weights else None
        stack.enter_context(torch_threads(cfg.num_threads))
        frozen = stack.enter_context(_frozen_blocks(model, freeze_blocks))
        model.to(device)
        opt, sched = _optimizer(model, cfg, device)
        config = _run_config(model, train, val, cfg, seed, freeze_blocks, device)
        if run_dir is not None:
            write_json(Path(run_dir) / "config.json", config)
        loop = _Loop(model=model, cfg=cfg, device=device, dtype=dtype, x=train.images.to(dtype), y=y,
                     x_val=val.images.to(dtype) if val is not None else None,
                     y_val=val.labels.to(torch.long) if val is not None else None,
                     weight=weight.to(device, dtype) if weight is not None else None, frozen=frozen, opt=opt, sched=sched,
                     perm_gen=perm_gen, aug_gen=aug_gen)
        bar = stack.enter_context(progress(range(1, cfg.epochs + 1), desc="train", unit="epoch"))
        stack.enter_context(cpu_channels_last(model, device))  # NHWC weights on CPU (same Parameter objects)
        rows, best = _fit(loop, bar)
    if best.state is None:
        raise ConfigError("training diverged in epoch 1 (non-finite loss); lower train.lr")
    model.load_state_dict(best.state)
    model.eval()
    history = pd.DataFrame(rows, columns=list(_HISTORY_COLUMNS))
    seconds = time.perf_counter() - t_start
    result = TrainResult(model=model, history=history, best_epoch=best.epoch, best_state=best.state,
                         class_weights=weight, train_indices=train_idx, val_indices=val_idx,
                         extra={"seconds": seconds, "epochs_run": len(rows), "device": str(device)})
    if run_dir is not None:
        _save_run(Path(run_dir), result, config)
    return result
