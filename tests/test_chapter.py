"""A chapter's page: parameters shown once, numbers written by one rule, hover previews served offline."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
import yaml

from hipaug.book import chapter
from hipaug.core import numbers
from hipaug.errors import HipaugError

ROOT = Path(__file__).resolve().parents[1]


def _executed(tags_of_params=("parameters",), injected=True) -> nbformat.NotebookNode:
    """A notebook shaped like a papermill run: title, parameters, injected parameters, setup, summary."""
    cells = [nbformat.v4.new_markdown_cell("# 1. A chapter"),
             nbformat.v4.new_code_cell('profile = "default"\nseed = None', metadata={"tags": list(tags_of_params)})]
    if injected:
        cells.append(nbformat.v4.new_code_cell('# Parameters\nprofile = "smoke"\n',
                                               metadata={"tags": ["injected-parameters"]}))
    cells += [nbformat.v4.new_code_cell("pipe = setup(profile)"),
              nbformat.v4.new_code_cell("data_summary(pipe)", metadata={"tags": ["remove-input"]},
                                        outputs=[nbformat.v4.new_output("execute_result", {"text/plain": "table"},
                                                                        execution_count=3)])]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["papermill"] = {"parameters": {"profile": "smoke"}}
    return nb


# ------------------------------------------------------------------ the parameters, once
def test_both_parameter_cells_are_hidden_and_nothing_else():
    nb = _executed()
    assert chapter.hide_parameter_cells(nb) == 2
    hidden = [c.source.splitlines()[0] for c in nb.cells if "remove-cell" in c.metadata.get("tags", [])]
    assert hidden == ['profile = "default"', "# Parameters"]
    assert nb.cells[4].metadata["tags"] == ["remove-input"], "the summary cell still shows its output"
    chapter.hide_parameter_cells(nb)
    assert all(c.metadata.get("tags", []).count("remove-cell") <= 1 for c in nb.cells), "tagging twice adds twice"


def test_staged_notebook_keeps_every_cell_for_the_download(tmp_path):
    src, dst = tmp_path / "run.ipynb", tmp_path / "stage" / "01_x.ipynb"
    nbformat.write(_executed(), src)
    chapter.stage_notebook(src, dst)
    staged = nbformat.read(dst, as_version=4)
    original = nbformat.read(src, as_version=4)
    assert [c.source for c in staged.cells] == [c.source for c in original.cells]
    assert staged.metadata["papermill"] == original.metadata["papermill"]
    assert [c.get("outputs") for c in staged.cells] == [c.get("outputs") for c in original.cells]
    assert ["remove-cell" in c.metadata.get("tags", []) for c in staged.cells] == [False, True, True, False, False]
    assert "remove-cell" not in src.read_text(), "the executed copy (nbval, cache) is left alone"


def test_staging_an_unchanged_notebook_keeps_its_mtime(tmp_path):
    src, dst = tmp_path / "run.ipynb", tmp_path / "01_x.ipynb"
    nbformat.write(_executed(), src)
    chapter.stage_notebook(src, dst)
    before = dst.stat().st_mtime_ns
    chapter.stage_notebook(src, dst)
    assert dst.stat().st_mtime_ns == before


def test_a_notebook_without_parameters_cell_is_refused(tmp_path):
    src = tmp_path / "run.ipynb"
    nbformat.write(_executed(tags_of_params=(), injected=False), src)
    with pytest.raises(HipaugError, match="run.ipynb: no cell tagged 'parameters'"):
        chapter.stage_notebook(src, tmp_path / "out.ipynb")


def test_ran_with_names_profile_data_seed_and_device(small_folders):
    from hipaug.pipeline import Pipeline

    limb, pelvic = small_folders
    pipe = Pipeline("smoke", limb_dir=limb, pelvic_dir=pelvic, seed=11, device="cpu")
    text = chapter.ran_with(pipe)
    rows = dict(re.findall(r"^\| ([a-z ]+) \| (.+) \|$", text, re.MULTILINE))
    assert rows["profile"] == "`smoke`" and rows["seed"] == "11" and rows["device"] == "`cpu`"
    for kind, ds, folder in (("limb", pipe.limb, limb), ("pelvic", pipe.pelvic, pelvic)):
        row = rows[f"{kind} data"]
        assert f"`{folder}`" in row and f"`{ds.fingerprint[:12]}`" in row and f"{len(ds)} images" in row
        for c, n in ds.class_counts().items():
            assert f"`{c}` {n}" in row
    assert rows["results"] == f"`smoke/{pipe.source}` in the results store"
    assert text.count("| profile |") == 1, "one table, one row per value"


def test_build_stages_chapters_through_the_hiding_step():
    from hipaug.book import build

    assert build.stage_notebook is chapter.stage_notebook
    assert "stage_notebook(nb, generated" in Path(build.__file__).read_text()


# ------------------------------------------------------------------ numbers by one rule
@pytest.mark.parametrize("call,expected", [
    (lambda: numbers.percent(0.88456), "88.5"),
    (lambda: numbers.percent(1.0), "100.0"),
    (lambda: numbers.points(0.76), "0.8"),
    (lambda: numbers.points(-2.667, signed=True), "-2.7"),
    (lambda: numbers.points(2.0, signed=True), "+2.0"),
    (lambda: numbers.pvalue(0.031234), "0.0312"),
    (lambda: numbers.pvalue(1.234e-5), "1.23e-05"),
    (lambda: numbers.number(0.69315), "0.693"),
    (lambda: numbers.number(11.788), "11.8"),
    (lambda: numbers.number(123.456), "123"),
    (lambda: numbers.number(12), "12"),
    (lambda: numbers.mean_sd(0.5533, 0.0447), "55.3 ± 4.5"),
    (lambda: numbers.mean_sd(np.nan, 0.1), "n/a ± 10.0"),
    (lambda: numbers.pvalue(float("nan")), "n/a"),
    (lambda: numbers.quoted(0.76), "0.76"),
])
def test_one_rule_per_kind_of_number(call, expected):
    assert call() == expected


def test_a_table_column_shares_its_decimals_and_keeps_its_text():
    df = pd.DataFrame({"condition": ["a", "b", "c"], "fold": [0, 1, 2], "accuracy": [0.5, 0.86667, 1.0],
                       "p, corrected resampled t-test": [0.000123, 0.5, 0.04321],
                       "difference (points)": [-2.667, 10.0, 0.04],
                       "paper's difference (points)": [0.76, "not reported", np.nan],
                       "d_loss": [0.931, 2.5224, 0.35]})
    out = numbers.format_frame(df, proportions=["accuracy"])
    assert list(out["condition"]) == ["a", "b", "c"] and list(out["fold"]) == ["0", "1", "2"]
    assert list(out["accuracy"]) == ["50.0", "86.7", "100.0"]
    assert list(out["p, corrected resampled t-test"]) == ["0.000123", "0.5", "0.0432"], "p values are never percent"
    assert list(out["difference (points)"]) == ["-2.7", "10.0", "0.0"]
    assert list(out["paper's difference (points)"]) == ["0.76", "not reported", "n/a"], "the paper as printed"
    assert list(out["d_loss"]) == ["0.931", "2.522", "0.350"], "the same decimals down the column"
    wide = numbers.format_column(pd.Series([0.917, 0.029, 12.345, 0.00012]), "number")
    assert list(wide) == ["0.917", "0.029", "12.345", "0.000"], "small values keep digits, up to 3 decimals"
    tiny = numbers.format_column(pd.Series([0.00012, 0.0000456]), "number")
    assert list(tiny) == ["1.20e-04", "4.56e-05"], "a column of tiny numbers keeps 3 significant digits"
    assert df["accuracy"].iloc[0] == 0.5, "the input is not changed"


def test_table8_and_the_notebook_tables_round_alike():
    from hipaug.evaluation import format_mean_sd, summarize

    folds = pd.DataFrame({"condition": ["a"] * 3, "accuracy": [0.8, 0.9, 0.85]})
    summary = summarize(folds, ["accuracy"])
    mean = chapter.book_table(summary.round(3)).loc["a", ("accuracy (%)", "mean")]
    assert format_mean_sd(summary).loc["a", "accuracy"].split(" ± ")[0] == mean == "85.0"


def test_book_tables_name_their_scale_in_the_header():
    df = pd.DataFrame({"condition": ["a"], "accuracy": [0.5], "mcc": [0.1], "rate": [0.25]})
    out = chapter.book_table(df)
    assert list(out.columns) == ["condition", "accuracy (%)", "mcc (×100)", "rate"]
    assert list(out.iloc[0]) == ["a", "50.0", "10.0", "0.250"]
    html = chapter.table_html(df)
    assert 'class="dataframe"' in html and ">50.0<" in html and "0.500000" not in html


def test_the_kernel_shows_dataframes_through_the_rule():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        chapter.show_tables_by_the_rule()
        data, _ = shell.display_formatter.format(pd.DataFrame({"accuracy": [0.8667]}))
        assert ">86.7<" in data["text/html"] and "accuracy (%)" in data["text/html"]
    finally:
        shell.display_formatter.formatters["text/html"].pop(pd.DataFrame, None)
        InteractiveShell.clear_instance()


# ------------------------------------------------------------------ hover previews, offline
def test_tippy_scripts_come_from_the_book_with_their_licences():
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert "sphinx_tippy" in cfg["extra_extensions"]
    conf = cfg["config"]
    assert conf["tippy_enable_doitips"] is False and conf["tippy_enable_wikitips"] is False, "those fetch at build"
    readme = (ROOT / "book" / "_static" / "vendor" / "README.txt").read_text()
    for rel in conf["tippy_js"]:
        assert not re.match(r"(https?:)?//", rel), rel
        path = ROOT / "book" / "_static" / rel
        assert path.is_file(), rel
        assert (path.parent / "LICENSE").read_text().lstrip().startswith(("MIT", "The MIT")), rel
        assert hashlib.sha256(path.read_bytes()).hexdigest() in readme, f"{rel} differs from the vendored release"


def test_stale_preview_scripts_are_pruned(tmp_path):
    from hipaug.book.build import prune_tippy

    tips = tmp_path / "_static" / "tippy" / "book" / "generated" / "notebooks"
    tips.mkdir(parents=True)
    for name in ("05_transfer.new.js", "05_transfer.old.js"):
        (tips / name).write_text("selector_to_html = {}")
    page = tmp_path / "book" / "generated" / "notebooks" / "05_transfer.html"
    page.parent.mkdir(parents=True)
    page.write_text('<script defer="defer" src="../../../_static/tippy/book/generated/notebooks/05_transfer.new.js">')
    assert prune_tippy(tmp_path) == 1
    assert sorted(p.name for p in tips.iterdir()) == ["05_transfer.new.js"]
    assert prune_tippy(tmp_path / "no-book") == 0


def test_an_unchanged_stage_is_not_rendered_again(tmp_path, monkeypatch):
    import subprocess

    from hipaug.book import build

    stage, renders = tmp_path / "stage" / "custom-x", []
    (stage / "book").mkdir(parents=True)
    (stage / "book" / "index.md").write_text("# A\n")

    def fake_jupyter_book(cmd, cwd):
        renders.append(cmd)
        html = stage / "_build" / "html"
        html.mkdir(parents=True, exist_ok=True)
        (html / "index.html").write_text(f"render {len(renders)}")
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(build.subprocess, "run", fake_jupyter_book)
    monkeypatch.setattr(build, "build_dir", lambda root: tmp_path)
    about = {"source": "custom-x"}
    build.build_html(tmp_path, stage, tmp_path / "one", about)
    build.build_html(tmp_path, stage, tmp_path / "two", about)  # a second --out of the same book
    assert len(renders) == 1 and (tmp_path / "two" / "index.html").read_text() == "render 1"
    assert (tmp_path / "two" / build.MARKER).is_file()
    (stage / "book" / "index.md").write_text("# B\n")  # a changed page
    build.build_html(tmp_path, stage, tmp_path / "two", about)
    build.build_html(tmp_path, stage, tmp_path / "two", about, strict=False)  # other options
    build.build_html(tmp_path, stage, tmp_path / "two", about, strict=False, force=True)
    assert len(renders) == 4 and (tmp_path / "two" / "index.html").read_text() == "render 4"


def test_every_page_is_written_again_so_previews_stay_complete():
    from types import SimpleNamespace

    from hipaug.book import previews

    env = SimpleNamespace(found_docs={"book/index", "book/bibliography", "book/generated/notebooks/05_transfer"})
    assert previews.every_page(None, env) == sorted(env.found_docs)
    exts = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["extra_extensions"]
    assert exts.index("hipaug.book.previews") > exts.index("sphinx_tippy")


def test_a_figure_the_run_did_not_glue_leaves_the_page():
    """The phantom draws no boxes over heat maps: the caption of that figure must not reach the page."""
    import nbformat

    from hipaug.book.chapter import HIDDEN, glued_names, hide_unglued_figures

    nb = nbformat.read(ROOT / "tests" / "notebooks" / "06_beyond.ipynb", as_version=4)
    assert "fig-beyond-cam" in glued_names(nb) and "fig-beyond-boxes" not in glued_names(nb)
    assert hide_unglued_figures(nb) == 1
    hidden = [c.source for c in nb.cells if HIDDEN in c.metadata.get("tags", [])]
    assert any("{glue:figure} fig-beyond-boxes" in s for s in hidden)
    assert not any("{glue:figure} fig-beyond-cam\n" in s for s in hidden)


def test_rounding_a_table_for_display_keeps_small_p_values():
    table = pd.DataFrame({"p, paired t-test": [0.000154023, 0.34567], "difference (points)": [3.2567, -0.1449],
                          "n pairs": [20, 20]})
    shown = numbers.rounded(table, 3)
    assert shown["p, paired t-test"].tolist() == [0.000154, 0.346]  # not 0.0
    assert shown["difference (points)"].tolist() == [3.257, -0.145] and shown["n pairs"].tolist() == [20, 20]
    assert table["p, paired t-test"].iloc[0] == 0.000154023  # the caller's table is left alone
