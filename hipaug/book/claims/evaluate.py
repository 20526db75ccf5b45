"""Evaluating the ledger on a results store: each test's statistics, its verdict, and the claim's verdict.

- `paired` tests compare two conditions on per-fold metrics (`table8_folds`, the Table VIII
  analogue), decided by the corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank
  2004), because folds share training data and the plain paired t-test is anti-conservative; the
  paper's plain paired t-test and the minimum detectable difference at 80% power are shown
  beside it (`hipaug.evaluation.paired_test`);
- `proportions` tests compare two proportions from `gan_quality`: Fisher's exact test in the
  claimed direction, or for `direction: noninferior` with a `margin` a bootstrap CI of the
  difference against the margin ("not worse by more than margin").

Preconditions come first (`hipaug.book.claims.preconditions`): a test whose preconditions fail
is `not_testable`, its numbers still shown.

Verdict of one metric: `supported` when the difference is significant at `alpha` in the
claimed direction (for non-inferiority: the CI's lower end is above `-margin`),
`contradicted` when it is significant the other way (non-inferiority: the CI's upper end is
below `-margin`), `inconclusive` otherwise or with fewer than `min_pairs` folds. A claim is
`not_testable` when a precondition of a primary test fails; otherwise `supported` if at least
one primary metric is and none contradicts it, `contradicted` in the mirror case,
`inconclusive` otherwise (including mixed evidence); a metric decided by a p value counts only
if it survives Holm's correction over the claim's primary p values (`holm`). A claim that joins several assertions
("realistic *and* helps transfer") names each test's `part`; each part gets that verdict from its
own tests, and the claim the weakest of them (`combine_parts`): contradicted when any part is,
supported only when every part is, else not testable when any part is, else inconclusive. Secondary tests are shown but do not vote;
neither do the ledger's `reported_metrics` (precision and MCC), which every paired test also
computes, as rows of role `reported`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hipaug.book.claims.ledger import RESULT_KEYS, Check, Claim, Ledger
from hipaug.book.claims.preconditions import NAN, PreconditionResult, check_filter, check_learned, needed_preconditions
from hipaug.errors import DataError

VERDICTS = ("supported", "contradicted", "inconclusive", "not_testable")
PAIRED_STATISTIC = "corrected resampled t-test"
PAPER_STATISTIC = "paired t-test (paper's test)"
REPLICATION_STATISTIC = "paired t-test across independent replications"
FISHER_STATISTIC = "Fisher exact"
MARGIN_STATISTIC = "bootstrap CI vs margin"


@dataclass(frozen=True)
class MetricResult:
    """One metric of one test: the effect, its CI and p value, and the verdict they give."""

    test: str  # the test's id
    role: str  # primary | secondary | reported (a reported_metrics row: shown, never votes)
    metric: str  # fold metric (paired) or "proportion"
    a: str  # condition or proportion expected to be larger
    b: str  # the comparator
    n: int  # pairs of folds (paired) or images in both sets (proportions)
    value_a: float  # mean of a
    value_b: float  # mean of b
    effect: float  # a - b
    ci_low: float  # CI of the effect that decides: corrected t (paired), bootstrap (proportions)
    ci_high: float  # upper end of that CI
    p: float  # deciding p: corrected t two-sided (paired), Fisher one-sided; NaN when a CI decides
    statistic: str  # the deciding test
    verdict: str  # supported | contradicted | inconclusive | not_testable
    note: str = ""  # why a value is missing or the verdict was forced
    p_paper: float = NAN  # paired: the paper's plain paired t-test, two-sided
    mdd: float = NAN  # paired: minimum detectable |difference| at 80% power, corrected test
    mdd_paper: float = NAN  # paired: the same for the paper's plain paired t-test
    test_train_ratio: float = NAN  # paired: n_test/n_train used by the correction
    alpha: float = 0.05  # the test's significance level (the CI is at 1 - alpha)
    p_other: float = NAN  # Fisher: the one-sided p value the other way (what a contradiction rests on)

    @property
    def p_verdict(self) -> float:
        """The p value its verdict rests on (NaN when a CI decides): `p`, or `p_other` for a one-sided contradiction."""
        return self.p_other if self.verdict == "contradicted" and np.isfinite(self.p_other) else self.p

    @property
    def shown_statistic(self) -> str:
        """The deciding test as a reader should read it: without a correction (independent replications,
        ratio 0) the corrected resampled t-test is the plain paired t-test, and is named so."""
        if self.statistic == PAIRED_STATISTIC and self.test_train_ratio == 0:
            return REPLICATION_STATISTIC
        return self.statistic


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict on one run, with its metric rows and precondition checks."""

    claim: Claim  # the ledger entry
    verdict: str  # supported | contradicted | inconclusive | not_testable | context
    metrics: list[MetricResult]  # every metric of every test, in ledger order
    reason: str  # one line: why this verdict
    preconditions: tuple[PreconditionResult, ...] = ()  # checked before any verdict, in test order
    parts: tuple[PartResult, ...] = ()  # a compound claim's assertions, each with its own verdict


