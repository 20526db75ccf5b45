"""The claims ledger: every highlight of the reader's note gets a verdict measured by the book.

`book/claims.yml` has one entry per annotation of the note, matched by a quoted substring of
the highlight (or `image:<file name>` for an image annotation), never by line number. An entry
is `context` (provenance or a definition: rendered with why it is not testable here) or
`testable`, with tests that read the results store written by the notebooks:

- `paired`: a comparison of two conditions on per-fold metrics (`table8_folds`), decided by the
  corrected resampled t-test (Nadeau & Bengio 2003; Bouckaert & Frank 2004), because folds share
  training data and the plain paired t-test is anti-conservative; the paper's plain paired
  t-test and the minimum detectable difference at 80% power are shown beside it
  (`hipaug.evaluate.paired_test`);
- `proportions`: two proportions from `gan_quality` (e.g. synthetic images inside the real
  feature manifold vs held-out real images): Fisher's exact test in the claimed direction, or
  for `direction: noninferior` with a `margin` a bootstrap CI of the difference against the
  margin ("not worse by more than margin").

Preconditions come first: a run where a compared condition did not learn (mean fold AUC below
`min_auc`, or a fold with sensitivity or specificity below `min_class_rate`) or where the
realism filter is not valid (held-out real accuracy below `min_filter_accuracy`, fewer than
`min_accepted_fraction` x n_real_train images accepted) cannot support or refute anything: the
tests that need it are `not_testable`. Thresholds are the ledger's top-level `preconditions:`,
overridable per claim.

Verdict of one metric: `supported` when the difference is significant at `alpha` in the
claimed direction (for non-inferiority: the CI's lower end is above `-margin`),
`contradicted` when it is significant the other way (non-inferiority: the CI's upper end is
below `-margin`), `inconclusive` otherwise or with fewer than `min_pairs` folds. A claim is
`not_testable` when a precondition of a primary test fails; otherwise `supported` if at least
one primary metric is and none contradicts it, `contradicted` in the mirror case,
`inconclusive` otherwise (including mixed evidence). Secondary tests are shown but do not vote.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from .errors import ConfigError, DataError
from .paper import paper_difference

VERDICTS = ("supported", "contradicted", "inconclusive", "not_testable")
VERDICT_LABELS = {"not_testable": "not testable in this run"}  # badge text where it differs from the id
RESULT_KEYS = {"table8_folds": "paired", "gan_quality": "proportions"}
PAIRED_METRICS = ("accuracy", "sensitivity", "specificity", "f1", "auc")
PROPORTIONS = ("gan_test", "real_val", "precision_synthetic", "precision_real", "precision_accepted",
               "precision_rejected")
DIRECTIONS = ("greater", "less", "noninferior")
PRECONDITIONS = ("learned", "filter_valid")
GAN_CONDITIONS = ("with_gan", "unfiltered_gan")  # conditions pre-trained on images the filter chose or saw
PAIRED_STATISTIC = "corrected resampled t-test"
PAPER_STATISTIC = "paired t-test (paper's test)"
FISHER_STATISTIC = "Fisher exact"
MARGIN_STATISTIC = "bootstrap CI vs margin"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_LEDGER = ROOT / "book" / "claims.yml"


@dataclass(frozen=True)
class Preconditions:
    """Thresholds a run must meet before a claim gets a verdict (`preconditions:` in the ledger)."""

    min_auc: float  # learned: lowest mean fold AUC of a compared condition
    min_class_rate: float  # learned: lowest sensitivity or specificity of any fold (else near-constant)
    min_filter_accuracy: float  # filter_valid: lowest accuracy of the realism filter on held-out real images
    min_accepted_fraction: float  # filter_valid: lowest n_accepted / n_real_train


@dataclass(frozen=True)
class Check:
    """One machine-checkable comparison."""

    id: str  # short name shown in tables
    result: str  # results-store key: table8_folds | gan_quality
    a: str  # condition (paired) or proportion (proportions) expected to be larger
    b: str  # the comparator
    metrics: tuple[str, ...]  # paired: metrics compared; proportions: ("proportion",)
    direction: str = "greater"  # greater | less | noninferior (a not below b by more than margin)
    margin: float = 0.0  # non-inferiority margin (absolute difference)
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
    preconditions: Preconditions | None = None  # thresholds overriding the ledger's; None = the ledger's
    requires: tuple[str, ...] = ()  # preconditions declared on top of the derived ones (never fewer)


@functools.cache
def default_preconditions() -> Preconditions:
    """The shipped ledger's top-level `preconditions:` (the book's thresholds)."""
    try:
        raw = yaml.safe_load(DEFAULT_LEDGER.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"claims ledger {DEFAULT_LEDGER} cannot be read ({str(exc).splitlines()[0]})") from None
    return _preconditions(raw.get("preconditions"), f"{DEFAULT_LEDGER.name}: preconditions")


@dataclass
class Ledger:
    note: Path  # the annotated note the ledger refers to
    claims: list[Claim] = field(default_factory=list)  # one entry per annotation of the note
    preconditions: Preconditions = field(default_factory=default_preconditions)  # defaults for every claim


# ------------------------------------------------------------------ loading and checking
def _preconditions(raw: Any, where: str, base: Preconditions | None = None) -> Preconditions:
    """Validate a `preconditions:` mapping; with `base`, keys not given keep base's values."""
    names = [f.name for f in dataclasses.fields(Preconditions)]
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a mapping of {', '.join(names)}, got {type(raw).__name__}")
    for key, value in raw.items():
        if key not in names:
            raise ConfigError(f"{where}: unknown precondition {key!r} (known: {', '.join(names)})")
        top = np.inf if key == "min_accepted_fraction" else 1.0  # the others are rates
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= top:
            raise ConfigError(f"{where}: {key} must be a number in [0, {top:g}], got {value!r}")
    if base is None:
        missing = [n for n in names if n not in raw]
        if missing:
            raise ConfigError(f"{where}: missing {', '.join(missing)}")
        return Preconditions(**{k: float(v) for k, v in raw.items()})
    return dataclasses.replace(base, **{k: float(v) for k, v in raw.items()})


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
    if "preconditions" not in raw:
        raise ConfigError(f"{path.name}: no top-level preconditions mapping")
    defaults = _preconditions(raw["preconditions"], f"{path.name}: preconditions")
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
        pre = entry.get("preconditions")
        pre = None if pre is None else _preconditions(pre, f"{where}: preconditions", defaults)
        requires = tuple(entry.get("requires") or ())
        bad = [r for r in requires if r not in PRECONDITIONS]
        if bad:
            raise ConfigError(f"{where}: unknown precondition {bad[0]!r} in requires (known: {', '.join(PRECONDITIONS)})")
        claims.append(Claim(id=cid, match=str(entry.get("match") or ""), kind=kind, title=str(entry.get("title") or cid),
                            why=str(entry.get("why") or "").strip(), chapters=tuple(entry.get("chapters") or ()),
                            evidence=str(entry.get("evidence") or ""), tests=tuple(tests), preconditions=pre,
                            requires=requires))
    return Ledger(note=note, claims=claims, preconditions=defaults)


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


