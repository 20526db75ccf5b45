"""The whole pipeline of Lin & Chung (2019), one cached step at a time.

`Pipeline` is what the notebooks walk through (one step per chapter) and what
`hipaug reproduce` runs end to end. Every step goes through the artifact cache
(`hipaug.artifacts.load_or_run`), keyed by its configuration, the fingerprints of its
inputs, its seed and the hipaug version: a notebook run alone under papermill recomputes
only what no earlier chapter has computed with the same inputs.

Results that the book and the claims ledger read are written to a results store,
`<results>/<profile>/<source>/`, where `source` is `phantom` or `custom-<fingerprint>` for a
user's folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import platform
import sys
import time
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import __version__
from .artifacts import Artifact, default_root, fingerprint, load_or_run
from .config import CONDITIONS, Profile, load_profile
from .data import ImageDataset, load_dataset
from .errors import ConfigError, DataError
from .utils import atomic_write_text, deterministic, read_json, write_json

PROGRESS_LOG: list[str] = []


def derive_seed(seed: int, name: str) -> int:
    """Derive a named sub-seed from the one seed (stable across runs and platforms)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{name}".encode()).digest()[:4], "little") & 0x7FFFFFFF


def _log(msg: str) -> None:
    PROGRESS_LOG.append(msg)
    print(f"[hipaug] {msg}", file=sys.stderr, flush=True)


def default_results_root() -> Path:
    """Results store root: $HIPAUG_RESULTS or <artifacts>/../results."""
    import os

    if "HIPAUG_RESULTS" in os.environ:
        return Path(os.environ["HIPAUG_RESULTS"])
    return default_root().resolve().parent / "results"


