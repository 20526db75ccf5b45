"""The Performance appendix: targets are judged from the records, never typed in."""

import json
import re

import matplotlib
import matplotlib.pyplot as plt

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


# ------------------------------------------------------------------ the scaling and width tables as figures
WIDTH_ROWS = [{"width": 0.125, "images/s": 700.0, "utilization": 0.45}, {"width": 0.5, "images/s": 90.0, "utilization": 0.9}]
SIZE_ROWS = [{"image size": 32, "images/s": 2100.0, "peak RSS MB": 750.0},
             {"image size": 64, "images/s": 760.0, "peak RSS MB": 820.0}]
DATASET_ROWS = [{"images": n, "load": load, "images/s": ips, "peak RSS MB": rss}
                for n, load, ips, rss in ((1000, "from cache", 2600.0, 590.0), (4000, "from cache", 7800.0, 690.0),
                                          (1000, "decode PNG (no cache)", 4000.0, 580.0))]


def _figure_blocks(page: str) -> dict[str, dict]:
    """{image file: {option: value, "caption": text}} of every MyST figure of the page."""
    from myst_parser.parsers.options import options_to_items

    out = {}
    for block in re.findall(r"^:::\{figure\} (\S+)\n(.*?)^:::$", page, re.MULTILINE | re.DOTALL):
        fname, body = block
        opts = [line[1:] for line in body.splitlines() if line.startswith(":")]
        items, state = options_to_items("\n".join(opts))
        assert not state.has_comments, opts  # a '#' would end the option value early
        caption = "\n".join(line for line in body.splitlines() if line and not line.startswith(":"))
        out[fname] = {**dict(items), "caption": caption}
    return out


def test_scaling_and_width_tables_are_drawn_as_numbered_figures(tmp_path):
    _write(tmp_path, "training_width", WIDTH_ROWS)
    _write(tmp_path, "scaling_image_size", SIZE_ROWS)
    _write(tmp_path, "scaling_dataset", DATASET_ROWS, profiles={})  # depends on no profile: never stale
    out = tmp_path / "generated"
    out.mkdir()
    page = perfpage.render(tmp_path, out)
    figs = _figure_blocks(page)
    assert set(figs) == {f"perf_{n}.png" for n in ("training_width", "scaling_image_size", "scaling_dataset")}
    for name in ("training_width", "scaling_image_size", "scaling_dataset"):
        f = figs[f"perf_{name}.png"]
        assert f["name"] == perfpage.figure_label(name) and f"{{numref}}`{f['name']}`" in page
        assert plt.imread(out / f"perf_{name}.png").shape[0] > 100  # a real PNG was written next to the page
        assert "2026-01-01" in f["caption"] and "Stale" not in f["caption"] and "Stale" not in f["alt"]
    # alt text and caption carry the record's numbers, formatted like its table
    alt = figs["perf_training_width.png"]["alt"]
    for r in WIDTH_ROWS:
        assert f"{perfpage._fmt(r['utilization'])} at {r['width']:g}" in alt
        assert f"{perfpage._fmt(r['images/s'])} at {r['width']:g}" in alt
    assert "`default` profile" in figs["perf_training_width.png"]["caption"]
    assert "from cache 2,600 at 1,000, 7,800 at 4,000" in figs["perf_scaling_dataset.png"]["alt"]
    assert ":::{figure}" not in perfpage.render(tmp_path)  # no folder, no figures


def test_width_figure_draws_the_utilisation_target_from_the_targets():
    spec = next(f for f in perfpage.FIGURES if f.benchmark == "training_width")
    rec = {"benchmark": "training_width", "rows": WIDTH_ROWS}
    util = perfpage.draw(spec, rec, None).axes[spec.ys.index("utilization")]
    bounds = {b for _, name, _, col, _, b in perfpage.TARGETS if name == "training" and col == "utilization"}
    flat = [line for line in util.lines if len(set(line.get_ydata())) == 1]
    assert bounds and {line.get_ydata()[0] for line in flat} == bounds


def test_stale_record_stays_stale_in_its_figure(tmp_path):
    hashes = perfpage.profile_hashes()
    _write(tmp_path, "scaling_image_size", SIZE_ROWS, profiles={**hashes, "default": "0" * 64})
    out = tmp_path / "generated"
    out.mkdir()
    page = perfpage.render(tmp_path, out)
    fig = _figure_blocks(page)["perf_scaling_image_size.png"]
    assert "**Stale**" in fig["caption"] and fig["alt"].startswith("Stale record") and "```{warning}" in page
    spec = next(f for f in perfpage.FIGURES if f.benchmark == "scaling_image_size")
    rec = perfpage.latest_records(tmp_path / "benchmarks" / "results")["scaling_image_size"]
    stale, fresh = perfpage.draw(spec, rec, "default"), perfpage.draw(spec, rec, None)
    grey = matplotlib.colors.to_rgba(perfpage.STALE_COLOUR)
    assert all(matplotlib.colors.to_rgba(line.get_color()) == grey for ax in stale.axes for line in ax.lines)
    assert not any(matplotlib.colors.to_rgba(line.get_color()) == grey for ax in fresh.axes for line in ax.lines)
    assert all("STALE" in [t.get_text() for t in ax.texts] for ax in stale.axes)
    assert "stale" in stale.get_suptitle() and not fresh.get_suptitle()
    # the same record with the current profile is not stale
    _write(tmp_path, "scaling_image_size", SIZE_ROWS, date="2026-02-01T00:00:00+00:00")
    assert "Stale" not in _figure_blocks(perfpage.render(tmp_path, out))["perf_scaling_image_size.png"]["caption"]


def test_the_cold_builds_arithmetic_is_priced_at_the_measured_rates(tmp_path):
    from hipaug.pipeline import Pipeline

    total = Pipeline("default").plan(("results", "ablations"), workers=(1,)).total
    bound = perfpage._cold_book_bound()
    kernels = [{"kernel": "conv3x3 64->128 32px b64", "pass": "forward", "GFLOP/s": 9e9},  # not a training kernel
               {"kernel": "conv3x3 128->128 8px b64 NHWC", "pass": "forward+backward", "GFLOP/s": 200.0},
               {"kernel": "conv3x3 16->16 64px b64", "pass": "forward+backward", "GFLOP/s": 80.0}]
    _write(tmp_path, "machine", kernels)
    _write(tmp_path, "training", [{"model": "VGG-16", "loop": "hipaug", "GFLOP/s": 50.0}])
    recs = perfpage.latest_records(tmp_path / "benchmarks" / "results")
    text = "\n".join(perfpage.design_floor(recs))
    needed = total / bound / 1e9
    assert f"| {perfpage.number(total / 200e9 / 60)} " in text  # the fastest training kernel, in minutes
    assert f"| {perfpage.number(total / 50e9 / 60)} " in text  # the loop's rate, in minutes
    assert f"at {perfpage.number(needed)} GFLOP/s" in text and "128 channels" in text
    assert "faster loops alone cannot meet the target" in text and "have 8 to 64" in text
    _write(tmp_path, "training", [{"model": "VGG-16", "loop": "hipaug", "GFLOP/s": 2 * needed}])  # a loop fast enough
    text = "\n".join(perfpage.design_floor(perfpage.latest_records(tmp_path / "benchmarks" / "results")))
    assert "The loop already runs that fast" in text and "cannot meet" not in text
    assert perfpage.design_floor({}) == []  # no machine record: no section
