"""The claims ledger `book/claims.yml`: its entries, loading and validating it, matching it to the note.

The ledger has one entry per annotation of the reader's note on the paper, matched by a quoted
substring of the highlight (or `image:<file name>` for an image annotation), never by line
number. An entry is `context` (provenance or a definition: rendered with why it is not testable
here) or `testable`, with tests that read the results store written by the notebooks:

- `paired`: a comparison of two conditions on per-fold metrics (`table8_folds`, Table VIII);
- `proportions`: two proportions from `gan_quality` (e.g. synthetic images inside the real
  feature manifold vs held-out real images), with `direction: noninferior` and a `margin` for
  "not worse by more than margin".

Preconditions a run must meet before any verdict are the gates of `hipaug.evaluation.gates` (the
one place their thresholds live); a claim may override them with its own `preconditions:`
(`hipaug.book.claims.preconditions`). The top-level `reported_metrics:`
(precision and MCC in the book's ledger) are tested beside every paired comparison and shown,
but never vote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hipaug.core.io import read_yaml
from hipaug.core.project import find_project
from hipaug.errors import ConfigError, DataError
from hipaug.evaluation.gates import GATES
from hipaug.evaluation.gates import Gates as Preconditions  # the verdicts' gates: one place for each threshold

RESULT_KEYS = {"table8_folds": "paired", "gan_quality": "proportions"}  # results-store key -> kind of test
PROPORTIONS = ("gan_test", "real_val", "precision_synthetic", "precision_real", "precision_accepted",
               "precision_rejected")
DIRECTIONS = ("greater", "less", "noninferior")
PRECONDITIONS = ("learned", "filter_valid")


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
    part: str = ""  # the assertion of a compound claim this test bears on ("" = the claim has one)


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


@dataclass(frozen=True)
class Ledger:
    """The whole ledger: the note it annotates, its entries and its default thresholds."""

    note: Path  # the annotated note the ledger refers to
    claims: list[Claim]  # one entry per annotation of the note
    preconditions: Preconditions  # thresholds of every claim that does not override them
    reported: tuple[str, ...] = ()  # fold metrics shown beside every paired test, never voting


def default_ledger(root: str | Path | None = None) -> Path:
    """The book's ledger: ROOT/book/claims.yml, ROOT being `root` or the project found from the cwd."""
    return Path(root or find_project()) / "book" / "claims.yml"


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


def load_ledger(path: str | Path | None = None) -> Ledger:
    """Read and validate the ledger at `path` (default: the project's) in its own structure; first problem raised."""
    path = Path(path) if path is not None else default_ledger()
    if not path.is_file():
        raise ConfigError(f"claims ledger {path} does not exist")
    raw = read_yaml(path)
    note = (path.parent / raw.get("note", "")).resolve()
    if "preconditions" in raw:
        raise ConfigError(f"{path.name}: a top-level preconditions mapping; the gates live in hipaug.evaluation.gates "
                          "(one place for each threshold), a claim may override them with its own preconditions")
    defaults = GATES
    claims, seen = [], set()
    for i, entry in enumerate(raw.get("claims") or []):
        claims.append(_claim(entry, f"{path.name}: claim {entry.get('id', i)!r}", defaults, seen))
    reported = _fold_metrics(raw.get("reported_metrics") or [], f"{path.name}: reported_metrics", allow_empty=True)
    return Ledger(note=note, claims=claims, preconditions=defaults, reported=reported)


def _fold_metrics(raw: Any, where: str, allow_empty: bool = False) -> tuple[str, ...]:
    """Validate a list of per-fold metric names (`hipaug.evaluation.METRICS`)."""
    from hipaug.evaluation import METRICS  # lazy, like claims.evaluate: importing claims loads no torch

    metrics = (raw,) if isinstance(raw, str) else tuple(raw)
    bad = [m for m in metrics if m not in METRICS]
    if bad or not (metrics or allow_empty):
        raise ConfigError(f"{where}: unknown metric {bad[0] if bad else '(none)'!r} (known: {', '.join(METRICS)})")
    return metrics


def _claim(entry: dict, where: str, defaults: Preconditions, seen: set[str]) -> Claim:
    """Validate one ledger entry (`where` names it in errors); its id is added to `seen`."""
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
    parts = {t.part for t in tests if t.role == "primary"}
    if len(parts) > 1 and "" in parts:
        raise ConfigError(f"{where}: a compound claim names the part of every primary test (some have no `part:`)")
    if kind == "context" and not str(entry.get("why") or "").strip():
        raise ConfigError(f"{where}: a context entry must say why it is not testable here")
    pre = entry.get("preconditions")
    pre = None if pre is None else _preconditions(pre, f"{where}: preconditions", defaults)
    requires = tuple(entry.get("requires") or ())
    bad = [r for r in requires if r not in PRECONDITIONS]
    if bad:
        raise ConfigError(f"{where}: unknown precondition {bad[0]!r} in requires (known: {', '.join(PRECONDITIONS)})")
    return Claim(id=cid, match=str(entry.get("match") or ""), kind=kind, title=str(entry.get("title") or cid),
                 why=str(entry.get("why") or "").strip(), chapters=tuple(entry.get("chapters") or ()),
                 evidence=str(entry.get("evidence") or ""), tests=tuple(tests), preconditions=pre, requires=requires)


def _test(t: dict, where: str) -> Check:
    """Validate one test of a ledger entry (`where` names the entry in errors)."""
    result = t.get("result")
    if result not in RESULT_KEYS:
        raise ConfigError(f"{where}: unknown result key {result!r} (known: {', '.join(RESULT_KEYS)})")
    metrics = tuple(t.get("metrics") or (("proportion",) if RESULT_KEYS[result] == "proportions" else ()))
    if RESULT_KEYS[result] == "paired":
        metrics = _fold_metrics(metrics, where)
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
                 alpha=float(t.get("alpha", 0.05)), role=role, min_pairs=int(t.get("min_pairs", 3)),
                 part=str(t.get("part") or ""))


# ------------------------------------------------------------------ the ledger against the note
def resolve(claim: Claim, note) -> Any:
    """The annotation of `note` a claim refers to (DataError naming the claim if none or several)."""
    from hipaug.book.literature import match_highlight

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
    from hipaug.book.literature import read_note

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