class Pipeline:
    """Lazily computed, cached steps of the reproduction for one profile and data source."""

    def __init__(self, profile: Profile | str = "default", limb_dir: str | Path | None = None,
                 pelvic_dir: str | Path | None = None, artifacts: str | Path | None = None,
                 results: str | Path | None = None, device: str | None = None, seed: int | None = None):
        if isinstance(profile, str) or isinstance(profile, Path):
            profile = load_profile(profile, device=device, seed=seed)
        elif device is not None or seed is not None:
            raise ConfigError("pass device/seed overrides together with a profile name, not a Profile object")
        self.profile = profile
        self.limb_dir = self._check_dir(limb_dir, "limb_dir")
        self.pelvic_dir = self._check_dir(pelvic_dir, "pelvic_dir")
        self.artifacts = Path(artifacts) if artifacts is not None else default_root()
        self._results_root = Path(results) if results is not None else default_results_root()
        deterministic(True)
        torch.set_num_threads(max(1, torch.get_num_threads()))

    @staticmethod
    def _check_dir(d: str | Path | None, name: str) -> Path | None:
        if d is None or str(d) in ("", "None"):
            return None
        p = Path(d).expanduser()
        if not p.is_dir():
            raise DataError(f"{name}={str(d)!r} is not a directory")
        return p.resolve()

    # ---------------------------------------------------------------- seeds, store
    @property
    def seed(self) -> int:
        return self.profile.seed

    def sub_seed(self, name: str) -> int:
        """The seed of one step, derived from the profile's seed."""
        return derive_seed(self.seed, name)

    def step(self, name: str, spec: dict, build) -> Artifact:
        """Run one cached step, logging whether it was reused."""
        t0 = time.perf_counter()
        art = load_or_run(name, spec, build, root=self.artifacts)
        _log(f"{name}: {'cached' if art.cached else 'built'} {art.path} ({time.perf_counter() - t0:.1f}s)")
        return art

    @cached_property
    def source(self) -> str:
        """'phantom' or 'custom-<fingerprint>' naming the data the results come from."""
        if self.limb_dir is None and self.pelvic_dir is None:
            return "phantom"
        fp = fingerprint([self.limb.fingerprint, self.pelvic.fingerprint])
        return f"custom-{fp[:10]}"

    @cached_property
    def results_dir(self) -> Path:
        """`<results>/<profile>/<source>/`; run.json describes the data, profile and versions."""
        d = self._results_root / self.profile.name / self.source
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "run.json", self.describe())
        return d

    def describe(self) -> dict:
        """Profile, data source with fingerprints, seed and versions (recorded with results)."""
        return {
            "profile": self.profile.name, "seed": self.seed, "source": self.source,
            "limb_dir": str(self.limb_dir) if self.limb_dir else None,
            "pelvic_dir": str(self.pelvic_dir) if self.pelvic_dir else None,
            "limb_fingerprint": self.limb.fingerprint, "pelvic_fingerprint": self.pelvic.fingerprint,
            "image_size": self.profile.image_size, "hipaug": __version__, "torch": torch.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
        }

    def record(self, name: str, obj: Any) -> Path:
        """Write a result (DataFrame -> CSV, dict -> JSON) into the results store."""
        d = self.results_dir
        if isinstance(obj, pd.DataFrame):
            return atomic_write_text(d / f"{name}.csv", obj.to_csv(index=False))
        return write_json(d / f"{name}.json", obj)

    # ---------------------------------------------------------------- data
    def _phantom(self, kind: str) -> Path:
        from . import phantoms

        ph, size = self.profile.phantom, self.profile.image_size
        if kind == "limb":
            spec = {"per_class": ph.limb_per_class, "labels": ph.limb_labels, "image_size": size,
                    "seed": self.sub_seed("phantom-limb")}
            build = lambda out: phantoms.write_limb_dataset(out / "data", **spec)  # noqa: E731
        else:
            spec = {"n": ph.pelvic_n, "fracture_rate": ph.fracture_rate, "difficulty": ph.difficulty,
                    "image_size": size, "seed": self.sub_seed("phantom-pelvic")}
            build = lambda out: phantoms.write_pelvic_dataset(out / "data", **spec)  # noqa: E731
        return self.step(f"phantom-{kind}", spec, build).path / "data"

    @cached_property
    def limb(self) -> ImageDataset:
        """The limb set: the user's folder or phantoms."""
        root = self.limb_dir or self._phantom("limb")
        return load_dataset(root, image_size=self.profile.image_size)

    @cached_property
    def pelvic(self) -> ImageDataset:
        """The pelvic set: the user's folder or phantoms."""
        root = self.pelvic_dir or self._phantom("pelvic")
        ds = load_dataset(root, image_size=self.profile.image_size)
        from .transfer import check_pelvic

        check_pelvic(ds, self.profile.transfer.positive_class)
        return ds

    @cached_property
    def limb_split(self) -> tuple[ImageDataset, ImageDataset]:
        """(train, val) split of the real limb set by patient, shared by every step."""
        from .transfer import split_limb

        return split_limb(self.limb, self.profile.pretrain.val_fraction, seed=self.sub_seed("limb-split"))

    # ---------------------------------------------------------------- AC-GAN
    @cached_property
    def gan(self) -> Artifact:
        """The AC-GAN trained on the real limb training images (resumes a killed run)."""
        from .acgan import train_acgan

        train = self.limb_split[0]
        seed = self.sub_seed("acgan")
        spec = {"acgan": self.profile.acgan, "data": train.fingerprint, "seed": seed}
        return self.step("acgan", spec, lambda out: train_acgan(self.profile.acgan, train, out, seed, resume=True))

    @cached_property
    def synthetic(self) -> ImageDataset:
        """The unfiltered pool of AC-GAN samples (`filter.synthetic_per_class` per class)."""
        from .acgan import sample_to_folder

        n, seed = self.profile.filter.synthetic_per_class, self.sub_seed("sample")
        spec = {"gan": self.gan.key, "per_class": n, "seed": seed}
        art = self.step("synthetic", spec, lambda out: sample_to_folder(self.gan.path, out / "data", n, seed))
        return load_dataset(art.path / "data", image_size=self.profile.image_size)

    # ---------------------------------------------------------------- classifiers
    def classifier(self, name: str, train: ImageDataset, cfg, val: ImageDataset | None = None,
                   seed_name: str = "limb-classifier") -> tuple[torch.nn.Module, pd.DataFrame, Artifact]:
        """Train (or reuse) a VGG-16 on `train`; identical inputs share one artifact whatever `name`."""
        from .transfer import build_model
        from .vgg import load_model, save_model, train_classifier

        val = val if val is not None else self.limb_split[1]
        seed = self.sub_seed(seed_name)
        spec = {"arch": self.profile.arch, "train_cfg": cfg, "train": train.fingerprint, "val": val.fingerprint,
                "classes": list(train.class_names), "image_size": train.image_size, "seed": seed}

        def build(out: Path) -> None:
            model = build_model(self.profile.arch, len(train.class_names), train.image_size)
            res = train_classifier(model, train, cfg, seed=seed, val=val)
            save_model(res.model, out / "model.pt", {"class_names": list(train.class_names)})
            atomic_write_text(out / "history.csv", res.history.to_csv(index=False))
            write_json(out / "summary.json", {"name": name, "best_epoch": int(res.best_epoch), "n_train": len(train),
                                              "n_val": len(val), "class_names": list(train.class_names)})

        art = self.step("classifier", spec, build)
        model = load_model(art.path / "model.pt")
        model.eval()
        return model, pd.read_csv(art.path / "history.csv"), art

    @cached_property
    def limb_classifier(self) -> tuple[torch.nn.Module, pd.DataFrame, Artifact]:
        """The VGG-16 realism filter, trained on the real limb training images."""
        return self.classifier("limb-filter", self.limb_split[0], self.profile.filter_train)

    @cached_property
    def synthetic_probs(self) -> np.ndarray:
        """Filter probabilities of every synthetic image (one scoring pass for all rules)."""
        from .vgg import predict_proba

        model, _, art = self.limb_classifier
        spec = {"classifier": art.key, "synthetic": self.synthetic.fingerprint}

        def build(out: Path) -> None:
            p = predict_proba(model, self.synthetic.images, device=self.profile.filter_train.device)
            np.save(out / "probs.npy", p.astype(np.float32))

        return np.load(self.step("filter-scores", spec, build).path / "probs.npy")

    def filtered(self, threshold: float | None = None, top_k: int | None = None):
        """FilterResult under a rule (the profile's by default)."""
        from .filter import filter_from_probs

        if threshold is None and top_k is None:
            threshold, top_k = self.profile.filter.threshold, self.profile.filter.top_k
        return filter_from_probs(self.synthetic_probs, self.synthetic.class_names, self.synthetic, threshold, top_k)

    # ---------------------------------------------------------------- transfer
    def pretrain_sets(self, threshold: float | None = None, top_k: int | None = None):
        from .transfer import PretrainSets

        train, val = self.limb_split
        return PretrainSets(train, val, self.filtered(threshold, top_k).selected, self.synthetic)

    def pretrained(self, condition: str, threshold: float | None = None, top_k: int | None = None):
        """The pre-trained backbone of a condition (None for scratch) and its artifact key."""
        from .augment import AugmentConfig
        from .transfer import pretrain_set

        if condition == "scratch":
            return None, "scratch"
        sets = self.pretrain_sets(threshold, top_k) if condition in ("with_gan", "unfiltered_gan") else \
            _real_only_sets(self.limb_split)
        train = pretrain_set(condition, sets, self.sub_seed("unfiltered-pick"))
        cfg = self.profile.pretrain
        augment = (cfg.augment or AugmentConfig()) if condition == "classic" else None
        epochs = max(1, int(round(cfg.epochs * len(sets.real_train) / len(train))))
        cfg = dataclasses.replace(cfg, augment=augment, epochs=epochs)
        model, _, art = self.classifier(f"pretrain-{condition}", train, cfg, val=sets.real_val)
        return model, art.key

    def condition_folds(self, condition: str, threshold: float | None = None, top_k: int | None = None,
                        repeat: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-fold metrics and per-image predictions of one condition (cached)."""
        from .transfer import finetune_folds, make_folds

        model, pre_key = self.pretrained(condition, threshold, top_k)
        t = self.profile.transfer
        seed = self.sub_seed(f"finetune-{repeat}")
        folds = make_folds(self.pelvic, t.k_folds, seed=self.sub_seed(f"folds-{repeat}"))
        spec = {"condition": condition, "pretrained": pre_key, "finetune": self.profile.finetune,
                "arch": self.profile.arch, "pelvic": self.pelvic.fingerprint, "k": t.k_folds, "repeat": repeat,
                "freeze_blocks": t.freeze_blocks, "positive": t.positive_class, "seed": seed}

        def build(out: Path) -> None:
            df, preds = finetune_folds(condition, model, self.pelvic, self.profile.arch, self.profile.finetune, folds,
                                       t.positive_class, seed, freeze_blocks=t.freeze_blocks, repeat=repeat)
            atomic_write_text(out / "folds.csv", df.to_csv(index=False))
            atomic_write_text(out / "predictions.csv", preds.to_csv(index=False))

        art = self.step("finetune", spec, build)
        return pd.read_csv(art.path / "folds.csv"), pd.read_csv(art.path / "predictions.csv")

    def table8(self, conditions: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Folds and predictions of every condition (all repeats), recorded in the results store."""
        conditions = conditions or self.profile.transfer.conditions
        parts = [self.condition_folds(c, repeat=r) for r in range(self.profile.transfer.repeats) for c in conditions]
        folds = pd.concat([p[0] for p in parts], ignore_index=True)
        preds = pd.concat([p[1] for p in parts], ignore_index=True)
        self.record("table8_folds", folds)
        return folds, preds

    # ---------------------------------------------------------------- reporting
    def table8_report(self) -> dict[str, pd.DataFrame]:
        """Summary (mean, SD), paired tests and the side-by-side with the paper's Table VIII."""
        from .evaluate import METRICS, paired_tests, summarize
        from .paper import paper_table8

        folds, _ = self.table8()
        q = self.profile.quality
        summary = summarize(folds, METRICS)
        tests = []
        for a, b in (("with_gan", "without_gan"), ("with_gan", "classic"), ("classic", "without_gan"),
                     ("without_gan", "scratch"), ("with_gan", "unfiltered_gan")):
            if {a, b} <= set(folds["condition"]):
                t = paired_tests(folds, a, b, METRICS, n_boot=q.n_boot, seed=self.seed, alpha=q.alpha)
                tests.append(t)
        tests = pd.concat(tests, ignore_index=True) if tests else pd.DataFrame()
        self.record("table8_summary", summary.reset_index() if "condition" not in summary.columns else summary)
        self.record("paired_tests", tests)
        return {"folds": folds, "summary": summary, "tests": tests, "paper": paper_table8()}


def _real_only_sets(split):
    from .transfer import PretrainSets

    return PretrainSets(split[0], split[1], None, None)


# -------------------------------------------------------------------- CLI handlers
def cli_reproduce(args) -> int:
    """`hipaug reproduce`: run everything and write the Table VIII analogue (CSV + Markdown)."""
    from .evaluate import METRICS, format_mean_sd

    t0 = time.perf_counter()
    pipe = Pipeline(args.profile, args.limb_dir, args.pelvic_dir, artifacts=args.artifacts, device=args.device,
                    seed=args.seed, results=args.out)
    report = pipe.table8_report()
    table = format_mean_sd(report["summary"], METRICS)
    out = pipe.results_dir
    atomic_write_text(out / "table8.csv", table.to_csv())
    md = ["# Table VIII analogue", "", f"profile `{pipe.profile.name}`, data `{pipe.source}`, seed {pipe.seed}", "",
          table.to_markdown() if hasattr(table, "to_markdown") else table.to_string(), ""]
    atomic_write_text(out / "table8.md", "\n".join(md))
    print(table.to_string())
    if not report["tests"].empty:
        print()
        print(report["tests"].round(4).to_string(index=False))
    print(f"\nwrote {out}/table8.csv and table8.md in {time.perf_counter() - t0:.0f}s")
    return 0
