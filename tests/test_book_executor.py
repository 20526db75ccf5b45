"""The book's `--executor`: it reaches the chapters that build a grid, and only them, and never their cache key.

Fast checks with papermill replaced by a recorder; tests/test_grid.py runs chapter 5 on two real
Dask workers and compares its Table VIII with the serial bytes.
"""

from __future__ import annotations

from pathlib import Path

import papermill as pm
import pytest

from hipaug.book import build as book

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def recorded(monkeypatch) -> dict[str, dict]:
    """Replace papermill's run by a recorder: {executed notebook name: the parameters it got}."""
    seen: dict[str, dict] = {}

    def fake(src, out, parameters, **_):
        seen[Path(src).name.replace(".running.source", "")] = dict(parameters)
        Path(out).write_text("{}")

    monkeypatch.setattr(pm, "execute_notebook", fake)
    return seen


def test_the_executor_goes_only_to_the_chapters_that_declare_it(recorded, tmp_path):
    cache = tmp_path / "cache"
    book.execute_all(ROOT, {"profile": "smoke"}, cache, executor="dask:2")
    takes = {stem: "\nexecutor = " in "\n" + src.read_text() for stem, src in
             ((s.stem, s) for s in book.notebook_sources(ROOT))}
    assert sum(takes.values()) >= 3, "chapters 2, 5 and 6 build a grid and declare the executor"
    assert len(recorded) == len(takes)
    for name, params in recorded.items():
        stem = name.split("-")[0].lstrip(".")
        assert params == ({"profile": "smoke", "executor": "dask:2"} if takes[stem] else {"profile": "smoke"}), name


def test_the_executor_is_not_part_of_the_cache_key(recorded, tmp_path):
    cache = tmp_path / "cache"
    first = book.execute_all(ROOT, {"profile": "smoke"}, cache)
    n = len(recorded)
    again = book.execute_all(ROOT, {"profile": "smoke"}, cache, executor="dask:2")
    assert again == first and len(recorded) == n, "a serial execution is reused when asked for Dask: same results"
    book.execute_all(ROOT, {"profile": "smoke", "seed": 3}, cache, executor="dask:2")
    assert len(recorded) == 2 * n, "a changed parameter still re-executes"


def test_a_malformed_executor_stops_the_build_in_one_line(capsys):
    assert book.main(["--profile", "smoke", "--executor", "spark", "--no-html"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hipaug: error: executor='spark' is not one of serial, auto, dask, dask:N (N local processes) or a "
                   "scheduler address such as tcp://host:8786"]
