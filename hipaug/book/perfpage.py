"""The book's performance appendix, read from `benchmarks/results/*.jsonl` (never typed in).

Each benchmark appends one JSON object per line: `{"benchmark": name, "title": ..., "date": ISO time,
"machine": ..., "cpu": ..., "torch": ..., "threads": ..., "loadavg": [1, 5, 15 min], "rows":
[{column: value, ...}, ...], "notes": "..."}`. The appendix shows the latest record of each.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd

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
        return f"{v:.3g}"
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


def stale_profile(rec: dict, current: dict[str, str] | None = None) -> str | None:
    """The profile a record's benchmark name depends on, if that profile changed since the record."""
    current = current if current is not None else profile_hashes()
    name = str(rec.get("benchmark", ""))
    prof = next((p for p in current if name.endswith("_" + p)), None)
    if prof is None:
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


def paper_cost(root: Path) -> str:
    """Markdown of the `paper` profile's expected compute (the latest `paper_cost` record)."""
    rec = latest_records(root / "benchmarks" / "results").get("paper_cost")
    if not rec:
        return "```{note}\nNo `paper_cost` record yet: run `python benchmarks/bench_paper_cost.py`.\n```\n"
    out = [f"Counted by `benchmarks/bench_paper_cost.py` on {rec.get('date', '?')} (torch {rec.get('torch', '?')}).", ""]
    return "\n".join(out + _record_body(rec))


def render(root: Path) -> str:
    """Markdown of the performance appendix."""
    recs = latest_records(root / "benchmarks" / "results")
    out = ["(performance)=", "# Performance", "",
           "Measured by `make bench` (`benchmarks/`), which appends one JSON line per benchmark to "
           "`benchmarks/results/`; this page shows the latest record of each. Utilisation is achieved GFLOP/s "
           "(FLOPs per step from `torch.utils.flop_counter`) divided by the measured convolution throughput of the "
           "same machine; the ratio compares hipaug's training step with a plain loop written the way public recipes "
           "do it.", ""]
    if not recs:
        out += ["```{note}", "No benchmark results are recorded yet: run `make bench`.", "```", ""]
        return "\n".join(out)
    out += ["## Targets", "",
            "The targets of the performance work on this 2-core CPU, against the latest records below "
            "(the worst matching row of each).", "", _table(target_rows(recs)), ""]
    for name, rec in _ordered(recs):
        la = rec.get("loadavg") or []
        load = f" · load {la[0]:.2f}" if la else ""
        out += [f"## {_title(rec.get('title', name))}", "",
                f"{rec.get('date', '?')} · {rec.get('cpu', rec.get('machine', '?'))} · torch {rec.get('torch', '?')} · "
                f"{rec.get('threads', '?')} threads{load}", ""]
        out += _record_body(rec)
    return "\n".join(out)
