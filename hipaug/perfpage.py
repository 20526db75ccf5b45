"""The book's performance appendix, read from `benchmarks/results/*.jsonl` (never typed in).

Each benchmark appends one JSON object per line: `{"benchmark": name, "date": ISO time,
"machine": ..., "cpu": ..., "torch": ..., "threads": ..., "rows": [{column: value, ...}, ...],
"notes": "..."}`. The appendix shows the latest record of each benchmark.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd


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
    for name, rec in sorted(recs.items()):
        out += [f"## {rec.get('title', name)}", "",
                f"{rec.get('date', '?')} · {rec.get('cpu', rec.get('machine', '?'))} · torch {rec.get('torch', '?')} · "
                f"{rec.get('threads', '?')} threads", ""]
        rows = rec.get("rows") or []
        if rows:
            out += [pd.DataFrame(rows).to_markdown(index=False, floatfmt=".3g"), ""]
        if rec.get("notes"):
            out += [str(rec["notes"]), ""]
    return "\n".join(out)