@dataclass(frozen=True)
class PartResult:
    """One assertion of a compound claim: its verdict from its own primary tests."""

    name: str  # the `part` its tests name in the ledger
    verdict: str  # supported | contradicted | inconclusive | not_testable
    reason: str  # one line: why


def _verdict(direction: str, effect: float, lo: float, hi: float, p: float, alpha: float, margin: float) -> str:
    """One metric's verdict from its effect, CI and p value in the claimed direction."""
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


def _empty(t: Check, metric: str, statistic: str, verdict: str, note: str, n: int = 0) -> MetricResult:
    """A metric row without numbers, with the reason in `note`."""
    return MetricResult(t.id, t.role, metric, t.a, t.b, n, NAN, NAN, NAN, NAN, NAN, NAN, statistic, verdict, note,
                        alpha=t.alpha)


def _paired(t: Check, folds: pd.DataFrame, n_boot: int, seed: int) -> list[MetricResult]:
    """A paired test's rows: the corrected resampled t-test on per-fold metrics, one row per metric."""
    from hipaug.evaluation import EvaluationError, paired_test

    out = []
    present = set(folds["condition"]) if "condition" in folds else set()
    for m in t.metrics:
        if not {t.a, t.b} <= present:
            out.append(_empty(t, m, PAIRED_STATISTIC, "not_testable",
                              f"conditions missing from results: {sorted({t.a, t.b} - present)}"))
            continue
        if m not in folds.columns:
            out.append(_empty(t, m, PAIRED_STATISTIC, "not_testable", f"table8_folds has no {m} column"))
            continue
        n = int(folds.loc[folds["condition"] == t.a, m].notna().sum())
        if n < t.min_pairs:
            out.append(_empty(t, m, PAIRED_STATISTIC, "inconclusive", f"too few folds ({n} < {t.min_pairs})", n))
            continue
        try:
            r = paired_test(folds, t.a, t.b, m, n_boot=n_boot, seed=seed, alpha=t.alpha)
        except EvaluationError as exc:
            out.append(_empty(t, m, PAIRED_STATISTIC, "not_testable", str(exc), n))
            continue
        v = _verdict(t.direction, r["mean_diff"], r["corrected_ci_low"], r["corrected_ci_high"], r["p_corrected"],
                     t.alpha, t.margin)
        out.append(MetricResult(t.id, t.role, m, t.a, t.b, int(r["n"]), r["mean_a"], r["mean_b"], r["mean_diff"],
                                r["corrected_ci_low"], r["corrected_ci_high"], r["p_corrected"], PAIRED_STATISTIC, v,
                                r.get("note", "") or "", p_paper=r["p_two_sided"], mdd=r["mdd_80"],
                                mdd_paper=r["mdd_80_plain"], test_train_ratio=r["test_train_ratio"], alpha=t.alpha))
    return out