# ------------------------------------------------------------------ preconditions
NAN = float("nan")


@dataclass(frozen=True)
class PreconditionResult:
    """One precondition checked on a run's results."""

    name: str  # learned | filter_valid
    subject: str  # what was checked: a condition, or "realism filter"
    quantity: str  # what was measured: mean AUC, lowest class rate, held-out real accuracy, accepted fraction
    passed: bool  # False: every test that needs it is not testable
    value: float  # measured value (NaN when it could not be measured)
    threshold: float  # the threshold it is held to (the claim's or the ledger's)
    message: str  # one line naming the measured value and the threshold
    tests: tuple[str, ...] = ()  # ids of the claim's tests that need it


def _num(value: float, threshold: float) -> tuple[str, str]:
    # Enough decimals that a value on the other side of the threshold never prints equal to it.
    for d in (2, 3, 4):
        v, t = f"{value:.{d}f}", f"{threshold:.{d}f}"
        if v != t:
            break
    return v, t


def check_learned(condition: str, folds: pd.DataFrame | None, pre: Preconditions) -> list[PreconditionResult]:
    """Check `learned` for one condition: mean fold AUC >= min_auc and no near-constant fold."""

    def fail(quantity: str, threshold: float, message: str) -> PreconditionResult:
        return PreconditionResult("learned", condition, quantity, False, NAN, threshold, message)

    if folds is None:
        return [fail("mean AUC", pre.min_auc, "table8_folds not in the results store")]
    if "condition" not in folds.columns or not (folds["condition"] == condition).any():
        return [fail("mean AUC", pre.min_auc, f"no results for condition {condition!r} in table8_folds")]
    sub = folds.loc[folds["condition"] == condition].reset_index(drop=True)
    out = []
    if "auc" not in sub.columns:
        out.append(fail("mean AUC", pre.min_auc, "table8_folds has no auc column"))
    elif sub["auc"].isna().any():
        out.append(fail("mean AUC", pre.min_auc,
                        f"condition {condition!r} has NaN AUC in {int(sub['auc'].isna().sum())} of {len(sub)} folds"))
    else:
        m = float(sub["auc"].mean())
        v, t = _num(m, pre.min_auc)
        ok = m >= pre.min_auc
        msg = f"condition {condition!r} learned: mean AUC {v} >= {t}" if ok else \
            f"condition {condition!r} did not learn: mean AUC {v} < {t}"
        out.append(PreconditionResult("learned", condition, "mean AUC", ok, m, pre.min_auc, msg))
    cols = ["sensitivity", "specificity"]
    missing = [c for c in cols if c not in sub.columns]
    rates = sub[cols].to_numpy(dtype=np.float64) if not missing else np.empty((0, 2))
    if missing:
        out.append(fail("lowest class rate", pre.min_class_rate, f"table8_folds has no {missing[0]} column"))
    elif not np.isfinite(rates).any():
        out.append(fail("lowest class rate", pre.min_class_rate,
                        f"sensitivity and specificity of {condition!r} are NaN in every fold"))
    else:
        i, j = np.unravel_index(np.nanargmin(rates), rates.shape)
        low, col = float(rates[i, j]), cols[j]
        where = f"fold {sub.loc[i, 'fold']}" if "fold" in sub.columns else f"row {i}"
        if "repeat" in sub.columns and sub["repeat"].nunique() > 1:
            where += f" of repeat {sub.loc[i, 'repeat']}"
        v, t = _num(low, pre.min_class_rate)
        ok = low >= pre.min_class_rate
        msg = f"no fold of {condition!r} is a near-constant predictor: lowest class rate {v} ({col}, {where}) >= {t}" \
            if ok else f"{where} of {condition!r} is a near-constant predictor: {col} {v} < {t}"
        out.append(PreconditionResult("learned", condition, "lowest class rate", ok, low, pre.min_class_rate, msg))
    return out


