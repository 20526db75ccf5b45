"""The book's performance appendix, read from `benchmarks/results/*.jsonl` (never typed in).

Each benchmark appends one JSON object per line: `{"benchmark": name, "title": ..., "date": ISO time,
"machine": ..., "cpu": ..., "torch": ..., "threads": ..., "loadavg": [1, 5, 15 min], "rows":
[{column: value, ...}, ...], "notes": "..."}`. The appendix shows the latest record of each; the
scaling and width tables are drawn as figures too (PNGs next to the page, `FIGURES`). A record
measured before the profile it ran with last changed is marked stale, in its table and its figure.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hipaug.book.plots import png_bytes
from hipaug.core import write_if_changed
from hipaug.core.numbers import number

# Reading order of the appendix; benchmarks not listed follow alphabetically.
ORDER = ("machine", "training", "training_width", "levers_vgg", "levers_inference", "levers_acgan", "inference", "phantoms",
         "scaling_image_size", "scaling_dataset", "pipeline_smoke", "pipeline_default", "book_smoke", "book_default", "paper_cost")
BUSY_LOAD = 0.5  # a 1-minute load average above this is flagged next to the record


def latest_records(results_dir: Path) -> dict[str, dict]:
    """The most recent record of each benchmark."""
    latest: dict[str, dict] = {}
    for f in sorted(results_dir.glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            rec = json.loads(line)
            name = rec.get("benchmark", f.stem)
            if name not in latest or str(rec.get("date", "")) >= str(latest[name].get("date", "")):
                latest[name] = rec
    return latest


def _fmt(v) -> str:
    """Three significant digits for measurements; thousands separators for large values; blank for None."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isinf(v):
            return str(v)
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return number(v)
    return str(v).replace("|", "\\|")


def _table(rows: list[dict]) -> str:
    df = pd.DataFrame(rows)
    return df.map(_fmt).to_markdown(index=False, disable_numparse=True)


def _record_body(rec: dict) -> list[str]:
    """Markdown lines of a record's table and notes."""
    out = []
    if rec.get("rows"):
        out += [_table(rec["rows"]), ""]
    if rec.get("notes"):
        out += [str(rec["notes"]), ""]
    return out


def _title(title: str) -> str:
    """A record title for a heading: a command after the colon is set as code (keeps `--` intact)."""
    head, sep, tail = title.partition(": ")
    if sep and tail.split(" ")[0] in ("hipaug", "python", "make"):
        return f"{head}: `{tail}`"
    return title


def _ordered(recs: dict[str, dict]) -> list[tuple[str, dict]]:
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(recs.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0]))


# The performance issue's targets on a 2-core CPU: (what, record, row filter, column, comparison, bound).
TARGETS = (
    ("VGG-16 training: utilisation of the measured conv throughput", "training",
     {"model": "VGG-16", "loop": "hipaug"}, "utilization", ">=", 0.7),
    ("AC-GAN training: utilisation of the measured conv throughput", "training",
     {"model": "AC-GAN", "loop": "hipaug"}, "utilization", ">=", 0.7),
    ("VGG-16 training: images/s of hipaug / the plain loop", "training",
     {"model": "VGG-16", "loop": "hipaug"}, "ratio hipaug/plain", ">=", 1.0),
    ("AC-GAN training: images/s of hipaug / the plain loop", "training",
     {"model": "AC-GAN", "loop": "hipaug"}, "ratio hipaug/plain", ">=", 1.0),
    # The valid-experiment issue's budget is 15 minutes for a cold build on a fresh clone, the venv
    # included; this record starts with the venv built, so its bound is the looser check.
    ("`make book` (default profile) from an empty cache, venv already built, s", "book_default",
     {"cache": "cold (empty notebook + artifact cache)"}, "wall s", "<=", 900.0),
    ("`make book` (default profile) cached rebuild, s", "book_default", {"cache": "cached"}, "wall s", "<=", 30.0),
    ("smoke pipeline (`hipaug reproduce --profile smoke`) from an empty cache, s", "pipeline_smoke",
     {"cache": "cold (empty artifact cache)"}, "wall s", "<=", 120.0),
    ("peak RSS of the default pipeline, MB", "pipeline_default", {}, "peak RSS MB", "<=", 4096.0),
    ("peak RSS of the default book build, MB", "book_default", {}, "peak RSS MB", "<=", 4096.0),
)