def _proportions(t: Check, q: dict, n_boot: int, seed: int) -> list[MetricResult]:
    """A proportions test's row: Fisher's exact test, or a bootstrap CI against the non-inferiority margin."""
    from scipy.stats import fisher_exact

    stat = MARGIN_STATISTIC if t.direction == "noninferior" else FISHER_STATISTIC
    counts = q.get("counts", {})
    if t.a not in counts or t.b not in counts:
        missing = [s for s in (t.a, t.b) if s not in counts]
        return [_empty(t, "proportion", stat, "not_testable", f"no counts for {missing} in gan_quality")]
    (ka, na), (kb, nb) = counts[t.a], counts[t.b]
    if min(na, nb) < 1:
        return [_empty(t, "proportion", stat, "not_testable", "empty set")]
    pa, pb = ka / na, kb / nb
    rng = np.random.default_rng(seed)
    # Parametric bootstrap of the difference of two binomial proportions.
    diffs = rng.binomial(na, pa, n_boot) / na - rng.binomial(nb, pb, n_boot) / nb
    lo, hi = (float(x) for x in np.quantile(diffs, [t.alpha / 2, 1 - t.alpha / 2]))
    table = [[ka, na - ka], [kb, nb - kb]]
    if t.direction == "noninferior":
        p = p_other = NAN
        v, note = _verdict("noninferior", pa - pb, lo, hi, NAN, t.alpha, t.margin), f"margin {t.margin:g}"
    else:
        p = float(fisher_exact(table, alternative=t.direction).pvalue)
        p_other = float(fisher_exact(table, alternative="less" if t.direction == "greater" else "greater").pvalue)
        v = "supported" if p < t.alpha else ("contradicted" if p_other < t.alpha else "inconclusive")
        note = ""
    return [MetricResult(t.id, t.role, "proportion", t.a, t.b, int(na + nb), pa, pb, pa - pb, lo, hi, p, stat, v, note,
                         alpha=t.alpha, p_other=p_other)]


def aggregate(metrics: list[MetricResult], preconditions: tuple[PreconditionResult, ...] = ()) -> tuple[str, str]:
    """Claim verdict from its primary metrics and the preconditions they need, with the reason."""
    prim = [m for m in metrics if m.role == "primary"]
    untestable = [m for m in prim if m.verdict == "not_testable"]
    if untestable:
        ids = {m.test for m in untestable}
        failed = [p.message for p in preconditions if not p.passed and ids & set(p.tests)]
        if failed:
            return "not_testable", "precondition failed: " + "; ".join(dict.fromkeys(failed))
        return "not_testable", "; ".join(dict.fromkeys(f"{m.test} not testable: {m.note}" for m in untestable))
    # Several primary comparisons are several chances to reach alpha: a comparison decided by a p value
    # votes only if it survives Holm's step-down correction over the claim's p values (a CI against a
    # margin decides on its own).
    tested = [m for m in prim if np.isfinite(m.p_verdict)]
    adjusted = dict(zip(map(id, tested), holm([m.p_verdict for m in tested])))
    holds = [m for m in prim if m.verdict in ("supported", "contradicted") and adjusted.get(id(m), 0.0) < m.alpha]
    sup = [m for m in holds if m.verdict == "supported"]
    con = [m for m in holds if m.verdict == "contradicted"]
    after = f" after Holm's correction for {len(tested)} p values" if len(tested) > 1 else ""
    if sup and not con:
        return "supported", f"{len(sup)} of {len(prim)} primary comparisons support it{after}, none contradicts it"
    if con and not sup:
        return "contradicted", f"{len(con)} of {len(prim)} primary comparisons contradict it{after}, none supports it"
    if sup and con:
        return "inconclusive", f"mixed: {len(sup)} support, {len(con)} contradict{after}"
    alone = sum(m.verdict in ("supported", "contradicted") for m in prim)
    if alone:
        return "inconclusive", (f"{alone} of {len(prim)} primary comparisons reach alpha on their own, none{after}")
    return "inconclusive", f"none of {len(prim)} primary comparisons is conclusive"


