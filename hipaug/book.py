"""Build the Jupyter Book: execute changed notebooks with papermill, generate pages, render HTML.

`python -m hipaug.book --profile default` (what `make book` runs):

1. every `notebooks/NN_*.py` (jupytext percent source) is converted to `.ipynb` and executed
   with papermill and `-p profile <PROFILE>` unless an executed copy with the same key exists
   (key = notebook text + parameters + hipaug version + hipaug source hash);
2. executed notebooks are placed in `book/generated/notebooks/`, generated pages (the
   annotated paper, the findings summary, the performance appendix) in `book/generated/`;
3. `jupyter-book build -W` renders `_build/html` with execution off (warnings are fatal).

`--nbval-refs DIR` instead writes the executed notebooks as nbval reference files.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import __version__
from .errors import HipaugError
from .utils import atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
GENERATED = ROOT / "book" / "generated"
NB_CACHE = ROOT / "_build" / "nbcache"


def library_hash() -> str:
    """Hash of hipaug's source files: a library change re-executes the notebooks."""
    h = hashlib.sha256(__version__.encode())
    for p in sorted((ROOT / "hipaug").rglob("*")):
        if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts:
            h.update(p.relative_to(ROOT).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def notebook_sources() -> list[Path]:
    """The chapter notebooks in reading order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.py"))


def notebook_key(src: Path, params: dict, lib: str) -> str:
    h = hashlib.sha256(src.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(lib.encode())
    return h.hexdigest()[:16]


def execute(src: Path, params: dict, out: Path, cwd: Path) -> None:
    """Convert a jupytext source to .ipynb and execute it with papermill into `out`."""
    import jupytext
    import papermill as pm

    nb = jupytext.read(src)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    raw = out.with_suffix(".source.ipynb")
    jupytext.write(nb, raw)
    try:
        pm.execute_notebook(str(raw), str(out), parameters=params, cwd=str(cwd), kernel_name="python3",
                            progress_bar=False, log_output=False, report_mode=False)
    finally:
        raw.unlink(missing_ok=True)


def execute_all(profile: str, dest: Path, *, force: bool = False) -> list[Path]:
    """Execute each chapter notebook (or reuse its cached execution) into `dest`."""
    lib = library_hash()
    params = {"profile": profile}
    cache = NB_CACHE / profile
    cache.mkdir(parents=True, exist_ok=True)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    env_before = dict(os.environ)
    os.environ.setdefault("HIPAUG_PROGRESS", "0")
    try:
        for src in notebook_sources():
            key = notebook_key(src, params, lib)
            cached = cache / f"{src.stem}-{key}.ipynb"
            t0 = time.perf_counter()
            if force or not cached.is_file():
                tmp = cache / f".{src.stem}-{key}.running.ipynb"
                print(f"[book] executing {src.name} (profile={profile})", flush=True)
                try:
                    execute(src, params, tmp, cwd=NOTEBOOKS)
                except Exception as exc:  # papermill raises PapermillExecutionError with the cell's error
                    raise HipaugError(f"{src.name} failed: {str(exc).strip().splitlines()[-1] if str(exc).strip() else exc}") from exc
                for old in cache.glob(f"{src.stem}-*.ipynb"):
                    old.unlink()
                os.replace(tmp, cached)
                print(f"[book] {src.name}: executed in {time.perf_counter() - t0:.1f}s", flush=True)
            else:
                print(f"[book] {src.name}: unchanged, reusing {cached.name}", flush=True)
            target = dest / f"{src.stem}.ipynb"
            shutil.copyfile(cached, target)
            written.append(target)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    return written


def normalise_references(paths: list[Path]) -> None:
    """Drop volatile metadata (papermill timings, execution dates) from nbval reference notebooks."""
    import nbformat

    for p in paths:
        nb = nbformat.read(p, as_version=4)
        nb.metadata.pop("papermill", None)
        for cell in nb.cells:
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        nbformat.write(nb, p)


def generate_pages(profile: str) -> None:
    """Write the pages generated from the note, the results store and the benchmarks."""
    from . import bookpages

    bookpages.generate_all(ROOT, GENERATED, profile)


def build_html(strict: bool = True) -> None:
    """Render the book with Jupyter Book 1.x (execution off, warnings fatal)."""
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe), "build", str(ROOT), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    print("[book] " + " ".join(cmd[1:]), flush=True)
    res = subprocess.run(cmd, cwd=ROOT)
    if res.returncode != 0:
        raise HipaugError(f"jupyter-book build failed (exit {res.returncode}); see the messages above")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hipaug.book", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", help="profile the notebooks run with (default: %(default)s)")
    ap.add_argument("--force", action="store_true", help="re-execute every notebook")
    ap.add_argument("--nbval-refs", type=Path, help="write executed notebooks as nbval references into DIR and stop")
    ap.add_argument("--no-html", action="store_true", help="execute and generate pages, skip the HTML build")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        from .config import load_profile

        load_profile(args.profile)  # fail fast on an unknown profile
        if args.nbval_refs:
            refs = execute_all(args.profile, args.nbval_refs, force=args.force)
            normalise_references(refs)
            print(f"[book] wrote {len(refs)} nbval references to {args.nbval_refs}")
            return 0
        execute_all(args.profile, GENERATED / "notebooks", force=args.force)
        generate_pages(args.profile)
        if not args.no_html:
            build_html()
    except HipaugError as exc:
        print(f"hipaug: error: {exc}", file=sys.stderr)
        return 2
    atomic_write_text(ROOT / "_build" / "book-profile.txt", args.profile + "\n")
    print(f"[book] done in {time.perf_counter() - t0:.0f}s: {ROOT / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
