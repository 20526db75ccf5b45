"""Docs that cannot rot: every shell command of README.md and book/own_data.md runs as written.

Each ```bash block is split into commands (backslash continuations joined, comments dropped)
and every command runs from the repository root with the venv's bin first on PATH. Only these
are substituted: the data paths (the docs' `/data/limbs` and `/data/pelvis` become small phantom
folders written by `hipaug phantom`; every output path goes to a temporary folder), the profile
(-> smoke), the GPU device (cuda -> cpu), the phantom commands' image counts (to the smoke
profile's, `SMOKE_COUNTS`) and a worker count above this machine's cores (to its cores: four Dask
processes on two cores only fight). A command that fails fails the test with its output.
The artifact cache is the shared one, so a warm cache (after the nbval run) keeps this short.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = (ROOT / "README.md", ROOT / "book" / "own_data.md")
PROFILES = ("default", "paper")

# Commands that do not run here, and why. Each must still be in the docs (checked below).
NOT_RUN = {
    "make test": "it runs this test suite (recursion)",
    "make book": "the default-profile phantom book is a cold build of over ten minutes, beyond make test's budget; "
                 "tests/test_book.py builds the smoke book through the same code",
    ".venv/bin/pip install -e '.[cluster]'": "it installs packages; make test's venv has them (the test extra)",
    ".venv/bin/dask scheduler --port 8786": "it serves until stopped; tests/test_grid.py starts local clusters",
    "CUDA_VISIBLE_DEVICES=0 .venv/bin/dask worker tcp://scheduler-host:8786 --nworkers 1 --nthreads 1":
        "it needs the scheduler above; tests/test_grid.py runs workers of a local cluster",
    ".venv/bin/hipaug reproduce --profile paper --device cuda --scheduler tcp://scheduler-host:8786 --artifacts "
    "/shared/hipaug/artifacts": "it needs a running cluster; tests/test_grid.py checks --scheduler's one-line error",
    ".venv/bin/hipaug reproduce --profile paper --device cuda --jobqueue slurm --workers 8 --artifacts "
    "/shared/hipaug/artifacts": "it needs SLURM; tests/test_grid.py checks --jobqueue's configuration error",
    ".venv/bin/papermill notebooks/05_transfer.ipynb out.ipynb -p profile paper -p device cuda -p executor dask":
        "a Dask cluster of one process per core; tests/test_grid.py runs this chapter with -p executor dask:2 and "
        "compares its Table VIII with the serial bytes",
    "make book PROFILE=paper EXECUTOR=dask:4": "a whole book on four Dask processes; tests/test_book.py passes "
                                               "--executor to the chapters that take it",
    ".venv/bin/hipaug data fetch fracatlas --out downloads/": "it downloads the release from figshare (no network "
        "here); tests/test_fracatlas.py runs the same command against a loopback server",
    "make book FRACATLAS=downloads/FracAtlas.zip": "a cold FracAtlas book takes about 20 minutes and needs the "
        "release; tests/test_fracatlas_edition.py runs the edition's chapters on the shared copy (smoke profile)",
    ".venv/bin/hipaug reproduce --fracatlas downloads/FracAtlas.zip --ablations": "it needs the release; "
        "tests/test_fracatlas_edition.py runs `hipaug reproduce --fracatlas` on the shared copy",
    ".venv/bin/hipaug data fracatlas downloads/FracAtlas.zip --out data/fracatlas": "it needs the release; "
        "tests/test_fracatlas.py runs the import on the shared copy and on zips built from it",
}
# The whole book on the small folders: run by test_whole_book_commands_run (a book build, marked `book`).
SLOW = ("make book LIMB_DIR=", ".venv/bin/python -m hipaug.book ")  # run by tests/test_docs_books.py

# Output paths of the docs, relative to the repository root: written under the test's folder instead.
OUTPUTS = ("data/limb", "data/pelvic", "data/synthetic", "data/selected", "runs/gan", "runs/vgg", "results",
           "out.ipynb", "page.md", "mybook")


def bash_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks of a Markdown text, continuations joined, comments dropped."""
    out = []
    for block in re.findall(r"^```bash[ \t]*\n(.*?)^```", text, re.M | re.S):
        block = re.sub(r"[ \t]*\\\n[ \t]*", " ", block)
        for line in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", line).strip()
            if line:
                out.append(line)
    return out


