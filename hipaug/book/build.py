"""Build the Jupyter Book: execute changed notebooks with papermill, generate pages, render HTML.

`python -m hipaug.book --profile default [--limb-dir DIR --pelvic-dir DIR] [--out DIR]` (what
`make book [PROFILE=...] [LIMB_DIR=... PELVIC_DIR=...] [OUT=...]` runs):

1. your folders, if given, are loaded and checked first (readable images, at least two limb
   classes, two pelvic classes with the positive one): bad input ends with one line and exit
   status 2 before anything is executed or written;
2. every `notebooks/NN_*.py` (jupytext percent source; its header names the kernel) is
   converted to `.ipynb` and executed with papermill (`-p profile`, and `-p limb_dir` /
   `-p pelvic_dir` for your folders) unless an executed copy with the same key is in
   `_build/nbcache/<profile>/<source>/` (key = notebook text + parameters + data fingerprints +
   hipaug version + hipaug source hash); `source` is `phantom` or `custom-<fingerprint>`;
3. every result of the step table is recorded in the results store (`Pipeline.produce`: the
   chapters computed them, so the store is the one `hipaug reproduce --ablations` writes);
4. the book's sources are mirrored into `_build/stage/<source>/`, with the executed notebooks
   and the generated pages (annotated paper, findings, the front page's data summary,
   performance appendix) in its `book/generated/`: books on different data share no page; the
   staged notebooks have their parameter cells tagged `remove-cell` (`hipaug.book.chapter`: a
   page shows the values it ran with once, the downloadable `.ipynb` keeps both cells);
5. `jupyter-book build -W` renders the stage (execution off, warnings fatal) and the HTML
   replaces the output folder only when the build succeeded: `_build/html` for the phantom,
   `_build/html-<source>` for your folders, or `--out DIR`.

`--nbval-refs DIR` instead writes the executed notebooks as nbval reference files.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import hipaug
from hipaug import __version__
from hipaug.book.chapter import stage_notebook
from hipaug.core import atomic_write_text, write_if_changed, write_json
from hipaug.core.project import find_project
from hipaug.errors import ConfigError, HipaugError

PACKAGE = Path(hipaug.__file__).resolve().parent  # the library's own code, hashed into the notebook key
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")  # what jupyter-book reads (book/generated is made per build)
MARKER = ".hipaug-book.json"  # written into every HTML output: only such a folder is ever replaced


def library_hash() -> str:
    """Hash of hipaug's source files: a library change re-executes the notebooks."""
    h = hashlib.sha256(__version__.encode())
    for p in sorted(PACKAGE.rglob("*")):
        if p.suffix in (".py", ".yaml") and "__pycache__" not in p.parts:
            h.update(("hipaug/" + p.relative_to(PACKAGE).as_posix()).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def build_dir(root: Path) -> Path:
    """The project's build folder (executed notebooks, stages, the HTML)."""
    return root / "_build"


def notebook_sources(root: Path) -> list[Path]:
    """The chapter notebooks of the project at `root`, in reading order."""
    return sorted((root / "notebooks").glob("[0-9][0-9]_*.py"))


def notebook_key(src: Path, params: dict, lib: str, data: dict | None = None) -> str:
    """Key of one executed notebook: its text, its parameters, the data's fingerprints, the library."""
    h = hashlib.sha256(src.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(json.dumps(data or {}, sort_keys=True).encode())
    h.update(lib.encode())
    return h.hexdigest()[:16]


def execute(src: Path, params: dict, out: Path, cwd: Path, executor: str | None = None) -> None:
    """Convert a jupytext source to .ipynb and execute it with papermill into `out`.

    `executor` goes to the notebooks whose parameters cell declares it (those that build a grid).
    """
    import jupytext
    import papermill as pm

    raw = out.with_suffix(".source.ipynb")
    jupytext.write(jupytext.read(src), raw)  # the kernelspec comes from the .py header, as for `jupytext --to ipynb`
    if executor is not None and "executor" in pm.inspect_notebook(str(raw)):
        params = {**params, "executor": executor}
    try:
        pm.execute_notebook(str(raw), str(out), parameters=params, cwd=str(cwd), progress_bar=False,
                            log_output=False, report_mode=False)
    finally:
        raw.unlink(missing_ok=True)


def execute_all(root: Path, params: dict, cache: Path, data: dict | None = None, *,
                force: bool = False, executor: str | None = None) -> dict[str, Path]:
    """Execute each chapter notebook with `params` (or reuse its cached execution); {stem: executed copy}.

    The executor is not part of a notebook's key: it changes who computes the artifacts, not them.
    """
    lib = library_hash()
    cache.mkdir(parents=True, exist_ok=True)
    done = {}
    for src in notebook_sources(root):
        key = notebook_key(src, params, lib, data)
        cached = cache / f"{src.stem}-{key}.ipynb"
        t0 = time.perf_counter()
        if force or not cached.is_file():
            tmp = cache / f".{src.stem}-{key}.running.ipynb"
            shown = {**params, **({"executor": executor} if executor else {})}
            print(f"[book] executing {src.name} ({', '.join(f'{k}={v}' for k, v in shown.items())})", flush=True)
            try:
                execute(src, params, tmp, cwd=root / "notebooks", executor=executor)
            except Exception as exc:  # papermill raises PapermillExecutionError with the cell's error
                last = str(exc).strip().splitlines()[-1] if str(exc).strip() else repr(exc)
                raise HipaugError(f"{src.name} failed: {last}") from exc
            for old in cache.glob(f"{src.stem}-*.ipynb"):
                old.unlink()
            os.replace(tmp, cached)
            print(f"[book] {src.name}: executed in {time.perf_counter() - t0:.1f}s", flush=True)
        else:
            print(f"[book] {src.name}: unchanged, reusing {cached.name}", flush=True)
        done[src.stem] = cached
    return done


def normalise_references(paths: list[Path]) -> None:
    """Drop volatile metadata (papermill timings, execution dates) from nbval reference notebooks.

    Cell ids (random per conversion) become their position, so regenerated references differ
    only where a cell's source or output does.
    """
    import nbformat

    for p in paths:
        nb = nbformat.read(p, as_version=4)
        nb.metadata.pop("papermill", None)
        for i, cell in enumerate(nb.cells):
            cell["id"] = f"cell-{i:03d}"
            cell.metadata.pop("papermill", None)
            cell.metadata.pop("execution", None)
        nbformat.write(nb, p)


def copy_if_changed(src: Path, dst: Path) -> None:
    """Copy a file unless `dst` holds the same bytes: unchanged pages keep their mtime, so Sphinx skips them."""
    write_if_changed(dst, src.read_bytes())


def stage_sources(root: Path, stage: Path) -> None:
    """Mirror the book's sources into `stage` (everything but book/generated, which each build writes)."""
    wanted = set()
    for name in BOOK_SOURCES:
        src = root / name
        for f in [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file()):
            rel = f.relative_to(root)
            if rel.parts[:2] == ("book", "generated") or "__pycache__" in rel.parts or \
                    any(part.startswith(".") for part in rel.parts):
                continue
            wanted.add(rel)
            copy_if_changed(f, stage / rel)
    for f in sorted((stage / "book").rglob("*")):  # a page removed from book/ leaves the stage too
        rel = f.relative_to(stage)
        if f.is_file() and rel not in wanted and rel.parts[:2] != ("book", "generated"):
            f.unlink()


@contextlib.contextmanager
def locked(stage: Path):
    """Hold an exclusive lock on a stage: two builds of the same data wait for each other."""
    stage.mkdir(parents=True, exist_ok=True)
    with open(stage / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def generate_pages(root: Path, profile: str, out: Path, results_dir: Path | None = None,
                   data_summary: str = "") -> None:
    """Write the pages generated from the note, the results store and the benchmarks into `out`."""
    from hipaug.book import pages as bookpages

    bookpages.generate_all(root, out, profile, results_dir, data_summary=data_summary)


def front_page_summary(pipe) -> str:
    """The front page's statement of the data this build shows."""
    from hipaug.book.chapter import data_summary_text

    tail = ("Every chapter, Table VIII ({ref}`table8`) and the verdicts ({ref}`findings`) of this build are "
            "measured on these data.")
    return data_summary_text(pipe) + "\n" + tail + "\n"


def default_out(root: Path, source: str) -> Path:
    """Where the HTML goes: `_build/html` for the phantom, `_build/html-<source>` for your folders."""
    return build_dir(root) / ("html" if source == "phantom" else f"html-{source}")


def replace_tree(src: Path, dst: Path, build: Path) -> None:
    """Copy `src` beside `dst`, then swap it in: a reader sees the old book or the new one, never a mix."""
    dst = dst.absolute()
    if dst.exists() and not dst.is_dir():
        raise ConfigError(f"--out {dst}: exists and is not a folder")
    ours = (dst.parent == build.absolute() and (dst.name == "html" or dst.name.startswith(("html-custom-", "html-fracatlas-")))) or \
        (dst / MARKER).is_file()
    if dst.is_dir() and any(dst.iterdir()) and not ours:
        raise ConfigError(f"--out {dst}: a non-empty folder that is not a hipaug book (no {MARKER}); "
                          "choose a new or empty folder")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp, old = dst.with_name(f".{dst.name}.new-{os.getpid()}"), dst.with_name(f".{dst.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    if dst.exists():
        os.replace(dst, old)
    os.replace(tmp, dst)
    shutil.rmtree(old, ignore_errors=True)


def prune_tippy(html: Path) -> int:
    """Delete the hover-preview scripts no page loads; return how many.

    sphinx-tippy writes each page's previews to a newly named `_static/tippy/<page>.<uuid>.js` and
    removes the old ones only for top-level pages, so a chapter's would pile up build after build.
    """
    folder = html / "_static" / "tippy"
    used = {m for page in html.rglob("*.html")
            for m in re.findall(r'_static/tippy/([^"?#]+\.js)', page.read_text(encoding="utf-8", errors="replace"))}
    stale = [js for js in folder.rglob("*.js") if js.relative_to(folder).as_posix() not in used]
    for js in stale:
        js.unlink()
    return len(stale)


def render_key(stage: Path, cmd: list[str]) -> str:
    """Hash of what the HTML is rendered from: the staged files, hipaug's code (the API page) and the tools."""
    from importlib.metadata import distributions

    h = hashlib.sha256(library_hash().encode() + " ".join(cmd[2:]).encode())
    h.update(" ".join(sorted(f"{d.metadata['Name']}=={d.version}" for d in distributions())).encode())
    for f in sorted(stage.rglob("*")):
        rel = f.relative_to(stage)
        if f.is_file() and rel.parts[0] != "_build" and rel.name != ".lock":
            h.update(rel.as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()


def build_html(root: Path, stage: Path, out: Path, about: dict, strict: bool = True, force: bool = False) -> None:
    """Render the staged book with Jupyter Book 1.x (execution off, warnings fatal), then swap it into `out`.

    A stage whose sources, library and tools are those of its last successful render is not rendered again:
    Sphinx would write the same pages (a second `--out` of one book, a `make book` with nothing changed).
    """
    exe = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(exe), "build", str(stage), "--builder", "html"]
    if strict:
        cmd += ["-W", "-n", "--keep-going"]
    html, stamp = stage / "_build" / "html", stage / "_build" / ".hipaug-rendered"
    key = render_key(stage, cmd)
    if not force and stamp.is_file() and stamp.read_text() == key and (html / "index.html").is_file():
        print(f"[book] {stage.name}: sources unchanged since its last render, reusing the HTML", flush=True)
    else:
        stamp.unlink(missing_ok=True)
        print("[book] " + " ".join(cmd[1:]), flush=True)
        res = subprocess.run(cmd, cwd=stage)
        if res.returncode != 0:
            raise HipaugError(f"jupyter-book build failed (exit {res.returncode}); see the messages above; "
                              f"{out} is unchanged")
        prune_tippy(html)
        atomic_write_text(stamp, key)
    write_json(html / MARKER, about)
    replace_tree(html, out, build_dir(root))


def _profile_param(profile: str) -> str:
    """The profile as the notebooks get it: a YAML path made absolute (they run in notebooks/)."""
    p = Path(profile).expanduser()
    return str(p.resolve()) if p.suffix in (".yaml", ".yml") and p.is_file() else profile


def build(args: argparse.Namespace) -> Path | None:
    """Check the data, execute the notebooks, generate the pages, render the HTML; return the HTML folder."""
    from hipaug.config import load_profile
    from hipaug.core.artifacts import default_root
    from hipaug.pipeline import Pipeline, default_results_root

    if args.fracatlas is not None:
        if args.limb_dir or args.pelvic_dir:
            raise ConfigError("give either --fracatlas SRC or --limb-dir/--pelvic-dir, not both")
        from hipaug.pipeline.editions import FRACATLAS_PROFILE, fracatlas_folders

        args.profile = args.profile or FRACATLAS_PROFILE
        load_profile(args.profile)
        args.limb_dir, args.pelvic_dir = fracatlas_folders(args.fracatlas)  # imported once into the artifact store
    args.profile = args.profile or "default"
    load_profile(args.profile)  # fail fast on an unknown profile
    if args.executor is not None:
        from hipaug.pipeline.executors import executor_kwargs

        executor_kwargs(args.executor)  # fail fast on a malformed --executor
    root = find_project()
    os.environ.setdefault("HIPAUG_PROGRESS", "0")
    # The kernels run in notebooks/: pin both stores so they write where this process reads.
    os.environ["HIPAUG_ARTIFACTS"] = str(default_root().resolve())
    os.environ["HIPAUG_RESULTS"] = str(default_results_root().resolve())
    pipe = Pipeline(args.profile, limb_dir=args.limb_dir, pelvic_dir=args.pelvic_dir)
    params, data = {"profile": _profile_param(args.profile)}, {}
    if pipe.limb_dir is not None or pipe.pelvic_dir is not None:
        pipe.check_data()  # bad data stops here, before any notebook runs or any page is written
        params.update({f"{k}_dir": str(d) for k, d in (("limb", pipe.limb_dir), ("pelvic", pipe.pelvic_dir)) if d})
        data = {"limb": pipe.limb.fingerprint, "pelvic": pipe.pelvic.fingerprint}
    source = pipe.source
    cache = build_dir(root) / "nbcache" / re.sub(r"[^\w.-]+", "_", args.profile) / source
    executed = execute_all(root, params, cache, data, force=args.force, executor=args.executor)
    if args.nbval_refs:
        args.nbval_refs.mkdir(parents=True, exist_ok=True)
        refs = []
        for stem, nb in executed.items():
            refs.append(args.nbval_refs / f"{stem}.ipynb")
            shutil.copyfile(nb, refs[-1])
        normalise_references(refs)
        print(f"[book] wrote {len(refs)} nbval references to {args.nbval_refs}")
        return None
    # The results store holds every result of the step table, as `hipaug reproduce --ablations` writes it: the
    # chapters built them (this only records what they computed), so both stores are the same files and bytes.
    pipe.produce(("results", "ablations"))
    from hipaug.book.pages import refresh_bib

    refresh_bib(root)  # book/references.bib is a source: refresh it before it is mirrored
    stage = build_dir(root) / "stage" / source
    with locked(stage):
        stage_sources(root, stage)
        generated = stage / "book" / "generated"
        for stem, nb in executed.items():  # the page hides papermill's parameter cells; the .ipynb keeps them
            stage_notebook(nb, generated / "notebooks" / f"{stem}.ipynb")
        generate_pages(root, args.profile, generated, pipe.results_path, front_page_summary(pipe))
        if args.no_html:
            print(f"[book] pages of {source} in {generated} (no HTML: --no-html)")
            return None
        out = args.out or default_out(root, source)
        build_html(root, stage, out, {"profile": args.profile, "source": source, "limb_dir": params.get("limb_dir"),
                                "pelvic_dir": params.get("pelvic_dir"), "hipaug": __version__}, force=args.force)
    if source == "phantom" and args.out is None:
        atomic_write_text(build_dir(root) / "book-profile.txt", args.profile + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hipaug.book", description=__doc__.splitlines()[0])
    ap.add_argument("--profile", help="profile the notebooks run with (default: default; fracatlas with --fracatlas)")
    ap.add_argument("--limb-dir", type=Path, help="your limb dataset folder (default: phantom radiographs)")
    ap.add_argument("--pelvic-dir", type=Path, help="your pelvic dataset folder (default: phantom radiographs)")
    ap.add_argument("--fracatlas", type=Path, metavar="SRC", help="the FracAtlas release (FracAtlas.zip or its folder): "
                    "the book on its limb and hip radiographs (_build/html-fracatlas-<fingerprint>)")
    ap.add_argument("--out", type=Path, help="HTML folder (default: _build/html for the phantom, "
                    "_build/html-custom-<fingerprint> for your folders)")
    ap.add_argument("--force", action="store_true", help="re-execute every notebook and render the HTML again")
    ap.add_argument("--executor", metavar="SPEC", help="who builds the fine-tuning grids of chapters 2, 5 and 6: "
                    "auto (default: the runs that fix their own threads on one local worker per core), serial, dask, dask:N "
                    "or a Dask scheduler address; the results are the same")
    ap.add_argument("--nbval-refs", type=Path, help="write executed notebooks as nbval references into DIR and stop")
    ap.add_argument("--no-html", action="store_true", help="execute and generate pages, skip the HTML build")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    env_before = dict(os.environ)
    try:
        out = build(args)
    except HipaugError as exc:
        print(f"hipaug: error: {exc}", file=sys.stderr)
        return 2
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    if out is not None:
        print(f"[book] done in {time.perf_counter() - t0:.0f}s: {out / 'index.html'}")
    return 0

