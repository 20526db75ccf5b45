"""The claims ledger: verdicts on constructed results, preconditions, ledger/note consistency, malformed ledgers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hipaug.book import claims
from hipaug.evaluation.gates import GATES
from hipaug.book.claims import Check, Claim, aggregate, check_against_note, evaluate, load_ledger
from hipaug.cli import main
from hipaug.errors import ConfigError
from hipaug.evaluation import paired_test
from hipaug.book.literature import read_note
from hipaug.paper import paper_difference

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "book" / "claims.yml"
PRE = load_ledger(LEDGER).preconditions
FOLD_METRICS = ("accuracy", "sensitivity", "specificity", "f1", "precision", "mcc", "auc")


def folds(effect: float, noise: float = 0.005, n: int = 5, seed: int = 0, a: str = "with_gan",
          b: str = "without_gan", effects: dict[str, float] | None = None) -> pd.DataFrame:
    """Per-fold metrics of two conditions that learned (all near 0.8); `a` = `b` + effect + noise.

    `effects` gives some metrics another effect than `effect`.
    """
    rng = np.random.default_rng(seed)
    eff = {m: effect for m in FOLD_METRICS} | (effects or {})
    base = {m: 0.8 + rng.normal(0, 0.03, n) for m in FOLD_METRICS}
    rows = [{"condition": b, "repeat": 0, "fold": i, "n_test": 60, **{m: base[m][i] for m in FOLD_METRICS}}
            for i in range(n)]
    rows += [{"condition": a, "repeat": 0, "fold": i, "n_test": 60,
              **{m: base[m][i] + eff[m] + rng.normal(0, noise) for m in FOLD_METRICS}} for i in range(n)]
    return pd.DataFrame(rows)


def quality(real_val_accuracy: float = 0.9, n_accepted: int = 200, n_real_train: int | None = 400, **counts) -> dict:
    """A gan_quality record whose realism filter is valid unless told otherwise."""
    q = {"real_val_accuracy": real_val_accuracy, "n_accepted": n_accepted, "counts": counts}
    if n_real_train is not None:
        q["n_real_train"] = n_real_train
    return q


def ledger_of(*tests: Check, **claim_kw) -> claims.Ledger:
    return claims.Ledger(note=Path("x"), claims=[Claim(id="c", match="x", kind="testable", title="c", tests=tests,
                                                       **claim_kw)], preconditions=PRE)


def paired_check(a="with_gan", b="without_gan", direction="greater", metrics=("accuracy",), role="primary", id="t"):
    return Check(id=id, result="table8_folds", a=a, b=b, metrics=tuple(metrics), direction=direction, role=role)


def one_claim(direction: str = "greater", metrics=("accuracy",)) -> claims.Ledger:
    return ledger_of(paired_check(direction=direction, metrics=metrics))


def store(f: pd.DataFrame, q: dict | None = None) -> dict:
    return {"table8_folds": f, "gan_quality": quality() if q is None else q}


# ------------------------------------------------------------------ verdicts on a valid run
@pytest.mark.parametrize("effect,expected", [(0.05, "supported"), (-0.05, "contradicted"), (0.0, "inconclusive")])
def test_paired_verdicts_use_the_corrected_test(effect, expected):
    f = folds(effect)
    (r,) = evaluate(one_claim(), store(f), n_boot=1000)
    assert r.verdict == expected, (r.reason, [vars(m) for m in r.metrics])
    assert all(p.passed for p in r.preconditions), r.preconditions
    m = r.metrics[0]
    ref = paired_test(f, "with_gan", "without_gan", "accuracy", n_boot=1000)
    assert m.statistic == claims.PAIRED_STATISTIC
    assert m.p == pytest.approx(ref["p_corrected"]) and m.p_paper == pytest.approx(ref["p_two_sided"])
    assert (m.ci_low, m.ci_high) == pytest.approx((ref["corrected_ci_low"], ref["corrected_ci_high"]))
    assert m.mdd == pytest.approx(ref["mdd_80"]) and m.test_train_ratio == pytest.approx(ref["test_train_ratio"])
    assert np.sign(m.effect) == np.sign(effect) or effect == 0
    if expected != "inconclusive":
        assert m.p < 0.05 and (m.ci_low > 0 if effect > 0 else m.ci_high < 0)


def test_plain_significant_but_corrected_not_is_inconclusive():
    f = folds(0.0, noise=0.0)
    d = 0.01 + np.array([0.0, 0.0084, -0.0084, 0.0042, -0.0042])  # plain t ~3.4, corrected t ~2.3 at n_test/n_train 1/4
    f.loc[f.condition == "with_gan", "accuracy"] = f.loc[f.condition == "without_gan", "accuracy"].to_numpy() + d
    (r,) = evaluate(one_claim(), store(f), n_boot=1000)
    m = r.metrics[0]
    assert m.p_paper < 0.05 <= m.p, (m.p_paper, m.p)
    assert r.verdict == "inconclusive"


def test_direction_less_flips_the_verdict():
    (r,) = evaluate(one_claim("less"), store(folds(-0.05)), n_boot=1000)
    assert r.verdict == "supported"


def test_too_few_folds_is_inconclusive():
    (r,) = evaluate(one_claim(), store(folds(0.05, n=2)), n_boot=1000)
    assert r.verdict == "inconclusive" and "too few folds" in r.metrics[0].note


def test_missing_result_is_not_testable_and_says_so():
    (r,) = evaluate(one_claim(), {}, n_boot=100)
    assert r.verdict == "not_testable" and "not in the results store" in r.reason
    assert r.metrics[0].verdict == "not_testable" and "not in the store" in r.metrics[0].note


# ------------------------------------------------------------------ the run did not learn
def test_near_constant_fold_is_not_testable_not_contradicted():
    f = folds(-0.05, a="with_gan", b="classic")
    led = ledger_of(paired_check(a="with_gan", b="classic"))
    (valid,) = evaluate(led, store(f), n_boot=1000)
    assert valid.verdict == "contradicted"  # the same numbers would contradict it on a valid run
    bad = f.copy()
    sel = (bad.condition == "classic") & (bad.fold == 3)
    bad.loc[sel, ["sensitivity", "specificity"]] = [1.0, 0.0]  # calls every image of fold 3 a fracture
    (r,) = evaluate(led, store(bad), n_boot=1000)
    assert r.verdict == "not_testable"
    assert "fold 3 of 'classic' is a near-constant predictor" in r.reason
    assert f"specificity {0.0:.2f} < {PRE.min_class_rate:.2f}" in r.reason
    assert r.metrics[0].verdict == "not_testable" and np.isfinite(r.metrics[0].effect)  # numbers still shown
    failed = [p for p in r.preconditions if not p.passed]
    assert [(p.name, p.subject, p.value, p.threshold) for p in failed] == \
        [("learned", "classic", 0.0, PRE.min_class_rate)]
    assert failed[0].tests == ("t",)


def test_near_constant_replication_is_named_by_replication():
    f = folds(-0.05, a="with_gan", b="classic")
    f = f.assign(repeat=f["fold"], fold=0, independent=True)  # one model per replication, as the phantom design writes
    bad = f.copy()
    row = bad.index[(bad.condition == "classic")][4]
    bad.loc[row, ["sensitivity", "specificity"]] = [1.0, 0.0]
    (r,) = evaluate(ledger_of(paired_check(a="with_gan", b="classic")), store(bad), n_boot=1000)
    assert r.verdict == "not_testable"
    assert f"replication {bad.loc[row, 'repeat']} of 'classic' is a near-constant predictor" in r.reason
    assert "fold" not in r.reason.split("near-constant")[0]


@pytest.mark.parametrize("effect", [0.05, -0.05])
def test_chance_auc_is_not_testable(effect):
    f = folds(effect)
    rng = np.random.default_rng(1)
    sel = f.condition == "without_gan"
    f.loc[sel, "auc"] = 0.5 + rng.normal(0, 0.02, int(sel.sum()))
    (r,) = evaluate(one_claim(), store(f), n_boot=1000)
    mean_auc = f.loc[sel, "auc"].mean()
    assert r.verdict == "not_testable", r.reason
    assert f"condition 'without_gan' did not learn: mean AUC {mean_auc:.2f} < {PRE.min_auc:.2f}" in r.reason
    (p,) = [p for p in r.preconditions if not p.passed]
    assert p.value == pytest.approx(mean_auc) and p.quantity == "mean AUC"


def test_nan_auc_and_missing_condition_are_not_testable():
    f = folds(0.05)
    f.loc[(f.condition == "with_gan") & (f.fold == 0), "auc"] = np.nan
    (r,) = evaluate(one_claim(), store(f), n_boot=1000)
    assert r.verdict == "not_testable" and "NaN AUC in 1 of 5 folds" in r.reason
    (r,) = evaluate(ledger_of(paired_check(b="classic")), store(folds(0.05)), n_boot=1000)
    assert r.verdict == "not_testable" and "no results for condition 'classic'" in r.reason


def test_claim_override_of_a_threshold():
    f = folds(0.05)
    strict = claims.Preconditions(**{**vars(PRE), "min_auc": 0.99})
    (r,) = evaluate(ledger_of(paired_check(), preconditions=strict), store(f), n_boot=1000)
    assert r.verdict == "not_testable" and f"< {0.99:.2f}" in r.reason


@pytest.mark.parametrize("reported_effect", [0.05, -0.05])
def test_reported_metrics_are_tested_and_shown_but_never_vote(reported_effect):
    f = folds(0.0, effects={"precision": reported_effect, "mcc": reported_effect})
    led = dataclasses.replace(ledger_of(paired_check(metrics=("accuracy",))), reported=("precision", "mcc"))
    (r,) = evaluate(led, store(f), n_boot=1000)
    assert r.verdict == "inconclusive", r.reason  # accuracy decides; precision and MCC, however clear, do not
    rows = {m.metric: m for m in r.metrics}
    assert [m.metric for m in r.metrics] == ["accuracy", "precision", "mcc"]
    assert rows["accuracy"].role == "primary" and rows["precision"].role == rows["mcc"].role == "reported"
    expected = "supported" if reported_effect > 0 else "contradicted"
    for m in ("precision", "mcc"):
        ref = paired_test(f, "with_gan", "without_gan", m, n_boot=1000)
        assert rows[m].effect == pytest.approx(ref["mean_diff"]) and rows[m].p == pytest.approx(ref["p_corrected"])
        assert rows[m].verdict == expected
    table = claims.render.metric_table(r.metrics)
    for m in ("precision", "mcc"):
        line = next(x for x in table.splitlines() if f"| {m} |" in x)
        assert "(reported, does not vote)" in line and line.endswith("| not reported |")
    acc = next(x for x in table.splitlines() if "| accuracy |" in x)
    assert "reported" not in acc and f"{paper_difference('accuracy'):+.2f} (significant)" in acc


def test_aggregate_mixed_is_inconclusive_and_secondary_does_not_vote():
    def mk(v, role="primary", t="t"):  # a p value that agrees with the verdict
        return claims.MetricResult(t, role, "m", "a", "b", 5, 0, 0, 0, 0, 0, 0.001 if v in ("supported", "contradicted")
                                   else 0.5, "", v)
    assert aggregate([mk("supported"), mk("contradicted")])[0] == "inconclusive"
    assert aggregate([mk("supported"), mk("inconclusive")])[0] == "supported"
    assert aggregate([mk("inconclusive"), mk("contradicted", "secondary")])[0] == "inconclusive"
    assert aggregate([mk("supported"), mk("not_testable", "secondary")])[0] == "supported"
    assert aggregate([mk("supported"), mk("not_testable", t="u")])[0] == "not_testable"
    failed = claims.PreconditionResult("learned", "x", "mean AUC", False, 0.5, 0.7, "x did not learn", ("u",))
    assert aggregate([mk("supported"), mk("not_testable", t="u")], (failed,)) == \
        ("not_testable", "precondition failed: x did not learn")


def test_a_claim_counts_a_comparison_only_if_it_survives_holms_correction():
    def mk(v, p, role="primary"):
        return claims.MetricResult("t", role, "m", "a", "b", 20, 0, 0, 0, 0, 0, p, "", v)

    from hipaug.book.claims.evaluate import holm

    # by hand: sorted 0.01, 0.02, 0.04, 0.5 -> 4 x 0.01, max(3 x 0.02, .), max(2 x 0.04, .), max(0.5, .)
    assert holm([0.04, 0.01, 0.5, 0.02]) == pytest.approx([0.08, 0.04, 0.5, 0.06])
    # Table VIII of a build: one metric of four at p 0.035 alone is not evidence for the claim
    verdict, reason = aggregate([mk("inconclusive", 0.0858), mk("supported", 0.0354), mk("inconclusive", 0.647),
                                 mk("inconclusive", 0.0669)])
    assert verdict == "inconclusive" and "1 of 4 primary comparisons reach alpha on their own" in reason
    assert "after Holm's correction for 4 p values" in reason
    verdict, reason = aggregate([mk("supported", 0.0045), mk("supported", 0.011), mk("inconclusive", 0.3)])
    assert verdict == "supported" and reason.startswith("2 of 3 primary comparisons support it after Holm's")
    assert aggregate([mk("supported", 0.04)]) == ("supported", "1 of 1 primary comparisons support it, none contradicts it")
    # a margin test (no p value) keeps its own verdict; it is not part of the family
    assert aggregate([mk("supported", float("nan")), mk("inconclusive", 0.2)])[0] == "supported"
    assert aggregate([mk("supported", 0.03), mk("inconclusive", 0.9, "secondary"), mk("inconclusive", 0.9, "secondary")])[0] \
        == "supported"  # secondary rows are not in the family


# ------------------------------------------------------------------ the realism filter
def gan_and_classic_ledger() -> claims.Ledger:
    gan = Claim(id="gan", match="x", kind="testable", title="gan", tests=(paired_check(),))
    classic = Claim(id="classic", match="y", kind="testable", title="classic",
                    tests=(paired_check(a="classic", b="without_gan", id="classic vs none"),
                           paired_check(a="with_gan", b="unfiltered_gan", role="secondary", id="filtered")))
    return claims.Ledger(note=Path("x"), claims=[gan, classic], preconditions=PRE)


def gan_store(q: dict) -> dict:
    f = pd.concat([folds(0.05, a="with_gan"), folds(0.05, a="classic", seed=0).query("condition == 'classic'"),
                   folds(0.0, a="unfiltered_gan", seed=0).query("condition == 'unfiltered_gan'")], ignore_index=True)
    return store(f, q)


def test_valid_filter_lets_gan_claims_be_judged():
    gan, classic = evaluate(gan_and_classic_ledger(), gan_store(quality()), n_boot=1000)
    assert gan.verdict == "supported" and classic.verdict == "supported"
    assert {p.name for p in gan.preconditions} == {"learned", "filter_valid"}
    assert all(p.passed for p in gan.preconditions)


@pytest.mark.parametrize("q,needle", [
    (quality(real_val_accuracy=0.4), "realism filter is unreliable: accuracy on held-out real limb images"),
    (quality(n_accepted=10, n_real_train=400), "accepted too few synthetic images: 10 ="),
    (quality(n_real_train=None), "n_real_train not recorded"),
])
def test_invalid_filter_makes_gan_claims_not_testable_only(q, needle):
    gan, classic = evaluate(gan_and_classic_ledger(), gan_store(q), n_boot=1000)
    assert gan.verdict == "not_testable" and needle in gan.reason, gan.reason
    assert classic.verdict == "supported", classic.reason  # no GAN in its primary test: unaffected
    secondary = [m for m in classic.metrics if m.role == "secondary"]
    assert secondary and all(m.verdict == "not_testable" for m in secondary)  # shown, does not block
    filt = [p for p in gan.preconditions if p.name == "filter_valid" and not p.passed]
    assert filt and filt[0].subject == "realism filter"
    if q.get("n_real_train") and q["real_val_accuracy"] >= PRE.min_filter_accuracy:
        assert filt[0].value == pytest.approx(q["n_accepted"] / q["n_real_train"])
        assert filt[0].threshold == PRE.min_accepted_fraction


def proportions(a, b, direction="greater", margin=0.0, q=None):
    t = Check(id="p", result="gan_quality", a="precision_accepted", b="precision_rejected", metrics=("proportion",),
              direction=direction, margin=margin)
    q = dict(q or quality())
    q["counts"] = {"precision_accepted": a, "precision_rejected": b}
    return evaluate(ledger_of(t), {"gan_quality": q}, n_boot=2000)[0]


def test_proportion_verdicts():
    assert proportions([180, 200], [60, 200]).verdict == "supported"
    assert proportions([60, 200], [180, 200]).verdict == "contradicted"
    assert proportions([100, 200], [98, 200]).verdict == "inconclusive"
    r = proportions([180, 200], [60, 200], q=quality(real_val_accuracy=0.3))
    assert r.verdict == "not_testable" and "realism filter is unreliable" in r.reason
    assert proportions([180, 200], [60, 200]).metrics[0].statistic == claims.FISHER_STATISTIC


def test_noninferiority_uses_the_margin():
    assert proportions([190, 200], [192, 200], "noninferior", 0.1).verdict == "supported"
    assert proportions([40, 200], [190, 200], "noninferior", 0.1).verdict == "contradicted"
    assert proportions([9, 10], [9, 10], "noninferior", 0.1).verdict == "inconclusive"  # too few to tell
    m = proportions([190, 200], [192, 200], "noninferior", 0.1).metrics[0]
    assert m.statistic == claims.MARGIN_STATISTIC and np.isnan(m.p)  # the CI decides, not a p value


# ------------------------------------------------------------------ the shipped ledger
def test_shipped_ledger_covers_every_annotation_of_the_note():
    led = load_ledger(LEDGER)
    assert check_against_note(led) == []
    note = read_note(led.note)
    assert len(led.claims) == len(note.annotations)
    kinds = {c.id: c.kind for c in led.claims}
    for required in ("classic-not-enough", "abstract-result", "vgg-selects", "with-beats-without"):
        assert kinds[required] == "testable"
    # one place for each threshold: the ledger's gates are the library's, and the ledger restates none
    assert led.preconditions == GATES and "preconditions" not in yaml.safe_load(LEDGER.read_text())
    # the reader's measures that Table VIII lacks are reported beside every paired comparison
    assert set(led.reported) == {"precision", "mcc"}


def test_default_ledger_is_the_projects_not_the_install_paths(tmp_path, monkeypatch):
    monkeypatch.delenv("HIPAUG_PROJECT", raising=False)
    monkeypatch.chdir(ROOT / "notebooks")  # where the notebooks run: the project is found above
    assert claims.default_ledger() == LEDGER and claims.default_ledger(ROOT) == LEDGER
    assert load_ledger().preconditions == PRE
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no hipaug project"):
        load_ledger()


def test_chapter_titles_come_from_the_notebooks():
    titles = claims.chapter_titles(ROOT)
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        lines = nb.read_text(encoding="utf-8").splitlines()
        first = next(line[len("# # "):] for line in lines if line.startswith("# # "))
        assert first in titles.values(), (nb.name, first)  # each chapter's title is its notebook's first heading
    named = {lbl for c in load_ledger(LEDGER).claims for lbl in (*c.chapters, c.evidence) if lbl}
    assert named and named <= set(titles), f"ledger labels with no heading in the notebooks: {named - set(titles)}"


def _ledger_with(tmp_path, mutate) -> Path:
    raw = yaml.safe_load(LEDGER.read_text())
    raw["note"] = str(LEDGER.parent / raw["note"])
    mutate(raw)
    p = tmp_path / "claims.yml"
    p.write_text(yaml.safe_dump(raw, allow_unicode=True))
    return p


@pytest.mark.parametrize("mutate,needle", [
    (lambda r: r["claims"][0]["tests"][0].update(result="table9"), "unknown result key 'table9'"),
    (lambda r: r["claims"][0]["tests"][0].update(metrics=["accuracy", "kappa"]), "unknown metric 'kappa'"),
    (lambda r: r["claims"][0].update(kind="maybe"), "kind must be context or testable"),
    (lambda r: r["claims"][1].update(why=""), "must say why"),
    (lambda r: r.update(preconditions={"min_auc": 0.7}), "the gates live in hipaug.evaluation.gates"),
    (lambda r: r["claims"][0].update(preconditions={"min_acc": 0.7}), "unknown precondition 'min_acc'"),
    (lambda r: r["claims"][0].update(preconditions={"min_auc": 1.5}), "min_auc must be a number in [0, 1]"),
    (lambda r: r["claims"][0].update(preconditions={"min_aucc": 0.8}), "unknown precondition 'min_aucc'"),
    (lambda r: r["claims"][0].update(requires=["trained"]), "unknown precondition 'trained' in requires"),
    (lambda r: r.update(reported_metrics=["precision", "kappa"]), "reported_metrics: unknown metric 'kappa'"),
    (lambda r: next(c for c in r["claims"] if c["id"] == "abstract-result")["tests"][2].pop("part"),
     "a compound claim names the part of every primary test"),
])
def test_malformed_ledger_is_refused_in_one_line(tmp_path, mutate, needle):
    with pytest.raises(ConfigError) as err:
        load_ledger(_ledger_with(tmp_path, mutate))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_claim_preconditions_override_and_requires_load(tmp_path):
    def mutate(r):
        r["claims"][0]["preconditions"] = {"min_auc": 0.9}
        r["claims"][0]["requires"] = ["filter_valid"]

    led = load_ledger(_ledger_with(tmp_path, mutate))
    c = led.claims[0]
    assert c.preconditions.min_auc == 0.9 and c.preconditions.min_class_rate == led.preconditions.min_class_rate
    assert c.requires == ("filter_valid",)
    # requires adds filter_valid to a test that does not touch the GAN
    assert ("filter_valid", "realism filter") in claims.needed_preconditions(paired_check(a="classic"), c.requires)
    assert ("filter_valid", "realism filter") not in claims.needed_preconditions(paired_check(a="classic"))


# ------------------------------------------------------------------ terminal and book page
def test_cli_names_a_highlight_that_no_longer_exists(tmp_path, capsys):
    path = _ledger_with(tmp_path, lambda r: r["claims"][2].update(match="GANs cure every fracture"))
    (tmp_path / "results").mkdir()
    assert main(["claims", "--results", str(tmp_path / "results"), "--ledger", str(path)]) == 2
    err = capsys.readouterr().err
    assert "GANs cure every fracture" in err and "abstract-result" in err
    assert "has no entry in the ledger" in err  # the orphaned highlight is named too


def test_claims_report_returns_the_text_and_the_status(tmp_path):
    d = _write_store(tmp_path / "results", folds(0.05), quality())
    text, status = claims.claims_report(d, LEDGER)
    assert status == 0 and text.startswith(f"results: {d}  profile=?") and "[   SUPPORTED]" in text
    bad = _ledger_with(tmp_path, lambda r: r["claims"][2].update(match="GANs cure every fracture"))
    text, status = claims.claims_report(d, bad)
    assert status == 2 and all(line.startswith("hipaug: error: ") for line in text.splitlines())


def _write_store(d: Path, f: pd.DataFrame, q: dict) -> Path:
    d.mkdir()
    f.to_csv(d / "table8_folds.csv", index=False)
    (d / "gan_quality.json").write_text(json.dumps(q))
    return d


def test_cli_prints_verdicts_on_a_results_store(tmp_path, capsys):
    d = _write_store(tmp_path / "results", folds(0.05), quality())
    assert main(["claims", "--results", str(d)]) == 0
    out = capsys.readouterr().out
    assert "[   SUPPORTED] The with-GAN model detects hip fractures better" in out
    assert "CONTEXT" in out
    assert "precondition learned [ok]: condition 'with_gan' learned: mean AUC" in out
    assert "paired t-test (paper's test) p=" in out


def test_cli_prints_not_testable_with_the_reason(tmp_path, capsys):
    f = folds(0.05)
    f.loc[f.condition == "without_gan", "auc"] = 0.5
    d = _write_store(tmp_path / "results", f, quality())
    assert main(["claims", "--results", str(d)]) == 0
    out = capsys.readouterr().out
    assert "[NOT TESTABLE] The with-GAN model detects hip fractures better" in out
    reason = f"precondition failed: condition 'without_gan' did not learn: mean AUC {0.5:.2f} < {PRE.min_auc:.2f}"
    assert reason in out
    assert "precondition learned [FAILED]" in out and "-> not testable in this run" in out
    assert "SUPPORTED" not in out and "CONTRADICTED" not in out


def test_findings_page_explains_preconditions_and_methods(tmp_path):
    f = folds(0.05)
    f.loc[f.condition == "without_gan", "auc"] = 0.5
    d = _write_store(tmp_path / "results", f, quality())
    pages = claims.render_findings_and_annotations(ROOT, tmp_path / "out", "smoke", results_dir=d)
    text = pages["findings.md"]
    led = load_ledger(LEDGER)
    assert f"mean fold AUC at least {led.preconditions.min_auc:g}" in text
    assert f"accuracy on held-out real limb images at least {led.preconditions.min_filter_accuracy:g}" in text
    assert "corrected resampled t-test" in text and "Fisher's exact test" in text and "bootstrap" in text
    n_nt = sum(r.verdict == "not_testable" for r in evaluate(led, claims.load_results(d)))
    assert n_nt > 0 and f"{claims.badge('not_testable')} {n_nt}" in text
    assert "not testable in this run" in text and "| learned | without_gan: mean AUC |" in text
    assert "paired t-test (paper's test)" in text and "MDD at 80% power" in text
    # every paired comparison shows precision and MCC beside the voting metrics, the paper's as not reported
    for m in led.reported:
        assert text.count(f"(reported, does not vote) | {m} |") == sum(
            1 for c in led.claims for t in c.tests if t.result == "table8_folds" and m not in t.metrics)
    assert "| with GAN vs without GAN (reported, does not vote) | precision |" in text
    assert "rows marked *reported*" in text and "*not reported* for precision, mcc, auc" in text
    assert "verdict-not_testable" in (ROOT / "book" / "_static" / "hipaug.css").read_text()
    titles = claims.chapter_titles(ROOT)
    # Chapter links carry the notebooks' own headings.
    assert f"{{ref}}`{titles['ch-data']} <ch-data>`" in pages["annotations.md"]
    assert f"{{ref}}`{titles['table8']} <table8>`" in text


# ------------------------------------------------------------------ compound claims
def compound(realism: list[int], real: list[int], effect: float, q: dict | None = None):
    """The abstract's shape: 'realistic' (GAN-test vs real, non-inferior) and 'helps' (with vs without GAN)."""
    realistic = dataclasses.replace(Check(id="gan-test", result="gan_quality", a="precision_accepted",
                                          b="precision_rejected", metrics=("proportion",), direction="noninferior",
                                          margin=0.1), part="realistic")
    helps = dataclasses.replace(paired_check(metrics=("accuracy", "auc"), id="with vs without"), part="helps")
    q = dict(q or quality())
    q["counts"] = {"precision_accepted": realism, "precision_rejected": real}
    return evaluate(ledger_of(realistic, helps), store(folds(effect), q), n_boot=2000)[0]


