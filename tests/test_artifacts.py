"""The artifact cache: hit, miss, stale, atomicity, resumable partial folders."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hipaug.core import artifacts
from hipaug.core.artifacts import fingerprint, load_or_run


@dataclasses.dataclass(frozen=True)
class Cfg:
    lr: float = 1e-3  # learning rate
    steps: int = 10  # steps


def _builder(calls, text="x"):
    def build(out):
        calls.append(out)
        (out / "result.txt").write_text(text)
    return build


def test_hit_after_miss(tmp_path):
    calls = []
    a = load_or_run("step", {"cfg": Cfg(), "seed": 1}, _builder(calls), root=tmp_path)
    b = load_or_run("step", {"cfg": Cfg(), "seed": 1}, _builder(calls), root=tmp_path)
    assert len(calls) == 1 and not a.cached and b.cached and a.path == b.path
    assert (b.path / "result.txt").read_text() == "x"
    stored = json.loads((b.path / artifacts.KEY_FILE).read_text())
    assert stored["spec"]["seed"] == 1 and stored["spec"]["cfg"]["lr"] == 1e-3


@pytest.mark.parametrize("change", [{"cfg": Cfg(lr=2e-3), "seed": 1}, {"cfg": Cfg(), "seed": 2},
                                    {"cfg": Cfg(), "seed": 1, "data": "other-fingerprint"}])
def test_any_input_change_misses(tmp_path, change):
    calls = []
    load_or_run("step", {"cfg": Cfg(), "seed": 1}, _builder(calls), root=tmp_path)
    art = load_or_run("step", change, _builder(calls), root=tmp_path)
    assert len(calls) == 2 and not art.cached


def test_version_change_makes_artifact_stale(tmp_path, monkeypatch):
    calls = []
    a = load_or_run("step", {"seed": 1}, _builder(calls), root=tmp_path)
    monkeypatch.setattr(artifacts, "__version__", "999.0")
    b = load_or_run("step", {"seed": 1}, _builder(calls), root=tmp_path)
    assert len(calls) == 2 and a.path != b.path


def test_tampered_key_is_rebuilt(tmp_path):
    calls = []
    a = load_or_run("step", {"seed": 1}, _builder(calls), root=tmp_path)
    (a.path / artifacts.KEY_FILE).write_text(json.dumps({"key": "not-the-key"}))
    b = load_or_run("step", {"seed": 1}, _builder(calls, "y"), root=tmp_path)
    assert len(calls) == 2 and not b.cached and (b.path / "result.txt").read_text() == "y"


def test_failed_build_leaves_no_finished_artifact_and_resumes_in_partial(tmp_path):
    def boom(out):
        (out / "checkpoint.txt").write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        load_or_run("step", {"seed": 1}, boom, root=tmp_path)
    assert not (tmp_path / "step").exists() or not any((tmp_path / "step").iterdir())
    seen = []

    def resume(out):
        seen.append((out / "checkpoint.txt").read_text())
        (out / "result.txt").write_text("done")

    art = load_or_run("step", {"seed": 1}, resume, root=tmp_path)
    assert seen == ["half"] and (art.path / "result.txt").read_text() == "done"


def test_fingerprint_is_order_independent_for_dicts_and_sensitive_to_values():
    assert fingerprint({"a": 1, "b": 2}) == fingerprint({"b": 2, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint(Cfg()) != fingerprint(Cfg(steps=11))


def test_default_root_is_the_checkouts_cache_from_any_folder_inside_it(tmp_path, monkeypatch):
    from pathlib import Path

    from hipaug.core.artifacts import default_root
    from hipaug.pipeline import default_results_root

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("HIPAUG_ARTIFACTS", raising=False)
    monkeypatch.delenv("HIPAUG_RESULTS", raising=False)
    for where in (repo, repo / "notebooks"):  # papermill from notebooks/ shares the repo root's cache
        monkeypatch.chdir(where)
        assert default_root() == repo / "artifacts" and default_results_root() == repo / "results"
    monkeypatch.chdir(tmp_path)  # outside the checkout: ./artifacts, as before
    assert default_root() == Path("artifacts")
    monkeypatch.setenv("HIPAUG_ARTIFACTS", str(tmp_path / "cache"))
    assert default_root() == tmp_path / "cache"
