"""The experiment's steps, one entry each: phantoms, AC-GAN, samples, realism filter, pre-training, fine-tuning.

Each `Step` (see `hipaug.pipeline.step`) declares its inputs, the spec that keys its artifact,
how it is built and read back, and its cost. The specs are those the artifact store has always
used, so a store built before keeps serving. The node constructors below (`finetune(...)`, ...)
are the only place a node's parameters and id are spelled.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from hipaug.core import atomic_write_text
from hipaug.data import ImageDataset, load_dataset
from hipaug.method.conditions import condition
from hipaug.method.filter import FilterResult, Rule, filter_from_probs
from hipaug.core.artifacts import Artifact
from hipaug.pipeline.step import Node, RunView, Step
from hipaug.training.classifier_config import TrainConfig



# ------------------------------------------------------------------ nodes
def phantom(kind: str) -> Node:
    return Node(f"phantom-{kind}", (), f"phantom-{kind}")


def _at(rule: Rule | None) -> str:
    return f"@{rule.label}" if rule is not None else ""


def pretrain(cond: str, rule: Rule | None = None) -> Node:
    """The pre-training of a condition (under an ablation's selection rule; None: the profile's)."""
    return Node("pretrain", (cond, rule), f"pretrain/{cond}{_at(rule)}")


def finetune(cond: str, rule: Rule | None, repeat: int, fold: int) -> Node:
    """One fine-tuning fold of one repeat of a condition (the unit a grid worker runs)."""
    return Node("finetune", (cond, rule, repeat, fold), f"finetune/{cond}{_at(rule)}/r{repeat}/f{fold}")


def gan_train(which: str) -> Node:
    return Node("gan-train", (which,), f"gan-train/{which}")


ACGAN, SYNTHETIC, FILTER = Node("acgan", (), "acgan"), Node("synthetic", (), "synthetic"), Node("filter", (), "filter")
SCORES, VAL_SCORES, FEATURES = (Node("filter-scores", (), "filter-scores"), Node("filter-val-scores", (), "filter-val-scores"),
                                Node("features", (), "features"))


def data_needs(run: RunView, *kinds: str) -> dict[str, Node]:
    """The phantom artifacts a step reads its data from (none for a user's folders)."""
    return {f"{k}-data": phantom(k) for k in kinds if (run.limb_dir if k == "limb" else run.pelvic_dir) is None}


# ------------------------------------------------------------------ data
def _phantom_spec(run: RunView, kind: str) -> dict:
    ph, size = run.profile.phantom, run.profile.image_size
    if kind == "limb":
        return {"per_class": ph.limb_per_class, "labels": ph.limb_labels, "image_size": size,
                "difficulty": ph.limb_difficulty, "parts": ph.limb_parts and list(ph.limb_parts),
                "seed": run.sub_seed("phantom-limb")}
    return {"n": phantom_pelvic_n(run.profile), "fracture_rate": ph.fracture_rate, "difficulty": ph.difficulty,
            "image_size": size, "seed": run.sub_seed("phantom-pelvic")}


def phantom_pelvic_n(profile) -> int:
    """Pelvic phantoms rendered: `phantom.pelvic_n` for CV; the test set and every replication's training set otherwise."""
    t = profile.transfer
    return t.test_n + t.replications * t.train_n if t.design == "replications" else profile.phantom.pelvic_n


def _write_phantom(kind: str):
    def build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
        from hipaug.data import phantoms

        write = phantoms.write_limb_dataset if kind == "limb" else phantoms.write_pelvic_dataset
        write(out / "data", **_phantom_spec(run, kind))
    return build


PHANTOMS = tuple(Step(f"phantom-{kind}", spec=lambda run, params, inputs, kind=kind: _phantom_spec(run, kind),
                      build=_write_phantom(kind), load=lambda run, params, art: art.path / "data")
                 for kind in ("limb", "pelvic"))


# ------------------------------------------------------------------ AC-GAN and its samples
def _acgan_spec(run: RunView, params: tuple, inputs: dict) -> dict:
    return {"acgan": run.profile.acgan, "data": run.limb_split[0].fingerprint, "seed": run.sub_seed("acgan")}


def _acgan_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from hipaug.training import train_acgan

    train_acgan(run.profile.acgan, run.limb_split[0], out, run.sub_seed("acgan"), resume=True)


def _synthetic_spec(run: RunView, params: tuple, inputs: dict) -> dict:
    return {"gan": inputs["gan"].key, "per_class": run.profile.filter.synthetic_per_class, "seed": run.sub_seed("sample")}


def _synthetic_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from hipaug.training import sample_to_folder

    sample_to_folder(inputs["gan"].path, out / "data", run.profile.filter.synthetic_per_class, run.sub_seed("sample"))


def _synthetic_load(run: RunView, params: tuple, art: Artifact) -> ImageDataset:
    return load_dataset(art.path / "data", image_size=run.profile.image_size)


# ------------------------------------------------------------------ classifiers (filter, pre-training, GAN-train)
def classifier_spec(run: RunView, train: ImageDataset, val: ImageDataset, cfg: TrainConfig, seed_name: str) -> dict:
    """What keys a trained VGG-16: identical inputs share one artifact, whatever step asks for it."""
    return {"arch": run.profile.arch, "train_cfg": cfg, "train": train.fingerprint, "val": val.fingerprint,
            "classes": list(train.class_names), "image_size": train.image_size, "seed": run.sub_seed(seed_name)}


def train_into(run: RunView, out: Path, train: ImageDataset, val: ImageDataset, cfg: TrainConfig, seed_name: str) -> None:
    """Train a VGG-16 into the run folder `out` (`hipaug.training.load_classifier` reads it back)."""
    from hipaug.method.transfer import build_model
    from hipaug.training import train_classifier

    seed = run.sub_seed(seed_name)
    model = build_model(run.profile.arch, len(train.class_names), train.image_size, seed)
    train_classifier(model, train, cfg, seed=seed, val=val, run_dir=out)


def classifier_load(run: RunView, params: tuple, art: Artifact):
    from hipaug.training import load_classifier

    return load_classifier(art.path)


def _filter_spec(run: RunView, params: tuple, inputs: dict) -> dict:
    train, val = run.limb_split
    return classifier_spec(run, train, val, run.profile.filter_train, "limb-classifier")


def _filter_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    train, val = run.limb_split
    train_into(run, out, train, val, run.profile.filter_train, "limb-classifier")


def _scores_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from hipaug.training import predict_proba

    model = classifier_load(run, (), inputs["filter"]).model
    images = _synthetic_load(run, (), inputs["synthetic"]).images if params == ("synthetic",) else run.limb_split[1].images
    np.save(out / "probs.npy", predict_proba(model, images, device=run.profile.filter_train.device).astype(np.float32))


def filtered(run: RunView, rule: Rule | None = None) -> FilterResult:
    """The realism filter's choice under `rule` (the profile's by default), from one scoring pass."""
    syn = run.load(SYNTHETIC)
    return filter_from_probs(run.load(SCORES), syn.class_names, syn, rule or run.profile.filter.rule)


def _pretrain_inputs(run: RunView, params: tuple) -> tuple[ImageDataset, ImageDataset, TrainConfig]:
    """(training set, validation set, TrainConfig) of a condition's pre-training."""
    from hipaug.method.transfer import PretrainSets, pretrain_config, pretrain_set

    name, rule = params
    train, val = run.limb_split
    if condition(name).synthetic:
        sets = PretrainSets(train, val, filtered(run, rule).selected, run.load(SYNTHETIC))
    else:
        sets = PretrainSets(train, val, None, None)
    data = pretrain_set(name, sets, run.sub_seed("unfiltered-pick"))
    return data, val, pretrain_config(name, run.profile.pretrain, len(train), len(data))


def shares_filter(run: RunView, name: str) -> bool:
    """True when a condition's pre-training is the filter's training (same images, settings, seed: one artifact)."""
    c, p = condition(name), run.profile
    return c.pretrained and not c.synthetic and not c.augment and \
        dataclasses.replace(p.pretrain, augment=None) == p.filter_train


def _pretrain_needs(run: RunView, params: tuple) -> dict[str, Node]:
    name = params[0]
    if condition(name).synthetic:
        return {"scores": SCORES, "synthetic": SYNTHETIC}
    if shares_filter(run, name):
        return {"same-as": FILTER}  # built by the filter's step: nothing to compute twice
    return data_needs(run, "limb")


def _pretrain_spec(run: RunView, params: tuple, inputs: dict) -> dict:
    train, val, cfg = _pretrain_inputs(run, params)
    return classifier_spec(run, train, val, cfg, "limb-classifier")


def _pretrain_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    train, val, cfg = _pretrain_inputs(run, params)
    train_into(run, out, train, val, cfg, "limb-classifier")


def _pretrain_cost(run: RunView, params: tuple, flops: dict) -> float:
    return 0.0 if shares_filter(run, params[0]) else flops["pretrain"]


# GAN-train (Shmelkov et al. 2018): a classifier of the filter's recipe trained on synthetic images
# only, tested on real ones. Too few images (fewer than 4 per class, or a class with fewer than 2)
# train nothing: the artifact then says so and the accuracy is NaN.
def _gan_train_set(run: RunView, which: str) -> ImageDataset:
    return filtered(run).selected if which == "filtered" else run.load(SYNTHETIC)


def _too_few(syn: ImageDataset) -> bool:
    return len(syn) < 4 * len(syn.class_names) or min(syn.class_counts().values()) < 2


def _gan_train_split(run: RunView, which: str) -> tuple[ImageDataset, ImageDataset]:
    from hipaug.data import patient_split

    syn = _gan_train_set(run, which)
    tr, va = patient_split(syn, run.profile.filter_train.val_fraction, seed=run.sub_seed("gan-train-split"))
    return syn.subset(tr), syn.subset(va)


def _gan_train_spec(run: RunView, params: tuple, inputs: dict) -> dict:
    syn = _gan_train_set(run, params[0])
    if _too_few(syn):
        return {"gan_train": params[0], "too_few": syn.fingerprint}
    train, val = _gan_train_split(run, params[0])
    return classifier_spec(run, train, val, run.profile.filter_train, "gan-train")


def _gan_train_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    if _too_few(_gan_train_set(run, params[0])):
        atomic_write_text(out / "too_few.txt", "too few synthetic images to train a classifier on\n")
        return
    train, val = _gan_train_split(run, params[0])
    train_into(run, out, train, val, run.profile.filter_train, "gan-train")


def _gan_train_load(run: RunView, params: tuple, art: Artifact):
    return None if (art.path / "too_few.txt").is_file() else classifier_load(run, params, art)


# ------------------------------------------------------------------ fine-tuning folds
def _localise(run: RunView, model, test, tags: dict) -> pd.DataFrame | None:
    """Grad-CAM and Grad-CAM++ of the fold's model on its test images with a fracture box, scored against the boxes."""
    from hipaug.evaluation.localisation import box_masks, localise

    b = run.boxes
    if b is None:
        return None
    boxed = set(b["path"])
    keep = [i for i, p in enumerate(test.paths) if p in boxed]
    if not keep:
        return pd.DataFrame(columns=[*tags, "path", "method", "mass_in_mask", "peak_in_mask"])
    paths = [test.paths[i] for i in keep]
    pos = test.class_names.index(run.profile.transfer.positive_class)
    rows = localise(model, test.images[keep], box_masks(paths, b, run.profile.image_size), target=pos)
    rows["path"] = [paths[i] for i in rows["image"]]
    return rows.drop(columns="image").assign(**tags)[[*tags, "path", "method", "mass_in_mask", "peak_in_mask"]]


def _finetune_needs(run: RunView, params: tuple) -> dict[str, Node]:
    name, rule, _, _ = params
    pre = {"pretrained": pretrain(name, rule)} if condition(name).pretrained else {}
    return {**pre, **data_needs(run, "pelvic")}


def _finetune_spec(run: RunView, params: tuple, inputs: dict) -> dict:
    name, _, repeat, fold = params
    p, t = run.profile, run.profile.transfer
    spec = {"condition": name, "pretrained": inputs["pretrained"].key if "pretrained" in inputs else "scratch",
            "finetune": p.finetune, "arch": p.arch, "pelvic": run.pelvic.fingerprint,
            **({"k": t.k_folds} if run.design == "cv" else {"design": run.design, "train_n": t.train_n, "test_n": t.test_n}),
            "repeat": repeat,
            "fold": fold, "freeze_blocks": t.freeze_blocks, "positive": t.positive_class,
            **({} if condition(name).pretrained or t.scratch_lr is None else {"scratch_lr": t.scratch_lr}),
            "seed": run.sub_seed(f"finetune-{repeat}")}
    b = run.boxes
    if b is not None:  # a set with fracture boxes: each fold also scores where its model looks
        from hipaug.core.artifacts import fingerprint

        spec["boxes"] = fingerprint(b.round(3).to_dict(orient="list"))
    return spec


def _finetune_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from hipaug.method.transfer import finetune_fold
    from hipaug.models.vgg import save_model

    name, _, repeat, fold = params
    p = run.profile
    pre = classifier_load(run, (), inputs["pretrained"]).model if "pretrained" in inputs else None
    res = finetune_fold(pre, run.pelvic, run.folds(repeat)[fold], p.arch, p.finetune, p.transfer,
                        run.sub_seed(f"finetune-{repeat}"), {"condition": name, "repeat": repeat, "fold": fold})
    # Independent replications share no training image: the paired tests need no correction (`fold_test_train_ratio`).
    metrics = {**res.metrics, "independent": True} if run.design == "replications" else res.metrics
    atomic_write_text(out / "folds.csv", pd.DataFrame([metrics]).to_csv(index=False))
    atomic_write_text(out / "predictions.csv", res.predictions.to_csv(index=False))
    atomic_write_text(out / "history.csv", res.history.to_csv(index=False))
    test = run.pelvic.subset(run.folds(repeat)[fold][1])
    loc = _localise(run, res.model, test, {"condition": name, "repeat": repeat, "fold": fold})
    if loc is not None:
        atomic_write_text(out / "localisation.csv", loc.to_csv(index=False))
    if fold == 0:  # fold 0's model serves Grad-CAM; the others are not kept
        save_model(res.model, out / "model_fold0.pt", {"class_names": list(run.pelvic.class_names), "fold": 0})


# ------------------------------------------------------------------ the entries
def _flops(kind: str):
    return lambda run, params, flops: flops[kind]


STEPS = (
    *PHANTOMS,
    Step("acgan", spec=_acgan_spec, build=_acgan_build, needs=lambda run, params: data_needs(run, "limb"),
         cost=_flops("acgan")),
    Step("synthetic", spec=_synthetic_spec, build=_synthetic_build, needs=lambda run, params: {"gan": ACGAN},
         load=_synthetic_load, cost=_flops("synthetic")),
    Step("filter", spec=_filter_spec, build=_filter_build, needs=lambda run, params: data_needs(run, "limb"),
         load=classifier_load, cost=_flops("filter"), folder="classifier"),
    Step("filter-scores", spec=lambda run, params, inputs: {
        "classifier": inputs["filter"].key, "synthetic": run.load(SYNTHETIC).fingerprint},
         build=lambda run, params, inputs, out: _scores_build(run, ("synthetic",), inputs, out),
         needs=lambda run, params: {"filter": FILTER, "synthetic": SYNTHETIC},
         load=lambda run, params, art: np.load(art.path / "probs.npy"), cost=_flops("filter-scores")),
    Step("filter-val-scores", spec=lambda run, params, inputs: {
        "classifier": inputs["filter"].key, "val": run.limb_split[1].fingerprint},
         build=lambda run, params, inputs, out: _scores_build(run, ("val",), inputs, out),
         needs=lambda run, params: {"filter": FILTER},
         load=lambda run, params, art: np.load(art.path / "probs.npy"), cost=_flops("filter-val-scores")),
    Step("pretrain", spec=_pretrain_spec, build=_pretrain_build, needs=_pretrain_needs, load=classifier_load,
         cost=_pretrain_cost, folder="classifier", threads=lambda run: run.profile.pretrain.num_threads),
    Step("finetune", spec=_finetune_spec, build=_finetune_build, needs=_finetune_needs, cost=_flops("finetune"),
         folder="finetune-fold", threads=lambda run: run.profile.finetune.num_threads),
    Step("gan-train", spec=_gan_train_spec, build=_gan_train_build, needs=lambda run, params: {
        "scores": SCORES, "synthetic": SYNTHETIC}, load=_gan_train_load, cost=_flops("gan-train"), folder="classifier"),
)
