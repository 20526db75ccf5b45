"""The claims on the terminal: `hipaug claims --results DIR` prints each claim's verdict, preconditions and tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hipaug.book.claims.evaluate import PAPER_STATISTIC, ClaimResult, evaluate, load_results
from hipaug.book.claims.ledger import check_against_note, load_ledger
from hipaug.book.claims.render import label, role_tag


def claims_report(results: Path, ledger: Path, note: Path | None = None) -> tuple[str, int]:
    """The report of the ledger's verdicts on a results store, and the exit status.

    Status 0: the text is the report (for stdout). Status 2: the ledger and the note disagree, and
    the text is one `hipaug: error:` line per problem (for stderr).
    """
    from hipaug.book.literature import read_note

    led = load_ledger(ledger)
    problems = check_against_note(led, read_note(note or led.note))
    if problems:
        return "\n".join(f"hipaug: error: {p}" for p in problems), 2
    store = load_results(results)
    run = store.get("run", {})
    lines = [f"results: {results}  profile={run.get('profile', '?')}  source={run.get('source', '?')}"]
    for r in evaluate(led, store):
        lines += _claim_lines(r)
    return "\n".join(lines), 0


def _claim_lines(r: ClaimResult) -> list[str]:
    """One claim's verdict, reason, preconditions and metric rows, indented under the verdict."""
    short = "not testable" if r.verdict == "not_testable" else r.verdict
    lines = [f"\n[{short.upper():>12}] {r.claim.title}", f"{'':15}{r.reason}"]
    for part in r.parts:
        lines.append(f"{'':15}part '{part.name}': {label(part.verdict)} ({part.reason})")
    for p in r.preconditions:
        lines.append(f"{'':15}precondition {p.name} [{'ok' if p.passed else 'FAILED'}]: {p.message}")
    for m in r.metrics:
        tag = role_tag(m.role)
        paper = f", {PAPER_STATISTIC} p={m.p_paper:.3g}" if np.isfinite(m.p_paper) else ""
        mdd = f", MDD80={m.mdd:.3f}" if np.isfinite(m.mdd) else ""
        lines.append(f"{'':15}{m.test}{tag} {m.metric}: {m.a}-{m.b} = {m.effect:+.3f} "
                     f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}] {m.shown_statistic or 'no test'} p={m.p:.3g}{paper}{mdd} "
                     f"-> {label(m.verdict)}" + (f" ({m.note})" if m.note else ""))
    return lines
