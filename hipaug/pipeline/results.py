"""The results the book reads, one step each: every file of the results store is written by an entry here.

A result step is an artifact like any other (keyed by its inputs, cached, buildable on any
worker); its `records` are the files copied into the results store `<results>/<profile>/<source>/`.
`hipaug reproduce`, the chapters and the book all ask for results through these steps, so the
store holds the same files, with the same bytes, however it was built. The reports themselves
are functions of the results (`table8_tests`, `ablation_table`, `operating_point_table`, ...).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from hipaug.core import atomic_write_text, write_json
from hipaug.core.artifacts import Artifact
from hipaug.evaluation import METRICS, format_mean_sd, summarize
from hipaug.pipeline.reports import (
    CLASSIC_PAIRS,
    TABLE8_PAIRS,
    ablation_table,
    filter_accuracy,
    flat_summary,
    operating_point_table,
    paired_table,
    table_of_summary,
)
from hipaug.pipeline.step import Node, RunView, Step
from hipaug.pipeline.steps import (
    ACGAN,
    FEATURES,
    FILTER,
    SCORES,
    SYNTHETIC,
    VAL_SCORES,
    data_needs,
    filtered,
    finetune,
    gan_train,
)


CLASSIC_CONDITIONS = ("without_gan", "classic", "with_gan")  # chapter 2: classic augmentation against both


def result(name: str) -> Node:
    return Node(name, (), name)


# ------------------------------------------------------------------ helpers of the entries
def _csv(name: str):
    return lambda run, params, art: pd.read_csv(art.path / name)


def _json(name: str):
    return lambda run, params, art: json.loads((art.path / name).read_text())


def _keys(inputs: dict) -> dict:
    """The keys of a step's inputs: what its artifact depends on (with the profile sections it reads)."""
    return {role: art.key for role, art in sorted(inputs.items())}


def _folds_of(inputs: dict, nodes: list[Node]) -> pd.DataFrame:
    return pd.concat([pd.read_csv(inputs[str(n)].path / "folds.csv") for n in nodes], ignore_index=True)


def table8_nodes(run: RunView) -> list[Node]:
    """Every fine-tuning fold of Table VIII, in the order its tables list them (repeat, condition, fold)."""
    splits = run.splits()
    return [finetune(c, None, r, f) for r in dict.fromkeys(r for r, _ in splits) for c in run.profile.transfer.conditions
            for f in (f for rr, f in splits if rr == r)]


def first_splits(run: RunView) -> list[tuple[int, int]]:
    """The runs chapter 2's comparison and the ablations use: the first CV repeat's folds, or every replication."""
    splits = run.splits()
    return splits if run.design == "replications" else [s for s in splits if s[0] == 0]


def classic_nodes(run: RunView) -> list[Node]:
    conds = [c for c in CLASSIC_CONDITIONS if c in run.profile.transfer.conditions]
    return [finetune(c, None, r, f) for c in conds for r, f in first_splits(run)]


def ablation_nodes(run: RunView) -> list[Node]:
    return [finetune("with_gan", rule, r, f) for rule in run.profile.ablation.rules for r, f in first_splits(run)]


def _by_id(nodes: list[Node]) -> dict[str, Node]:
    return {str(n): n for n in nodes}


