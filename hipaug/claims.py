"""The claims ledger: every highlight of the reader's note gets a verdict measured by the book.

`book/claims.yml` has one entry per annotation of the note, matched by a quoted substring of
the highlight (or `image:<file name>` for an image annotation), never by line number. An entry
is `context` (provenance or a definition: rendered with why it is not testable here) or
`testable`, with tests that read the results store written by the notebooks:

- `paired`: a comparison of two conditions on per-fold metrics (`table8_folds`): paired
  t-test across folds (`scipy.stats.ttest_rel`, as the paper) and a bootstrap CI of the mean
  difference (`hipaug.evaluate.paired_test`);
- `proportions`: two proportions from `gan_quality` (e.g. synthetic images inside the real
  feature manifold vs held-out real images): Fisher's exact test and a bootstrap CI of the
  difference; `direction: noninferior` with a `margin` asks "not worse by more than margin".

Verdict of one metric: `supported` when the difference is significant at `alpha` in the
claimed direction (for non-inferiority: the CI's lower end is above `-margin`),
`contradicted` when it is significant the other way (non-inferiority: the CI's upper end is
below `-margin`), `inconclusive` otherwise or with fewer than `min_pairs` folds. A claim is
`supported` if at least one primary metric is and none contradicts it, `contradicted` in the
mirror case, `inconclusive` otherwise (including mixed evidence). Secondary tests are shown
but do not vote.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .errors import ConfigError, DataError

VERDICTS = ("supported", "contradicted", "inconclusive")
RESULT_KEYS = {"table8_folds": "paired", "gan_quality": "proportions"}
PAIRED_METRICS = ("accuracy", "sensitivity", "specificity", "f1", "auc")
PROPORTIONS = ("gan_test", "real_val", "precision_synthetic", "precision_real", "precision_accepted",
               "precision_rejected")
DIRECTIONS = ("greater", "less", "noninferior")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LEDGER = ROOT / "book" / "claims.yml"


@dataclass(frozen=True)
class Check:
    """One machine-checkable comparison."""

    id: str  # short name shown in tables
    result: str  # results-store key: table8_folds | gan_quality
    a: str  # condition (paired) or proportion (proportions) expected to be larger
    b: str  # the comparator
    metrics: tuple[str, ...]  # paired: metrics compared; proportions: ("proportion",)
    direction: str = "greater"  # greater | less | noninferior (a not below b by more than margin)
    margin: float = 0.0  # non-inferiority margin (absolute difference of proportions)
    alpha: float = 0.05  # significance level
    role: str = "primary"  # primary tests vote for the verdict; secondary are shown only
    min_pairs: int = 3  # fewer folds than this: inconclusive


@dataclass(frozen=True)
class Claim:
    """A ledger entry for one annotation of the note."""

    id: str  # ledger id (stable, used in links)
    match: str  # quoted substring of the highlight, or image:<file name>
    kind: str  # context | testable
    title: str  # one-line statement of the claim as the book tests it
    why: str = ""  # context: why it is not testable here; testable: how it is operationalised
    chapters: tuple[str, ...] = ()  # labels of chapters that discuss or test it
    evidence: str = ""  # label of the cell/section producing the evidence
    tests: tuple[Check, ...] = ()  # testable only


@dataclass
class Ledger:
    note: Path  # the annotated note the ledger refers to
    claims: list[Claim] = field(default_factory=list)


# ------------------------------------------------------------------ loading and checking
def load_ledger(path: str | Path = DEFAULT_LEDGER) -> Ledger:
    """Read and validate the ledger's own structure (one line per problem, first one raised)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"claims ledger {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    note = (path.parent / raw.get("note", "")).resolve()
    claims, seen = [], set()
    for i, entry in enumerate(raw.get("claims") or []):
        where = f"{path.name}: claim {entry.get('id', i)!r}"
        cid = str(entry.get("id") or "")
        if not cid or cid in seen:
            raise ConfigError(f"{where}: missing or duplicate id")
        seen.add(cid)
        kind = entry.get("kind")
        if kind not in ("context", "testable"):
            raise ConfigError(f"{where}: kind must be context or testable, got {kind!r}")
        tests = []
        for t in entry.get("tests") or []:
            tests.append(_test(t, where))
        if kind == "testable" and not any(t.role == "primary" for t in tests):
            raise ConfigError(f"{where}: a testable claim needs at least one primary test")
        if kind == "context" and not str(entry.get("why") or "").strip():
            raise ConfigError(f"{where}: a context entry must say why it is not testable here")
        claims.append(Claim(id=cid, match=str(entry.get("match") or ""), kind=kind, title=str(entry.get("title") or cid),
                            why=str(entry.get("why") or "").strip(), chapters=tuple(entry.get("chapters") or ()),
                            evidence=str(entry.get("evidence") or ""), tests=tuple(tests)))
    return Ledger(note=note, claims=claims)


