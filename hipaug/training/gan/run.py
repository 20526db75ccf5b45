"""An AC-GAN run folder (paper step 2, the generator): its files, record, history and resume checks.

A run folder holds config.json (written before training starts), history.csv, checkpoint.pt
(written atomically) and samples/step_XXXXXX.png; `train_acgan` resumes from it only when the
config, seed and dataset fingerprint match the recorded ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hipaug import __version__
from hipaug.core import atomic_write_text, read_json, torch_load, write_json
from hipaug.errors import ConfigError
from hipaug.training.gan.config import ACGANConfig

__all__ = ["ACGANRun", "HISTORY_COLUMNS", "read_history", "read_run_config"]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
HISTORY_NAME = "history.csv"
SAMPLES_DIR = "samples"
CHECKPOINT_FORMAT = 1

# Columns of history.csv after `step`; each is the mean over the steps since the previous row
# (D columns also over the n_critic D updates of a step).
HISTORY_COLUMNS = (
    "d_loss",  # D's total loss: adversarial + aux_weight * class loss
    "d_adv_loss",  # BCE of D's real/fake head on real and generated batches (summed)
    "d_aux_loss",  # CE of D's class head (real images; + generated if aux_fake_in_d)
    "g_loss",  # G's loss: adversarial + aux_weight * class loss (mode-seeking term not included)
    "g_adv_loss",  # non-saturating BCE of D's real/fake head on generated images (target real)
    "g_aux_loss",  # CE of D's class head on generated images vs their conditioning class
    "d_real_acc",  # fraction of real images D calls real (logit > 0)
    "d_fake_acc",  # fraction of generated images D calls fake (logit < 0)
    "aux_acc_real",  # D's class-head accuracy on real images
    "aux_acc_fake",  # D's class-head accuracy on generated images (how well G is conditioned)
    "g_pair_ratio",  # mean|G(z1,y)-G(z2,y)| / mean|z1-z2| over same-class pairs; ~0 = collapse
)

# Fields that may change between a run and its resumption: they do not alter the training maths.
RESUMABLE_FIELDS = frozenset({"steps", "device", "sample_every", "checkpoint_every", "grid_per_class"})


@dataclass(frozen=True)
class ACGANRun:
    """What `train_acgan` leaves behind: the run folder, its history and its files."""

    run_dir: Path  # folder holding config.json, history.csv, checkpoint.pt, samples/
    class_names: tuple[str, ...]  # training classes, index = label used by G
    history: pd.DataFrame  # step plus HISTORY_COLUMNS, one row per log_every steps
    step: int  # last completed G step
    cfg: ACGANConfig  # configuration of the run
    seed: int  # the run's seed

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG_NAME

    @property
    def history_path(self) -> Path:
        return self.run_dir / HISTORY_NAME

    @property
    def samples_dir(self) -> Path:
        return self.run_dir / SAMPLES_DIR

    @property
    def paths(self) -> dict[str, Path]:
        return {
            "checkpoint": self.checkpoint_path,
            "config": self.config_path,
            "history": self.history_path,
            "samples": self.samples_dir,
        }


def run_record(cfg: ACGANConfig, dataset: Any, seed: int) -> dict[str, Any]:
    """Describe a run: config, seed, classes, dataset fingerprint and versions (config.json, checkpoint)."""
    return {
        "config": cfg.to_dict(),
        "seed": int(seed),
        "class_names": list(dataset.class_names),
        "dataset_fingerprint": str(dataset.fingerprint),
        "num_images": int(len(dataset.labels)),
        "class_counts": [int(c) for c in torch.bincount(dataset.labels, minlength=len(dataset.class_names)).tolist()],
        "hipaug_version": __version__,
        "torch_version": str(torch.__version__),
        "checkpoint_format": CHECKPOINT_FORMAT,
    }


def check_resume(record: Mapping[str, Any], cfg: ACGANConfig, dataset: Any, seed: int, where: Path) -> None:
    """Raise ConfigError unless a stored run record matches this config, seed and dataset."""
    old_cfg = dict(record.get("config", {}))
    new_cfg = cfg.to_dict()
    for k in sorted(set(old_cfg) | set(new_cfg)):
        if k in RESUMABLE_FIELDS:
            continue
        a, b = old_cfg.get(k), new_cfg.get(k)
        if isinstance(a, tuple):
            a = list(a)
        if a != b:
            raise ConfigError(f"resume: {k}={b!r} differs from {k}={a!r} recorded in {where}; use a new run_dir")
    if int(record.get("seed", -1)) != int(seed):
        raise ConfigError(f"resume: seed={seed} differs from seed={record.get('seed')} recorded in {where}")
    if list(record.get("class_names", [])) != list(dataset.class_names):
        raise ConfigError(f"resume: class_names {list(dataset.class_names)} differ from those recorded in {where}")
    if str(record.get("dataset_fingerprint", "")) != str(dataset.fingerprint):
        raise ConfigError(f"resume: dataset fingerprint differs from the one recorded in {where}; use a new run_dir")


def history_frame(rows: list[list[float]]) -> pd.DataFrame:
    """Turn history rows ([step, *HISTORY_COLUMNS]) into a frame with an integer step."""
    df = pd.DataFrame(rows, columns=["step", *HISTORY_COLUMNS])
    df["step"] = df["step"].astype(int)
    return df


def write_history(run_dir: Path, rows: list[list[float]]) -> None:
    """Write `run_dir/history.csv` atomically."""
    atomic_write_text(run_dir / HISTORY_NAME, history_frame(rows).to_csv(index=False))


def open_run(
    run_dir: Path, cfg: ACGANConfig, dataset: Any, seed: int, resume: bool
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Check `run_dir` against this run, write its config.json; return (record, checkpoint to resume or None)."""
    ckpt_path = run_dir / CHECKPOINT_NAME
    record = run_record(cfg, dataset, seed)
    ckpt = None
    if resume:
        if (run_dir / CONFIG_NAME).exists():
            check_resume(read_json(run_dir / CONFIG_NAME), cfg, dataset, seed, run_dir / CONFIG_NAME)
        if ckpt_path.exists():
            ckpt = torch_load(ckpt_path)
            if int(ckpt.get("format", -1)) != CHECKPOINT_FORMAT:
                raise ConfigError(f"resume: {ckpt_path} has checkpoint format {ckpt.get('format')}, "
                                  f"expected {CHECKPOINT_FORMAT}")
            check_resume(ckpt["record"], cfg, dataset, seed, ckpt_path)
    elif ckpt_path.exists():
        raise ConfigError(f"run_dir={run_dir} already holds {CHECKPOINT_NAME}; pass resume=True or use a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_NAME, record)  # before training starts
    return record, ckpt


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """Read `run_dir/history.csv`."""
    p = Path(run_dir) / HISTORY_NAME
    if not p.exists():
        raise ConfigError(f"run_dir={run_dir} has no {HISTORY_NAME}")
    return pd.read_csv(p)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Read `run_dir/config.json` (config, seed, class names, dataset fingerprint, versions)."""
    p = Path(run_dir) / CONFIG_NAME
    if not p.exists():
        raise ConfigError(f"run_dir={run_dir} has no {CONFIG_NAME}")
    return json.loads(p.read_text(encoding="utf-8"))
