"""Chapter 6's localisation section: where each model looks, against the annotated fracture boxes.

Tables and the sentence of the `localisation` result (`hipaug.evaluation.localisation`), written
from its summary and paired tests, never typed.
"""

from __future__ import annotations

import pandas as pd

from hipaug.core.numbers import points, pvalue

CAM_NAMES = {"gradcam": "Grad-CAM", "gradcampp": "Grad-CAM++"}


def localisation_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Tabulate the `localisation` result's summary: per condition and method, both scores and chance, in %."""
    if summary.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "condition": summary["condition"], "method": summary["method"].map(CAM_NAMES).fillna(summary["method"]),
        "images": summary["images"],
        "pointing game (%)": summary["pointing_game"] * 100,
        "energy in the boxes (%)": summary["energy_in_box"] * 100,
        "chance: box area (%)": summary["chance"] * 100,
    })
    return out.set_index(["condition", "method"]).round(1)


def localisation_tests_table(tests: pd.DataFrame) -> pd.DataFrame:
    """Tabulate `paired_localisation` rows: both conditions' scores, the discordant hits and both tests' p."""
    if tests.empty:
        return pd.DataFrame()
    out = pd.DataFrame({
        "comparison": tests["a"] + " − " + tests["b"], "method": tests["method"].map(CAM_NAMES).fillna(tests["method"]),
        "images": tests["n_images"],
        "pointing game, a − b (points)": (tests["pointing_a"] - tests["pointing_b"]) * 100,
        "hits only a / only b": tests["hits_only_a"].astype(str) + " / " + tests["hits_only_b"].astype(str),
        "p, McNemar (exact)": tests["mcnemar_p"],
        "energy in the boxes, a − b (points)": tests["energy_diff"] * 100,
        "95% bootstrap CI, low": tests["energy_ci_low"] * 100,
        "95% bootstrap CI, high": tests["energy_ci_high"] * 100,
        "p, Wilcoxon signed-rank": tests["wilcoxon_p"],
    })
    return out.set_index(["comparison", "method"]).round(3)


def describe_localisation(summary: pd.DataFrame | None, tests: pd.DataFrame | None, alpha: float = 0.05,
                          a: str = "with_gan", b: str = "without_gan") -> str:
    """Say what the localisation scores show: above chance or not, and whether `a` looks elsewhere than `b`."""
    if summary is None:
        return ("This edition's pelvic images mark no fracture boxes, so where the models look is not scored here; "
                "the FracAtlas edition scores it on the hip images its annotators boxed. The heat maps above "
                "are shown, not measured.")
    if summary.empty:
        return "No test image with a fracture box was seen by any fold, so nothing was scored."
    g = summary[summary["method"] == "gradcam"] if (summary["method"] == "gradcam").any() else summary
    best = g.loc[g["pointing_game"].idxmax()]
    worst = g.loc[g["pointing_game"].idxmin()]
    chance = float(g["chance"].mean())
    above = int((g["pointing_game"] > g["chance"]).sum())
    text = (f"With Grad-CAM, the heat map's peak fell inside a fracture box on {points(worst['pointing_game'] * 100)}% "
            f"(`{worst['condition']}`) to {points(best['pointing_game'] * 100)}% (`{best['condition']}`) of the "
            f"{int(g['images'].max())} boxed test images; the boxes cover {points(chance * 100)}% of an image on "
            f"average, the hit rate of a peak placed at random. {above} of {len(g)} conditions point above that. ")
    rows = tests.loc[(tests["a"] == a) & (tests["b"] == b)] if tests is not None and len(tests) else pd.DataFrame()
    if rows.empty:
        return text + f"This run has no `{a}` − `{b}` comparison."
    for r in rows.itertuples():
        name = CAM_NAMES.get(r.method, r.method)
        sig = [t for t, p in (("pointing game", r.mcnemar_p), ("energy share", r.wilcoxon_p)) if p < alpha]
        text += (f"{name}: `{a}` − `{b}` differ by {points((r.pointing_a - r.pointing_b) * 100, signed=True)} points in the "
                 f"pointing game (McNemar p = {pvalue(r.mcnemar_p)}) and {points(r.energy_diff * 100, signed=True)} "
                 f"points in energy share (Wilcoxon p = {pvalue(r.wilcoxon_p)}); "
                 + (f"significant at {alpha:g} in the {' and the '.join(sig)}. " if sig else
                    f"neither is significant at {alpha:g}. "))
    return text.rstrip()
