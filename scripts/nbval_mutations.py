"""Does the regression test still bite? Apply changes that alter a result and check that the tests fail.

Each mutation edits one file (the library, the smoke profile or a chapter), runs the check that
should catch it from an empty artifact cache (nbval on the chapters it affects, or the reference
test for a chapter's own code), restores the file, and reports whether the check failed and on
which cell. A mutation the checks let through is printed as MISSED and the exit status is 1.

    .venv/bin/python scripts/nbval_mutations.py            # all mutations (about ten minutes on 2 cores)
    .venv/bin/python scripts/nbval_mutations.py --only swap-sens-spec
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", "tests/nbval_sanitize.cfg",
         "--nbval-cell-timeout=900"]


@dataclass(frozen=True)
class Mutation:
    """One change that alters a result, and the tests that must fail because of it."""

    name: str  # short id (--only)
    what: str  # the change in words
    path: str  # the file changed, relative to the repository
    old: str  # text replaced (must occur exactly once)
    new: str  # its replacement
    tests: tuple[str, ...]  # pytest arguments: reference notebooks (nbval) or test node ids


MUTATIONS = (
    Mutation("swap-sens-spec", "sensitivity and specificity swapped in binary_metrics", "hipaug/evaluation/metrics.py",
             '"sensitivity": float(recall_score(yt, yp, pos_label=1,', '"sensitivity": float(recall_score(yt, yp, pos_label=0,',
             ("tests/notebooks/05_transfer.ipynb",)),
    Mutation("profile-value", "a profile value changed: the smoke fine-tuning learning rate 0.0005 -> 0.0006",
             "hipaug/profiles/smoke.yaml", "  lr: 0.0005\n", "  lr: 0.0006\n", ("tests/notebooks/05_transfer.ipynb",)),
    Mutation("drop-condition", "a condition dropped: unfiltered_gan left out of the smoke profile",
             "hipaug/profiles/smoke.yaml", "conditions: [scratch, classic, without_gan, with_gan, unfiltered_gan]",
             "conditions: [scratch, classic, without_gan, with_gan]", ("tests/notebooks/05_transfer.ipynb",)),
    Mutation("table-row-library", "a chapter's table loses a row: the realism filter's acceptance table drops its total",
             "hipaug/method/filter.py", "    return pd.concat([out, total])[", "    return pd.concat([out])[",
             ("tests/notebooks/04_filter.ipynb",)),
    Mutation("table-row-chapter", "a chapter's table loses a row in the chapter's own code (chapter 5's check table)",
             "notebooks/05_transfer.py", "learned.round(3)\n", "learned.iloc[:-1].round(3)\n",
             ("tests/test_any_cpu.py::test_each_reference_runs_the_chapters_current_code",)),
)


def run(m: Mutation) -> tuple[bool, str, float]:
    """Apply `m`, run its tests from an empty cache, restore the file; (caught, first failure, seconds)."""
    path = ROOT / m.path
    text = path.read_text()
    if text.count(m.old) != 1:
        raise SystemExit(f"{m.name}: {m.path} does not contain the text to change exactly once")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"mutation-{m.name}-") as tmp:
        env = {**os.environ, "HIPAUG_ARTIFACTS": f"{tmp}/artifacts", "HIPAUG_RESULTS": f"{tmp}/results",
               "HIPAUG_PROGRESS": "0"}
        nbval = NBVAL if any(t.endswith(".ipynb") for t in m.tests) else []
        try:
            path.write_text(text.replace(m.old, m.new))
            res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                                  "-o", "addopts=", "-x", *nbval, *m.tests], cwd=ROOT, env=env,
                                 capture_output=True, text=True)
        finally:
            path.write_text(text)
    out = res.stdout
    failed = [ln.split(" - ")[0].removeprefix("FAILED ") for ln in out.splitlines() if ln.startswith("FAILED")]
    diff = next((ln.strip() for ln in out.splitlines() if re.match(r"\s+[-+] ", ln)), "")
    return res.returncode != 0, f"first failure {', '.join(failed[:1]) or '-'}: {diff}".strip(), time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", choices=[m.name for m in MUTATIONS], help="run only these mutations")
    args = ap.parse_args(argv)
    missed = 0
    for m in MUTATIONS:
        if args.only and m.name not in args.only:
            continue
        caught, detail, seconds = run(m)
        missed += not caught
        print(f"{'caught' if caught else 'MISSED'}  {m.name}: {m.what} ({seconds:.0f} s)\n        {detail[:400]}",
              flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