def check_filter(q: dict | None, pre: Preconditions) -> list[PreconditionResult]:
    """Check `filter_valid`: the realism filter is accurate on real images and accepted enough images."""
    subject = "realism filter"

    def fail(quantity: str, threshold: float, message: str) -> PreconditionResult:
        return PreconditionResult("filter_valid", subject, quantity, False, NAN, threshold, message)

    if q is None:
        return [fail("held-out real accuracy", pre.min_filter_accuracy, "gan_quality not in the results store")]
    out = []
    acc = q.get("real_val_accuracy")
    if acc is None or not np.isfinite(float(acc)):
        out.append(fail("held-out real accuracy", pre.min_filter_accuracy, "real_val_accuracy not recorded in gan_quality"))
    else:
        acc = float(acc)
        v, t = _num(acc, pre.min_filter_accuracy)
        ok = acc >= pre.min_filter_accuracy
        msg = f"realism filter accuracy on held-out real limb images {v} >= {t}" if ok else \
            f"realism filter is unreliable: accuracy on held-out real limb images {v} < {t}"
        out.append(PreconditionResult("filter_valid", subject, "held-out real accuracy", ok, acc,
                                      pre.min_filter_accuracy, msg))
    n_acc, n_real = q.get("n_accepted"), q.get("n_real_train")
    thr = pre.min_accepted_fraction
    if n_acc is None:
        out.append(fail("accepted fraction", thr, "n_accepted not recorded in gan_quality"))
    elif n_real is None:
        out.append(fail("accepted fraction", thr,
                        "n_real_train not recorded in gan_quality (the number of real limb training images)"))
    elif not float(n_real) > 0:
        out.append(fail("accepted fraction", thr, f"n_real_train is {n_real} in gan_quality"))
    else:
        frac = float(n_acc) / float(n_real)
        v, t = _num(frac, thr)
        ok = frac >= thr
        what = f"{int(n_acc)} synthetic images" if ok else f"too few synthetic images: {int(n_acc)}"
        msg = (f"realism filter accepted {what} = {v} x {int(n_real)} real limb training images "
               f"{'>=' if ok else '<'} {t} x")
        out.append(PreconditionResult("filter_valid", subject, "accepted fraction", ok, frac, thr, msg))
    return out