def holm(p: list[float]) -> list[float]:
    """Holm's step-down adjusted p values, in the order given (a family-wise error rate at any alpha)."""
    order = np.argsort(p, kind="stable")
    m = len(p)
    out, running = np.empty(m), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def combine_parts(parts: list[PartResult]) -> tuple[str, str]:
    """A compound claim's verdict: the weakest of its parts' (a conjunction holds only where each part does)."""
    by = {v: [p.name for p in parts if p.verdict == v] for v in VERDICTS}
    named = lambda v: ", ".join(f"'{n}'" for n in by[v])  # noqa: E731
    if by["contradicted"]:
        return "contradicted", f"part {named('contradicted')} contradicted"
    if len(by["supported"]) == len(parts):
        return "supported", f"each of its {len(parts)} parts supported"
    if by["not_testable"]:
        return "not_testable", f"part {named('not_testable')} not testable"
    held = f", while {named('supported')} supported" if by["supported"] else ""
    return "inconclusive", f"part {named('inconclusive')} inconclusive{held}"


def results_store(profile: str, results_dir: Path | None = None) -> tuple[Path, dict]:
    """The build's results folder (default: the phantom run of `profile`) and its store ({} if not written)."""
    if results_dir is None:
        from hipaug.pipeline import default_results_root

        results_dir = default_results_root() / profile / "phantom"
    return results_dir, (load_results(results_dir) if results_dir.is_dir() else {})


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
    """Evaluate every claim of the ledger on a results store, preconditions first."""
    out = []
    for c in ledger.claims:
        if c.kind == "context":
            out.append(ClaimResult(c, "context", [], c.why))
            continue
        pre = c.preconditions or ledger.preconditions
        checked: dict[tuple[str, str], list[PreconditionResult]] = {}
        users: dict[tuple[str, str], list[str]] = {}
        rows: list[MetricResult] = []
        for t in c.tests:
            failed = []
            for key in needed_preconditions(t, c.requires):
                if key not in checked:
                    checked[key] = (check_learned(key[1], results.get("table8_folds"), pre) if key[0] == "learned"
                                    else check_filter(results.get("gan_quality"), pre))
                users.setdefault(key, []).append(t.id)
                failed += [p for p in checked[key] if not p.passed]
            rows += _test_rows(t, results, failed, n_boot, seed, ledger.reported)
        pres = tuple(dataclasses.replace(p, tests=tuple(dict.fromkeys(users[k]))) for k, ps in checked.items() for p in ps)
        names = list(dict.fromkeys(t.part for t in c.tests if t.role == "primary"))
        parts: tuple[PartResult, ...] = ()
        if len(names) > 1:
            ids = {n: {t.id for t in c.tests if t.part == n} for n in names}
            parts = tuple(PartResult(n, *aggregate([r for r in rows if r.test in ids[n]], pres)) for n in names)
            verdict, reason = combine_parts(list(parts))
        else:
            verdict, reason = aggregate(rows, pres)
        out.append(ClaimResult(c, verdict, rows, reason, pres, parts))
    return out


def _test_rows(t: Check, results: dict[str, Any], failed: list[PreconditionResult], n_boot: int,
               seed: int, reported: tuple[str, ...] = ()) -> list[MetricResult]:
    """One test's metric rows; `failed` preconditions turn every row not testable.

    A paired test also gets a `reported` row for each of `reported` it does not vote with.
    """
    extra = [m for m in reported if m not in t.metrics] if RESULT_KEYS[t.result] == "paired" else []
    if extra:
        t = dataclasses.replace(t, metrics=(*t.metrics, *extra))
    data = results.get(t.result)
    if data is None:
        rows = [_empty(t, m, "", "not_testable", f"result {t.result!r} not in the store") for m in t.metrics]
    elif RESULT_KEYS[t.result] == "paired":
        rows = _paired(t, data, n_boot, seed)
    else:
        rows = _proportions(t, data, n_boot, seed)
    rows = [dataclasses.replace(r, role="reported") if r.metric in extra else r for r in rows]
    if failed:  # the numbers stay visible, but a run that fails a precondition never votes
        # Short: the claim's reason and precondition table carry the measured values.
        why = "precondition failed: " + ", ".join(dict.fromkeys(f"{p.name} ({p.subject})" for p in failed))
        rows = [dataclasses.replace(r, verdict="not_testable", note="; ".join(filter(None, (why, r.note))))
                for r in rows]
    return rows
