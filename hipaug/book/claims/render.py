"""The claims in the book: verdict badges on the annotated paper and the findings page.

`render_findings_and_annotations` evaluates the ledger on the build's results store and writes
the reader's note on Lin & Chung 2019 with a verdict under each annotation, and the findings
page: methods, power, preconditions and every comparison beside the paper's Table VIII.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hipaug.book.claims.evaluate import (
    PAIRED_STATISTIC,
    PAPER_STATISTIC,
    VERDICTS,
    ClaimResult,
    MetricResult,
    evaluate,
    results_store,
)
from hipaug.book.claims.ledger import RESULT_KEYS, Ledger, check_against_note, default_ledger, load_ledger, resolve
from hipaug.book.claims.preconditions import PreconditionResult, fmt_against, not_learned
from hipaug.method.conditions import GAN_CONDITIONS
from hipaug.core import numbers
from hipaug.errors import ConfigError
from hipaug.paper import paper_difference

VERDICT_LABELS = {"not_testable": "not testable in this run"}  # badge text where it differs from the id
ROLE_TAGS = {"secondary": " (secondary)", "reported": " (reported, does not vote)"}  # after a test's id
# A MyST label line followed by the heading it targets, in a jupytext percent notebook.
_LABELLED_HEADING = re.compile(r"^# \(([\w-]+)\)=\n# #+ (.+)$", re.MULTILINE)


def label(verdict: str) -> str:
    """The words shown for a verdict id ("not_testable" -> "not testable in this run")."""
    return VERDICT_LABELS.get(verdict, verdict)


def role_tag(role: str) -> str:
    """The words after a test's id for a metric row of this role ("" for a primary row)."""
    return ROLE_TAGS.get(role, "")


def badge(verdict: str) -> str:
    """An inline HTML verdict badge (styled by book/_static/hipaug.css)."""
    return f'<span class="verdict verdict-{verdict}">{label(verdict)}</span>'


def chapter_titles(root: Path) -> dict[str, str]:
    """{label: heading} of every labelled heading of the chapter notebooks (root/notebooks/NN_*.py)."""
    titles = {}
    for nb in sorted((root / "notebooks").glob("[0-9][0-9]_*.py")):
        titles.update(_LABELLED_HEADING.findall(nb.read_text(encoding="utf-8")))
    return titles


def _fmt(x: float, pct: bool = False) -> str:
    """A difference: in signed points for a fold metric, else signed with 3 significant digits."""
    if x is None or not np.isfinite(x):
        return numbers.MISSING
    return numbers.points(x * 100, signed=True) if pct else ("+" if x >= 0 else "") + numbers.number(x)


def _paper_figure(m: MetricResult) -> str:
    """The paper's Table VIII difference for this comparison and whether it was significant.

    "not reported" for a metric Table VIII lacks (precision, MCC, AUC) in a comparison the paper
    made; "" when the paper made no such comparison.
    """
    from hipaug.evaluation import PAPER_METRICS
    from hipaug.paper import TABLE8_SIGNIFICANT

    if paper_difference(PAPER_METRICS[0], m.a, m.b) is None:
        return ""
    d = paper_difference(m.metric, m.a, m.b)
    if d is None:
        return "not reported"
    return f"{d:+.2f} ({'significant' if TABLE8_SIGNIFICANT[m.metric] else 'not significant'})"


def metric_table(rows: list[MetricResult]) -> str:
    """Markdown table of metric-level results (differences, CIs and MDDs in points for fold metrics)."""
    from hipaug.evaluation import METRICS

    levels = {m.alpha for m in rows}
    ci = f"{(1 - levels.pop()) * 100:g}% CI" if len(levels) == 1 else "CI at 1 − α"
    head = (f"| comparison | metric | n | difference a − b | {ci} | p | test | p, {PAPER_STATISTIC} | "
            "MDD at 80% power | verdict | paper (points) |\n")
    head += "|---|---|---:|---:|---:|---:|---|---:|---:|---|---|\n"  # numeric columns right-aligned
    lines = []
    for m in rows:
        pct = m.metric in METRICS  # fold metrics are fractions: shown in points
        unit = " pts" if pct and np.isfinite(m.effect) else ""
        mdd = f"{numbers.points(m.mdd * 100)} pts" if np.isfinite(m.mdd) else "—"
        lines.append(f"| {m.test}{role_tag(m.role)} | {m.metric} | {m.n} | "
                     f"{_fmt(m.effect, pct)}{unit} | [{_fmt(m.ci_low, pct)}, {_fmt(m.ci_high, pct)}] | "
                     f"{numbers.pvalue(m.p)} | {m.shown_statistic or '—'} | {numbers.pvalue(m.p_paper) if pct else '—'} | {mdd} | {badge(m.verdict)}"
                     f"{' ' + m.note if m.note else ''} | {_paper_figure(m) or '—'} |")
    return head + "\n".join(lines)


