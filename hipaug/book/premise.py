"""The transfer premise: does limb pre-training help hip-fracture detection at all?

The paper asks whether better pre-training data (limb images plus realistic synthetic ones) give
a better hip model. That question presumes that pre-training on limbs helps in the first place.
The run answers the premise with the test its claims use: `without_gan` (pre-trained on the real
limb images) against `scratch` (not pre-trained), paired by replication or fold, with the
design's correction (zero for independent replications). A backbone that never learned its own
limb task has nothing to transfer, so chapter 5 also scores each pre-trained backbone on the
held-out real limb images.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from hipaug.core.numbers import points, pvalue

PAIR = ("without_gan", "scratch")  # the premise's comparison: pre-trained on real limbs against not pre-trained
STATUSES = ("holds", "fails", "not shown", "not testable")  # what the paired test says (not testable: a model did not learn)


def premise_row(tests: pd.DataFrame | None, metric: str = "accuracy"):
    """The paired test of without_gan − scratch in `metric` (a row of `paired_tests`), or None."""
    from hipaug.book.power import comparison_row

    return comparison_row(tests, "without_gan", "scratch", metric)


def status(row, invalid: str | None = None) -> str | None:
    """holds (the interval lies above 0), fails (below 0), not shown, or not testable (`invalid`: a model did not learn).

    None without a usable test.
    """
    if row is None:
        return None
    if invalid:
        return "not testable"
    lo, hi = float(row["corrected_ci_low"]), float(row["corrected_ci_high"])
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return "holds" if lo > 0 else "fails" if hi < 0 else "not shown"


def _measured(row, design: str) -> str:
    """The comparison in one clause: both means, the difference with its interval and p, the pairs."""
    from hipaug.book.power import pair_unit

    level = float(row.get("confidence_level", 0.95))
    return (f"pre-trained on the real limb images, `without_gan` reached {points(float(row['mean_a']) * 100)} % "
            f"accuracy and `scratch` (no pre-training) {points(float(row['mean_b']) * 100)} %: a difference of "
            f"{points(float(row['mean_diff']) * 100, signed=True)} points ({level * 100:g}% CI "
            f"{points(float(row['corrected_ci_low']) * 100, signed=True)} to "
            f"{points(float(row['corrected_ci_high']) * 100, signed=True)}, p = {pvalue(row['p_corrected'])}, "
            f"{int(row['n'])} {pair_unit(design)}; the smallest difference this design detects with 80 % power is "
            f"{points(float(row['mdd_80']) * 100)} points)")


_MEANING = {
    "holds": ("Limb pre-training helps here, so what the pre-training set contains can reach the hip model: the "
              "GAN claims test a lever that acts."),
    "not shown": ("This run cannot show that limb pre-training helps. The GAN claims ask whether adding synthetic "
                  "limb images to pre-training improves the hip model; where pre-training itself is not shown to "
                  "transfer anything, better pre-training data have little to act on. An inconclusive "
                  "with-GAN comparison then says little about the paper's question, and a positive one would "
                  "need another explanation than better transferred features."),
    "fails": ("Limb pre-training made the hip model worse than training from scratch. The GAN claims then compare "
              "two pre-trainings that both hurt: whichever wins, the result does not show that GAN images help "
              "transfer learning, only which pre-training hurts less."),
}


def describe(row, design: str, invalid: str | None = None) -> str:
    """The premise's status, what was measured and what it means for the GAN claims (markdown).

    `invalid` (`hipaug.book.claims.not_learned` of `PAIR`) says which model did not learn: the premise
    is then not testable.
    """
    s = status(row, invalid)
    if s == "not testable":
        return (f"**Transfer premise: not testable.** {invalid[0].upper() + invalid[1:]}. Against a model that did "
                "not learn, any pre-training looks helpful, so this run cannot say whether limb pre-training helps; "
                "the GAN claims' own gates say which of them this leaves testable.")
    if s is None:
        return ("**Transfer premise: not tested.** This run has no paired `without_gan` − `scratch` comparison "
                "(both conditions are needed); whether limb pre-training helps at all is unknown here.")
    return f"**Transfer premise: {s}.** In this run, {_measured(row, design)}. {_MEANING[s]}"


def front_text(store: dict, invalid: str | None = None) -> str:
    """The front page's sentence on the premise (from the results store; '' without the comparison).

    `invalid`: as for `describe`, why a model of `PAIR` did not learn (None: both did).
    """
    row = premise_row(store.get("paired_tests"))
    s = status(row, invalid)
    if s is None:
        return ""
    if s == "not testable":
        return f"**Does limb pre-training help at all?** Not testable here: {invalid}."
    design = store.get("run", {}).get("design", "cv")
    return (f"**Does limb pre-training help at all?** {s.capitalize()}: {_measured(row, design)}. "
            + ("The GAN claims presume it does." if s != "holds" else "The GAN claims rest on that."))


def backbone_table(classifiers: dict, val) -> pd.DataFrame:
    """Each pre-trained backbone on the held-out real limb images, in percent: its own task, and fracture against normal.

    `classifiers` maps a condition to its `TrainedClassifier`; `val` is the real limb validation
    set every condition shares. Fracture against normal counts a prediction right when it names a
    fracture class for a fractured limb (whatever the part); NaN when no class name says fracture.
    """
    from hipaug.training import predict_proba

    y = val.labels.numpy()
    names = list(val.class_names)
    broken = np.array(["fracture" in n for n in names])
    rows = []
    for cond, clf in classifiers.items():
        if list(clf.class_names) != names:
            raise ValueError(f"the {cond} backbone's classes {clf.class_names} differ from the limb set's {names}")
        pred = predict_proba(clf.model, val.images).argmax(1)
        frac = float((broken[pred] == broken[y]).mean()) if broken.any() and not broken.all() else math.nan
        chance = float(max(broken[y].mean(), 1 - broken[y].mean())) if not math.isnan(frac) else math.nan
        rows.append({"condition": cond, "limb classes": len(names), "accuracy (%)": 100 * float((pred == y).mean()),
                     "chance: largest class (%)": 100 * float(np.bincount(y, minlength=len(names)).max() / len(y)),
                     "fracture vs normal (%)": 100 * frac, "chance: fracture vs normal (%)": 100 * chance})
    return pd.DataFrame(rows).set_index("condition")


def describe_backbones(table: pd.DataFrame) -> str:
    """One sentence on how well the pre-trained backbones learned their own limb task ('' without backbones)."""
    if table is None or table.empty:
        return ""

    def span(col: str) -> str:
        lo, hi = float(table[col].min()), float(table[col].max())
        return f"{points(lo)} %" if points(lo) == points(hi) else f"{points(lo)}–{points(hi)} %"

    who = "the pre-trained backbone reaches" if len(table) == 1 else f"the {len(table)} pre-trained backbones reach"
    text = (f"On their own task {who} {span('accuracy (%)')} accuracy on the "
            f"held-out real limb images ({int(table['limb classes'].iloc[0])} classes; the largest class is "
            f"{span('chance: largest class (%)')} of them)")
    if table["fracture vs normal (%)"].notna().all():
        text += (f", and tell a fractured limb from a normal one in {span('fracture vs normal (%)')} of them (always "
                 f"guessing the larger of the two: {span('chance: fracture vs normal (%)')})")
    return text + ". What a backbone did not learn about limb fractures it cannot pass on to the hip."


STUDY = "transfer_premise"  # the record `benchmarks/study_transfer.py` appends to benchmarks/results/


def study(root, profile: str) -> tuple[pd.DataFrame | None, str]:
    """The latest recorded study of the premise for `profile` in project `root` (`benchmarks/study_transfer.py`), and its caption.

    (None, what to run) when no record holds that profile; a record made before the profile's
    YAML last changed is shown with a warning in the caption.
    """
    from hipaug.book.perfpage import profile_hashes

    command = f"`python benchmarks/study_transfer.py --profile {profile}`"
    path = Path(root) / "benchmarks" / "results" / f"{STUDY}.jsonl" if root is not None else None
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()] \
        if path is not None and path.is_file() else []
    mine = [r for r in records if any(row.get("profile") == profile for row in r.get("rows", []))]
    if not mine:
        return None, (f"No study of why the premise comes out as it does is recorded for profile `{profile}` "
                      f"(it needs independent replications); {command} records one.")
    rec = max(mine, key=lambda r: str(r.get("date", "")))
    rows = [row for row in rec["rows"] if row.get("profile") == profile]
    table = pd.DataFrame(rows).drop(columns="profile").set_index("backbone")
    stale = (rec.get("profiles") or {}).get(profile) != profile_hashes().get(profile)
    caption = (f"Why: {command}, recorded on {rec.get('date', '?')[:10]} ({rec.get('cpu', '?')}). "
               f"{rec.get('notes', '')}".strip())
    if stale:
        caption += f" **Stale:** the `{profile}` profile has changed since; run the study again."
    return table, caption


def backbones(pipe) -> pd.DataFrame:
    """`backbone_table` for every pre-trained condition of a pipeline's profile, on its limb validation images."""
    from hipaug.method.conditions import condition

    names = [c for c in pipe.profile.transfer.conditions if condition(c).pretrained]
    return backbone_table({c: pipe.pretrained(c) for c in names}, pipe.limb_split[1])
