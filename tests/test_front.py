"""The front page's answer (`hipaug.book.front`): numbers from the store, the paper's quoted, no results said so."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageStat
from scipy.stats import t as student_t

from hipaug.book import front
from hipaug.core.numbers import points
from hipaug.book.claims import VERDICTS, evaluate, load_ledger, load_results
from hipaug.evaluation import PAPER_METRICS, paired_tests
from hipaug.paper import TABLE8, TABLE8_FOLDS, paper_difference

ROOT = Path(__file__).resolve().parents[1]
FOLD_METRICS = (*PAPER_METRICS, "auc")
RUN = {"profile": "smoke", "source": "phantom", "seed": 7, "limb_dir": None, "pelvic_dir": None,
       "limb_fingerprint": "aa11bb22cc33dd44", "pelvic_fingerprint": "ee55ff6677889900"}


def _folds(effect: float, n: int = 5, seed: int = 0) -> pd.DataFrame:
    """Per-fold metrics of without_gan and with_gan (with_gan = without_gan + effect + noise)."""
    rng = np.random.default_rng(seed)
    base = {m: 0.8 + rng.normal(0, 0.03, n) for m in FOLD_METRICS}
    rows = [{"condition": "without_gan", "repeat": 0, "fold": i, "n_test": 60, **{m: base[m][i] for m in FOLD_METRICS}}
            for i in range(n)]
    rows += [{"condition": "with_gan", "repeat": 0, "fold": i, "n_test": 60,
              **{m: base[m][i] + effect + rng.normal(0, 0.005) for m in FOLD_METRICS}} for i in range(n)]
    return pd.DataFrame(rows)


def _store(d: Path, folds: pd.DataFrame | None, run: dict = RUN) -> Path:
    """A results store as the pipeline writes it: table8_folds, paired_tests (computed), run, step summaries."""
    d.mkdir(parents=True)
    (d / "run.json").write_text(json.dumps(run))
    (d / "data_summary.json").write_text(json.dumps({"limb_counts": {"a": 30, "b": 31}, "pelvic_counts": {"x": 9, "y": 8}}))
    (d / "acgan_summary.json").write_text(json.dumps({"n_synthetic": 123}))
    (d / "filter_summary.json").write_text(json.dumps({"accepted": 45, "generated": 123, "threshold": 0.7, "top_k": None}))
    (d / "gan_quality.json").write_text(json.dumps({"real_val_accuracy": 0.9, "n_accepted": 200, "n_real_train": 400,
                                                     "counts": {}}))
    if folds is not None:
        folds.to_csv(d / "table8_folds.csv", index=False)
        tests = paired_tests(folds, "with_gan", "without_gan", FOLD_METRICS, n_boot=200, seed=0, alpha=0.05)
        tests.reset_index().to_csv(d / "paired_tests.csv", index=False)
    return d


def _png(path: Path) -> Image.Image:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    img = Image.open(io.BytesIO(data))
    assert ImageStat.Stat(img.convert("L")).stddev[0] > 10, f"{path.name} is blank"
    return img


def test_headline_means_and_intervals_are_computed_from_the_folds_and_the_paper(tmp_path):
    folds = _folds(0.05)
    store = load_results(_store(tmp_path / "r", folds))
    df = front.headline(store, 0.95).set_index(["source", "condition", "metric"])
    for c in ("without_gan", "with_gan"):
        for m in PAPER_METRICS:
            v = folds.loc[folds["condition"] == c, m].to_numpy() * 100
            half = student_t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v))
            row = df.loc[("run", c, m)]
            assert row["mean"] == pytest.approx(v.mean())
            assert (row["low"], row["high"]) == pytest.approx((max(v.mean() - half, 0), min(v.mean() + half, 100)))
            mean, sd = TABLE8[c][m]
            p = df.loc[("paper", c, m)]
            half = student_t.ppf(0.975, TABLE8_FOLDS - 1) * sd / math.sqrt(TABLE8_FOLDS)
            assert (p["mean"], p["low"], p["high"]) == pytest.approx((mean, mean - half, mean + half))


def test_intervals_stay_within_0_and_100(tmp_path):
    folds = _folds(0.0)
    folds.loc[folds["condition"] == "with_gan", "sensitivity"] = [1.0, 0.0, 1.0, 0.0, 1.0]
    df = front.headline(load_results(_store(tmp_path / "r", folds)), 0.95)
    assert df["low"].min() >= 0 and df["high"].max() <= 100


def test_front_page_names_the_run_and_shows_computed_numbers(tmp_path):
    folds = _folds(0.05)
    d = _store(tmp_path / "r", folds)
    out = tmp_path / "gen"
    out.mkdir()
    written = front.write_front(ROOT, out, "smoke", d)
    assert [p.name for p in written] == [front.PIPELINE_PNG, front.HEADLINE_PNG, "front.md"]
    text = (out / "front.md").read_text(encoding="utf-8")
    assert "profile `smoke`" in text and "built-in phantom" in text and "seed 7" in text
    assert "`aa11bb22cc33`" in text and "`ee55ff667788`" in text
    acc = folds.groupby("condition")["accuracy"].mean() * 100
    assert f"| {points(acc['without_gan'])} [" in text and f"| {points(acc['with_gan'])} [" in text
    assert f"| accuracy | paper | {TABLE8['without_gan']['accuracy'][0]:g} [" in text
    assert f"{paper_difference('accuracy'):+g}, significant" in text and f"| {TABLE8['with_gan']['f1'][0]:g} [" in text
    # the pipeline's boxes carry the store's numbers (in the alt text too)
    assert "61 images, 2 classes" in text and "123 synthetic images" in text and "keeps 45 of 123" in text
    assert "{numref}`front-headline`" in text and "{ref}`findings`" in text
    # verdict counts agree with the ledger evaluated on the same store
    evaluated = evaluate(load_ledger(ROOT / "book" / "claims.yml"), load_results(d))
    for v in (*VERDICTS, "context"):
        assert f'verdict-{v}">' in text
        n = sum(r.verdict == v for r in evaluated)
        assert f"</span> {n}" in text.split(f'class="verdict verdict-{v}">', 1)[1].split(",")[0], v
    assert any(r.verdict == "supported" for r in evaluated)  # the constructed effect is found
    for png, size in ((front.PIPELINE_PNG, front.PIPELINE_SIZE), (front.HEADLINE_PNG, front.HEADLINE_SIZE)):
        assert _png(out / png).size == tuple(round(x * front.DPI) for x in size), png


def test_front_page_says_when_there_are_no_results(tmp_path):
    out = tmp_path / "gen"
    out.mkdir()
    written = front.write_front(ROOT, out, "smoke", tmp_path / "nothing-here")
    text = (out / "front.md").read_text(encoding="utf-8")
    assert "No results yet" in text and "nothing-here" in text
    assert [p.name for p in written] == [front.PIPELINE_PNG, "front.md"] and not (out / front.HEADLINE_PNG).exists()
    _png(out / front.PIPELINE_PNG)  # the pipeline is drawn without numbers


def test_own_folders_are_named_with_their_fingerprints(tmp_path):
    run = {**RUN, "source": "custom-aa11bb22cc", "limb_dir": "/data/limbs", "pelvic_dir": "/data/pelvis"}
    store = load_results(_store(tmp_path / "r", None, run))
    text = front.provenance(store, "default")
    assert "your radiographs" in text and "`/data/limbs`" in text and "`/data/pelvis`" in text
    assert "`aa11bb22cc33`" in text and "phantom" not in text


def test_figures_are_rewritten_only_when_they_change(tmp_path):
    d = _store(tmp_path / "r", _folds(0.05))
    out = tmp_path / "gen"
    out.mkdir()
    front.write_front(ROOT, out, "smoke", d)
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    front.write_front(ROOT, out, "smoke", d)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # same bytes: Sphinx sees no change
