"""A chapter's page: the values it ran with, shown once, and its tables, written by one rule.

Each chapter notebook has a `parameters` cell and, after papermill, an `injected-parameters` cell
(`# Parameters`). The page shows neither: `stage_notebook` tags both `remove-cell` in the copy the
book renders, and the chapter's `data_summary(pipe)` cell shows `ran_with(pipe)`, one table of the
values the chapter actually ran with (the profile's seed and device resolved, the data named by
fingerprint). The executed `.ipynb` keeps both cells, so the download still shows what papermill ran.

Every DataFrame a chapter displays goes through `table_html` (`show_tables_by_the_rule`, called by
`setup`), which writes its numbers by the rule of `hipaug.core.numbers`.
"""

from __future__ import annotations

import re
from pathlib import Path

from hipaug.core import write_if_changed
from hipaug.errors import HipaugError

PARAMETER_TAGS = ("parameters", "injected-parameters")  # papermill's tags: the defaults, then the values passed
HIDDEN = "remove-cell"  # myst-nb drops such a cell, input and output, from the page


def hide_parameter_cells(nb) -> int:
    """Tag every parameters and injected-parameters cell of `nb` (nbformat) `remove-cell`; return how many."""
    n = 0
    for cell in nb.cells:
        tags = cell.metadata.setdefault("tags", [])
        if any(t in tags for t in PARAMETER_TAGS):
            n += 1
            if HIDDEN not in tags:
                tags.append(HIDDEN)
    return n


GLUE_FIGURE = re.compile(r"```\{glue:figure\}\s+(\S+)")


