"""The FracAtlas edition: the experiment on real limb and hip radiographs, from the release to verdicts.

A smoke build of the FracAtlas path on the shared copy (`$HIPAUG_FRACATLAS`, else ../shared/fracatlas):
`hipaug reproduce --fracatlas SRC --profile smoke` imports the release once into the artifact store,
runs every step on its limb and hip sets and writes a results store of its own edition, with where
each model looks (Grad-CAM against the fracture boxes). Where the copy is absent the tests say so in
one line; CI fails on such a skip (scripts/check_no_skips.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def fracatlas() -> Path:
    src = Path(os.environ.get("HIPAUG_FRACATLAS") or ROOT.parent / "shared" / "fracatlas")
    if not (src / "FracAtlas" / "dataset.csv").is_file() and not (src / "dataset.csv").is_file():
        pytest.skip(f"no FracAtlas copy at {src} (set HIPAUG_FRACATLAS)")
    return src


@pytest.fixture(scope="module")
def edition(fracatlas, tmp_path_factory) -> Path:
    """The results store of a smoke run of the whole experiment on FracAtlas."""
    from hipaug.cli import main

    out = tmp_path_factory.mktemp("fracatlas-results")
    assert main(["reproduce", "--fracatlas", str(fracatlas), "--profile", "smoke", "--ablations", "--out", str(out)]) == 0
    stores = list((out / "smoke").glob("fracatlas-*"))
    assert len(stores) == 1, f"no results store of the FracAtlas edition under {out}: {stores}"
    return stores[0]


@pytest.mark.slow
def test_the_edition_has_its_own_source_and_every_result(edition):
    run = json.loads((edition / "run.json").read_text())
    assert run["source"] == edition.name and run["source"].startswith("fracatlas-")
    assert run["limb_dir"].endswith("/import/limb") and run["pelvic_dir"].endswith("/import/hip")
    for name in ("table8_folds.csv", "paired_tests.csv", "gan_quality.json", "filter_summary.json",
                 "localisation_summary.csv", "localisation_tests.csv", "ablation_folds.csv", "data_summary.json"):
        assert (edition / name).is_file(), name
    counts = json.loads((edition / "data_summary.json").read_text())
    assert set(counts["pelvic_counts"]) == {"fracture", "normal"}
    assert {c.split("_")[0] for c in counts["limb_counts"]} == {"hand", "leg", "shoulder"}


@pytest.mark.slow
def test_grad_cam_is_scored_against_the_fracture_boxes(edition):
    summary = pd.read_csv(edition / "localisation_summary.csv")
    assert set(summary["method"]) == {"gradcam", "gradcampp"}
    assert summary["images"].gt(0).all() and summary["pointing_game"].between(0, 1).all()
    assert summary["energy_in_box"].between(0, 1).all()
    tests = pd.read_csv(edition / "localisation_tests.csv")
    pair = tests[(tests["a"] == "with_gan") & (tests["b"] == "without_gan")]
    assert len(pair) == 2 and pair["mcnemar_p"].between(0, 1).all() and pair["n_images"].gt(0).all()


@pytest.mark.slow
def test_claims_are_judged_on_the_editions_own_store(edition):
    from hipaug.book.claims import evaluate, load_ledger, load_results

    results = evaluate(load_ledger(), load_results(edition))
    assert results and all(r.verdict for r in results)


@pytest.mark.slow
def test_chapter_6_scores_and_draws_the_boxes_on_the_edition(edition, tmp_path):
    """Chapter 6 on the edition: the localisation tables, its sentence, and the boxes-over-heat-maps figure."""
    import nbformat

    from hipaug.book.build import execute
    from hipaug.book.chapter import glued_names, hide_unglued_figures

    run = json.loads((edition / "run.json").read_text())
    out = tmp_path / "06_beyond.ipynb"
    execute(ROOT / "notebooks" / "06_beyond.py", {"profile": "smoke", "limb_dir": run["limb_dir"],
                                                   "pelvic_dir": run["pelvic_dir"]}, out, cwd=ROOT)
    nb = nbformat.read(out, as_version=4)
    assert {"fig-beyond-boxes", "fig-beyond-cam"} <= glued_names(nb)
    assert hide_unglued_figures(nb) == 0  # every caption has its figure
    text = json.dumps([o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])])
    for heading in ("pointing game (%)", "chance: box area (%)", "p, McNemar (exact)", "the heat map's peak fell inside"):
        assert heading in text, heading