def needed_preconditions(check: Check, requires: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """The (precondition, subject) pairs a test needs: derived from what it compares, plus `requires`.

    `learned` for both conditions of a paired test; `filter_valid` when the test involves a GAN
    condition (GAN_CONDITIONS) or a gan_quality proportion, or the claim requires it.
    """
    out = []
    if RESULT_KEYS[check.result] == "paired":
        out += [("learned", check.a), ("learned", check.b)]
    gan = RESULT_KEYS[check.result] == "proportions" or bool({check.a, check.b} & set(GAN_CONDITIONS))
    if gan or "filter_valid" in requires:
        out.append(("filter_valid", "realism filter"))
    return out


# ------------------------------------------------------------------ evaluation
@dataclass(frozen=True)
class MetricResult:
    """One metric of one test: the effect, its CI and p value, and the verdict they give."""

    test: str  # the test's id
    role: str  # primary | secondary
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


@dataclass(frozen=True)
class ClaimResult:
    """A claim's verdict on one run, with its metric rows and precondition checks."""

    claim: Claim  # the ledger entry
    verdict: str  # supported | contradicted | inconclusive | not_testable | context
    metrics: list[MetricResult]  # every metric of every test, in ledger order
    reason: str  # one line: why this verdict
    preconditions: tuple[PreconditionResult, ...] = ()  # checked before any verdict, in test order


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


def _empty(t: Check, metric: str, statistic: str, verdict: str, note: str, n: int = 0) -> MetricResult:
    return MetricResult(t.id, t.role, metric, t.a, t.b, n, NAN, NAN, NAN, NAN, NAN, NAN, statistic, verdict, note,
                        alpha=t.alpha)


def _paired(t: Check, folds: pd.DataFrame, n_boot: int, seed: int) -> list[MetricResult]:
    from .evaluate import EvaluationError, paired_test

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
        p, v, note = NAN, _verdict("noninferior", pa - pb, lo, hi, NAN, t.alpha, t.margin), f"margin {t.margin:g}"
    else:
        p = float(fisher_exact(table, alternative=t.direction).pvalue)
        other = "less" if t.direction == "greater" else "greater"
        v = "supported" if p < t.alpha else (
            "contradicted" if float(fisher_exact(table, alternative=other).pvalue) < t.alpha else "inconclusive")
        note = ""
    return [MetricResult(t.id, t.role, "proportion", t.a, t.b, int(na + nb), pa, pb, pa - pb, lo, hi, p, stat, v, note,
                         alpha=t.alpha)]


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
            data = results.get(t.result)
            if data is None:
                test_rows = [_empty(t, m, "", "not_testable", f"result {t.result!r} not in the store") for m in t.metrics]
            elif RESULT_KEYS[t.result] == "paired":
                test_rows = _paired(t, data, n_boot, seed)
            else:
                test_rows = _proportions(t, data, n_boot, seed)
            if failed:  # the numbers stay visible, but a run that fails a precondition never votes
                # Short: the claim's reason and precondition table carry the measured values.
                why = "precondition failed: " + ", ".join(dict.fromkeys(f"{p.name} ({p.subject})" for p in failed))
                test_rows = [dataclasses.replace(r, verdict="not_testable", note="; ".join(filter(None, (why, r.note))))
                             for r in test_rows]
            rows += test_rows
        pres = tuple(dataclasses.replace(p, tests=tuple(dict.fromkeys(users[k]))) for k, ps in checked.items() for p in ps)
        verdict, reason = aggregate(rows, pres)
        out.append(ClaimResult(c, verdict, rows, reason, pres))
    return out


def metrics_frame(results: list[ClaimResult]) -> pd.DataFrame:
    """All metric-level rows of all claims as one DataFrame."""
    rows = [{"claim": r.claim.id, **vars(m)} for r in results for m in r.metrics]
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ terminal
def label(verdict: str) -> str:
    """The words shown for a verdict id ("not_testable" -> "not testable in this run")."""
    return VERDICT_LABELS.get(verdict, verdict)


def cli(results: Path, ledger: Path | None = None, note: Path | None = None) -> int:
    """`hipaug claims --results DIR`: print verdicts and preconditions; exit 2 on a malformed ledger."""
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
        short = "not testable" if r.verdict == "not_testable" else r.verdict
        print(f"\n[{short.upper():>12}] {r.claim.title}")
        print(f"{'':15}{r.reason}")
        for p in r.preconditions:
            print(f"{'':15}precondition {p.name} [{'ok' if p.passed else 'FAILED'}]: {p.message}")
        for m in r.metrics:
            tag = "" if m.role == "primary" else " (secondary)"
            paper = f", {PAPER_STATISTIC} p={m.p_paper:.3g}" if np.isfinite(m.p_paper) else ""
            mdd = f", MDD80={m.mdd:.3f}" if np.isfinite(m.mdd) else ""
            print(f"{'':15}{m.test}{tag} {m.metric}: {m.a}-{m.b} = {m.effect:+.3f} "
                  f"[{m.ci_low:+.3f}, {m.ci_high:+.3f}] {m.statistic or 'no test'} p={m.p:.3g}{paper}{mdd} "
                  f"-> {label(m.verdict)}" + (f" ({m.note})" if m.note else ""))
    return 0


# ------------------------------------------------------------------ book pages
CHAPTER_TITLES = {"ch-data": "1. The data", "ch-classic": "2. Classic augmentation", "ch-acgan": "3. The AC-GAN",
                  "ch-filter": "4. The realism filter", "ch-transfer": "5. Transfer learning and Table VIII",
                  "table8": "Table VIII side by side", "ch-beyond": "6. Beyond the paper"}


def badge(verdict: str) -> str:
    """An inline HTML verdict badge (styled by book/_static/hipaug.css)."""
    return f'<span class="verdict verdict-{verdict}">{label(verdict)}</span>'


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or not np.isfinite(x):
        return "n/a"
    return f"{x * 100:+.2f}" if pct else f"{x:+.3f}"


def _p(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.3g}"


def _paper_figure(m: MetricResult) -> str:
    from .paper import TABLE8_SIGNIFICANT

    d = paper_difference(m.metric, m.a, m.b)
    if d is None:
        return ""
    return f"{d:+.2f} ({'significant' if TABLE8_SIGNIFICANT[m.metric] else 'not significant'})"


def metric_table(rows: list[MetricResult]) -> str:
    """Markdown table of metric-level results (differences, CIs and MDDs in points for fold metrics)."""
    levels = {m.alpha for m in rows}
    ci = f"{(1 - levels.pop()) * 100:g}% CI" if len(levels) == 1 else "CI at 1 − α"
    head = (f"| comparison | metric | n | difference a − b | {ci} | p | test | p, {PAPER_STATISTIC} | "
            "MDD at 80% power | verdict | paper (points) |\n")
    head += "|---|---|---|---|---|---|---|---|---|---|---|\n"
    lines = []
    for m in rows:
        pct = m.metric in PAIRED_METRICS  # fold metrics are fractions: shown in points
        unit = " pts" if pct and np.isfinite(m.effect) else ""
        mdd = f"{m.mdd * 100:.2f} pts" if np.isfinite(m.mdd) else "—"
        lines.append(f"| {m.test}{' (secondary)' if m.role == 'secondary' else ''} | {m.metric} | {m.n} | "
                     f"{_fmt(m.effect, pct)}{unit} | [{_fmt(m.ci_low, pct)}, {_fmt(m.ci_high, pct)}] | "
                     f"{_p(m.p)} | {m.statistic or '—'} | {_p(m.p_paper) if pct else '—'} | {mdd} | {badge(m.verdict)}"
                     f"{' ' + m.note if m.note else ''} | {_paper_figure(m) or '—'} |")
    return head + "\n".join(lines)


def precondition_table(checks: tuple[PreconditionResult, ...]) -> str:
    """Markdown table of a claim's precondition checks with their measured values."""
    head = "| precondition | checked | measured | threshold | result | needed by |\n|---|---|---|---|---|---|\n"
    lines = []
    for p in checks:
        v, t = _num(p.value, p.threshold) if np.isfinite(p.value) else (f"n/a: {p.message}", f"{p.threshold:.2f}")
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
            "the paper's test, with the minimum difference the design detects with 80% power")
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
            "fails; secondary comparisons are shown but do not vote. *Inconclusive* means the data cannot tell, not "
            "that the claim is false.")


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
        "anything. Before any test, `hipaug.claims` checks these preconditions on the results; a test whose "
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
    rows = [m for r in evaluated for m in r.metrics if m.statistic == PAIRED_STATISTIC and np.isfinite(m.mdd)
            and paper_difference(m.metric, m.a, m.b) is not None]
    rows.sort(key=lambda m: m.metric != "accuracy")
    if not rows:
        return ""
    m = rows[0]
    paper = paper_difference(m.metric, m.a, m.b)
    return (f"Power: on this run the smallest {m.a} − {m.b} difference in {m.metric} that the corrected test detects "
            f"with 80% power is {m.mdd * 100:.2f} points over {m.n} fold pairs ({m.mdd_paper * 100:.2f} points for "
            f"the paper's plain test), while the paper's Table VIII difference is {paper:+.2f} points. An effect "
            "below the detectable difference will usually come out inconclusive whatever its sign.")


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
                f"*How it is tested:* {r.claim.why}", "", "*Preconditions* ({ref}`findings`):", "",
                precondition_table(r.preconditions), "", metric_table(r.metrics), "", ev])
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
    sections = []
    for r in evaluated:
        if r.metrics:
            sections += [f"### {r.claim.title}", "", f"{badge(r.verdict)} {r.reason}.", "",
                         precondition_table(r.preconditions), "", metric_table(r.metrics), ""]
    findings = "\n".join([
        "(findings)=",
        "# What this book found about Lin & Chung 2019", "",
        f"Each annotation of the reader's note ({{ref}}`annotations-{note.citekey}`) is an entry of the claims ledger "
        "(`book/claims.yml`). Testable claims are evaluated by `hipaug.claims` on the results the notebooks wrote "
        f"in this build: {source}" + (f", fingerprints limb `{run.get('limb_fingerprint', '')[:12]}`, pelvic "
                                      f"`{run.get('pelvic_fingerprint', '')[:12]}`, seed {run.get('seed')}" if run else "")
        + ". Building the book on other data ({ref}`own-data`: `make book LIMB_DIR=... PELVIC_DIR=...`) recomputes "
        "every verdict for those data.", "",
        methods_text(ledger), "",
        power_text(evaluated), "",
        f"Verdicts: {', '.join(f'{badge(k)} {v}' for k, v in counts.items())}.", "",
        "| highlight | claim | verdict | why | evidence |", "|---|---|---|---|---|", *summary_rows, "",
        preconditions_text(ledger),
        "## Every comparison", "",
        *sections,
        "Differences, confidence intervals and minimum detectable differences (MDD) of fold metrics are in "
        "percentage points; the paper column gives Table VIII's with-GAN minus without-GAN difference and whether "
        "its paired t-test was significant (the paper's numbers, quoted).", ""])
    return {"annotations.md": page, "findings.md": findings}