def precondition_table(checks: tuple[PreconditionResult, ...]) -> str:
    """Markdown table of a claim's precondition checks with their measured values."""
    head = "| precondition | checked | measured | threshold | result | needed by |\n|---|---|---|---|---|---|\n"
    lines = []
    for p in checks:
        v, t = fmt_against(p.value, p.threshold) if np.isfinite(p.value) else \
            (f"n/a: {p.message}", f"{p.threshold:.2f}")
        lines.append(f"| {p.name} | {p.subject}: {p.quantity} | {v} | {t} | {'met' if p.passed else '**failed**'} | "
                     f"{', '.join(p.tests)} |")
    return head + "\n".join(lines)


def methods_text(ledger: Ledger) -> str:
    """The methodology paragraph, generated from the kinds of tests the ledger uses."""
    used = {(RESULT_KEYS[t.result], t.direction) for c in ledger.claims for t in c.tests}
    alphas = sorted({t.alpha for c in ledger.claims for t in c.tests})
    parts = []
    if any(kind == "paired" for kind, _ in used):
        parts.append(
            "fold metrics of two conditions are compared with the corrected resampled t-test of Nadeau & Bengio "
            "(2003), as Bouckaert & Frank (2004) apply it to repeated k-fold: the variance of the mean of the J "
            "paired fold differences is multiplied by 1/J + n_test/n_train instead of 1/J, because the folds' "
            "training sets overlap and the plain test is anti-conservative (Dietterich 1998). Its two-sided p "
            "value and confidence interval decide; the paper's plain paired t-test is shown beside it, labelled as "
            "the paper's test, with the minimum difference the design detects with 80% power. On the phantom, "
            "whose profile may draw independent replications instead of folds (each its own pelvic training set, "
            "one fresh test set for all), nothing is shared and the correction term is zero: both tests agree")
    if ("paired", "noninferior") in used:
        parts.append("non-inferiority of a fold metric is judged by the corrected interval against the margin")
    if used & {("proportions", "greater"), ("proportions", "less")}:
        parts.append("proportions from the GAN quality measures with a claimed direction are compared with a "
                     "one-sided Fisher's exact test")
    if ("proportions", "noninferior") in used:
        parts.append("non-inferiority of a proportion is judged by a parametric bootstrap confidence interval of "
                     "the difference against the claim's margin: supported when its lower end is above −margin, "
                     "contradicted when its upper end is below −margin (no p value decides)")
    level = " or ".join(f"{a:g}" for a in alphas) or "α"
    return ("How a verdict is reached: " + "; ".join(parts) + f". Tests are at α = {level}. A claim is supported when "
            "at least one primary comparison supports it and none contradicts it, contradicted in the mirror case, "
            "inconclusive otherwise, and not testable in this run when a precondition of a primary comparison "
            "fails; where a claim has several primary p values, a comparison counts only if it stays below α after "
            "Holm's step-down correction over them (the paper tested each metric on its own; the rows show each "
            "comparison's own p value and verdict); a claim that joins several assertions gets each part's verdict so, and the weakest of them "
            "(supported only when every part is); secondary comparisons are shown but do not vote. *Inconclusive* means the data cannot tell, not "
            "that the claim is false." + _reported_text(ledger.reported))


METRIC_NAMES = {"precision": "precision (positive predictive value)", "mcc": "MCC (Matthews correlation coefficient)",
                "auc": "ROC AUC"}  # how prose names a fold metric where its column name is terse


def _reported_text(reported: tuple[str, ...]) -> str:
    """The sentence on the ledger's reported metrics ("" when it has none)."""
    if not reported:
        return ""
    names = " and ".join(METRIC_NAMES.get(m, m) for m in reported)
    return (f" Every paired comparison also tests {names}, in rows marked *reported*: the book reports "
            f"{'them' if len(reported) > 1 else 'it'} beside the paper's metrics, the paper's Table VIII does not, "
            "and these rows never vote.")


