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
import logging
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


log = logging.getLogger("hipaug")


def _log(msg: str) -> None:
    PROGRESS_LOG.append(msg)
    log.info(msg)


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
        self._finetune_dirs: dict[tuple, Path] = {}
        self._table8: dict[tuple[str, ...], tuple[pd.DataFrame, pd.DataFrame]] = {}
        deterministic(True)

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

    @property
    def results_path(self) -> Path:
        """`<results>/<profile>/<source>/` without creating it (the book reads it)."""
        return self._results_root / self.profile.name / self.source

    @cached_property
    def results_dir(self) -> Path:
        """`<results>/<profile>/<source>/`, created; run.json describes the data, profile and versions."""
        d = self.results_path
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
                    "difficulty": ph.limb_difficulty, "parts": ph.limb_parts and list(ph.limb_parts), "seed": self.sub_seed("phantom-limb")}
            build = lambda out: phantoms.write_limb_dataset(out / "data", **spec)  # noqa: E731
        else:
            spec = {"n": ph.pelvic_n, "fracture_rate": ph.fracture_rate, "difficulty": ph.difficulty,
                    "image_size": size, "seed": self.sub_seed("phantom-pelvic")}
            build = lambda out: phantoms.write_pelvic_dataset(out / "data", **spec)  # noqa: E731
        return self.step(f"phantom-{kind}", spec, build).path / "data"

    def _where(self, kind: str, root: Path) -> str:
        """How an error names a data set: the parameter for a user folder, else the phantom's path."""
        user = self.limb_dir if kind == "limb" else self.pelvic_dir
        return f"{kind}_dir={str(user)!r}" if user is not None else f"phantom {kind} set {root}"

    @cached_property
    def limb(self) -> ImageDataset:
        """The limb set: the user's folder or phantoms (at least 2 classes: a classifier and a conditional GAN)."""
        root = self.limb_dir or self._phantom("limb")
        ds = load_dataset(root, image_size=self.profile.image_size, min_classes=1)
        if len(ds.class_names) < 2:
            raise DataError(f"{self._where('limb', root)}: the limb set needs at least 2 classes, found "
                            f"{len(ds.class_names)} ({', '.join(ds.class_names)})")
        return ds

    @cached_property
    def pelvic(self) -> ImageDataset:
        """The pelvic set: the user's folder or phantoms (two classes, one the positive class)."""
        from .transfer import check_pelvic

        root = self.pelvic_dir or self._phantom("pelvic")
        ds = load_dataset(root, image_size=self.profile.image_size, min_classes=1)
        try:
            check_pelvic(ds, self.profile.transfer.positive_class)
        except DataError as exc:
            raise DataError(f"{self._where('pelvic', root)}: {exc}") from None
        return ds

    def check_data(self) -> "Pipeline":
        """Load and check both data sets now, before anything is trained or written."""
        _ = self.limb, self.pelvic  # cached properties: loading them is the check
        return self

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
            model = build_model(self.profile.arch, len(train.class_names), train.image_size, seed)
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
        from .transfer import finetune_folds

        model, pre_key = self.pretrained(condition, threshold, top_k)
        t = self.profile.transfer
        seed = self.sub_seed(f"finetune-{repeat}")
        folds = self.folds_for(repeat)
        spec = {"condition": condition, "pretrained": pre_key, "finetune": self.profile.finetune,
                "arch": self.profile.arch, "pelvic": self.pelvic.fingerprint, "k": t.k_folds, "repeat": repeat,
                "freeze_blocks": t.freeze_blocks, "positive": t.positive_class, "seed": seed}

        def build(out: Path) -> None:
            from .vgg import save_model

            df, preds, kept, hist = finetune_folds(condition, model, self.pelvic, self.profile.arch, self.profile.finetune,
                                             folds, t.positive_class, seed, freeze_blocks=t.freeze_blocks, repeat=repeat)
            atomic_write_text(out / "folds.csv", df.to_csv(index=False))
            atomic_write_text(out / "predictions.csv", preds.to_csv(index=False))
            atomic_write_text(out / "history.csv", hist.to_csv(index=False))
            save_model(kept, out / "model_fold0.pt", {"class_names": list(self.pelvic.class_names), "fold": 0})

        art = self.step("finetune", spec, build)
        self._finetune_dirs[(condition, threshold, top_k, repeat)] = art.path
        folds_df = pd.read_csv(art.path / "folds.csv")
        if threshold is not None or top_k is not None:
            folds_df = folds_df.assign(threshold=threshold, top_k=top_k)
        return folds_df, pd.read_csv(art.path / "predictions.csv")

    def finetune_history(self) -> pd.DataFrame:
        """Per-epoch fine-tuning history of every condition, repeat and fold of Table VIII."""
        self.table8()
        t = self.profile.transfer
        return pd.concat([pd.read_csv(self._finetune_dirs[(c, None, None, r)] / "history.csv")
                          for r in range(t.repeats) for c in t.conditions], ignore_index=True)

    def fold_model(self, condition: str, threshold: float | None = None, top_k: int | None = None):
        """The fine-tuned pelvic model of fold 0 of a condition (for Grad-CAM)."""
        from .vgg import load_model

        key = (condition, threshold, top_k, 0)
        if key not in self._finetune_dirs:
            self.condition_folds(condition, threshold, top_k)
        return load_model(self._finetune_dirs[key] / "model_fold0.pt")

    def folds_for(self, repeat: int = 0):
        """The patient-level folds shared by every condition."""
        from .transfer import make_folds

        return make_folds(self.pelvic, self.profile.transfer.k_folds, seed=self.sub_seed(f"folds-{repeat}"))

    def table8(self, conditions: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Folds and predictions of every condition (all repeats), recorded in the results store."""
        conditions = tuple(conditions or self.profile.transfer.conditions)
        if conditions not in self._table8:  # chapter 5 asks three times: read the artifacts once
            parts = [self.condition_folds(c, repeat=r) for r in range(self.profile.transfer.repeats) for c in conditions]
            folds = pd.concat([p[0] for p in parts], ignore_index=True)
            preds = pd.concat([p[1] for p in parts], ignore_index=True)
            self.record("table8_folds", folds)
            self._table8[conditions] = folds, preds
        folds, preds = self._table8[conditions]
        return folds.copy(), preds.copy()

    # ---------------------------------------------------------------- reporting
    def table8_report(self) -> dict[str, pd.DataFrame]:
        """Summary (mean, SD), paired tests and the side-by-side with the paper's Table VIII."""
        from .evaluate import METRICS, paired_tests, summarize
        from .paper import paper_table8

        folds, preds = self.table8()
        q = self.profile.quality
        summary = summarize(folds, METRICS)
        tests = []
        for a, b in (("with_gan", "without_gan"), ("with_gan", "classic"), ("classic", "without_gan"),
                     ("without_gan", "scratch"), ("with_gan", "unfiltered_gan")):
            if {a, b} <= set(folds["condition"]):
                t = paired_tests(folds, a, b, METRICS, n_boot=q.n_boot, seed=self.seed, alpha=q.alpha)
                tests.append(t.reset_index())
        tests = pd.concat(tests, ignore_index=True) if tests else pd.DataFrame()
        flat = summary.copy()
        flat.columns = [f"{m}_{s}" for m, s in flat.columns]
        self.record("table8_summary", flat.reset_index())
        self.record("paired_tests", tests)
        return {"folds": folds, "predictions": preds, "summary": summary, "tests": tests, "paper": paper_table8()}


    # ------------------------------------------------------------ beyond the paper
    def ablations(self) -> pd.DataFrame:
        """with_gan under other selection rules (thresholds, top-k), per fold, with the rule in columns."""
        a = self.profile.ablation
        parts = [self.condition_folds("with_gan", threshold=t)[0] for t in a.thresholds]
        parts += [self.condition_folds("with_gan", top_k=k)[0] for k in a.top_k]
        df = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if not df.empty:
            df["rule"] = [f"top-{int(k)}" if pd.notna(k) else f"p>={t:g}"
                          for t, k in zip(df.get("threshold", [None] * len(df)), df.get("top_k", [None] * len(df)))]
            n_sel = {f"p>={t:g}": len(self.filtered(threshold=t).selected) for t in a.thresholds}
            n_sel.update({f"top-{k}": len(self.filtered(top_k=k).selected) for k in a.top_k})
            df["n_synthetic"] = df["rule"].map(n_sel)
            self.record("ablation_folds", df)
        return df

    @cached_property
    def features(self) -> dict[str, np.ndarray]:
        """Penultimate-layer features of the limb filter VGG for real and synthetic images."""
        from .vgg import extract_features

        model, _, art = self.limb_classifier
        train, val = self.limb_split
        spec = {"classifier": art.key, "train": train.fingerprint, "val": val.fingerprint,
                "synthetic": self.synthetic.fingerprint}

        def build(out: Path) -> None:
            for name, ds in (("train", train), ("val", val), ("synthetic", self.synthetic)):
                np.save(out / f"{name}.npy", extract_features(model, ds.images, device=self.profile.filter_train.device))

        path = self.step("features", spec, build).path
        return {n: np.load(path / f"{n}.npy") for n in ("train", "val", "synthetic")}

    def gan_train_accuracy(self, which: str = "filtered") -> float:
        """GAN-train (Shmelkov et al. 2018): train on synthetic images only, test on real validation images."""
        from .data import patient_split
        from .vgg import predict_proba

        syn = self.filtered().selected if which == "filtered" else self.synthetic
        if len(syn) < 4 * len(syn.class_names) or min(syn.class_counts().values()) < 2:
            return float("nan")
        tr, va = patient_split(syn, self.profile.filter_train.val_fraction, seed=self.sub_seed("gan-train-split"))
        model, _, _ = self.classifier(f"gan-train-{which}", syn.subset(tr), self.profile.filter_train,
                                      val=syn.subset(va), seed_name="gan-train")
        val = self.limb_split[1]
        return float((predict_proba(model, val.images).argmax(1) == val.labels.numpy()).mean())

    def gan_quality(self) -> dict:
        """Fréchet distance, precision/recall, diversity and GAN-train/GAN-test, recorded as gan_quality.json."""
        from .evaluate import compare_diversity, frechet_distance, gan_test_accuracy, precision_recall

        f = self.features
        k = self.profile.quality.pr_k
        val_y = self.limb_split[1].labels.numpy()
        syn = self.synthetic
        accepted = self.filtered().scores["accepted"].to_numpy()
        rng = np.random.default_rng(self.sub_seed("quality"))

        def equal_n(a: np.ndarray, n: int) -> np.ndarray:
            return a[np.sort(rng.permutation(len(a))[:n])] if len(a) > n else a

        n = min(len(f["val"]), len(f["synthetic"]), len(f["train"]))
        real_a, real_b = equal_n(f["train"], n), equal_n(f["val"], n)
        q = {
            "n_per_set": int(n),
            "fd_real_vs_real": frechet_distance(real_a, real_b),
            "fd_synthetic_vs_real": frechet_distance(equal_n(f["synthetic"], n), real_b),
            "pr_real_vs_real": precision_recall(real_b, real_a, k=k),
            "pr_synthetic": precision_recall(real_b, equal_n(f["synthetic"], n), k=k),
        }
        n_acc, n_rej = int(accepted.sum()), int((~accepted).sum())
        m = min(n_acc, n_rej)
        q["n_accepted"], q["n_rejected"] = n_acc, n_rej
        q["n_real_train"] = len(self.limb_split[0])  # the ledger judges n_accepted against it
        if m >= 10:  # equal sizes: the Fréchet distance is biased upwards for small sets
            q["fd_accepted_vs_real"] = frechet_distance(equal_n(f["synthetic"][accepted], m), real_b)
            q["fd_rejected_vs_real"] = frechet_distance(equal_n(f["synthetic"][~accepted], m), real_b)
            q["pr_accepted"] = precision_recall(real_b, equal_n(f["synthetic"][accepted], m), k=k)
            q["pr_rejected"] = precision_recall(real_b, equal_n(f["synthetic"][~accepted], m), k=k)
        gan_test, _ = gan_test_accuracy(self.synthetic_probs, syn.labels.numpy(), syn.class_names)
        q["gan_test_accuracy"] = float(gan_test)
        q["gan_train_accuracy_filtered"] = self.gan_train_accuracy("filtered")
        q["gan_train_accuracy_unfiltered"] = self.gan_train_accuracy("unfiltered")
        q["real_val_accuracy"] = self.filter_accuracy()["real_val_accuracy"]
        q["acceptance_rate"] = float(accepted.mean())

        def kn(frac: float, n_: int) -> list[int]:
            return [int(round(frac * n_)), int(n_)]

        n_syn = len(syn)
        q["counts"] = {
            "gan_test": kn(gan_test, n_syn),
            "real_val": kn(q["real_val_accuracy"], len(val_y)),
            "precision_synthetic": kn(q["pr_synthetic"]["precision"], q["pr_synthetic"]["n_fake"]),
            "precision_real": kn(q["pr_real_vs_real"]["precision"], q["pr_real_vs_real"]["n_fake"]),
        }
        if "pr_accepted" in q:
            q["counts"]["precision_accepted"] = kn(q["pr_accepted"]["precision"], q["pr_accepted"]["n_fake"])
            q["counts"]["precision_rejected"] = kn(q["pr_rejected"]["precision"], q["pr_rejected"]["n_fake"])
        div = compare_diversity(f["val"], val_y, f["synthetic"], syn.labels.numpy(), class_names=syn.class_names)
        self.record("diversity", div.reset_index() if div.index.name else div)
        self.record("gan_quality", q)
        return q

    def filter_accuracy(self) -> dict[str, float]:
        """The filter's accuracy on held-out real limb images and on the AC-GAN's samples (GAN-test)."""
        val, syn = self.limb_split[1], self.synthetic
        real = float((self._val_probs.argmax(1) == val.labels.numpy()).mean())
        gan_test = float((self.synthetic_probs.argmax(1) == syn.labels.numpy()).mean())
        return {"real_val_accuracy": real, "gan_test_accuracy": gan_test,
                "gan_test_ratio": gan_test / real if real > 0 else float("nan")}

    def operating_point(self) -> pd.DataFrame:
        """Check the run against the profile's calibration targets (phantom data only); recorded as a CSV."""
        op = self.profile.operating_point
        rows = []
        if self.source == "phantom":
            if op.min_filter_accuracy is not None or op.min_gan_test_ratio is not None:
                acc = self.filter_accuracy()
                if op.min_filter_accuracy is not None:
                    rows.append(("filter accuracy on held-out real limb images", ">=", op.min_filter_accuracy, None,
                                 acc["real_val_accuracy"]))
                if op.min_gan_test_ratio is not None:
                    rows.append(("GAN-test accuracy / filter accuracy on real images", ">=", op.min_gan_test_ratio,
                                 None, acc["gan_test_ratio"]))
            if op.without_gan_accuracy:
                folds, _ = self.table8()
                mean = float(folds.loc[folds["condition"] == "without_gan", "accuracy"].mean())
                rows.append(("without_gan mean fold accuracy", "in", *op.without_gan_accuracy, mean))
        df = pd.DataFrame(rows, columns=["target", "rule", "low", "high", "measured"])
        df["met"] = [bool(lo <= m <= hi) if rule == "in" else bool(m >= lo)
                     for rule, lo, hi, m in zip(df["rule"], df["low"], df["high"], df["measured"])]
        self.record("operating_point", df)
        return df

    @cached_property
    def _val_probs(self) -> np.ndarray:
        from .vgg import predict_proba

        return predict_proba(self.limb_classifier[0], self.limb_split[1].images)


def _real_only_sets(split):
    from .transfer import PretrainSets

    return PretrainSets(split[0], split[1], None, None)


# -------------------------------------------------------------------- CLI handlers
def cli_reproduce(args) -> int:
    """`hipaug reproduce`: run everything and write the Table VIII analogue (CSV + Markdown)."""
    from .evaluate import METRICS, format_mean_sd

    t0 = time.perf_counter()
    pipe = Pipeline(args.profile, args.limb_dir, args.pelvic_dir, artifacts=args.artifacts, device=args.device,
                    seed=args.seed, results=args.out).check_data()
    report = pipe.table8_report()
    table = format_mean_sd(report["summary"])
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


def _profile_for(args, image_size: int | None = None) -> Profile:
    """The profile named by --profile with the command's --image-size/--device/--seed applied."""
    return load_profile(args.profile, device=getattr(args, "device", None), seed=args.seed, image_size=image_size)


def cli_train_gan(args) -> int:
    """`hipaug train-gan`: train the AC-GAN on a dataset folder into a run folder."""
    from .acgan import train_acgan

    p = _profile_for(args, args.image_size)
    changes = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
    if args.device:
        changes["device"] = args.device
    cfg = dataclasses.replace(p.acgan, **changes)
    ds = load_dataset(args.data, image_size=p.image_size)
    run = train_acgan(cfg, ds, args.out, args.seed, resume=args.resume)
    print(f"trained {run.step} steps on {len(ds)} images ({len(ds.class_names)} classes): {args.out}")
    return 0


def cli_sample(args) -> int:
    """`hipaug sample`: draw K images per class from a trained AC-GAN into a dataset folder."""
    from .acgan import sample_to_folder

    if args.per_class < 1:
        raise ConfigError(f"--per-class={args.per_class} must be >= 1")
    out = sample_to_folder(args.run, args.out, args.per_class, args.seed)
    print(f"wrote {out}")
    return 0


def cli_train_classifier(args) -> int:
    """`hipaug train-classifier`: train the VGG-16 (the realism filter) on a real dataset folder."""
    from .transfer import build_model
    from .vgg import save_model, train_classifier

    p = _profile_for(args, args.image_size)
    cfg = p.filter_train
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.device:
        cfg = dataclasses.replace(cfg, device=args.device)
    ds = load_dataset(args.data, image_size=p.image_size)
    model = build_model(p.arch, len(ds.class_names), ds.image_size, args.seed)
    res = train_classifier(model, ds, cfg, seed=args.seed, run_dir=args.out)
    save_model(res.model, Path(args.out) / "model.pt", {"class_names": list(ds.class_names), "seed": args.seed,
                                                         "data_fingerprint": ds.fingerprint})
    best = res.history.loc[res.history["epoch"] == res.best_epoch].iloc[0]
    print(f"best epoch {res.best_epoch}: val_acc={best.get('val_acc', float('nan')):.3f}; saved {args.out}/model.pt")
    return 0


def cli_filter(args) -> int:
    """`hipaug filter`: keep the synthetic images the classifier finds realistic."""
    from .filter import filter_synthetic, rule_for, write_filter_result
    from .vgg import load_model

    # The profile's rule unless --threshold/--top-k is given (no separate CLI default to drift).
    threshold, top_k = rule_for(load_profile(args.profile).filter, args.threshold, args.top_k)
    model_path = Path(args.classifier) / "model.pt"
    if not model_path.is_file():
        raise ConfigError(f"--classifier {args.classifier}: no model.pt (train one with `hipaug train-classifier`)")
    model, extra = load_model(model_path, return_extra=True)
    classes = tuple(extra.get("class_names") or ())
    if not classes:
        raise ConfigError(f"{model_path}: the checkpoint records no class names")
    synthetic = load_dataset(args.synthetic, image_size=int(model.config["image_size"]))
    result = filter_synthetic(model, classes, synthetic, threshold=threshold, top_k=top_k)
    write_filter_result(result, args.out)
    print(result.acceptance.round(3).to_string())
    print(f"kept {len(result.selected)} of {len(synthetic)} synthetic images: {args.out}")
    return 0
