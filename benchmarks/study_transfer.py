"""Why limb pre-training does (not) help the phantom's hip model: a study of the transfer premise.

    python benchmarks/study_transfer.py [--profile default] [--quick] [--workers 2]

Chapter 5 tests the premise on every build (`without_gan` against `scratch`). This study asks
why it comes out as it does, on the profile's own replications (pelvic training sets and test
set), with four backbones:

- `scratch`: a freshly initialised VGG-16 (no pre-training);
- `limb`: the build's `without_gan` backbone (the profile's pre-training recipe);
- `limb, longer`: the same pre-training for twice the epochs (does a backbone that learned its
  limb task better transfer more?);
- `pelvic`: pre-trained on other pelvic phantoms (as many as the limb training set, none of them
  in any replication): the most a backbone could bring, the hip task itself.

For each backbone it records its accuracy on its own validation images, a linear probe (logistic
regression on the backbone's frozen penultimate features, fitted on each replication's training
images and scored on the test set: what the features already know about hip fractures), and
fine-tuning with the profile's recipe (what the hip model reaches), with the paired difference
to `scratch` across replications. Not timed: a computed record (`benchmarks/results/transfer_premise.jsonl`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import bench_common as bc
import numpy as np


def _backbones(run, epochs_factor: int = 2) -> dict:
    """name -> (model or None, own-task validation accuracy, what it was trained on)."""
    import torch
    from hipaug.data import from_arrays
    from hipaug.data.phantoms import render_pelvic
    from hipaug.method.transfer import build_model, split_limb
    from hipaug.pipeline import steps
    from hipaug.training import predict_proba, train_classifier

    p = run.profile
    limb_tr, limb_va = run.limb_split

    def own(model, val) -> float:
        return float((predict_proba(model, val.images).argmax(1) == val.labels.numpy()).mean())

    out = {"scratch": (None, float("nan"), "nothing")}
    limb = run.load(steps.pretrain("without_gan")).model
    out["limb"] = (limb, own(limb, limb_va), f"{len(limb_tr)} real limb images, {p.pretrain.epochs} epochs")
    seed = run.sub_seed("limb-classifier")
    longer_cfg = dataclasses.replace(p.pretrain, epochs=p.pretrain.epochs * epochs_factor)
    longer = train_classifier(build_model(p.arch, len(limb_tr.class_names), p.image_size, seed), limb_tr, longer_cfg,
                              seed=seed, val=limb_va).model
    out["limb, longer"] = (longer, own(longer, limb_va),
                           f"{len(limb_tr)} real limb images, {longer_cfg.epochs} epochs")
    n = len(limb_tr) + len(limb_va)  # as many pelvic images as limb images, from another seed: in no replication
    b = render_pelvic(n, p.image_size, seed=run.sub_seed("study-pelvic-backbone"), fracture_rate=p.phantom.fracture_rate,
                      difficulty=p.phantom.difficulty)
    images = torch.as_tensor(np.asarray(b.images), dtype=torch.float32)
    images = images[:, None] if images.ndim == 3 else images
    ds = from_arrays(images, torch.as_tensor(b.labels), b.class_names, patient_ids=list(b.meta["patient_id"]))
    tr, va = split_limb(ds, p.pretrain.val_fraction, seed)
    pelvic = train_classifier(build_model(p.arch, 2, p.image_size, seed), tr, p.pretrain, seed=seed, val=va).model
    out["pelvic"] = (pelvic, own(pelvic, va), f"{len(tr)} other pelvic phantoms, {p.pretrain.epochs} epochs")
    return out


def _probe(model, train, test, pos: int, seed: int, arch) -> float:
    """Accuracy of a logistic regression on the model's frozen penultimate features (train -> test)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from hipaug.method.transfer import build_model
    from hipaug.training import extract_features

    if model is None:  # a random network's features: what an untrained VGG-16 already separates
        model = build_model(arch, 2, train.image_size, seed)
    xs = StandardScaler().fit(extract_features(model, train.images))
    clf = LogisticRegression(max_iter=2000, random_state=seed)
    clf.fit(xs.transform(extract_features(model, train.images)), train.labels.numpy() == pos)
    pred = clf.predict(xs.transform(extract_features(model, test.images)))
    return float((pred == (test.labels.numpy() == pos)).mean())


