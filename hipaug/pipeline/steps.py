"""The experiment's steps as cached pipeline stages: AC-GAN, filter, classifiers, transfer, Table VIII."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hipaug.core import atomic_write_text, write_json
from hipaug.core.artifacts import Artifact
from hipaug.data import ImageDataset, load_dataset
from hipaug.pipeline.store import PipelineBase


class ExperimentSteps(PipelineBase):
    """The paper's steps, each one cached artifact: AC-GAN, samples, filter, pre-training, fine-tuning folds."""

    # ---------------------------------------------------------------- AC-GAN
    @cached_property
    def gan(self) -> Artifact:
        """The AC-GAN trained on the real limb training images (resumes a killed run)."""
        from hipaug.training import train_acgan

        train = self.limb_split[0]
        seed = self.sub_seed("acgan")
        spec = {"acgan": self.profile.acgan, "data": train.fingerprint, "seed": seed}
        return self.step("acgan", spec, lambda out: train_acgan(self.profile.acgan, train, out, seed, resume=True))

    @cached_property
    def synthetic(self) -> ImageDataset:
        """The unfiltered pool of AC-GAN samples (`filter.synthetic_per_class` per class)."""
        from hipaug.training import sample_to_folder

        n, seed = self.profile.filter.synthetic_per_class, self.sub_seed("sample")
        spec = {"gan": self.gan.key, "per_class": n, "seed": seed}
        art = self.step("synthetic", spec, lambda out: sample_to_folder(self.gan.path, out / "data", n, seed))
        return load_dataset(art.path / "data", image_size=self.profile.image_size)

    # ---------------------------------------------------------------- classifiers
    def classifier_artifact(self, name: str, train: ImageDataset, cfg, val: ImageDataset | None = None,
                            seed_name: str = "limb-classifier") -> Artifact:
        """Train (or reuse) a VGG-16 on `train`; identical inputs share one artifact whatever `name`."""
        from hipaug.method.transfer import build_model
        from hipaug.models.vgg import save_model
        from hipaug.training import train_classifier

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

        return self.step("classifier", spec, build)

    def classifier(self, name: str, train: ImageDataset, cfg, val: ImageDataset | None = None,
                   seed_name: str = "limb-classifier") -> tuple[torch.nn.Module, pd.DataFrame, Artifact]:
        """The trained VGG-16 (in eval mode), its history and its artifact (see `classifier_artifact`)."""
        art = self.classifier_artifact(name, train, cfg, val, seed_name)
        return _eval_model(art), pd.read_csv(art.path / "history.csv"), art

    @cached_property
    def filter_artifact(self) -> Artifact:
        """The realism filter's artifact: a VGG-16 trained on the real limb training images."""
        return self.classifier_artifact("limb-filter", self.limb_split[0], self.profile.filter_train)

    @cached_property
    def limb_classifier(self) -> tuple[torch.nn.Module, pd.DataFrame, Artifact]:
        """The VGG-16 realism filter, trained on the real limb training images."""
        art = self.filter_artifact
        return _eval_model(art), pd.read_csv(art.path / "history.csv"), art

    @cached_property
    def synthetic_probs(self) -> np.ndarray:
        """Filter probabilities of every synthetic image (one scoring pass for all rules)."""
        from hipaug.training import predict_proba

        spec = {"classifier": self.filter_artifact.key, "synthetic": self.synthetic.fingerprint}

        def build(out: Path) -> None:
            p = predict_proba(self.limb_classifier[0], self.synthetic.images, device=self.profile.filter_train.device)
            np.save(out / "probs.npy", p.astype(np.float32))

        return np.load(self.step("filter-scores", spec, build).path / "probs.npy")

    def filtered(self, threshold: float | None = None, top_k: int | None = None):
        """FilterResult under a rule (the profile's by default)."""
        from hipaug.method.filter import filter_from_probs

        if threshold is None and top_k is None:
            threshold, top_k = self.profile.filter.threshold, self.profile.filter.top_k
        return filter_from_probs(self.synthetic_probs, self.synthetic.class_names, self.synthetic, threshold, top_k)

    # ---------------------------------------------------------------- transfer
    def pretrain_sets(self, threshold: float | None = None, top_k: int | None = None):
        from hipaug.method.transfer import PretrainSets

        train, val = self.limb_split
        return PretrainSets(train, val, self.filtered(threshold, top_k).selected, self.synthetic)

    def pretrain_artifact(self, condition: str, threshold: float | None = None,
                          top_k: int | None = None) -> Artifact | None:
        """The pre-training artifact of a condition (None for scratch), built if missing; no model is loaded."""
        from hipaug.method.transfer import pretrain_config, pretrain_set

        if condition == "scratch":
            return None
        if (condition, threshold, top_k) not in self._pretrained:  # each of the k folds asks
            sets = self.pretrain_sets(threshold, top_k) if condition in ("with_gan", "unfiltered_gan") else \
                _real_only_sets(self.limb_split)
            train = pretrain_set(condition, sets, self.sub_seed("unfiltered-pick"))
            cfg = pretrain_config(condition, self.profile.pretrain, len(sets.real_train), len(train))
            self._pretrained[(condition, threshold, top_k)] = self.classifier_artifact(
                f"pretrain-{condition}", train, cfg, val=sets.real_val)
        return self._pretrained[(condition, threshold, top_k)]

    def pretrained(self, condition: str, threshold: float | None = None, top_k: int | None = None):
        """The pre-trained backbone of a condition (None for scratch) and its artifact key."""
        art = self.pretrain_artifact(condition, threshold, top_k)
        return (None, "scratch") if art is None else (_eval_model(art), art.key)

    def finetune_fold(self, condition: str, threshold: float | None = None, top_k: int | None = None,
                      repeat: int = 0, fold: int = 0) -> Artifact:
        """One fold of one repeat of a condition, fine-tuned (cached): the unit a grid worker runs."""
        from hipaug.method.transfer import finetune_folds

        pre = self.pretrain_artifact(condition, threshold, top_k)
        t = self.profile.transfer
        seed = self.sub_seed(f"finetune-{repeat}")
        spec = {"condition": condition, "pretrained": pre.key if pre is not None else "scratch",
                "finetune": self.profile.finetune, "arch": self.profile.arch, "pelvic": self.pelvic.fingerprint,
                "k": t.k_folds, "repeat": repeat, "fold": fold, "freeze_blocks": t.freeze_blocks,
                "positive": t.positive_class, "seed": seed}

        def build(out: Path) -> None:
            from hipaug.models.vgg import save_model

            model = _eval_model(pre) if pre is not None else None
            df, preds, kept, hist = finetune_folds(
                condition, model, self.pelvic, self.profile.arch, self.profile.finetune, self.folds_for(repeat),
                t.positive_class, seed, freeze_blocks=t.freeze_blocks, repeat=repeat, only=(fold,))
            atomic_write_text(out / "folds.csv", df.to_csv(index=False))
            atomic_write_text(out / "predictions.csv", preds.to_csv(index=False))
            atomic_write_text(out / "history.csv", hist.to_csv(index=False))
            if kept is not None:  # fold 0's model serves Grad-CAM; the others are not kept
                save_model(kept, out / "model_fold0.pt", {"class_names": list(self.pelvic.class_names), "fold": 0})

        return self.step("finetune-fold", spec, build)

    def condition_folds(self, condition: str, threshold: float | None = None, top_k: int | None = None,
                        repeat: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Per-fold metrics and per-image predictions of one condition, its k fold artifacts in fold order."""
        arts = [self.finetune_fold(condition, threshold, top_k, repeat, f) for f in range(self.profile.transfer.k_folds)]
        self._finetune_dirs[(condition, threshold, top_k, repeat)] = [a.path for a in arts]
        folds_df = pd.concat([pd.read_csv(a.path / "folds.csv") for a in arts], ignore_index=True)
        if threshold is not None or top_k is not None:
            folds_df = folds_df.assign(threshold=threshold, top_k=top_k)
        return folds_df, pd.concat([pd.read_csv(a.path / "predictions.csv") for a in arts], ignore_index=True)

    def folds_of(self, conditions: tuple[str, ...], repeat: int = 0) -> pd.DataFrame:
        """Per-fold metrics of several conditions in one repeat (their grid built by the executor first)."""
        self.run_grid(tuple(conditions))
        return pd.concat([self.condition_folds(c, repeat=repeat)[0] for c in conditions], ignore_index=True)

    def finetune_history(self) -> pd.DataFrame:
        """Per-epoch fine-tuning history of every condition, repeat and fold of Table VIII."""
        self.table8()
        t = self.profile.transfer
        return pd.concat([pd.read_csv(d / "history.csv") for r in range(t.repeats) for c in t.conditions
                          for d in self._finetune_dirs[(c, None, None, r)]], ignore_index=True)

    def fold_model(self, condition: str, threshold: float | None = None, top_k: int | None = None):
        """The fine-tuned pelvic model of fold 0 of a condition (for Grad-CAM)."""
        from hipaug.models.vgg import load_model

        return load_model(self.finetune_fold(condition, threshold, top_k, repeat=0, fold=0).path / "model_fold0.pt")

    def folds_for(self, repeat: int = 0):
        """The patient-level folds shared by every condition."""
        from hipaug.method.transfer import make_folds

        return make_folds(self.pelvic, self.profile.transfer.k_folds, seed=self.sub_seed(f"folds-{repeat}"))

    def table8(self, conditions: tuple[str, ...] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Folds and predictions of every condition (all repeats), recorded in the results store."""
        conditions = tuple(conditions or self.profile.transfer.conditions)
        if conditions not in self._table8:  # chapter 5 asks three times: read the artifacts once
            self.run_grid(conditions)  # a parallel executor builds every fold first; serially: on demand below
            parts = [self.condition_folds(c, repeat=r) for r in range(self.profile.transfer.repeats) for c in conditions]
            folds = pd.concat([p[0] for p in parts], ignore_index=True)
            preds = pd.concat([p[1] for p in parts], ignore_index=True)
            self.record("table8_folds", folds)
            self._table8[conditions] = folds, preds
        folds, preds = self._table8[conditions]
        return folds.copy(), preds.copy()

    def run_grid(self, conditions: tuple[str, ...] | None = None, ablations: bool = False) -> None:
        """Build the artifacts of Table VIII (and the ablation rules) with the pipeline's executor.

        With no executor (the default) this does nothing: each step is then built when first asked for.
        """
        if self.executor is None:
            return
        from hipaug.pipeline.grid import grid_tasks, resolve_executor

        resolve_executor(self.executor).run(self, grid_tasks(self, conditions, ablations=ablations))


def _eval_model(art: Artifact) -> torch.nn.Module:
    """The classifier stored in an artifact, in eval mode."""
    from hipaug.models.vgg import load_model

    model = load_model(art.path / "model.pt")
    model.eval()
    return model


def _real_only_sets(split):
    from hipaug.method.transfer import PretrainSets

    return PretrainSets(split[0], split[1], None, None)