# ------------------------------------------------------------------ the entries' builds
def _data_summary(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    limb, pelvic = run.limb, run.pelvic
    write_json(out / "data_summary.json", {
        "limb_counts": limb.class_counts(), "pelvic_counts": pelvic.class_counts(), "limb_left_out": run.limb_left_out,
        "limb_patients": len(set(limb.patient_ids)), "pelvic_patients": len(set(pelvic.patient_ids)),
        "image_size": run.profile.image_size})


def _acgan_summary(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from hipaug.training import read_history

    history, synthetic = read_history(inputs["gan"].path), run.load(SYNTHETIC)
    last = history.iloc[-1]
    write_json(out / "acgan_summary.json", {
        "steps": int(last["step"]), "n_synthetic": len(synthetic), "classes": list(synthetic.class_names),
        **{k: float(last[k]) for k in history.columns if k != "step"}})


def _filter_summary(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from sklearn.metrics import confusion_matrix

    from hipaug.evaluation import gan_test_accuracy

    val, syn, res = run.limb_split[1], run.load(SYNTHETIC), filtered(run)
    val_pred = run.load(VAL_SCORES).argmax(1)
    val_acc = float((val_pred == val.labels.numpy()).mean())
    gan_test, per_class = gan_test_accuracy(run.load(SCORES), syn.labels.numpy(), syn.class_names)
    cm = pd.DataFrame(confusion_matrix(val.labels.numpy(), val_pred, labels=range(len(val.class_names))),
                      index=val.class_names, columns=val.class_names)
    atomic_write_text(out / "filter_confusion.csv", cm.to_csv(index_label="class"))
    atomic_write_text(out / "gan_test_per_class.csv", per_class.to_frame("GAN-test accuracy").to_csv(index_label="class"))
    atomic_write_text(out / "filter_acceptance.csv", res.acceptance.reset_index(names="class").to_csv(index=False))
    write_json(out / "filter_summary.json", {
        "val_accuracy": val_acc, "chance": 1 / len(val.class_names), "gan_test_accuracy": gan_test,
        "threshold": res.threshold, "top_k": res.top_k, "accepted": int(res.scores["accepted"].sum()),
        "generated": len(res.scores)})


def _filter_summary_load(run: RunView, params: tuple, art: Artifact) -> dict:
    return {"summary": json.loads((art.path / "filter_summary.json").read_text()),
            "acceptance": pd.read_csv(art.path / "filter_acceptance.csv", index_col="class"),
            "confusion": pd.read_csv(art.path / "filter_confusion.csv", index_col="class").rename_axis(None),
            "gan_test_per_class": pd.read_csv(art.path / "gan_test_per_class.csv", index_col="class")}


def _gan_quality(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    """Fréchet distance, precision/recall, diversity and GAN-train/GAN-test (gan_quality.json, diversity.csv)."""
    from hipaug.evaluation import compare_diversity, frechet_distance, gan_test_accuracy, precision_recall
    from hipaug.training import predict_proba

    f, k = run.load(FEATURES), run.profile.quality.pr_k
    train, val = run.limb_split
    val_y, syn = val.labels.numpy(), run.load(SYNTHETIC)
    probs, accepted = run.load(SCORES), filtered(run).scores["accepted"].to_numpy()
    rng = np.random.default_rng(run.sub_seed("quality"))

    def equal_n(a: np.ndarray, n: int) -> np.ndarray:
        return a[np.sort(rng.permutation(len(a))[:n])] if len(a) > n else a

    n = min(len(f["val"]), len(f["synthetic"]), len(f["train"]))
    real_a, real_b = equal_n(f["train"], n), equal_n(f["val"], n)
    q = {"n_per_set": int(n), "fd_real_vs_real": frechet_distance(real_a, real_b),
         "fd_synthetic_vs_real": frechet_distance(equal_n(f["synthetic"], n), real_b),
         "pr_real_vs_real": precision_recall(real_b, real_a, k=k),
         "pr_synthetic": precision_recall(real_b, equal_n(f["synthetic"], n), k=k)}
    n_acc, n_rej = int(accepted.sum()), int((~accepted).sum())
    m = min(n_acc, n_rej)
    q["n_accepted"], q["n_rejected"] = n_acc, n_rej
    q["n_real_train"] = len(train)  # the ledger judges n_accepted against it
    if m >= 10:  # equal sizes: the Fréchet distance is biased upwards for small sets
        q["fd_accepted_vs_real"] = frechet_distance(equal_n(f["synthetic"][accepted], m), real_b)
        q["fd_rejected_vs_real"] = frechet_distance(equal_n(f["synthetic"][~accepted], m), real_b)
        q["pr_accepted"] = precision_recall(real_b, equal_n(f["synthetic"][accepted], m), k=k)
        q["pr_rejected"] = precision_recall(real_b, equal_n(f["synthetic"][~accepted], m), k=k)
    gan_test, _ = gan_test_accuracy(probs, syn.labels.numpy(), syn.class_names)
    q["gan_test_accuracy"] = float(gan_test)
    for which in run.profile.quality.gan_train_on:
        clf = run.load(gan_train(which))
        q[f"gan_train_accuracy_{which}"] = float("nan") if clf is None else \
            float((predict_proba(clf.model, val.images).argmax(1) == val_y).mean())
    q["real_val_accuracy"] = filter_accuracy(run.load(VAL_SCORES), val_y, probs, syn.labels.numpy())["real_val_accuracy"]
    q["acceptance_rate"] = float(accepted.mean())

    def kn(frac: float, n_: int) -> list[int]:
        return [int(round(frac * n_)), int(n_)]

    q["counts"] = {"gan_test": kn(gan_test, len(syn)), "real_val": kn(q["real_val_accuracy"], len(val_y)),
                   "precision_synthetic": kn(q["pr_synthetic"]["precision"], q["pr_synthetic"]["n_fake"]),
                   "precision_real": kn(q["pr_real_vs_real"]["precision"], q["pr_real_vs_real"]["n_fake"])}
    if "pr_accepted" in q:
        q["counts"]["precision_accepted"] = kn(q["pr_accepted"]["precision"], q["pr_accepted"]["n_fake"])
        q["counts"]["precision_rejected"] = kn(q["pr_rejected"]["precision"], q["pr_rejected"]["n_fake"])
    div = compare_diversity(f["val"], val_y, f["synthetic"], syn.labels.numpy(), class_names=syn.class_names)
    atomic_write_text(out / "diversity.csv", (div.reset_index() if div.index.name else div).to_csv(index=False))
    write_json(out / "gan_quality.json", q)


def _features_build(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from hipaug.pipeline.steps import classifier_load
    from hipaug.training import extract_features

    model = classifier_load(run, (), inputs["filter"]).model
    train, val = run.limb_split
    for name, ds in (("train", train), ("val", val), ("synthetic", run.load(SYNTHETIC))):
        np.save(out / f"{name}.npy", extract_features(model, ds.images, device=run.profile.filter_train.device))


def _table8_folds(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    nodes = table8_nodes(run)
    atomic_write_text(out / "table8_folds.csv", _folds_of(inputs, nodes).to_csv(index=False))
    preds = pd.concat([pd.read_csv(inputs[str(n)].path / "predictions.csv") for n in nodes], ignore_index=True)
    atomic_write_text(out / "table8_predictions.csv", preds.to_csv(index=False))
    hist = pd.concat([pd.read_csv(inputs[str(n)].path / "history.csv") for n in nodes], ignore_index=True)
    atomic_write_text(out / "finetune_history.csv", hist.to_csv(index=False))


# The comparisons of where the models look (the pointing game, the energy inside the boxes), a against b.
LOCALISATION_PAIRS = (("with_gan", "without_gan"), ("without_gan", "scratch"), ("with_gan", "classic"))


def _localisation(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    from hipaug.evaluation.localisation import box_area, paired_localisation

    rows = pd.concat([pd.read_csv(inputs[str(n)].path / "localisation.csv") for n in table8_nodes(run)],
                     ignore_index=True)
    atomic_write_text(out / "localisation.csv", rows.to_csv(index=False))
    summary = rows.groupby(["condition", "method"], sort=False).agg(
        images=("path", "nunique"), pointing_game=("peak_in_mask", "mean"), energy_in_box=("mass_in_mask", "mean"))
    # Chance for both scores: a map spread evenly (or a peak placed at random) lands in the boxes as
    # often as the boxes cover the image, averaged over the same image visits as the scores.
    area = box_area(sorted(set(rows["path"])), run.boxes, run.profile.image_size)
    summary["chance"] = rows.assign(area=rows["path"].map(area)).groupby(["condition", "method"], sort=False)["area"].mean()
    atomic_write_text(out / "localisation_summary.csv", summary.reset_index().to_csv(index=False))
    have = set(rows["condition"])
    tests = [paired_localisation(rows, a, b, n_boot=run.profile.quality.n_boot, seed=run.seed)
             for a, b in LOCALISATION_PAIRS if {a, b} <= have]
    atomic_write_text(out / "localisation_tests.csv", (pd.concat(tests, ignore_index=True) if tests else
                                                       pd.DataFrame()).to_csv(index=False))


def _localisation_load(run: RunView, params: tuple, art: Artifact) -> dict:
    tests = art.path / "localisation_tests.csv"
    return {"rows": pd.read_csv(art.path / "localisation.csv"),
            "summary": pd.read_csv(art.path / "localisation_summary.csv"),
            "tests": pd.read_csv(tests) if tests.stat().st_size > 1 else pd.DataFrame()}


def _table8_tests(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    folds = pd.read_csv(inputs["folds"].path / "table8_folds.csv")
    atomic_write_text(out / "table8_summary.csv", flat_summary(folds).to_csv(index=False))
    tests = paired_table(folds, TABLE8_PAIRS, run.profile.quality, run.seed)
    atomic_write_text(out / "paired_tests.csv", tests.to_csv(index=False))
    table = format_mean_sd(summarize(folds, METRICS))
    atomic_write_text(out / "table8.csv", table.to_csv())
    md = ["# Table VIII analogue", "", f"profile `{run.profile.name}`, data `{run.source}`, seed {run.seed}", "",
          table.to_markdown(), ""]
    atomic_write_text(out / "table8.md", "\n".join(md))


def _table8_folds_load(run: RunView, params: tuple, art: Artifact) -> dict:
    return {name: pd.read_csv(art.path / f"{file}.csv") for name, file in (
        ("folds", "table8_folds"), ("predictions", "table8_predictions"), ("history", "finetune_history"))}


def _table8_tests_load(run: RunView, params: tuple, art: Artifact) -> dict:
    from hipaug.paper import paper_table8

    tests = pd.read_csv(art.path / "paired_tests.csv") if (art.path / "paired_tests.csv").stat().st_size > 1 \
        else pd.DataFrame()
    return {"summary": table_of_summary(pd.read_csv(art.path / "table8_summary.csv")), "tests": tests,
            "paper": paper_table8()}


def _classic_load(run: RunView, params: tuple, art: Artifact) -> dict:
    tests = art.path / "classic_tests.csv"
    return {"folds": pd.read_csv(art.path / "classic_folds.csv"),
            "tests": pd.read_csv(tests) if tests.stat().st_size > 1 else pd.DataFrame()}


def _classic(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    folds = _folds_of(inputs, classic_nodes(run))
    atomic_write_text(out / "classic_folds.csv", folds.to_csv(index=False))
    tests = paired_table(folds, CLASSIC_PAIRS, run.profile.quality, run.seed)
    atomic_write_text(out / "classic_tests.csv", tests.to_csv(index=False))


def _ablations(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    parts, n_sel = [], {}
    for rule in run.profile.ablation.rules:
        nodes = [finetune("with_gan", rule, r, f) for r, f in first_splits(run)]
        parts.append(_folds_of(inputs, nodes).assign(threshold=rule.threshold, top_k=rule.top_k))
        n_sel[rule.label] = len(filtered(run, rule).selected)
    atomic_write_text(out / "ablation_folds.csv", ablation_table(parts, n_sel).to_csv(index=False))


def _operating_point(run: RunView, params: tuple, inputs: dict, out: Path) -> None:
    op = run.profile.operating_point
    acc = folds = None
    if "val-scores" in inputs:
        syn = run.load(SYNTHETIC)
        acc = filter_accuracy(run.load(VAL_SCORES), run.limb_split[1].labels.numpy(), run.load(SCORES),
                              syn.labels.numpy())
    if "folds" in inputs:
        folds = pd.read_csv(inputs["folds"].path / "table8_folds.csv")
    atomic_write_text(out / "operating_point.csv", operating_point_table(op, acc, folds).to_csv(index=False))


def _operating_point_needs(run: RunView, params: tuple) -> dict[str, Node]:
    op = run.profile.operating_point
    if run.source != "phantom" or op.empty:
        return {}
    return {"val-scores": VAL_SCORES, "scores": SCORES, "synthetic": SYNTHETIC,
            **({"folds": result("table8_folds")} if op.without_gan_accuracy else {})}


def _spec_of(*sections: str):
    """A result's spec: the keys of its inputs, the profile sections it reads and the data it names."""
    def spec(run: RunView, params: tuple, inputs: dict) -> dict:
        return {**_keys(inputs), **{s: getattr(run.profile, s) for s in sections}, "profile": run.profile.name,
                "source": run.source, "seed": run.seed}
    return spec


def _result(name: str, build, needs, records: tuple[str, ...], load=None, sections: tuple[str, ...] = (),
            group: str | None = "results", when=None) -> Step:
    return Step(name, spec=_spec_of(*sections), build=build, needs=needs, records=records,
                load=load or (_json(records[0]) if records[0].endswith(".json") else _csv(records[0])),
                folder=f"result-{name}", group=group, when=when)


RESULTS = (
    _result("data_summary", _data_summary, lambda run, params: data_needs(run, "limb", "pelvic"), ("data_summary.json",),
            sections=("image_size",)),
    _result("acgan_summary", _acgan_summary, lambda run, params: {"gan": ACGAN, "synthetic": SYNTHETIC},
            ("acgan_summary.json",)),
    _result("filter_summary", _filter_summary, lambda run, params: {
        "scores": SCORES, "val-scores": VAL_SCORES, "synthetic": SYNTHETIC},
        ("filter_acceptance.csv", "filter_summary.json"), load=_filter_summary_load, sections=("filter",)),
    Step("features", spec=lambda run, params, inputs: {
        "classifier": inputs["filter"].key, "train": run.limb_split[0].fingerprint,
        "val": run.limb_split[1].fingerprint, "synthetic": run.load(SYNTHETIC).fingerprint},
         build=_features_build, needs=lambda run, params: {"filter": FILTER, "synthetic": SYNTHETIC},
         load=lambda run, params, art: {n: np.load(art.path / f"{n}.npy") for n in ("train", "val", "synthetic")},
         cost=lambda run, params, flops: flops["features"]),
    _result("gan_quality", _gan_quality, lambda run, params: {
        "features": FEATURES, "scores": SCORES, "val-scores": VAL_SCORES, "synthetic": SYNTHETIC,
        **{f"gan-train-{w}": gan_train(w) for w in run.profile.quality.gan_train_on}},
        ("gan_quality.json", "diversity.csv"), sections=("quality", "filter")),
    _result("classic_folds", _classic, lambda run, params: _by_id(classic_nodes(run)),
            ("classic_folds.csv", "classic_tests.csv"), load=_classic_load, sections=("quality",),
            when=lambda run: any(c in run.profile.transfer.conditions for c in CLASSIC_CONDITIONS)),
    _result("table8_folds", _table8_folds, lambda run, params: _by_id(table8_nodes(run)), ("table8_folds.csv",),
            load=_table8_folds_load),
    _result("table8", _table8_tests, lambda run, params: {"folds": result("table8_folds")},
            ("table8_summary.csv", "paired_tests.csv", "table8.csv", "table8.md"), load=_table8_tests_load,
            sections=("quality",)),
    _result("localisation", _localisation, lambda run, params: _by_id(table8_nodes(run)),
            ("localisation_summary.csv", "localisation_tests.csv"), load=_localisation_load, sections=("quality",),
            when=lambda run: run.boxes is not None),
    _result("operating_point", _operating_point, _operating_point_needs, ("operating_point.csv",),
            sections=("operating_point",)),
    _result("ablation_folds", _ablations, lambda run, params: {
        **_by_id(ablation_nodes(run)), "scores": SCORES, "synthetic": SYNTHETIC},
        ("ablation_folds.csv",), sections=("ablation",), group="ablations",
        when=lambda run: bool(run.profile.ablation.rules)),
)