def profile_hashes() -> dict[str, str]:
    """SHA-256 of each built-in profile's YAML file (benchmark records store them)."""
    from hipaug.config import PROFILE_DIR

    return {p.stem: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(PROFILE_DIR.glob("*.yaml"))}


# Benchmarks that run a built-in profile their names do not end with: bench_training.py and
# bench_scaling.py size their networks by the `default` profile.
MEASURED_WITH = {"training": "default", "training_width": "default", "scaling_image_size": "default"}


def measured_with(name: str, profiles) -> str | None:
    """The built-in profile benchmark `name` ran with (its name's suffix or `MEASURED_WITH`), or None."""
    return MEASURED_WITH.get(name) or next((p for p in profiles if name.endswith("_" + p)), None)


def stale_profile(rec: dict, current: dict[str, str] | None = None) -> str | None:
    """The profile a record's benchmark depends on, if that profile changed since the record."""
    current = current if current is not None else profile_hashes()
    prof = measured_with(str(rec.get("benchmark", "")), current)
    if prof is None or prof not in current:
        return None
    return prof if (rec.get("profiles") or {}).get(prof) != current[prof] else None


def target_rows(recs: dict[str, dict]) -> list[dict]:
    """One row per target: the measured value (worst matching row) and whether it is met."""
    out = []
    current = profile_hashes()
    for what, name, where, col, op, bound in TARGETS:
        rows = [r for r in (recs.get(name) or {}).get("rows", [])
                if all(str(r.get(k, "")).startswith(v) for k, v in where.items()) and r.get(col) is not None]
        vals = [float(r[col]) for r in rows]
        if not vals:
            out.append({"target": what, "bound": f"{op} {bound:g}", "measured": None, "met": "not measured",
                        "record": name})
            continue
        worst = min(vals) if op == ">=" else max(vals)
        met = worst >= bound if op == ">=" else worst <= bound
        stale = stale_profile(recs[name], current)
        verdict = f"stale: not measured with the current `{stale}` profile; re-run `make bench`" if stale else \
            ("yes" if met else "**no**")
        out.append({"target": what, "bound": f"{op} {bound:g}", "measured": worst, "met": verdict, "record": name})
    return out


# ------------------------------------------------------------------ tables drawn as figures
@dataclass(frozen=True)
class FigureSpec:
    """How one benchmark's table is drawn: one panel per y column, x on a log scale."""

    benchmark: str  # the record drawn
    x: str  # column on the x axis
    x_label: str  # the x axis's words
    ys: tuple[str, ...]  # one panel per column
    series: str | None = None  # column whose values get one line each (None: one line)
    log_y: tuple[str, ...] = ()  # y columns drawn on a log scale (throughputs spanning decades)
    targets_from: str | None = None  # record whose TARGETS on the same column are drawn as lines


FIGURES = (
    FigureSpec("training_width", "width", "VGG-16 width (1 = torchvision's)", ("images/s", "utilization"),
               log_y=("images/s",), targets_from="training"),
    FigureSpec("scaling_image_size", "image size", "image size (px)", ("images/s", "peak RSS MB"),
               log_y=("images/s",)),
    FigureSpec("scaling_dataset", "images", "images in the folder", ("images/s", "peak RSS MB"), series="load"),
    FigureSpec("grid_paper", "workers", "GPUs (Dask workers)", ("hours at 50 TFLOP/s", "speed-up")),
)
COLOURS = ("#1976d2", "#2e7d32", "#ff9800", "#8e24aa", "#c62828")  # one per series
STALE_COLOUR = "#9e9e9e"  # every line of a stale record: the figure must not look current


def figure_label(name: str) -> str:
    """The MyST label of a benchmark's figure (`{numref}` target)."""
    return "fig-perf-" + name.replace("_", "-")