SMOKE_COUNTS = {"--per-class": "40", "--n": "120"}  # `hipaug phantom` sizes: the smoke profile's phantom sets


def substitute(cmd: str, limb: Path, pelvic: Path, tmp: Path) -> list[str]:
    """The command as the test runs it: data paths, profile, device, phantom counts and worker counts substituted."""
    paths = {"/data/limbs": str(limb), "/data/pelvis": str(pelvic), **{o: str(tmp / o) for o in OUTPUTS}}

    def path(tok: str) -> str:
        if tok in paths:
            return paths[tok]
        head, _, rest = tok.partition("/")
        if head in paths and rest:  # e.g. results/default/phantom: the profile inside a path too
            return str(Path(paths[head], *["smoke" if p in PROFILES else p for p in rest.split("/")]))
        return tok

    toks, out = shlex.split(cmd), []
    for i, tok in enumerate(toks):
        prev = toks[i - 1] if i else ""
        key, eq, value = tok.partition("=")
        if eq and re.fullmatch(r"[A-Z_]+", key):  # make variables
            out.append(f"{key}={'smoke' if key == 'PROFILE' else path(value)}")
        elif prev in ("--profile", "profile") and tok in PROFILES:
            out.append("smoke")
        elif prev == "--device" and tok == "cuda":
            out.append("cpu")
        elif prev in SMOKE_COUNTS and toks[1:2] == ["phantom"]:
            out.append(SMOKE_COUNTS[prev])
        elif prev == "--workers" and tok.isdigit() and int(tok) > (os.cpu_count() or 1):
            out.append(str(os.cpu_count() or 1))
        else:
            out.append(path(tok))
    return out


def check_paths(argv: list[str], tmp: Path) -> None:
    """Refuse a relative path the docs write to that the test did not redirect (it would land in the repo)."""
    for tok in argv[1:]:
        value = tok.partition("=")[2] if re.match(r"[A-Z_]+=", tok) else tok
        if "/" in value and not value.startswith(("/", ".venv/", "-")) and not (ROOT / value).exists():
            raise AssertionError(f"unmapped path {value!r} in `{shlex.join(argv)}`: add it to OUTPUTS")


def run(cmd: str, limb: Path, pelvic: Path, tmp: Path, timeout: int = 1800) -> None:
    """Run one docs command (substituted) from the repository root; AssertionError with its output on failure."""
    argv = substitute(cmd, limb, pelvic, tmp)
    check_paths(argv, tmp)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               HIPAUG_PROGRESS="0", HIPAUG_RESULTS=str(tmp / "results"))
    res = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"`{cmd}` (ran as `{shlex.join(argv)}`) exited {res.returncode}:\n"
                             f"{res.stdout[-2000:]}\n{res.stderr[-3000:]}")


def doc_commands() -> list[tuple[str, str]]:
    return [(doc.relative_to(ROOT).as_posix(), c) for doc in DOCS for c in bash_commands(doc.read_text("utf-8"))]


# ------------------------------------------------------------------ the extractor itself
def test_extractor_joins_continuations_and_drops_comments():
    text = ("prose\n```bash\nmake book   # a comment\n# only a comment\n.venv/bin/hipaug reproduce \\\n"
            "    --profile default\n```\n```text\nnot a command\n```\n")
    assert bash_commands(text) == ["make book", ".venv/bin/hipaug reproduce --profile default"]