_WORKER: dict = {}  # per worker process: its Run and the backbones, set up once


def _init_worker(profile: str, states: dict) -> None:
    from hipaug.method.transfer import build_model
    from hipaug.pipeline import Run

    run = Run(profile)
    p = run.profile
    models = {}
    for name, (state, n_classes) in states.items():
        model = None
        if state is not None:
            model = build_model(p.arch, n_classes, p.image_size, 0)
            model.load_state_dict(state)
            model.eval()
        models[name] = model
    _WORKER.update(run=run, models=models)


def _replication(r: int) -> tuple[int, dict, dict]:
    """Fine-tune every backbone on replication r and probe its features: (r, accuracy, probe) by backbone."""
    from hipaug.method.transfer import finetune_fold

    run, models = _WORKER["run"], _WORKER["models"]
    p, t = run.profile, run.profile.transfer
    pos = run.pelvic.class_names.index(t.positive_class)
    train_idx, test_idx = run.folds(r)[0]
    train, test = run.pelvic.subset(train_idx), run.pelvic.subset(test_idx)
    seed = run.sub_seed(f"finetune-{r}")
    acc, probe = {}, {}
    for name, model in models.items():
        res = finetune_fold(model, run.pelvic, (train_idx, test_idx), p.arch, p.finetune, t, seed,
                            {"condition": name, "repeat": r, "fold": 0})
        acc[name] = res.metrics["accuracy"]
        probe[name] = _probe(model, train, test, pos, seed, p.arch)
    return r, acc, probe


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--workers", type=int, default=1, help="replications at once, in as many processes (use it when the "
                    "profile fixes finetune.num_threads: the results are then the same)")
    bc.common_args(ap)
    args = ap.parse_args(argv)
    from scipy import stats
    from hipaug.pipeline import Run

    run = Run(args.profile)
    if run.design != "replications":
        print(f"study_transfer: profile {args.profile!r} does not use independent replications", file=sys.stderr)
        return 2
    t = run.profile.transfer
    reps = [r for r, _ in run.splits()][: 3 if args.quick else None]
    backbones = _backbones(run)
    if args.workers > 1:  # each worker process rebuilds the backbones from their weights
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        from hipaug.method.transfer import pretrained_num_classes

        states = {name: (None, 2) if model is None else (model.state_dict(), pretrained_num_classes(model))
                  for name, (model, _, _) in backbones.items()}
        with ProcessPoolExecutor(args.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(args.profile, states)) as pool:
            done = sorted(pool.map(_replication, reps))
    else:  # this process: its run and backbones as they are
        _WORKER.update(run=run, models={name: model for name, (model, _, _) in backbones.items()})
        done = [_replication(r) for r in reps]
    acc = {name: [a[name] for _, a, _ in done] for name in backbones}
    probe = {name: [q[name] for _, _, q in done] for name in backbones}
    rows = []
    for name, (_, own, what) in backbones.items():
        d = 100 * (np.array(acc[name]) - np.array(acc["scratch"]))
        rows.append({"profile": args.profile, "backbone": name, "pre-trained on": what, "own validation accuracy (%)": 100 * own,
                     "linear probe on hip (%)": 100 * float(np.mean(probe[name])),
                     "fine-tuned hip accuracy (%)": 100 * float(np.mean(acc[name])),
                     "SD (points)": 100 * float(np.std(acc[name], ddof=1)),
                     "minus scratch (points)": float(d.mean()) if name != "scratch" else float("nan"),
                     "SD of differences (points)": float(d.std(ddof=1)) if name != "scratch" else float("nan"),
                     "p (paired t)": float(stats.ttest_1samp(d, 0).pvalue) if name != "scratch" else float("nan"),
                     "replications": len(reps)})
    bc.record("transfer_premise", f"Transfer premise on the {args.profile} phantom: what each backbone brings", rows,
              notes=f"Profile {args.profile}: {len(reps)} replications of {t.train_n} pelvic training images, "
                    f"{t.test_n} test images; fine-tuning with the profile's recipe; linear probe: logistic "
                    "regression on standardised penultimate features.",
              results_dir=args.results, timed=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