def _test(t: dict, where: str) -> Check:
    result = t.get("result")
    if result not in RESULT_KEYS:
        raise ConfigError(f"{where}: unknown result key {result!r} (known: {', '.join(RESULT_KEYS)})")
    metrics = tuple(t.get("metrics") or (("proportion",) if RESULT_KEYS[result] == "proportions" else ()))
    if RESULT_KEYS[result] == "paired":
        bad = [m for m in metrics if m not in PAIRED_METRICS]
        if bad or not metrics:
            raise ConfigError(f"{where}: unknown metric {bad[0] if bad else '(none)'!r} (known: {', '.join(PAIRED_METRICS)})")
    else:
        for side in ("a", "b"):
            if t.get(side) not in PROPORTIONS:
                raise ConfigError(f"{where}: unknown proportion {t.get(side)!r} (known: {', '.join(PROPORTIONS)})")
    direction = t.get("direction", "greater")
    if direction not in DIRECTIONS:
        raise ConfigError(f"{where}: direction {direction!r} is not one of {', '.join(DIRECTIONS)}")
    role = t.get("role", "primary")
    if role not in ("primary", "secondary"):
        raise ConfigError(f"{where}: role {role!r} is not primary or secondary")
    return Check(id=str(t.get("id") or f"{t.get('a')} vs {t.get('b')}"), result=result, a=str(t.get("a")), b=str(t.get("b")),
                metrics=metrics, direction=direction, margin=float(t.get("margin", 0.0)),
                alpha=float(t.get("alpha", 0.05)), role=role, min_pairs=int(t.get("min_pairs", 3)))


def resolve(claim: Claim, note) -> Any:
    """The annotation of `note` a claim refers to (DataError naming the claim if none or several)."""
    from .literature import match_highlight

    if claim.match.startswith("image:"):
        name = claim.match[len("image:"):].strip()
        hits = [a for a in note.annotations if any(Path(i).name == name for i in a.images)]
        if len(hits) != 1:
            raise DataError(f"claim {claim.id!r}: image {name!r} matches {len(hits)} annotations of the note")
        return hits[0]
    try:
        return match_highlight(note, claim.match)
    except DataError as exc:
        raise DataError(f"claim {claim.id!r}: {exc}") from None


def check_against_note(ledger: Ledger, note=None) -> list[str]:
    """Problems between ledger and note: claims matching no highlight, highlights without an entry."""
    from .literature import read_note

    note = note or read_note(ledger.note)
    problems, covered = [], {}
    for c in ledger.claims:
        try:
            ann = resolve(c, note)
        except DataError as exc:
            problems.append(str(exc))
            continue
        if ann.id in covered:
            problems.append(f"claim {c.id!r} and claim {covered[ann.id]!r} refer to the same annotation {ann.id}")
        covered[ann.id] = c.id
    for a in note.annotations:
        if a.id not in covered:
            problems.append(f"annotation {a.id} (p. {a.page or '?'}) has no entry in the ledger")
    return problems


# ------------------------------------------------------------------ evaluation
@dataclass
class MetricResult:
    test: str
    role: str
    metric: str
    a: str
    b: str
    n: int
    value_a: float
    value_b: float
    effect: float  # a - b
    ci_low: float
    ci_high: float
    p: float
    statistic: str
    verdict: str
    note: str = ""


@dataclass
class ClaimResult:
    claim: Claim
    verdict: str  # supported | contradicted | inconclusive | context
    metrics: list[MetricResult]
    reason: str


def _verdict(direction: str, effect: float, lo: float, hi: float, p: float, alpha: float, margin: float) -> str:
    if not np.isfinite(effect):
        return "inconclusive"
    if direction == "noninferior":
        if np.isfinite(lo) and lo > -margin:
            return "supported"
        if np.isfinite(hi) and hi < -margin:
            return "contradicted"
        return "inconclusive"
    sign = 1.0 if direction == "greater" else -1.0
    if np.isfinite(p) and p < alpha:
        return "supported" if sign * effect > 0 else "contradicted"
    return "inconclusive"


