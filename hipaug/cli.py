"""The `hipaug` command line: thin argument parsing over the library.

Every command is `main(argv) -> int`; user errors print one line `hipaug: error: ...`
and return 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hipaug import __version__
from hipaug.errors import HipaugError


def _add_seed(p: argparse.ArgumentParser, default: int | None = 0) -> None:
    p.add_argument("--seed", type=int, default=default, help="the one seed for every random source (default: %(default)s)")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="hipaug", description="Reproduce Lin & Chung (TAAI 2019): AC-GAN augmentation, "
                                 "VGG-16 realism filter, transfer learning for hip-fracture detection.")
    ap.add_argument("--version", action="version", version=f"hipaug {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    _add_data_commands(sub)
    _add_step_commands(sub)
    _add_run_commands(sub)
    return ap


def _add_data_commands(sub) -> None:
    ph = sub.add_parser("phantom", help="render phantom radiographs into a dataset folder")
    phs = ph.add_subparsers(dest="kind", required=True, metavar="KIND")
    pl = phs.add_parser("limb", help="limb radiographs (part x fracture classes)")
    pl.add_argument("--out", required=True, type=Path, help="output dataset folder")
    pl.add_argument("--per-class", type=int, default=150, help="images per class (default: %(default)s)")
    pl.add_argument("--labels", default="part+fracture", choices=["part", "fracture", "part+fracture"], help="class scheme")
    pl.add_argument("--image-size", type=int, default=64, help="32, 64, 128 or 256 (default: %(default)s)")
    pl.add_argument("--difficulty", type=float, default=1.0, help="fracture conspicuity knob (default: %(default)s)")
    pl.add_argument("--parts", nargs="+", metavar="PART", help="body parts to render (default: all)")
    _add_seed(pl)
    pp = phs.add_parser("pelvic", help="AP pelvis radiographs, fracture vs normal")
    pp.add_argument("--out", required=True, type=Path, help="output dataset folder")
    pp.add_argument("--n", type=int, default=400, help="number of images (default: %(default)s)")
    pp.add_argument("--fracture-rate", type=float, default=0.5, help="share with a hip fracture (default: %(default)s)")
    pp.add_argument("--difficulty", type=float, default=1.0, help="fracture conspicuity knob (default: %(default)s)")
    pp.add_argument("--image-size", type=int, default=64, help="32, 64, 128 or 256 (default: %(default)s)")
    _add_seed(pp)

    da = sub.add_parser("data", help="inspect dataset folders; import or fetch FracAtlas")
    das = da.add_subparsers(dest="action", required=True, metavar="ACTION")
    dc = das.add_parser("check", help="print the dataset card; exit 2 naming the first problem")
    dc.add_argument("dir", type=Path, help="dataset folder (class sub-folders or manifest.csv)")
    dc.add_argument("--image-size", type=int, default=64, help="size the images are decoded to (default: %(default)s)")
    dc.add_argument("--pelvic", action="store_true", help="check as the pelvic set: exactly two classes, one of them --positive-class")
    dc.add_argument("--positive-class", default="fracture", help="the pelvic positive class, with --pelvic (default: %(default)s)")
    fa = das.add_parser("fracatlas", help="import the FracAtlas release as limb and hip sets (manifests, defect report, card)")
    fa.add_argument("src", type=Path, help="FracAtlas.zip or the folder it extracts to")
    fa.add_argument("--out", required=True, type=Path, help="output folder (limb/, hip/, defects.txt, card.md)")
    ff = das.add_parser("fetch", help="download a public dataset (resumable) and check it by content")
    ff.add_argument("dataset", choices=["fracatlas"], help="which dataset")
    ff.add_argument("--out", required=True, type=Path, help="folder for the download (FracAtlas.zip)")
    ff.add_argument("--url", help="download link (default: the release on figshare)")


def _add_step_commands(sub) -> None:
    tg = sub.add_parser("train-gan", help="train the AC-GAN on a dataset folder")
    tg.add_argument("--data", required=True, type=Path, help="training dataset folder")
    tg.add_argument("--out", required=True, type=Path, help="run folder (checkpoints, history, samples)")
    tg.add_argument("--profile", default="default", help="profile whose acgan settings are the defaults")
    tg.add_argument("--image-size", type=int, help="32, 64, 128 or 256")
    tg.add_argument("--steps", type=int, help="generator steps")
    tg.add_argument("--batch-size", type=int, help="batch size")
    tg.add_argument("--device", default=None, help="auto | cpu | cuda")
    tg.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    _add_seed(tg)

    sa = sub.add_parser("sample", help="sample a trained AC-GAN into a dataset folder")
    sa.add_argument("--run", required=True, type=Path, help="AC-GAN run folder")
    sa.add_argument("--out", required=True, type=Path, help="output dataset folder (class names = training classes)")
    sa.add_argument("--per-class", required=True, type=int, help="images per class")
    _add_seed(sa)

    tc = sub.add_parser("train-classifier", help="train the VGG-16 classifier (the realism filter) on a dataset folder")
    tc.add_argument("--data", required=True, type=Path, help="real dataset folder")
    tc.add_argument("--out", required=True, type=Path, help="classifier run folder")
    tc.add_argument("--profile", default="default", help="profile whose arch and filter_train settings are used")
    tc.add_argument("--image-size", type=int, help="32, 64, 128 or 256")
    tc.add_argument("--epochs", type=int, help="maximum epochs")
    tc.add_argument("--device", default=None, help="auto | cpu | cuda")
    _add_seed(tc)

    fi = sub.add_parser("filter", help="keep the synthetic images the classifier finds realistic")
    fi.add_argument("--classifier", required=True, type=Path, help="classifier run folder (train-classifier)")
    fi.add_argument("--synthetic", required=True, type=Path, help="synthetic dataset folder (sample)")
    fi.add_argument("--out", required=True, type=Path, help="selected dataset folder (with scores.csv)")
    fi.add_argument("--profile", default="default", help="profile whose filter rule is the default (default: %(default)s)")
    g = fi.add_mutually_exclusive_group()
    g.add_argument("--threshold", type=float, help="keep if P(generated class) >= T (default: the profile's rule)")
    g.add_argument("--top-k", type=int, help="keep the K best-scored images per class (default: the profile's rule)")


def _add_run_commands(sub) -> None:
    rp = sub.add_parser("reproduce", help="run the whole pipeline and write the Table VIII analogue")
    rp.add_argument("--profile", help="smoke | default | paper | fracatlas | path to a YAML profile (default: default; "
                    "fracatlas with --fracatlas)")
    data = rp.add_argument_group("data (default: the phantoms)")
    data.add_argument("--limb-dir", type=Path, help="real limb dataset folder")
    data.add_argument("--pelvic-dir", type=Path, help="real pelvic dataset folder")
    data.add_argument("--fracatlas", type=Path, metavar="SRC", help="the FracAtlas release (FracAtlas.zip or its "
                      "folder), imported once into the artifact store: its limb and hip sets")
    rp.add_argument("--out", type=Path, help="results folder (default: $HIPAUG_RESULTS, else results/ beside the "
                    "artifact cache)")
    rp.add_argument("--artifacts", type=Path, help="artifact cache (default: $HIPAUG_ARTIFACTS, else artifacts/ of "
                    "the hipaug checkout when run inside it, else ./artifacts)")
    rp.add_argument("--device", default=None, help="auto | cpu | cuda (bf16 autocast on CUDA)")
    _add_seed(rp, default=None)
    gr = rp.add_argument_group("the task grid (parallel runs need the cluster extra: pip install -e '.[cluster]')")
    gr.add_argument("--workers", type=int, metavar="N", help="run the grid on a local Dask cluster of N processes, "
                    "each with one GPU on CUDA (with --jobqueue: N batch jobs); without --workers, --scheduler, "
                    "--jobqueue or --threads, the fine-tuning runs that fix their own torch threads "
                    "(finetune.num_threads) run on one local worker per core and the rest here")
    where = gr.add_mutually_exclusive_group()
    where.add_argument("--scheduler", metavar="ADDRESS", help="run the grid on a running Dask cluster, e.g. "
                       "tcp://host:8786 (its workers must see --artifacts)")
    where.add_argument("--jobqueue", choices=["slurm", "pbs"], help="start the workers as SLURM or PBS jobs "
                       "(dask-jobqueue, configured in ~/.config/dask/jobqueue.yaml)")
    gr.add_argument("--threads", type=int, metavar="T", help="torch threads per task (default: as a serial run; set 1 with "
                    "--workers N on a small machine for speed); CPU results repeat bit for bit at equal threads per task")
    gr.add_argument("--ablations", action="store_true", help="also run the ablation rules (pre-training and "
                    "fine-tuning) and write ablation_folds.csv")
    gr.add_argument("--dry-run", action="store_true", help="print the task graph (FLOPs per task, built or not, "
                    "critical path, predicted scaling) and compute nothing")

    li = sub.add_parser("literature", help="import Zotero/Obsidian notes as MyST pages and BibTeX")
    li.add_argument("note", nargs="?", type=Path, help="one note (.md)")
    li.add_argument("--out", type=Path, help="output page (.md) or, with --vault, output folder")
    li.add_argument("--vault", type=Path, help="vault (notes in DIR/sources/) or a folder of notes")
    li.add_argument("--vault-root", type=Path, help="folder embedded image paths are relative to")
    li.add_argument("--bib", action="store_true", help="print the BibTeX entry of NOTE")

    cl = sub.add_parser("claims", help="evaluate the claims ledger on a results store")
    cl.add_argument("--results", required=True, type=Path, help="results store written by the notebooks/reproduce")
    cl.add_argument("--ledger", type=Path, default=None, help="claims ledger YAML (default: book/claims.yml)")
    cl.add_argument("--note", type=Path, default=None, help="the annotated note the ledger refers to")

    sub.add_parser("profiles", help="list the built-in profiles")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    import logging

    logging.basicConfig(level=logging.INFO, format="[hipaug] %(message)s", stream=sys.stderr)
    try:
        return int(_dispatch(args) or 0)
    except HipaugError as exc:
        print(f"hipaug: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hipaug: interrupted", file=sys.stderr)
        return 130


# ------------------------------------------------------------------ handlers (one per command)
def _phantom(args: argparse.Namespace) -> int:
    from hipaug.data import phantoms

    if args.kind == "limb":
        out = phantoms.write_limb_dataset(args.out, per_class=args.per_class, image_size=args.image_size,
                                          seed=args.seed, labels=args.labels, difficulty=args.difficulty,
                                          parts=args.parts)
    else:
        out = phantoms.write_pelvic_dataset(args.out, n=args.n, fracture_rate=args.fracture_rate,
                                            image_size=args.image_size, seed=args.seed, difficulty=args.difficulty)
    print(f"wrote {out}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from hipaug.data import check_dataset, fetch_release, import_release

    if args.action == "fracatlas":
        report = import_release(args.src, args.out)
        print(report.text, end="")
        print(report.counts_text())
        print(f"wrote {report.out} (limb/manifest.csv, hip/manifest.csv, hip/boxes.csv, defects.txt, card.md)")
        return 0
    if args.action == "fetch":
        path = fetch_release(args.out, url=args.url)
        print(f"wrote {path}; import it with: hipaug data fracatlas {path} --out DIR")
        return 0
    print(check_dataset(args.dir, image_size=args.image_size,
                        positive_class=args.positive_class if args.pelvic else None).to_text())
    return 0


def _profiles(args: argparse.Namespace) -> int:
    from hipaug.config import list_profiles

    print("\n".join(list_profiles()))
    return 0


def _profile_for(args: argparse.Namespace, image_size: int | None = None):
    """The profile named by --profile with the command's --image-size/--device/--seed applied."""
    from hipaug.config import load_profile

    return load_profile(args.profile, device=getattr(args, "device", None), seed=args.seed, image_size=image_size)


