"""The Performance appendix: targets are judged from the records, never typed in."""

import json

from hipaug.book import perfpage


def _write(root, name, rows, date="2026-01-01T00:00:00+00:00", profiles=None):
    d = root / "benchmarks" / "results"
    d.mkdir(parents=True, exist_ok=True)
    rec = {"benchmark": name, "title": name, "date": date, "rows": rows, "loadavg": [0.1, 0.1, 0.1], "notes": "",
           "profiles": perfpage.profile_hashes() if profiles is None else profiles}
    with open(d / f"{name}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec) + "\n")


def _target(rows, start):
    return next(r for r in rows if r["target"].startswith(start))


def test_targets_met_missed_and_missing(tmp_path):
    _write(tmp_path, "training", [
        {"model": "VGG-16", "loop": "hipaug", "utilization": 0.35, "ratio hipaug/plain": 2.5},
        {"model": "VGG-16", "loop": "plain (DataLoader, 0 workers)", "utilization": 0.1, "ratio hipaug/plain": None},
        {"model": "AC-GAN", "loop": "hipaug", "utilization": 0.8, "ratio hipaug/plain": 0.9}])
    _write(tmp_path, "pipeline_smoke", [{"cache": "cold (empty artifact cache)", "wall s": 150.0},
                                        {"cache": "cached", "wall s": 3.0}])
    rows = perfpage.target_rows(perfpage.latest_records(tmp_path / "benchmarks" / "results"))
    assert _target(rows, "VGG-16 training: utilisation")["met"] == "**no**"
    assert _target(rows, "VGG-16 training: utilisation")["measured"] == 0.35
    assert _target(rows, "AC-GAN training: utilisation")["met"] == "yes"
    assert _target(rows, "VGG-16 training: images/s")["met"] == "yes"
    assert _target(rows, "AC-GAN training: images/s")["met"] == "**no**"
    # the cold row is judged, not the faster cached one
    assert _target(rows, "smoke pipeline")["measured"] == 150.0
    assert _target(rows, "smoke pipeline")["met"] == "**no**"
    assert _target(rows, "`make book` (default profile) from an empty")["met"] == "not measured"


def test_latest_record_wins_and_page_renders(tmp_path):
    _write(tmp_path, "pipeline_default", [{"cache": "cached", "peak RSS MB": 9000.0}], date="2026-01-01T00:00:00+00:00")
    _write(tmp_path, "pipeline_default", [{"cache": "cached", "peak RSS MB": 1200.0}], date="2026-02-01T00:00:00+00:00")
    page = perfpage.render(tmp_path)
    assert "## Targets" in page
    row = _target(perfpage.target_rows(perfpage.latest_records(tmp_path / "benchmarks" / "results")),
                  "peak RSS of the default pipeline")
    assert (row["measured"], row["met"]) == (1200.0, "yes")
    assert "1,200" in page


def test_empty_results_and_paper_cost(tmp_path):
    assert "No benchmark results are recorded yet" in perfpage.render(tmp_path)
    assert "No `paper_cost` record yet" in perfpage.paper_cost(tmp_path)
    _write(tmp_path, "paper_cost", [{"stage": "AC-GAN", "PFLOP": 1.5}])
    text = perfpage.paper_cost(tmp_path)
    assert "| AC-GAN" in text and "1.5" in text


def test_command_titles_are_code(tmp_path):
    d = tmp_path / "benchmarks" / "results"
    d.mkdir(parents=True)
    rec = {"benchmark": "pipeline_smoke", "title": "Whole pipeline: hipaug reproduce --profile smoke",
           "date": "2026-01-01", "rows": [{"cache": "cached", "wall s": 1.0}]}
    (d / "pipeline_smoke.jsonl").write_text(json.dumps(rec) + "\n")
    assert "## Whole pipeline: `hipaug reproduce --profile smoke`" in perfpage.render(tmp_path)
    assert perfpage._title("Levers: VGG-16 training step") == "Levers: VGG-16 training step"


def test_record_of_a_changed_profile_is_stale(tmp_path):
    hashes = perfpage.profile_hashes()
    _write(tmp_path, "book_default", [{"cache": "cached", "wall s": 5.0}], profiles={**hashes, "default": "0" * 64})
    _write(tmp_path, "pipeline_smoke", [{"cache": "cold (empty artifact cache)", "wall s": 60.0}], profiles={})
    rows = perfpage.target_rows(perfpage.latest_records(tmp_path / "benchmarks" / "results"))
    assert _target(rows, "`make book` (default profile) cached")["met"].startswith("stale")
    assert "`default`" in _target(rows, "`make book` (default profile) cached")["met"]
    assert _target(rows, "smoke pipeline")["met"].startswith("stale")  # recorded before records named profiles
    _write(tmp_path, "pipeline_smoke", [{"cache": "cold (empty artifact cache)", "wall s": 60.0}],
           date="2026-03-01T00:00:00+00:00")
    rows = perfpage.target_rows(perfpage.latest_records(tmp_path / "benchmarks" / "results"))
    assert _target(rows, "smoke pipeline")["met"] == "yes"