def _paired(t: Check, folds: pd.DataFrame, n_boot: int, seed: int) -> list[MetricResult]:
    from .evaluate import paired_test

    out = []
    for m in t.metrics:
        present = set(folds["condition"]) if "condition" in folds else set()
        if not {t.a, t.b} <= present:
            out.append(MetricResult(t.id, t.role, m, t.a, t.b, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan,
                                    "paired t-test", "inconclusive", f"conditions missing from results: {sorted({t.a, t.b} - present)}"))
            continue
        n = int(folds.loc[folds["condition"] == t.a, m].notna().sum())
        if n < t.min_pairs:
            out.append(MetricResult(t.id, t.role, m, t.a, t.b, n, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan,
                                    "paired t-test", "inconclusive", f"too few folds ({n} < {t.min_pairs})"))
            continue
        r = paired_test(folds, t.a, t.b, m, n_boot=n_boot, seed=seed, alpha=t.alpha)
        v = _verdict(t.direction, r["mean_diff"], r["ci_low"], r["ci_high"], r["p_two_sided"], t.alpha, t.margin)
        out.append(MetricResult(t.id, t.role, m, t.a, t.b, int(r["n"]), r["mean_a"], r["mean_b"], r["mean_diff"],
                                r["ci_low"], r["ci_high"], r["p_two_sided"], "paired t-test", v, r.get("note", "") or ""))
    return out


def _proportions(t: Check, q: dict, n_boot: int, seed: int) -> list[MetricResult]:
    from scipy.stats import fisher_exact

    counts = q.get("counts", {})
    if t.a not in counts or t.b not in counts:
        missing = [s for s in (t.a, t.b) if s not in counts]
        return [MetricResult(t.id, t.role, "proportion", t.a, t.b, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan,
                             "Fisher exact", "inconclusive", f"no counts for {missing} in gan_quality")]
    (ka, na), (kb, nb) = counts[t.a], counts[t.b]
    if min(na, nb) < 1:
        return [MetricResult(t.id, t.role, "proportion", t.a, t.b, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan,
                             "Fisher exact", "inconclusive", "empty set")]
    pa, pb = ka / na, kb / nb
    alt = {"greater": "greater", "less": "less", "noninferior": "two-sided"}[t.direction]
    p = float(fisher_exact([[ka, na - ka], [kb, nb - kb]], alternative=alt).pvalue)
    rng = np.random.default_rng(seed)
    diffs = rng.binomial(na, pa, n_boot) / na - rng.binomial(nb, pb, n_boot) / nb
    lo, hi = (float(x) for x in np.quantile(diffs, [t.alpha / 2, 1 - t.alpha / 2]))
    if t.direction == "noninferior":
        v = _verdict("noninferior", pa - pb, lo, hi, p, t.alpha, t.margin)
    else:
        v = "supported" if p < t.alpha else ("contradicted" if float(fisher_exact(
            [[ka, na - ka], [kb, nb - kb]], alternative="less" if alt == "greater" else "greater").pvalue) < t.alpha
            else "inconclusive")
    return [MetricResult(t.id, t.role, "proportion", t.a, t.b, int(na + nb), pa, pb, pa - pb, lo, hi, p, "Fisher exact",
                         v, f"margin {t.margin:g}" if t.direction == "noninferior" else "")]


def aggregate(metrics: list[MetricResult]) -> tuple[str, str]:
    """Claim verdict from its primary metrics, with the reason."""
    prim = [m for m in metrics if m.role == "primary"]
    sup = [m for m in prim if m.verdict == "supported"]
    con = [m for m in prim if m.verdict == "contradicted"]
    if sup and not con:
        return "supported", f"{len(sup)} of {len(prim)} primary comparisons support it, none contradicts it"
    if con and not sup:
        return "contradicted", f"{len(con)} of {len(prim)} primary comparisons contradict it, none supports it"
    if sup and con:
        return "inconclusive", f"mixed: {len(sup)} support, {len(con)} contradict"
    return "inconclusive", f"none of {len(prim)} primary comparisons is conclusive"


def load_results(results_dir: str | Path) -> dict[str, Any]:
    """Read the results store (CSV and JSON files of a profile and data source)."""
    d = Path(results_dir)
    if not d.is_dir():
        raise DataError(f"results folder {d} does not exist (run the notebooks or `hipaug reproduce` first)")
    out: dict[str, Any] = {}
    for p in d.glob("*.csv"):
        out[p.stem] = pd.read_csv(p)
    for p in d.glob("*.json"):
        out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
    return out