def _series(spec: FigureSpec, rows: pd.DataFrame, y: str) -> list[tuple[str | None, pd.DataFrame]]:
    """(series name, rows with both values, sorted by x) per line of the panel of `y`."""
    groups = rows.groupby(spec.series, sort=False) if spec.series else [(None, rows)]
    out = []
    for key, g in groups:
        g = g[g[spec.x].notna() & g[y].notna()].sort_values(spec.x)
        if len(g):
            out.append((key, g))
    return out


def _target_bounds(spec: FigureSpec, y: str) -> list[tuple[str, float]]:
    """The distinct (comparison, bound) of TARGETS on column `y` of the record `spec.targets_from`."""
    return list(dict.fromkeys((op, bound) for _, name, _, col, op, bound in TARGETS
                              if name == spec.targets_from and col == y))


def _tick(v: float) -> str:
    """A setting on an axis (0.125, 32, 16,000): as given, not rounded like a measurement."""
    return f"{v:,g}"


def draw(spec: FigureSpec, rec: dict, stale: str | None):
    """The figure of one record's table (a matplotlib Figure, no pyplot state); grey and marked when stale."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    rows = pd.DataFrame(rec.get("rows") or [])
    fig = Figure(figsize=(3.4 * len(spec.ys), 3.0), layout="constrained")
    axes = fig.subplots(1, len(spec.ys), squeeze=False)[0]
    for ax, y in zip(axes, spec.ys):
        xs = sorted(float(v) for v in rows[spec.x].dropna().unique())
        for i, (key, g) in enumerate(_series(spec, rows, y)):
            ax.plot(g[spec.x], g[y], marker="o", ls="--" if stale else "-", label=key,
                    color=STALE_COLOUR if stale else COLOURS[i % len(COLOURS)])
        for op, bound in _target_bounds(spec, y):
            ax.axhline(bound, color="#c62828", lw=1, ls=":", label=f"target {op.replace('>=', '≥').replace('<=', '≤')} "
                       f"{bound:g}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs, [_tick(v) for v in xs])
        ax.minorticks_off()
        if y in spec.log_y:  # ticks at 1, 2, 5 x 10^k, written out: "200", not "2 x 10^2"
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
            ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(spec.x_label)
        ax.set_ylabel(y)
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[1]:
            ax.legend(fontsize=7)
        if stale:
            ax.text(0.5, 0.5, "STALE", transform=ax.transAxes, rotation=25, fontsize=30, color="#c62828",
                    alpha=0.25, ha="center", va="center")
    if stale:
        fig.suptitle(f"stale: measured before the `{stale}` profile last changed", color="#c62828", fontsize=9)
    return fig


def _alt(spec: FigureSpec, rec: dict, stale: str | None) -> str:
    """Alt text: every plotted value, from the record (one line, no '#': a MyST option value)."""
    rows = pd.DataFrame(rec.get("rows") or [])
    parts = []
    for y in spec.ys:
        lines = [(f"{key} " if key is not None else "") + ", ".join(f"{_fmt(b)} at {_tick(a)}" for a, b in
                                                                  zip(g[spec.x], g[y])) for key, g in _series(spec, rows, y)]
        parts.append(f"{y} against {spec.x}, " + "; ".join(lines))
    head = f"Stale record, measured before the {stale} profile last changed. " if stale else ""
    text = head + f"Line charts of the {spec.benchmark} benchmark, one per measure. " + ". ".join(parts) + "."
    return " ".join(text.replace("#", "no.").split())


def figure_block(spec: FigureSpec, rec: dict, stale: str | None, out: Path) -> list[str]:
    """Write the record's PNG into `out` and return the MyST figure (label, caption, alt text) that shows it."""
    fname = f"perf_{spec.benchmark}.png"
    fig = draw(spec, rec, stale)
    write_if_changed(out / fname, png_bytes(fig, dpi=100))  # same record, same bytes: Sphinx keeps the page
    prof = measured_with(spec.benchmark, profile_hashes())
    ran = f", `{prof}` profile" if prof else ""
    caption = (f"{' and '.join(spec.ys)} against {spec.x_label}: the table above, drawn from the `{spec.benchmark}` "
               f"record of {str(rec.get('date', '?'))[:10]} ({rec.get('cpu', rec.get('machine', '?'))}, "
               f"{rec.get('threads', '?')} threads, torch {rec.get('torch', '?')}{ran}).")
    if any(_target_bounds(spec, y) for y in spec.ys):
        caption += " The dotted line is its target in the Targets table above."
    if stale:
        caption += f" **Stale**: measured before the `{stale}` profile last changed; re-run `make bench`."
    return [f":::{{figure}} {fname}", f":name: {figure_label(spec.benchmark)}", f":alt: {_alt(spec, rec, stale)}",
            ":width: 100%", "", caption, ":::", ""]