def test_substitution_touches_only_data_paths_profile_device_and_sizes(tmp_path):
    argv = substitute(".venv/bin/hipaug reproduce --profile paper --device cuda --limb-dir /data/limbs "
                      "--pelvic-dir /data/pelvis --out results", Path("/L"), Path("/P"), tmp_path)
    assert argv == [".venv/bin/hipaug", "reproduce", "--profile", "smoke", "--device", "cpu", "--limb-dir", "/L",
                    "--pelvic-dir", "/P", "--out", str(tmp_path / "results")]
    assert substitute("make book LIMB_DIR=/data/limbs PROFILE=default", Path("/L"), Path("/P"), tmp_path) == \
        ["make", "book", "LIMB_DIR=/L", "PROFILE=smoke"]
    assert substitute("hipaug claims --results results/default/phantom", Path("/L"), Path("/P"), tmp_path)[-1] == \
        str(tmp_path / "results" / "smoke" / "phantom")
    assert substitute("hipaug phantom limb --out data/limb --per-class 150 --image-size 64", Path("/L"), Path("/P"),
                      tmp_path)[5:] == ["--per-class", "40", "--image-size", "64"]  # the count only, not the size
    many = substitute("hipaug reproduce --workers 64", Path("/L"), Path("/P"), tmp_path)[-1]
    assert int(many) == (os.cpu_count() or 1) and substitute("hipaug reproduce --workers 1", Path("/L"), Path("/P"),
                                                             tmp_path)[-1] == "1"


def test_a_broken_command_fails_the_test(small_folders, tmp_path):
    limb, pelvic = small_folders
    with pytest.raises(AssertionError, match=r"exited 2:[\s\S]*unrecognized arguments: --no-such-flag"):
        run(".venv/bin/hipaug data check /data/pelvis --no-such-flag", limb, pelvic, tmp_path)
    with pytest.raises(AssertionError, match="unmapped path 'scratch/out'"):
        run(".venv/bin/hipaug phantom pelvic --out scratch/out --n 4", limb, pelvic, tmp_path)


def test_every_command_not_run_is_still_in_the_docs():
    cmds = [c for _, c in doc_commands()]
    for cmd, why in NOT_RUN.items():
        assert cmd in cmds, f"`{cmd}` is listed as not run ({why}) but no longer in {', '.join(d.name for d in DOCS)}"
    for prefix in SLOW:
        assert any(c.startswith(prefix) for c in cmds), f"no docs command starts with `{prefix}` any more"


# ------------------------------------------------------------------ running them
# The docs' commands fall into chains that read only each other's outputs; each chain is one test in a
# module of its own (tests/test_docs_steps.py, test_docs_phantom_runs.py, test_docs_own_data.py), so
# `make test`'s two workers can run them side by side (xdist hands out whole modules).
CHAINS = ("steps", "phantom-runs", "own-data")


def chain_of(cmd: str) -> str:
    """The chain a docs command belongs to: the step-by-step commands, the phantom runs, or the rest."""
    words = shlex.split(cmd)[1:3]
    if words[:1] in (["phantom"], ["train-gan"], ["sample"], ["train-classifier"], ["filter"]) or \
            words == ["data", "check"] and "data/limb" in cmd:
        return "steps"
    if words[:1] in (["reproduce"], ["claims"]) and "--limb-dir" not in cmd:
        return "phantom-runs"
    return "own-data"


_done: set[tuple[str, ...]] = set()


def _run_doc(doc: str, small_folders, outdir: Path, slow: bool, chain: str | None = None) -> int:
    limb, pelvic = small_folders
    n = 0
    for d, cmd in doc_commands():
        if d != doc or cmd in NOT_RUN or cmd.startswith(SLOW) != slow or (chain and chain_of(cmd) != chain):
            continue
        key = tuple(substitute(cmd, limb, pelvic, outdir))
        if key in _done:  # the same command in both documents runs once
            continue
        run(cmd, limb, pelvic, outdir)
        _done.add(key)
        n += 1
    return n


def test_every_docs_command_is_in_a_chain():
    chains = {chain_of(c) for _, c in doc_commands() if c not in NOT_RUN and not c.startswith(SLOW)}
    assert chains == set(CHAINS), chains
    assert chain_of(".venv/bin/hipaug claims --results results/default/phantom") == "phantom-runs"
    assert chain_of(".venv/bin/hipaug reproduce --profile default --limb-dir /data/limbs --pelvic-dir /x") == "own-data"


def run_chain(chain: str, small_folders, outdir: Path) -> None:
    """Run every command of one chain, README.md's then book/own_data.md's, each once."""
    ran = sum(_run_doc(d.relative_to(ROOT).as_posix(), small_folders, outdir, slow=False, chain=chain) for d in DOCS)
    assert ran > 0, f"chain {chain}: no command ran"
