"""The claims ledger: verdicts on constructed results, ledger/note consistency, malformed ledgers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from hipaug import claims
from hipaug.claims import Check, Claim, aggregate, check_against_note, evaluate, load_ledger
from hipaug.cli import main
from hipaug.errors import ConfigError
from hipaug.literature import read_note

ROOT = Path(__file__).resolve().parents[1]
LEDGER = ROOT / "book" / "claims.yml"


def folds(effect: float, noise: float = 0.005, n: int = 5, seed: int = 0, metric: str = "accuracy") -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = 0.8 + rng.normal(0, 0.03, n)
    rows = [{"condition": "without_gan", "fold": i, "repeat": 0, metric: base[i]} for i in range(n)]
    rows += [{"condition": "with_gan", "fold": i, "repeat": 0, metric: base[i] + effect + rng.normal(0, noise)}
             for i in range(n)]
    return pd.DataFrame(rows)


def one_claim(direction: str = "greater", metrics=("accuracy",)) -> claims.Ledger:
    t = Check(id="t", result="table8_folds", a="with_gan", b="without_gan", metrics=tuple(metrics), direction=direction)
    return claims.Ledger(note=Path("x"), claims=[Claim(id="c", match="x", kind="testable", title="c", tests=(t,))])


@pytest.mark.parametrize("effect,expected", [(0.05, "supported"), (-0.05, "contradicted"), (0.0, "inconclusive")])
def test_paired_verdicts(effect, expected):
    (r,) = evaluate(one_claim(), {"table8_folds": folds(effect)}, n_boot=1000)
    assert r.verdict == expected, (r.reason, [vars(m) for m in r.metrics])
    m = r.metrics[0]
    assert np.sign(m.effect) == np.sign(effect) or effect == 0
    if expected != "inconclusive":
        assert m.p < 0.05 and (m.ci_low > 0 if effect > 0 else m.ci_high < 0)


def test_direction_less_flips_the_verdict():
    (r,) = evaluate(one_claim("less"), {"table8_folds": folds(-0.05)}, n_boot=1000)
    assert r.verdict == "supported"


def test_too_few_folds_is_inconclusive():
    (r,) = evaluate(one_claim(), {"table8_folds": folds(0.05, n=2)}, n_boot=1000)
    assert r.verdict == "inconclusive" and "too few folds" in r.metrics[0].note


def test_missing_result_is_inconclusive_and_says_so():
    (r,) = evaluate(one_claim(), {}, n_boot=100)
    assert r.verdict == "inconclusive" and "not in the store" in r.metrics[0].note


def proportions(a, b, direction="greater", margin=0.0):
    t = Check(id="p", result="gan_quality", a="precision_accepted", b="precision_rejected", metrics=("proportion",),
             direction=direction, margin=margin)
    led = claims.Ledger(note=Path("x"), claims=[Claim(id="c", match="x", kind="testable", title="c", tests=(t,))])
    q = {"counts": {"precision_accepted": a, "precision_rejected": b}}
    return evaluate(led, {"gan_quality": q}, n_boot=2000)[0]


def test_proportion_verdicts():
    assert proportions([180, 200], [60, 200]).verdict == "supported"
    assert proportions([60, 200], [180, 200]).verdict == "contradicted"
    assert proportions([100, 200], [98, 200]).verdict == "inconclusive"


def test_noninferiority_uses_the_margin():
    assert proportions([190, 200], [192, 200], "noninferior", 0.1).verdict == "supported"
    assert proportions([40, 200], [190, 200], "noninferior", 0.1).verdict == "contradicted"
    assert proportions([9, 10], [9, 10], "noninferior", 0.1).verdict == "inconclusive"  # too few to tell


def test_aggregate_mixed_is_inconclusive_and_secondary_does_not_vote():
    mk = lambda v, role="primary": claims.MetricResult("t", role, "m", "a", "b", 5, 0, 0, 0, 0, 0, 0.5, "", v)  # noqa: E731
    assert aggregate([mk("supported"), mk("contradicted")])[0] == "inconclusive"
    assert aggregate([mk("supported"), mk("inconclusive")])[0] == "supported"
    assert aggregate([mk("inconclusive"), mk("contradicted", "secondary")])[0] == "inconclusive"


def test_shipped_ledger_covers_every_annotation_of_the_note():
    led = load_ledger(LEDGER)
    assert check_against_note(led) == []
    note = read_note(led.note)
    assert len(led.claims) == len(note.annotations)
    kinds = {c.id: c.kind for c in led.claims}
    for required in ("classic-not-enough", "abstract-result", "vgg-selects", "with-beats-without"):
        assert kinds[required] == "testable"


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
])
def test_malformed_ledger_is_refused_in_one_line(tmp_path, mutate, needle):
    with pytest.raises(ConfigError) as err:
        load_ledger(_ledger_with(tmp_path, mutate))
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_cli_names_a_highlight_that_no_longer_exists(tmp_path, capsys):
    path = _ledger_with(tmp_path, lambda r: r["claims"][2].update(match="GANs cure every fracture"))
    (tmp_path / "results").mkdir()
    assert main(["claims", "--results", str(tmp_path / "results"), "--ledger", str(path)]) == 2
    err = capsys.readouterr().err
    assert "GANs cure every fracture" in err and "abstract-result" in err
    assert "has no entry in the ledger" in err  # the orphaned highlight is named too


def test_cli_prints_verdicts_on_a_results_store(tmp_path, capsys):
    store = tmp_path / "results"
    store.mkdir()
    f = folds(0.05)
    f["sensitivity"] = f["specificity"] = f["f1"] = f["auc"] = f["accuracy"]
    f.to_csv(store / "table8_folds.csv", index=False)
    assert main(["claims", "--results", str(store)]) == 0
    out = capsys.readouterr().out
    assert "[   SUPPORTED] The with-GAN model detects hip fractures better" in out
    assert "CONTEXT" in out