def evaluate(ledger: Ledger, results: dict[str, Any], n_boot: int = 5000, seed: int = 0) -> list[ClaimResult]:
    """Evaluate every claim of the ledger on a results store."""
    out = []
    for c in ledger.claims:
        if c.kind == "context":
            out.append(ClaimResult(c, "context", [], c.why))
            continue
        rows: list[MetricResult] = []
        for t in c.tests:
            data = results.get(t.result)
            if data is None:
                rows += [MetricResult(t.id, t.role, m, t.a, t.b, 0, np.nan, np.nan, np.nan, np.nan, np.nan, np.nan,
                                      "", "inconclusive", f"result {t.result!r} not in the store") for m in t.metrics]
            elif RESULT_KEYS[t.result] == "paired":
                rows += _paired(t, data, n_boot, seed)
            else:
                rows += _proportions(t, data, n_boot, seed)
        verdict, reason = aggregate(rows)
        out.append(ClaimResult(c, verdict, rows, reason))
    return out


def metrics_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """All metric-level rows of all claims as one DataFrame."""
    rows = [{"claim": r.claim.id, **vars(m)} for r in results for m in r.metrics]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ terminal
def cli(results: Path, ledger: Path | None = None, note: Path | None = None) -> int:
    """`hipaug claims --results DIR`: print the verdicts; exit 2 on a malformed ledger."""
    from .literature import read_note

    led = load_ledger(ledger or DEFAULT_LEDGER)
    note_obj = read_note(note or led.note)
    problems = check_against_note(led, note_obj)
    if problems:
        for p in problems:
            print(f"hipaug: error: {p}", file=sys.stderr)
        return 2
    store = load_results(results)
    run = store.get("run", {})
    print(f"results: {results}  profile={run.get('profile', '?')}  source={run.get('source', '?')}")
    for r in evaluate(led, store):
        print(f"\n[{r.verdict.upper():>12}] {r.claim.title}")
        print(f"{'':15}{r.reason}")
        for m in r.metrics:
            tag = "" if m.role == "primary" else " (secondary)"
            print(f"{'':15}{m.test}{tag} {m.metric}: {m.a}-{m.b} = {m.effect:+.3f} "
                  f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}] p={m.p:.3g} -> {m.verdict}" + (f" ({m.note})" if m.note else ""))
    return 0



# ------------------------------------------------------------------ book pages
CHAPTER_TITLES = {"ch-data": "1. The data", "ch-classic": "2. Classic augmentation", "ch-acgan": "3. The AC-GAN",
                  "ch-filter": "4. The realism filter", "ch-transfer": "5. Transfer learning and Table VIII",
                  "table8": "Table VIII side by side", "ch-beyond": "6. Beyond the paper"}


def badge(verdict: str) -> str:
    """An inline HTML verdict badge (styled by book/_static/hipaug.css)."""
    return f'<span class="verdict verdict-{verdict}">{verdict}</span>'


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x * 100:+.2f}" if pct else f"{x:+.3f}"


def _paper_figure(m: MetricResult) -> str:
    from .paper import TABLE8, TABLE8_SIGNIFICANT

    if {m.a, m.b} != {"with_gan", "without_gan"} or m.metric not in TABLE8["with_gan"]:
        return ""
    d = TABLE8[m.a][m.metric][0] - TABLE8[m.b][m.metric][0]
    return f"{d:+.2f} ({'significant' if TABLE8_SIGNIFICANT[m.metric] else 'not significant'})"


def metric_table(rows: list[MetricResult]) -> str:
    """Markdown table of metric-level results (differences in points for fold metrics)."""
    head = "| comparison | metric | n | difference a − b | 95% CI | p | statistic | verdict | paper (points) |\n"
    head += "|---|---|---|---|---|---|---|---|---|\n"
    lines = []
    for m in rows:
        pct = m.statistic == "paired t-test"
        unit = " pts" if pct else ""
        lines.append(f"| {m.test}{' (secondary)' if m.role == 'secondary' else ''} | {m.metric} | {m.n} | "
                     f"{_fmt(m.effect, pct)}{unit} | [{_fmt(m.ci_low, pct)}, {_fmt(m.ci_high, pct)}] | "
                     f"{'n/a' if not np.isfinite(m.p) else f'{m.p:.3g}'} | {m.statistic} | {badge(m.verdict)}"
                     f"{' ' + m.note if m.note else ''} | {_paper_figure(m) or '—'} |")
    return head + "\n".join(lines)