def glued_names(nb) -> set[str]:
    """The names an executed notebook glued (myst-nb records each in its output's metadata)."""
    return {o.get("metadata", {}).get("scrapbook", {}).get("name") for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", [])} - {None}


def hide_unglued_figures(nb) -> int:
    """Tag `remove-cell` each markdown cell placing a figure the run did not glue; return how many.

    A chapter draws some figures only where the data allow (boxes over heat maps need fracture
    boxes); its caption cell must then not reach the page, or Sphinx would place a missing figure.
    """
    have, n = glued_names(nb), 0
    for cell in nb.cells:
        names = GLUE_FIGURE.findall(cell.source) if cell.cell_type == "markdown" else []
        if names and not set(names) <= have:
            tags = cell.metadata.setdefault("tags", [])
            if HIDDEN not in tags:
                tags.append(HIDDEN)
            n += 1
    return n


def stage_notebook(src: Path, dst: Path) -> None:
    """Write the executed notebook `src` to `dst` as the book renders it: parameter cells and unglued figures hidden.

    `dst` is rewritten only when its bytes change, so an unchanged chapter keeps its mtime and
    Sphinx does not re-render it.
    """
    import nbformat

    nb = nbformat.read(src, as_version=4)
    if hide_parameter_cells(nb) == 0:
        raise HipaugError(f"{src}: no cell tagged 'parameters'; a chapter notebook must have one")
    hide_unglued_figures(nb)
    write_if_changed(dst, nbformat.writes(nb) + "\n")


FRACATLAS_CITATION = ("FracAtlas {cite}`abedeenFracAtlasDataset2023` (data {cite}`abedeenFracAtlasData2023`, "
                      "licence CC BY 4.0)")


def data_statement(source: str, limb_dir=None, pelvic_dir=None) -> str:
    """Which radiographs a page's numbers rest on, in words (one rule for every page that names its data)."""
    if source == "phantom":
        return "the built-in phantom radiographs (a stand-in for the paper's private hospital data)"
    if source.startswith("fracatlas-"):
        return (f"real radiographs: {FRACATLAS_CITATION}, its limb set (hand, leg, shoulder) for pre-training and "
                "its hip set for fracture detection")
    return f"your radiographs (limb `{limb_dir}`, pelvic `{pelvic_dir}`)"


def data_facts(pipe, kind: str) -> dict:
    """What a page says of one data set (limb or pelvic): its folder, fingerprint, counts and skipped files."""
    ds, user_dir = getattr(pipe, kind), getattr(pipe, f"{kind}_dir")
    return {"folder": f"`{user_dir}`" if user_dir is not None else "built-in phantom",
            "fingerprint": ds.fingerprint[:12], "images": len(ds), "classes": len(ds.class_names),
            "counts": ", ".join(f"`{c}` {n}" for c, n in ds.class_counts().items()), "skipped": len(ds.skipped),
            "left_out": ", ".join(f"`{c}` ({n} images)" for c, n in (pipe.limb_left_out if kind == "limb" else {}).items())}


def _data_row(pipe, kind: str) -> str:
    f = data_facts(pipe, kind)
    skipped = f"; {f['skipped']} unreadable files skipped" if f["skipped"] else ""
    left = f"; left out as too small: {f['left_out']}" if f["left_out"] else ""
    return (f"| {kind} data | {f['folder']}, fingerprint `{f['fingerprint']}`, {f['images']} images in "
            f"{f['classes']} classes ({f['counts']}){skipped}{left} |")


def data_summary_text(pipe) -> str:
    """Markdown naming the data a build shows (the front page): folders, fingerprints, classes and counts."""
    rows, classes = [], []
    for kind in ("limb", "pelvic"):
        f = data_facts(pipe, kind)
        skipped = f" ({f['skipped']} unreadable files skipped)" if f["skipped"] else ""
        rows.append(f"| {kind} | {f['folder']} | `{f['fingerprint']}` | {f['images']}{skipped} | {f['classes']} |")
        # A line per set rather than a table column: a set may have many classes.
        classes.append(f"- {kind} images per class: {f['counts']}" + (f"; left out as too small: {f['left_out']}"
                                                                       if f["left_out"] else ""))
    what = data_statement(pipe.source, pipe.limb_dir, pipe.pelvic_dir)
    return "\n".join([
        f"**Data shown:** {what}; profile `{pipe.profile.name}`, seed {pipe.seed}, results store "
        f"`{pipe.profile.name}/{pipe.source}`.", "",
        "| set | folder | fingerprint | images | classes |", "|---|---|---|---|---|", *rows, "", *classes, ""])


def ran_with(pipe) -> str:
    """Markdown: the one table of the values a chapter ran with (profile, data, seed, device, results)."""
    from hipaug.core import resolve_device

    asked = pipe.profile.device
    device = str(resolve_device(asked))
    device_txt = f"`{device}`" + ("" if device == asked else f" (asked: `{asked}`)")
    return "\n".join([
        "**This chapter ran with**", "",
        "| parameter | value |", "|---|---|",
        f"| profile | `{pipe.profile.name}` |",
        *([f"| data | {data_statement(pipe.source)} |"] if pipe.source != "phantom" else []),
        _data_row(pipe, "limb"),
        _data_row(pipe, "pelvic"),
        f"| seed | {pipe.seed} |",
        f"| device | {device_txt} |",
        f"| results | `{pipe.profile.name}/{pipe.source}` in the results store |", ""])


# ------------------------------------------------------------------ tables: numbers by the book's one rule
SCALED = {"mcc": " (×100)", "auc": " (×100)"}  # header note of a fold metric shown × 100 that is not a percentage


def proportions() -> tuple[str, ...]:
    """Column names that hold proportions in [0, 1] (MCC in [-1, 1]): the fold metrics, shown × 100."""
    from hipaug.evaluation import METRICS

    return METRICS


def book_table(df):
    """`df` as the book shows it: numbers written by `hipaug.core.numbers`, fold metrics × 100 with a header note."""
    from hipaug.core.numbers import format_frame, infer_kind

    props = proportions()
    text = format_frame(df, proportions=props)
    scaled = {str(c[0] if isinstance(c, tuple) else c) for i, c in enumerate(df.columns)
              if infer_kind(c, df.iloc[:, i], props) == "proportion"}
    names = {c: c + SCALED.get(c, " (%)") for c in scaled}
    return text.rename(columns=names, level=0 if text.columns.nlevels > 1 else None)


def table_html(df) -> str:
    """The HTML of `book_table(df)`: pandas' own table, with the numbers already written."""
    return book_table(df)._repr_html_()


def show_tables_by_the_rule() -> None:
    """Make the running kernel display every DataFrame through `table_html` (no-op outside IPython)."""
    import pandas as pd
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, table_html)
