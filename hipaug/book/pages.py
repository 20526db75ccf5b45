"""Pages of the book generated from code, results and the reader's note (never typed in).

- `annotations.md`: the reader's note imported by `hipaug.book.literature`, with the chapters that
  test each highlight and the verdict the claims ledger measured;
- `findings.md`: every claim of the ledger and its verdict in one table;
- `cli_help.md`, `api_reference.md`: from argparse and the docstrings;
- `profiles.md`, `profile_summaries.md`, `environment.md`: the profile values (a full table and a
  line per profile) and package versions;
- `performance.md`: the latest benchmark results in `benchmarks/results/`;
- `data_source.md`: which data the build shows (folders, fingerprints, classes and counts);
- `front.md` and its PNGs: the front page's answer (`hipaug.book.front`).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import pkgutil
import platform
import re
import subprocess
import sys
from pathlib import Path

from hipaug.core import atomic_write_text, write_if_changed

NOTE = Path("book/literature/linMedicalDataAugmentation2019.md")
BIB_BEGIN = "% BEGIN generated: linMedicalDataAugmentation2019"
BIB_END = "% END generated: linMedicalDataAugmentation2019"


# ------------------------------------------------------------------ command line and API
CLI_COMMANDS = ([], ["phantom", "limb"], ["phantom", "pelvic"], ["data", "check"], ["data", "fracatlas"],
                ["data", "fetch"], ["train-gan"], ["sample"], ["train-classifier"], ["filter"], ["reproduce"],
                ["literature"], ["claims"], ["profiles"])


def cli_help() -> str:
    """The --help text of every command, as a MyST page fragment (from the installed `hipaug` command)."""
    out = []
    for cmd in CLI_COMMANDS:
        # The CLI sits above the book in the layers: run it as the reader would, not import it.
        res = subprocess.run([sys.executable, "-m", "hipaug", *cmd, "--help"], capture_output=True, text=True,
                             env={**os.environ, "COLUMNS": "80"})  # the width a terminal shows by default
        if res.returncode != 0:
            raise RuntimeError(f"hipaug {' '.join(cmd)} --help failed: {res.stderr.strip()[-300:]}")
        title = "hipaug " + " ".join(cmd) if cmd else "hipaug"
        text = re.sub(r"^usage: .*?hipaug", "usage: hipaug", res.stdout.strip())
        out += [f"## `{title}`", "", "```text", text, "```", ""]
    return "\n".join(out)


def api_modules() -> list[str]:
    """Every module of the package in layout order (packages first, then their modules)."""
    import hipaug

    names = [m.name for m in pkgutil.walk_packages(hipaug.__path__, "hipaug.")]
    return sorted(n for n in names if not n.endswith("__main__"))


def api_reference() -> str:
    """The API page body: one Sphinx autodoc section per module, grouped by subpackage."""
    import hipaug

    out = []
    for name in api_modules():
        depth = name.count(".")
        is_pkg = importlib.util.find_spec(name).submodule_search_locations is not None
        out += [f"{'#' * min(depth + 1, 3)} `{name}`", "", "```{eval-rst}", f".. automodule:: {name}"]
        # A package's __init__ only re-exports: show its docstring, document each name where it is defined.
        out += ["   :no-members:" if is_pkg else "   :members:", "```", ""]
    assert hipaug  # the package is importable before Sphinx tries
    return "\n".join(out)


# ------------------------------------------------------------------ profiles and environment
def profiles_table() -> str:
    """Every setting of every built-in profile, side by side."""
    import dataclasses

    import pandas as pd

    from hipaug.config import list_profiles, load_profile
    from hipaug.core.artifacts import canonical

    cols = {}
    for name in list_profiles():
        flat = {}

        def walk(prefix: str, value) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    if k != "__type__":
                        walk(f"{prefix}.{k}" if prefix else k, v)
            else:
                flat[prefix] = json.dumps(value) if isinstance(value, (list, dict)) else value

        p = load_profile(name)
        walk("", {f.name: canonical(getattr(p, f.name)) for f in dataclasses.fields(p)})
        cols[name] = flat
    df = pd.DataFrame(cols).fillna("")
    df.index.name = "setting"
    return df.to_markdown()


def profile_summaries() -> str:
    """One Markdown bullet per built-in profile with the settings that set its size and cost."""
    from hipaug.book.prose import describe_profile
    from hipaug.config import list_profiles, load_profile

    return "\n".join(f"- {describe_profile(load_profile(name))}" for name in list_profiles())


def environment_table() -> str:
    """Versions of Python and the packages that shape the results."""
    from importlib.metadata import PackageNotFoundError, version

    rows = [("python", platform.python_version()), ("platform", platform.platform())]
    for pkg in ("hipaug", "torch", "torchvision", "numpy", "scipy", "scikit-learn", "pandas", "pydicom", "pillow",
                "jupyter-book", "papermill", "jupytext", "nbval"):
        try:
            rows.append((pkg, version(pkg)))
        except PackageNotFoundError:
            rows.append((pkg, "not installed"))
    import torch

    rows.append(("torch threads", str(torch.get_num_threads())))
    rows.append(("CUDA available", str(torch.cuda.is_available())))
    return "| package | version |\n|---|---|\n" + "\n".join(f"| {a} | {b} |" for a, b in rows)


# ------------------------------------------------------------------ bibliography
def paper_bibtex(root: Path) -> str:
    """The paper's BibTeX entry, generated from the reader's note."""
    from hipaug.book.literature import note_to_bibtex, read_note

    return note_to_bibtex(read_note(root / NOTE)).strip()


def refresh_bib(root: Path) -> bool:
    """Replace the generated block of book/references.bib; return True if it changed."""
    bib = root / "book" / "references.bib"
    text = bib.read_text(encoding="utf-8")
    start, end = text.index(BIB_BEGIN) + len(BIB_BEGIN), text.index(BIB_END)
    new = text[:start] + "\n" + paper_bibtex(root) + "\n" + text[end:]
    if new != text:
        atomic_write_text(bib, new)
        return True
    return False


def generated_bib_block(root: Path) -> str:
    """The generated block currently in book/references.bib."""
    text = (root / "book" / "references.bib").read_text(encoding="utf-8")
    return text[text.index(BIB_BEGIN) + len(BIB_BEGIN):text.index(BIB_END)].strip()


# ------------------------------------------------------------------ driver
def generate_all(root: Path, out: Path, profile: str, results_dir: Path | None = None, data_summary: str = "") -> None:
    """Write every generated page for `profile` into `out`; verdicts come from `results_dir`.

    `data_summary` (Markdown naming the data of this build) becomes `data_source.md`, which the
    front page includes.
    """
    out.mkdir(parents=True, exist_ok=True)
    refresh_bib(root)
    write_if_changed(out / "data_source.md", data_summary or "The data of this build are not recorded.\n")
    write_if_changed(out / "cli_help.md", cli_help())
    write_if_changed(out / "api_reference.md", api_reference())
    from hipaug.book import layout

    write_if_changed(out / "layout.md", "```text\n" + layout.diagram(root, counts=True) + "\n```\n")
    write_if_changed(out / "profiles.md", profiles_table() + "\n")
    write_if_changed(out / "profile_summaries.md", profile_summaries() + "\n")
    write_if_changed(out / "environment.md", environment_table() + "\n")
    from hipaug.book import perfpage

    write_if_changed(out / "performance.md", perfpage.render(root, out))  # its figures' PNGs go next to it
    write_if_changed(out / "paper_cost.md", perfpage.paper_cost(root))
    write_if_changed(out / "kernel_spread.md", perfpage.kernel_spread(root))
    from hipaug.book.claims import render_findings_and_annotations

    for name, text in render_findings_and_annotations(root, out, profile, results_dir).items():
        write_if_changed(out / name, text)
    from hipaug.book import front

    front.write_front(root, out, profile, results_dir)  # front.md and its figures, for book/index.md