def _results_for(root: Path, profile: str, results_dir: Path | None) -> tuple[dict, Path | None]:
    if results_dir is None:
        from .pipeline import default_results_root

        results_dir = default_results_root() / profile / "phantom"
    if not results_dir.is_dir():
        return {}, None
    return load_results(results_dir), results_dir


def render_findings_and_annotations(root: Path, out: Path, profile: str, results_dir: Path | None = None,
                                    ledger_path: Path | None = None) -> dict[str, str]:
    """The annotated paper (with verdict badges) and the findings page, as {file name: markdown}."""
    from .literature import read_note, render_page_report

    ledger = load_ledger(ledger_path or root / "book" / "claims.yml")
    note = read_note(ledger.note)
    problems = check_against_note(ledger, note)
    if problems:
        raise ConfigError(problems[0])
    store, rdir = _results_for(root, profile, results_dir)
    run = store.get("run", {})
    evaluated = evaluate(ledger, store)
    source = f"profile `{run.get('profile', profile)}`, data `{run.get('source', 'none')}`"
    links, extras, summary_rows = {}, {}, []
    for r in evaluated:
        ann = resolve(r.claim, note)
        links[ann.id] = [(CHAPTER_TITLES.get(lbl, lbl), lbl) for lbl in r.claim.chapters]
        ev = f"Evidence: {{ref}}`{CHAPTER_TITLES.get(r.claim.evidence, r.claim.evidence)} <{r.claim.evidence}>`." \
            if r.claim.evidence else ""
        if r.verdict == "context":
            extras[ann.id] = f"{badge('context')} **Not testable here.** {r.claim.why}"
        else:
            extras[ann.id] = "\n".join([
                f"{badge(r.verdict)} **{r.claim.title}** — measured on {source}: {r.reason}.", "",
                f"*How it is tested:* {r.claim.why}", "", metric_table(r.metrics), "", ev])
        summary_rows.append(f"| {{ref}}`p. {ann.page or '?'} <{ann.id}>` | {r.claim.title} | {badge(r.verdict)} | "
                            f"{r.reason if r.verdict != 'context' else 'provenance or definition'} | "
                            f"{'{ref}`' + CHAPTER_TITLES.get(r.claim.evidence, r.claim.evidence) + ' <' + r.claim.evidence + '>`' if r.claim.evidence else ''} |")
    page, written, warns = render_page_report(note, links=links, extras=extras, image_root=ledger.note.parent,
                                              image_dest=out, label=f"annotations-{note.citekey}")
    found = note.counts()
    for k in ("highlights", "images", "comments"):
        if k in found and written.get(k, found[k]) != found[k]:
            raise ConfigError(f"annotation page wrote {written.get(k)} {k} of {found[k]} found in {ledger.note.name}")
    counts = {v: sum(1 for r in evaluated if r.verdict == v) for v in (*VERDICTS, "context")}
    findings = "\n".join([
        "(findings)=",
        "# What this book found about Lin & Chung 2019", "",
        f"Each annotation of the reader's note ({{ref}}`annotations-{note.citekey}`) is an entry of the claims ledger "
        "(`book/claims.yml`). Testable claims are evaluated by `hipaug.claims` on the results the notebooks wrote "
        f"in this build: {source}" + (f", fingerprints limb `{run.get('limb_fingerprint', '')[:12]}`, pelvic "
                                      f"`{run.get('pelvic_fingerprint', '')[:12]}`, seed {run.get('seed')}" if run else "")
        + ". Re-running the notebooks on other data (`-p limb_dir ... -p pelvic_dir ...`) recomputes every verdict "
        "for that data.", "",
        "A metric supports a claim when the paired t-test across folds (or Fisher's exact test for proportions) is "
        "significant at α = 0.05 in the claimed direction; a claim is supported when at least one primary comparison "
        "supports it and none contradicts it. With five folds, *inconclusive* is the expected verdict for effects as "
        "small as the paper's (under one point): it means the data cannot tell, not that the claim is false.", "",
        f"Verdicts: {', '.join(f'{badge(k)} {v}' for k, v in counts.items())}.", "",
        "| highlight | claim | verdict | why | evidence |", "|---|---|---|---|---|", *summary_rows, "",
        "## Every comparison", "",
        *[part for r in evaluated if r.metrics for part in (f"### {r.claim.title}", "", metric_table(r.metrics), "")],
        "Differences of fold metrics are in percentage points; the paper column gives Table VIII's with-GAN minus "
        "without-GAN difference and whether its paired t-test was significant (the paper's numbers, quoted).", ""])
    return {"annotations.md": page, "findings.md": findings}