def preconditions_text(ledger: Ledger) -> str:
    """The preconditions section of the findings page, thresholds taken from the ledger."""
    p = ledger.preconditions
    gan = ", ".join(f"`{c}`" for c in GAN_CONDITIONS)
    overrides = [f"`{c.id}` ({', '.join(f'{k} {v:g}' for k, v in vars(c.preconditions).items() if getattr(p, k) != v)})"
                 for c in ledger.claims if c.preconditions is not None and c.preconditions != p]
    return "\n".join([
        "## Preconditions: which runs can give a verdict", "",
        "A comparison can only support or refute a claim on a run where the models learned and the realism filter "
        "worked: a condition that predicts one class for every image, or sits at chance, cannot support or refute "
        "anything. Before any test, `hipaug.book.claims` checks these preconditions on the results; a test whose "
        f"preconditions fail is {badge('not_testable')} and never votes, and a claim whose primary comparison "
        "fails one is not testable in this run (secondary comparisons that fail one are shown as not testable "
        "without blocking the verdict).", "",
        f"- **learned**, for every condition a paired test compares: mean fold AUC at least {p.min_auc:g}, and no "
        f"fold of any repeat with sensitivity or specificity below {p.min_class_rate:g} (a near-constant "
        "predictor). Missing results or a NaN AUC fail it.",
        f"- **filter_valid**, for every test involving {gan} or a GAN quality proportion: the realism filter's "
        f"accuracy on held-out real limb images at least {p.min_filter_accuracy:g}, and at least "
        f"{p.min_accepted_fraction:g} × as many synthetic images accepted as there are real limb training images "
        "(`n_accepted` and `n_real_train` in `gan_quality`).", "",
        "These thresholds are the book's choices, not the paper's; `book/claims.yml` gives the reason for each"
        + (f", and these claims override them: {'; '.join(overrides)}" if overrides else "") + ".", ""])


def power_text(evaluated: list[ClaimResult]) -> str:
    """One sentence setting this run's detectable difference beside the paper's Table VIII difference."""
    from hipaug.book.power import pair_unit

    rows = [m for r in evaluated for m in r.metrics if m.statistic == PAIRED_STATISTIC and np.isfinite(m.mdd)
            and paper_difference(m.metric, m.a, m.b) is not None]
    rows.sort(key=lambda m: m.metric != "accuracy")
    if not rows:
        return ""
    m = rows[0]
    paper = paper_difference(m.metric, m.a, m.b)
    return (f"Power: on this run the smallest {m.a} − {m.b} difference in {m.metric} that the corrected test detects "
            f"with 80% power is {numbers.points(m.mdd * 100)} points over {m.n} "
            f"{pair_unit('replications' if m.test_train_ratio == 0 else 'cv')} "
            f"({numbers.points(m.mdd_paper * 100)} points for "
            f"the paper's plain test), while the paper's Table VIII difference is {paper:+.2f} points. An effect "
            "below the detectable difference will usually come out inconclusive whatever its sign.")


def part_lines(r: ClaimResult) -> list[str]:
    """A compound claim's parts, each verdict on its own line (nothing for a claim of one assertion)."""
    if not r.parts:
        return []
    return ["The claim joins assertions; it holds only where each does:", "",
            *[f"- {badge(p.verdict)} *{p.name}*: {p.reason}." for p in r.parts], ""]


# ------------------------------------------------------------------ the two pages
def _annotation_blocks(evaluated: list[ClaimResult], note, titles: dict[str, str],
                       source: str) -> tuple[dict, dict, list[str]]:
    """Per annotation id: chapter links and the verdict block under it; and the findings summary rows."""
    links, extras, summary_rows = {}, {}, []
    for r in evaluated:
        ann = resolve(r.claim, note)
        links[ann.id] = [(titles.get(lbl, lbl), lbl) for lbl in r.claim.chapters]
        evidence = f"{{ref}}`{titles.get(r.claim.evidence, r.claim.evidence)} <{r.claim.evidence}>`" \
            if r.claim.evidence else ""
        if r.verdict == "context":
            extras[ann.id] = f"{badge('context')} **Not testable here.** {r.claim.why}"
        else:
            extras[ann.id] = "\n".join([
                f"{badge(r.verdict)} **{r.claim.title}** — measured on {source}: {r.reason}.", "",
                *part_lines(r), f"*How it is tested:* {r.claim.why}", "", "*Preconditions* ({ref}`findings`):", "",
                precondition_table(r.preconditions), "", metric_table(r.metrics), "",
                f"Evidence: {evidence}." if evidence else ""])
        summary_rows.append(f"| {{ref}}`p. {ann.page or '?'} <{ann.id}>` | {r.claim.title} | {badge(r.verdict)} | "
                            f"{r.reason if r.verdict != 'context' else 'provenance or definition'} | {evidence} |")
    return links, extras, summary_rows


def coverage_text(acceptance) -> str:
    """Say whether the realism filter's accepted set (the with_gan condition's synthetic images) covers every limb class."""
    if acceptance is None or len(acceptance) == 0:
        return ""
    per = acceptance[acceptance["class"] != "(all)"]
    counts = ", ".join(f"`{c}` {int(n)}" for c, n in zip(per["class"], per["accepted"]))
    empty = per.loc[per["accepted"] == 0, "class"].tolist()
    if empty:
        return (f"**The `with_gan` condition's synthetic set misses {len(empty)} limb "
                f"{'class' if len(empty) == 1 else 'classes'}:** the filter accepted no image of "
                f"{', '.join(f'`{c}`' for c in empty)} (accepted per class: {counts}), so `with_gan` pre-trains on "
                "no synthetic image of them and its verdicts speak for the other classes only.")
    return f"The `with_gan` condition's synthetic set covers every limb class (accepted per class: {counts})."