def _train_gan(args: argparse.Namespace) -> int:
    import dataclasses

    from hipaug.data import load_dataset
    from hipaug.training import train_acgan

    p = _profile_for(args, args.image_size)
    changes = {k: v for k, v in (("steps", args.steps), ("batch_size", args.batch_size)) if v is not None}
    if args.device:
        changes["device"] = args.device
    cfg = dataclasses.replace(p.acgan, **changes)
    ds = load_dataset(args.data, image_size=p.image_size)
    run = train_acgan(cfg, ds, args.out, args.seed, resume=args.resume)
    print(f"trained {run.step} steps on {len(ds)} images ({len(ds.class_names)} classes): {args.out}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    from hipaug.errors import ConfigError
    from hipaug.training import sample_to_folder

    if args.per_class < 1:
        raise ConfigError(f"--per-class={args.per_class} must be >= 1")
    out = sample_to_folder(args.run, args.out, args.per_class, args.seed)
    print(f"wrote {out}")
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    import dataclasses

    from hipaug.data import load_dataset
    from hipaug.method.transfer import build_model
    from hipaug.training import train_classifier

    p = _profile_for(args, args.image_size)
    cfg = p.filter_train
    if args.epochs is not None:
        cfg = dataclasses.replace(cfg, epochs=args.epochs)
    if args.device:
        cfg = dataclasses.replace(cfg, device=args.device)
    ds = load_dataset(args.data, image_size=p.image_size)
    model = build_model(p.arch, len(ds.class_names), ds.image_size, args.seed)
    res = train_classifier(model, ds, cfg, seed=args.seed, run_dir=args.out)  # the one way a classifier is saved
    best = res.history.loc[res.history["epoch"] == res.best_epoch].iloc[0]
    print(f"best epoch {res.best_epoch}: val_acc={best.get('val_acc', float('nan')):.3f}; saved {args.out}/model.pt")
    return 0


def _filter(args: argparse.Namespace) -> int:
    from hipaug.config import load_profile
    from hipaug.data import load_dataset
    from hipaug.errors import ConfigError
    from hipaug.method.filter import filter_synthetic, rule_for, write_filter_result
    from hipaug.training import load_classifier

    # The profile's rule unless --threshold/--top-k is given (no separate CLI default to drift).
    rule = rule_for(load_profile(args.profile).filter, args.threshold, args.top_k)
    try:
        clf = load_classifier(args.classifier)
    except ConfigError as exc:
        raise ConfigError(f"--classifier {exc}") from None
    synthetic = load_dataset(args.synthetic, image_size=int(clf.model.config["image_size"]))
    result = filter_synthetic(clf.model, clf.class_names, synthetic, rule)
    write_filter_result(result, args.out)
    print(result.acceptance.round(3).to_string())
    print(f"kept {len(result.selected)} of {len(synthetic)} synthetic images: {args.out}")
    return 0


def _grid_executor(args: argparse.Namespace):
    """The executor --workers/--scheduler/--jobqueue ask for; without them "auto" (None with --threads: serial)."""
    from hipaug.errors import ConfigError
    from hipaug.pipeline.executors import dask_executor

    if args.workers is None and args.scheduler is None and args.jobqueue is None:
        if args.threads is not None:
            import torch

            if args.threads < 1:
                raise ConfigError(f"--threads={args.threads} must be >= 1")
            torch.set_num_threads(args.threads)
            return None
        return "auto"  # the tasks that fix their own threads on local workers, the rest in this process
    return dask_executor(workers=args.workers, scheduler=args.scheduler, jobqueue=args.jobqueue, threads=args.threads)


def _reproduce(args: argparse.Namespace) -> int:
    import contextlib
    import time

    from hipaug.evaluation import format_mean_sd
    from hipaug.pipeline import Pipeline

    t0 = time.perf_counter()
    limb_dir, pelvic_dir, profile = args.limb_dir, args.pelvic_dir, args.profile or "default"
    if args.fracatlas is not None:
        from hipaug.errors import ConfigError
        from hipaug.pipeline.editions import FRACATLAS_PROFILE, fracatlas_folders

        if limb_dir or pelvic_dir:
            raise ConfigError("give either --fracatlas SRC or --limb-dir/--pelvic-dir, not both")
        limb_dir, pelvic_dir = fracatlas_folders(args.fracatlas, artifacts=args.artifacts)
        profile = args.profile or FRACATLAS_PROFILE
    executor = _grid_executor(args)
    pipe = Pipeline(profile, limb_dir, pelvic_dir, artifacts=args.artifacts, device=args.device,
                    seed=args.seed, results=args.out, executor=executor)
    groups = ("results", "ablations") if args.ablations else ("results",)
    if args.dry_run:
        workers = (1, 4, 8) + ((args.workers,) if args.workers else ())
        print(pipe.plan(groups, workers).to_text())
        return 0
    with executor if hasattr(executor, "__enter__") else contextlib.nullcontext():  # connect before any work
        pipe.check_data()
        written = pipe.produce(groups)  # every result the book reads, into the results store
    report = pipe.result("table8")
    print(format_mean_sd(report["summary"]).to_string())
    if not report["tests"].empty:
        print()
        print(report["tests"].round(4).to_string(index=False))
    print(f"\nwrote {len(written)} results ({', '.join(map(str, written))}) to {pipe.results_dir} "
          f"in {time.perf_counter() - t0:.0f}s")
    return 0


def _literature(args: argparse.Namespace) -> int:
    from hipaug.book import literature as lit
    from hipaug.errors import ConfigError

    with lit.quiet_log():  # the summary prints every warning: keep logging's copies off stderr
        if args.vault is not None:
            if args.note is not None or args.bib:
                raise ConfigError("literature: give either NOTE or --vault DIR, not both (--bib needs NOTE)")
            if args.out is None:
                raise ConfigError("literature: --vault needs --out DIR")
            print(lit.import_vault(args.vault, args.out, vault_root=args.vault_root).summary())
            return 0
        if args.note is None:
            raise ConfigError("literature: give a NOTE.md (with --out PAGE.md or --bib) or --vault DIR --out DIR")
        note = lit.read_note(args.note)  # before the option checks: a non-note is the error reported
        if args.bib:
            if args.out is not None:
                raise ConfigError("literature: --bib prints the entry; do not combine it with --out")
            sys.stdout.write(lit.note_to_bibtex(note))
            return 0
        if args.out is None:
            raise ConfigError("literature: --out PAGE.md is required (or --bib to print the BibTeX entry)")
        print(lit.import_note(note, args.out, vault_root=args.vault_root).summary())
        return 0


def _claims(args: argparse.Namespace) -> int:
    from hipaug.book.claims import claims_report, default_ledger

    text, status = claims_report(args.results, args.ledger or default_ledger(), args.note)
    print(text, file=sys.stderr if status else sys.stdout)
    return status


HANDLERS = {"phantom": _phantom, "data": _data, "profiles": _profiles, "train-gan": _train_gan, "sample": _sample,
            "train-classifier": _train_classifier, "filter": _filter, "reproduce": _reproduce,
            "literature": _literature, "claims": _claims}


def _dispatch(args: argparse.Namespace) -> int:
    return HANDLERS[args.command](args)