def test_a_compound_claim_is_only_as_strong_as_its_weakest_part():
    r = compound([190, 200], [192, 200], effect=0.0)  # realism supported, transfer inconclusive
    assert [(p.name, p.verdict) for p in r.parts] == [("realistic", "supported"), ("helps", "inconclusive")]
    assert r.verdict == "inconclusive" and "'helps' inconclusive" in r.reason and "while 'realistic' supported" in r.reason
    assert compound([190, 200], [192, 200], effect=0.05).verdict == "supported"  # both parts hold
    r = compound([190, 200], [192, 200], effect=-0.05)  # one part contradicted: the conjunction is false
    assert r.verdict == "contradicted" and "'helps' contradicted" in r.reason
    r = compound([190, 200], [192, 200], effect=0.05, q=quality(real_val_accuracy=0.3))  # a part cannot be tested
    assert r.verdict == "not_testable" and {p.verdict for p in r.parts} == {"not_testable"}


def test_the_old_rule_would_have_called_the_compound_supported():
    """The same rows under the one-assertion rule ('one supports, none contradicts') say supported: the bug fixed."""
    r = compound([190, 200], [192, 200], effect=0.0)
    assert claims.aggregate(r.metrics, r.preconditions)[0] == "supported" and r.verdict == "inconclusive"