def _findings_page(ledger: Ledger, citekey: str, evaluated: list[ClaimResult], run: dict, source: str,
                   summary_rows: list[str], acceptance=None, premise_md: str = "") -> str:
    """The findings page: how verdicts are reached, the verdict of every claim, and every comparison."""
    from hipaug.evaluation import METRICS, PAPER_METRICS

    counts = {v: sum(1 for r in evaluated if r.verdict == v) for v in (*VERDICTS, "context")}
    beyond = [m for m in METRICS if m not in PAPER_METRICS]
    sections = []
    for r in evaluated:
        if r.metrics:
            sections += [f"### {r.claim.title}", "", f"{badge(r.verdict)} {r.reason}.", "", *part_lines(r),
                         precondition_table(r.preconditions), "", metric_table(r.metrics), ""]
    return "\n".join([
        "(findings)=",
        "# What this book found about Lin & Chung 2019", "",
        f"Each annotation of the reader's note ({{ref}}`annotations-{citekey}`) is an entry of the claims ledger "
        "(`book/claims.yml`). Testable claims are evaluated by `hipaug.book.claims` on the results the notebooks wrote "
        f"in this build: {source}" + (f", fingerprints limb `{run.get('limb_fingerprint', '')[:12]}`, pelvic "
                                      f"`{run.get('pelvic_fingerprint', '')[:12]}`, seed {run.get('seed')}" if run else "")
        + ". Building the book on other data ({ref}`own-data`: `make book LIMB_DIR=... PELVIC_DIR=...`) recomputes "
        "every verdict for those data.", "",
        methods_text(ledger), "",
        power_text(evaluated), "",
        coverage_text(acceptance), "",
        premise_md, "",
        f"Verdicts: {', '.join(f'{badge(k)} {v}' for k, v in counts.items())}.", "",
        "| highlight | claim | verdict | why | evidence |", "|---|---|---|---|---|", *summary_rows, "",
        preconditions_text(ledger),
        "## Every comparison", "",
        *sections,
        "Differences, confidence intervals and minimum detectable differences (MDD) of fold metrics are in "
        "points, the metric × 100; the paper column gives Table VIII's with-GAN minus "
        "without-GAN difference and whether its paired t-test was significant (the paper's numbers, quoted), or "
        f"*not reported* for {', '.join(beyond)}, which Table VIII lacks.", ""])


def premise_front(root: Path, store: dict) -> str:
    """The front page's sentence on the transfer premise, gated like the findings page (the project's ledger)."""
    from hipaug.book import premise

    invalid = not_learned(premise.PAIR, store.get("table8_folds"), load_ledger(default_ledger(root)).preconditions)
    return premise.front_text(store, invalid)


def render_findings_and_annotations(root: Path, out: Path, profile: str, results_dir: Path | None = None,
                                    ledger_path: Path | None = None) -> dict[str, str]:
    """The annotated paper (with verdict badges) and the findings page of project `root`, as {file name: markdown}."""
    from hipaug.book.literature import read_note, render_page_report

    ledger = load_ledger(ledger_path or default_ledger(root))
    note = read_note(ledger.note)
    problems = check_against_note(ledger, note)
    if problems:
        raise ConfigError(problems[0])
    _, store = results_store(profile, results_dir)
    run = store.get("run", {})
    evaluated = evaluate(ledger, store)
    from hipaug.book.chapter import data_statement

    source = (f"profile `{run.get('profile', profile)}`, data `{run.get('source', 'none')}`: "
              + data_statement(run.get("source", "phantom"), run.get("limb_dir"), run.get("pelvic_dir")))
    links, extras, summary_rows = _annotation_blocks(evaluated, note, chapter_titles(root), source)
    page, written, _ = render_page_report(note, links=links, extras=extras, image_root=ledger.note.parent,
                                          image_dest=out, label=f"annotations-{note.citekey}")
    found = note.counts()
    for k in ("highlights", "images", "comments"):
        if k in found and written.get(k, found[k]) != found[k]:
            raise ConfigError(f"annotation page wrote {written.get(k)} {k} of {found[k]} found in {ledger.note.name}")
    from hipaug.book import premise

    tests = store.get("paired_tests")
    invalid = not_learned(premise.PAIR, store.get("table8_folds"), ledger.preconditions)
    premise_md = premise.describe(premise.premise_row(tests), run.get("design", "cv"), invalid) if tests is not None else ""
    findings = _findings_page(ledger, note.citekey, evaluated, run, source, summary_rows, store.get("filter_acceptance"),
                              premise_md)
    return {"annotations.md": page, "findings.md": findings}
