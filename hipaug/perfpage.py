"""The book's performance appendix, read from `benchmarks/results/*.jsonl` (never typed in).

Each benchmark appends one JSON object per line: `{"benchmark": name, "title": ..., "date": ISO time,
"machine": ..., "cpu": ..., "torch": ..., "threads": ..., "loadavg": [1, 5, 15 min], "rows":
[{column: value, ...}, ...], "notes": "..."}`. The appendix shows the latest record of each.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

# Reading order of the appendix; benchmarks not listed follow alphabetically.
ORDER = ("machine", "training", "levers_vgg", "levers_inference", "levers_acgan", "inference", "phantoms",
         "scaling_image_size", "scaling_dataset", "pipeline_smoke", "pipeline_default", "book_smoke", "paper_cost")
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


def _ordered(recs: dict[str, dict]) -> list[tuple[str, dict]]:
    rank = {n: i for i, n in enumerate(ORDER)}
    return sorted(recs.items(), key=lambda kv: (rank.get(kv[0], len(ORDER)), kv[0]))


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
    for name, rec in _ordered(recs):
        la = rec.get("loadavg") or []
        load = f" · load {la[0]:.2f}" if la else ""
        out += [f"## {rec.get('title', name)}", "",
                f"{rec.get('date', '?')} · {rec.get('cpu', rec.get('machine', '?'))} · torch {rec.get('torch', '?')} · "
                f"{rec.get('threads', '?')} threads{load}", ""]
        rows = rec.get("rows") or []
        if rows:
            out += [_table(rows), ""]
        if rec.get("notes"):
            out += [str(rec["notes"]), ""]
    return "\n".join(out)