def _cold_book_bound() -> float:
    """The cold default book's bound in seconds, as `TARGETS` states it."""
    return next(b for _, name, where, _, _, b in TARGETS if name == "book_default" and "cold" in where.get("cache", ""))


def design_floor(recs: dict[str, dict], profile: str = "default") -> list[str]:
    """Why faster loops alone cannot meet the cold-book target: the design's FLOPs at this machine's measured rates.

    The FLOPs are the dry run's (`hipaug reproduce --dry-run --ablations`: every task a cold book builds). The
    rates are the fastest training (forward+backward) kernel of the latest `machine` record, a floor no loop
    beats, and hipaug's VGG-16 loop in the latest `training` record, what the loops reach.
    """
    from hipaug.config import load_profile
    from hipaug.models.vgg import CFG_D, scaled_channels
    from hipaug.pipeline import Pipeline

    kernels = [r for r in (recs.get("machine") or {}).get("rows", []) if r.get("pass") == "forward+backward"]
    if not kernels:
        return []
    total, bound = Pipeline(profile).plan(("results", "ablations"), workers=(1,)).total, _cold_book_bound()
    fast = max(kernels, key=lambda r: r["GFLOP/s"])
    loop = next((r for r in (recs.get("training") or {}).get("rows", [])
                 if r.get("model") == "VGG-16" and r.get("loop") == "hipaug" and r.get("GFLOP/s")), None)
    needed = total / bound / 1e9
    rows = [{"rate": f"the fastest training kernel measured ({fast['kernel']})", "GFLOP/s": fast["GFLOP/s"],
             "min": total / (fast["GFLOP/s"] * 1e9) / 60}]
    if loop:
        rows.append({"rate": f"hipaug's VGG-16 training loop (`training` record of {str(recs['training'].get('date'))[:10]})",
                     "GFLOP/s": loop["GFLOP/s"], "min": total / (loop["GFLOP/s"] * 1e9) / 60})
    rows.append({"rate": "needed to fit the target with nothing else running", "GFLOP/s": needed, "min": bound / 60})
    width = load_profile(profile).arch.width
    convs = [scaled_channels(c, width) for c in CFG_D if c != "M"]
    shape = re.search(r"(\d+)->(\d+)", fast["kernel"])  # "conv3x3 128->128 8px b64 NHWC"
    wide = min(int(shape[1]), int(shape[2])) if shape else "?"
    share = (f"{number(100 * needed / fast['GFLOP/s'])} % of the fastest kernel" if needed <= fast["GFLOP/s"]
             else f"more than the fastest kernel ({number(needed / fast['GFLOP/s'])}x)")
    return ["## The cold build's arithmetic", "",
            f"A cold `make book` of the `{profile}` profile computes {number(total / 1e12)} TFLOP (the dry run's "
            f"count: every task of the results and the ablations). To do that within the target of "
            f"{number(bound / 60)} min, with the venv, the notebooks and the HTML taking no time at all, every FLOP "
            f"would have to run at {number(needed)} GFLOP/s: {share} this machine was measured at"
            + (f", and {number(needed / loop['GFLOP/s'])}x the rate hipaug's loop reaches" if loop else "")
            + f". That kernel's layer has {wide} channels or "
            f"more; this network's convolutions have {min(convs)} to {max(convs)}, and the narrower a layer, the "
            "further it runs below the machine's best (the `training_width` figure). "
            + ("So faster loops alone cannot meet the target; only a smaller design would (fewer replications, "
               "fewer or shorter fine-tunings), at the cost of the power chapter 5 reports."
               if loop is None or needed > loop["GFLOP/s"] else
               "The loop already runs that fast: what remains is the work beside the arithmetic."),
            "", _table(rows), ""]