def test_each_part_is_on_its_own_line_in_the_page_and_the_report():
    from hipaug.book.claims.render import part_lines
    from hipaug.book.claims.report import _claim_lines

    r = compound([190, 200], [192, 200], effect=0.0)
    lines = part_lines(r)
    assert sum("*realistic*" in x for x in lines) == 1 and sum("*helps*" in x for x in lines) == 1
    text = "\n".join(_claim_lines(r))
    assert "part 'realistic': supported" in text and "part 'helps': inconclusive" in text


def test_the_shipped_abstract_claim_names_its_two_parts():
    abstract = next(c for c in load_ledger(LEDGER).claims if c.id == "abstract-result")
    assert {t.part for t in abstract.tests if t.role == "primary"} == {"realistic limb images", "helps transfer learning"}


def test_findings_say_when_the_with_gan_set_misses_a_class():
    from hipaug.book.claims.render import coverage_text

    acc = pd.DataFrame({"class": ["knee_normal", "lower_leg_normal", "(all)"], "generated": [100, 100, 200],
                        "accepted": [57, 0, 57]})
    text = coverage_text(acc)
    assert "misses 1 limb class" in text and "`lower_leg_normal`" in text and "`knee_normal` 57" in text
    acc.loc[1, "accepted"] = 3
    assert "covers every limb class" in coverage_text(acc) and coverage_text(None) == ""


def test_the_deciding_test_is_named_for_the_design():
    """Under independent replications (no correction) the corrected t-test is the plain paired t-test: named so."""
    from hipaug.book.claims.evaluate import MetricResult

    def row(ratio):
        return MetricResult(test="t", role="primary", metric="accuracy", a="with_gan", b="without_gan", n=20, value_a=0.9,
                            value_b=0.89, effect=0.01, ci_low=-0.01, ci_high=0.03, p=0.3,
                            statistic=claims.PAIRED_STATISTIC, verdict="inconclusive", test_train_ratio=ratio)

    assert row(0.0).shown_statistic == "paired t-test across independent replications"
    assert row(0.25).shown_statistic == claims.PAIRED_STATISTIC == "corrected resampled t-test"
    from hipaug.book.claims.render import metric_table

    assert "paired t-test across independent replications" in metric_table([row(0.0)])