def paper_cost(root: Path) -> str:
    """Markdown of the `paper` profile's expected compute (the latest `paper_cost` record)."""
    rec = latest_records(root / "benchmarks" / "results").get("paper_cost")
    if not rec:
        return "```{note}\nNo `paper_cost` record yet: run `python benchmarks/bench_paper_cost.py`.\n```\n"
    out = [f"Counted by `benchmarks/bench_paper_cost.py` on {rec.get('date', '?')} (torch {rec.get('torch', '?')}).", ""]
    return "\n".join(out + _record_body(rec))


# Records shown elsewhere: the reproducibility page (`kernel_spread`), chapter 5 (`premise.study`).
NOT_PERFORMANCE = ("kernels", "transfer_premise")


def kernel_spread(root: Path) -> str:
    """Markdown of how far results move on another CPU (the latest `kernels` record of bench_kernels.py)."""
    rec = latest_records(root / "benchmarks" / "results").get("kernels")
    if not rec:
        return "```{note}\nNo `kernels` record yet: run `python benchmarks/bench_kernels.py`.\n```\n"
    current = profile_hashes()
    stale = sorted({r["profile"] for r in rec.get("rows", []) if r.get("profile") in current
                    and (rec.get("profiles") or {}).get(r["profile"]) != current[r["profile"]]})
    out = [f"Measured by `benchmarks/bench_kernels.py` on {rec.get('date', '?')} ({rec.get('cpu', '?')}, "
           f"torch {rec.get('torch', '?')}).", ""]
    if stale:
        out += ["```{warning}", f"Stale for {', '.join(f'`{s}`' for s in stale)}: measured before the profile last "
                "changed; re-run `python benchmarks/bench_kernels.py`.", "```", ""]
    return "\n".join(out + _record_body(rec))


def render(root: Path, out: Path | None = None) -> str:
    """Markdown of the performance appendix; with `out`, the figures of `FIGURES` are written there too."""
    recs = {k: v for k, v in latest_records(root / "benchmarks" / "results").items() if k not in NOT_PERFORMANCE}
    page = ["(performance)=", "# Performance", "",
            "Measured by `make bench` (`benchmarks/`), which appends one JSON line per benchmark to "
            "`benchmarks/results/`; this page shows the latest record of each. Utilisation is achieved GFLOP/s "
            "(FLOPs per step from `torch.utils.flop_counter`) divided by the measured convolution throughput of the "
            "same machine; the ratio compares hipaug's training step with a plain loop written the way public recipes "
            "do it.", ""]
    if not recs:
        page += ["```{note}", "No benchmark results are recorded yet: run `make bench`.", "```", ""]
        return "\n".join(page)
    page += ["## Targets", "",
             "The targets of the performance work on this 2-core CPU, against the latest records below "
             "(the worst matching row of each).", "", _table(target_rows(recs)), "", *design_floor(recs)]
    current, specs = profile_hashes(), {f.benchmark: f for f in FIGURES}
    for name, rec in _ordered(recs):
        la = rec.get("loadavg") or []
        load = f" · load {la[0]:.2f}" if la else ""
        page += [f"## {_title(rec.get('title', name))}", "",
                 f"{rec.get('date', '?')} · {rec.get('cpu', rec.get('machine', '?'))} · torch {rec.get('torch', '?')} · "
                 f"{rec.get('threads', '?')} threads{load}", ""]
        stale = stale_profile(rec, current)
        if stale:
            page += ["```{warning}", f"Stale: measured before the `{stale}` profile last changed; re-run `make bench`.",
                     "```", ""]
        page += _record_body(rec)
        if out is not None and name in specs and rec.get("rows"):
            page += [f"Drawn in {{numref}}`{figure_label(name)}`.", "", *figure_block(specs[name], rec, stale, out)]
    return "\n".join(page)
