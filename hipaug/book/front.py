"""The front page's answer: the pipeline drawn, this run's Table VIII beside the paper's, the verdict counts.

`write_front` reads the results store of the build (`table8_folds`, `paired_tests`, `run` and the
step summaries written by the notebooks), draws two figures with matplotlib and writes
`front.md` for `book/index.md` to include. Every number comes from the store or from
`hipaug.paper` (the paper's, quoted); with no results yet the page says so.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hipaug.book.claims import premise_front, results_store
from hipaug.book.plots import png_bytes
from hipaug.core import write_if_changed

PIPELINE_PNG = "front_pipeline.png"
HEADLINE_PNG = "front_headline.png"
HEADLINE_PAIR = ("without_gan", "with_gan")  # the pair Table VIII compares, in the order drawn
SOURCES = ("paper", "run")  # the paper's Table VIII, this build's run
DPI = 150  # sharp on high-density screens; the page scales the figures to its text column
PIPELINE_SIZE = (7.2, 3.9)  # inches: about the text column's width, so 8-10 pt text reads at that size
HEADLINE_SIZE = (7.2, 5.6)  # inches: two rows of two metrics


# ------------------------------------------------------------------ reading the store
def provenance(store: dict[str, Any], profile: str) -> str:
    """One sentence naming the profile, the data (phantom or the reader's folders, with fingerprints) and seed."""
    from hipaug.book.chapter import data_statement

    run = store.get("run", {})
    fp = {k: str(run.get(f"{k}_fingerprint") or "")[:12] for k in ("limb", "pelvic")}
    data = data_statement(run.get("source", "phantom"), run.get("limb_dir"), run.get("pelvic_dir"))
    prints = ", ".join(f"{k} `{v}`" for k, v in fp.items() if v)
    return (f"profile `{run.get('profile', profile)}`, data: {data}" + (f", fingerprints {prints}" if prints else "")
            + (f", seed {run['seed']}" if "seed" in run else ""))


def _confidence(store: dict[str, Any], profile: str) -> float:
    """The confidence level of the intervals: the paired tests' level, else 1 - the profile's alpha."""
    tests = store.get("paired_tests")
    if isinstance(tests, pd.DataFrame) and "confidence_level" in tests and len(tests):
        return float(tests["confidence_level"].iloc[0])
    from hipaug.config import load_profile

    return 1.0 - load_profile(profile).quality.alpha


def store_label(store: dict[str, Any], profile: str) -> str:
    """'profile, source' of the run, for axis labels."""
    run = store.get("run", {})
    return f"{run.get('profile', profile)}, {run.get('source', 'phantom')}"


def _t_interval(mean: float, sd: float, n: int, level: float) -> tuple[float, float]:
    """mean -+ t(level, n-1) * sd / sqrt(n), cut to [0, 100]: the interval of a mean percentage over n folds."""
    from scipy.stats import t

    if n < 2 or not np.isfinite(sd):
        return math.nan, math.nan
    half = float(t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return max(mean - half, 0.0), min(mean + half, 100.0)  # a rate in percent: cut at 0 and 100


def headline(store: dict[str, Any], level: float) -> pd.DataFrame:
    """Mean and interval (percent) of each Table VIII metric, without and with GAN, for the paper and this run."""
    from hipaug.evaluation import PAPER_METRICS
    from hipaug.paper import TABLE8, TABLE8_FOLDS

    rows = []
    for c in HEADLINE_PAIR:
        for m in PAPER_METRICS:
            mean, sd = TABLE8[c][m]
            rows.append(("paper", c, m, mean, *_t_interval(mean, sd, TABLE8_FOLDS, level), TABLE8_FOLDS))
    folds = store.get("table8_folds")
    if isinstance(folds, pd.DataFrame) and "condition" in folds:
        for c in HEADLINE_PAIR:
            for m in PAPER_METRICS:
                v = folds.loc[folds["condition"] == c, m].dropna().to_numpy(float) * 100 if m in folds else []
                if len(v):
                    sd = float(np.std(v, ddof=1)) if len(v) > 1 else math.nan
                    rows.append(("run", c, m, float(v.mean()), *_t_interval(float(v.mean()), sd, len(v), level),
                                 len(v)))
    return pd.DataFrame(rows, columns=["source", "condition", "metric", "mean", "low", "high", "n"])


def differences(store: dict[str, Any]) -> dict[str, dict[str, float]]:
    """This run's with − without GAN difference per metric (points) with its corrected interval and p value."""
    tests = store.get("paired_tests")
    if not isinstance(tests, pd.DataFrame) or tests.empty or "a" not in tests:
        return {}
    rows = tests[(tests["a"] == "with_gan") & (tests["b"] == "without_gan")]
    return {r["metric"]: {"diff": r["mean_diff"] * 100, "low": r["corrected_ci_low"] * 100,
                          "high": r["corrected_ci_high"] * 100, "p": r["p_corrected"]} for _, r in rows.iterrows()}


# ------------------------------------------------------------------ figures
def _figure_agg(size: tuple[float, float]):
    """A matplotlib figure on its own Agg canvas: no pyplot state, no display, nothing left open."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _box(ax, x: float, y: float, title: str, detail: str, colour: str):
    """A rounded box with a bold title over its detail lines, centred at (x, y); arrows attach to it."""
    from matplotlib.offsetbox import AnnotationBbox, TextArea, VPacker

    lines = [TextArea(title, textprops={"fontsize": 9.5, "fontweight": "bold", "ha": "center"})]
    if detail:
        lines.append(TextArea(detail, textprops={"fontsize": 8.5, "ha": "center", "linespacing": 1.3}))
    box = AnnotationBbox(VPacker(children=lines, align="center", pad=0, sep=3), (x, y), frameon=True,
                         pad=0.5, bboxprops={"boxstyle": "round,pad=0.5", "facecolor": colour,
                                             "edgecolor": "#455a64", "linewidth": 1})
    ax.add_artist(box)
    return box


def _arrow(ax, src, dst, side: tuple[float, float] = (1, 0.5), end: tuple[float, float] = (0, 0.5)) -> None:
    """An arrow from a point of one box (fractions of its extent) to a point of another."""
    ax.annotate("", xy=end, xycoords=dst, xytext=side, textcoords=src,
                arrowprops={"arrowstyle": "-|>", "color": "#37474f", "lw": 1.3, "shrinkA": 2, "shrinkB": 2})


def _note(ax, x: float, y: float, text: str, ha: str) -> None:
    """An arrow's label, in italics beside it."""
    ax.text(x, y, text, ha=ha, va="center", fontsize=8, color="#37474f", style="italic")


def pipeline_details(store: dict[str, Any]) -> dict[str, str]:
    """The numbers written in the pipeline's boxes, from the run's step summaries ('' where not recorded)."""
    from hipaug.core.numbers import points

    data, gan, filt = store.get("data_summary", {}), store.get("acgan_summary", {}), store.get("filter_summary", {})
    limb, pelvic = data.get("limb_counts", {}), data.get("pelvic_counts", {})
    folds = store.get("table8_folds")
    d = differences(store).get("accuracy")
    n_folds = len(folds[["repeat", "fold"]].drop_duplicates()) if isinstance(folds, pd.DataFrame) and \
        {"repeat", "fold"} <= set(folds) else 0
    rule = (f"top {filt['top_k']} per class" if filt.get("top_k") else
            f"p ≥ {filt['threshold']:g}" if filt.get("threshold") is not None else "")
    return {
        "limb": f"{sum(limb.values())} images, {len(limb)} classes" if limb else "",
        "gan": f"{gan['n_synthetic']} synthetic images" if "n_synthetic" in gan else "",
        "filter": (f"keeps {filt['accepted']} of {filt['generated']}" + (f"\n{rule}" if rule else ""))
        if "accepted" in filt else "",
        "pelvic": f"{sum(pelvic.values())} images, {len(pelvic)} classes" if pelvic else "",
        "transfer": f"{n_folds} folds" if n_folds else "",
        "table": f"accuracy with − without:\n{points(d['diff'], True)} points" if d and np.isfinite(d["diff"])
        else "",
    }


def pipeline_figure(details: dict[str, str]):
    """The reproduction as boxes and arrows: limb data, AC-GAN, realism filter, transfer learning, Table VIII.

    The GAN side reads along the top row; transfer learning, fed by both data sets, and its result
    along the bottom row.
    """
    fig = _figure_agg(PIPELINE_SIZE)
    ax = fig.subplots()
    ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.axis("off")
    top, bottom = 0.8, 0.2
    limb = _box(ax, 0.14, top, "Limb X-rays", details.get("limb", ""), "#e3f2fd")
    gan = _box(ax, 0.5, top, "AC-GAN", details.get("gan", ""), "#e8f5e9")
    filt = _box(ax, 0.85, top, "Realism filter", "VGG-16 on real limbs\n" + details.get("filter", ""), "#e8f5e9")
    pelvic = _box(ax, 0.14, bottom, "Pelvic X-rays", details.get("pelvic", ""), "#e3f2fd")
    transfer = _box(ax, 0.5, bottom, "Transfer learning", "pre-train on limbs,\nfine-tune on pelvis\n"
                    + details.get("transfer", ""), "#fff3e0")
    table = _box(ax, 0.85, bottom, "Table VIII", "with vs without GAN\n" + details.get("table", ""), "#fce4ec")
    _arrow(ax, limb, gan)
    _arrow(ax, gan, filt)
    _arrow(ax, limb, transfer, side=(0.6, 0), end=(0.2, 1))
    _note(ax, 0.29, 0.5, "real limb images\n(both conditions)", "right")
    _arrow(ax, filt, transfer, side=(0.4, 0), end=(0.8, 1))
    _note(ax, 0.71, 0.5, "accepted synthetic\nimages (with GAN only)", "left")
    _arrow(ax, pelvic, transfer)
    _arrow(ax, transfer, table)
    fig.tight_layout(pad=0.3)
    return fig


def headline_figure(df: pd.DataFrame, label: str):
    """Dots (means) and bars (intervals) per metric: without and with GAN, the paper beside this run."""
    from hipaug.book.plots import LABELS, PALETTE
    from hipaug.evaluation import PAPER_METRICS

    fig = _figure_agg(HEADLINE_SIZE)
    axes = fig.subplots(2, math.ceil(len(PAPER_METRICS) / 2)).ravel()
    offsets = {"without_gan": -0.12, "with_gan": 0.12}
    for ax, m in zip(axes, PAPER_METRICS):
        for i, src in enumerate(SOURCES):
            for c in HEADLINE_PAIR:
                r = df[(df["source"] == src) & (df["condition"] == c) & (df["metric"] == m)]
                if r.empty:
                    continue
                r = r.iloc[0]
                err = None if not np.isfinite(r["low"]) else [[r["mean"] - r["low"]], [r["high"] - r["mean"]]]
                ax.errorbar(i + offsets[c], r["mean"], yerr=err, fmt="o", color=PALETTE[c], capsize=4, ms=6,
                            label=LABELS[c] if (ax is axes[0] and i == 0) else None)
        ax.set_xticks(range(len(SOURCES)), ["paper\n(Table VIII)", f"this run\n({label})"], fontsize=8)
        ax.set_xlim(-0.5, len(SOURCES) - 0.5)
        ax.set_title(m if m != "f1" else "F1", fontsize=10)
        ax.grid(axis="y", alpha=0.4)
    for ax in axes[::2]:
        ax.set_ylabel("percent")
    fig.legend(loc="upper center", ncol=2, frameon=False, bbox_to_anchor=(0.5, 1.0), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


# ------------------------------------------------------------------ text
def _cell(r: pd.DataFrame) -> str:
    """'mean [low, high]' in percent (the paper's mean as it prints it), or — when the run has no such value."""
    from hipaug.core.numbers import points, quoted

    if r.empty:
        return "—"
    r = r.iloc[0]
    ci = f" [{points(r['low'])}, {points(r['high'])}]" if np.isfinite(r["low"]) else ""
    return f"{quoted(r['mean']) if r['source'] == 'paper' else points(r['mean'])}{ci}"


def headline_table(df: pd.DataFrame, diffs: dict[str, dict[str, float]]) -> str:
    """Markdown table: per metric, the paper's row and this run's, without and with GAN, and the difference."""
    from hipaug.core.numbers import points, pvalue
    from hipaug.evaluation import PAPER_METRICS
    from hipaug.paper import TABLE8_SIGNIFICANT, paper_difference

    head = "| metric | from | without GAN | with GAN | with − without |\n|---|---|---|---|---|\n"
    lines = []
    for m in PAPER_METRICS:
        def cell(src: str, c: str) -> str:
            return _cell(df[(df["source"] == src) & (df["condition"] == c) & (df["metric"] == m)])

        d = diffs.get(m)
        run_d = (f"{points(d['diff'], True)} [{points(d['low'], True)}, {points(d['high'], True)}], "
                 f"p = {pvalue(d['p'])}" if d and np.isfinite(d["diff"]) else "—")
        paper_d = f"{paper_difference(m):+g}, {'' if TABLE8_SIGNIFICANT[m] else 'not '}significant"
        name = m if m != "f1" else "F1"
        lines.append(f"| {name} | paper | {cell('paper', 'without_gan')} | {cell('paper', 'with_gan')} | {paper_d} |")
        lines.append(f"| {name} | this run | {cell('run', 'without_gan')} | {cell('run', 'with_gan')} | {run_d} |")
    return head + "\n".join(lines)


def headline_alt(df: pd.DataFrame, label: str) -> str:
    """Alt text of the headline figure: what it shows and every mean it draws."""
    from hipaug.core.numbers import points, quoted

    parts = []
    for m in dict.fromkeys(df["metric"]):
        sub = df[df["metric"] == m].set_index(["source", "condition"])["mean"]
        say = []
        for src, name in (("paper", "paper"), ("run", "this run")):
            if (src, "without_gan") in sub and (src, "with_gan") in sub:
                fmt = quoted if src == "paper" else points
                say.append(f"{name} {fmt(sub[(src, 'without_gan')])} without and {fmt(sub[(src, 'with_gan')])} "
                           "with GAN")
        parts.append(f"{m}: " + ", ".join(say))
    return (f"Dot-and-interval plot of Table VIII in percent, the paper beside this run ({label}). "
            + "; ".join(parts) + ".")


def pipeline_alt(details: dict[str, str]) -> str:
    """Alt text of the pipeline figure, with the run's numbers where recorded."""
    def say(key: str) -> str:
        return f" ({details[key]})".replace("\n", ", ") if details.get(key) else ""

    return (f"Flow chart: limb X-rays{say('limb')} train an AC-GAN{say('gan')}; a VGG-16 realism filter trained on "
            f"the real limb images keeps the realistic ones{say('filter')}; transfer learning pre-trains on the limb "
            f"images, with the accepted synthetic images (with GAN) or without them, and fine-tunes on pelvic "
            f"X-rays{say('pelvic')}{say('transfer')}; the result is Table VIII{say('table')}.")


def short_reason(reason: str) -> str:
    """A verdict's reason cut to its first clause, counting the rest (the findings page has them all)."""
    head, *rest = reason.split("; ")
    return head + (f" (and {len(rest)} more)" if rest else "")


def verdicts_text(root: Path, store: dict[str, Any]) -> str:
    """The claims ledger's verdict counts on this run, and the verdict of the with- vs without-GAN claims."""
    from hipaug.book.claims import VERDICTS, badge, default_ledger, evaluate, load_ledger

    # The same evaluation as the findings page (same ledger, store and defaults), so the counts agree.
    evaluated = evaluate(load_ledger(default_ledger(root)), store)
    counts = {v: sum(r.verdict == v for r in evaluated) for v in (*VERDICTS, "context")}
    lines = [f"**Verdicts** of the {len(evaluated)} entries of the claims ledger on this run "
             f"({{ref}}`findings` gives each with its tests): "
             + ", ".join(f"{badge(v)} {n}" for v, n in counts.items()) + ".", ""]
    for r in evaluated:
        if any(t.result == "table8_folds" and {t.a, t.b} == set(HEADLINE_PAIR) for t in r.claim.tests):
            lines.append(f"- {r.claim.title}: {badge(r.verdict)} {short_reason(r.reason)}.")
    return "\n".join(lines)


def edition_kind(source: str) -> str:
    """The edition a results store belongs to: phantom, fracatlas or custom."""
    return source.split("-", 1)[0]


def other_editions(results_dir: Path, source: str) -> dict[str, Path]:
    """The latest built results store of each other edition (phantom, FracAtlas) beside this build's, by kind."""
    root = Path(results_dir).parent.parent  # <results>/<profile>/<source>
    found: dict[str, Path] = {}
    stores = sorted((p.parent for p in root.glob("*/*/table8_folds.csv")), key=lambda d: d.stat().st_mtime)
    for d in stores:  # the latest of each kind wins
        kind = edition_kind(d.name)
        if kind in ("phantom", "fracatlas") and kind != edition_kind(source):
            found[kind] = d
    return found


def editions_text(root: Path, results_dir: Path, source: str, level: float) -> str:
    """The headline of every other edition that has been built, beside this one's, with the data it rests on."""
    from hipaug.book.claims import load_results

    parts = []
    for kind, d in sorted(other_editions(results_dir, source).items()):
        other = load_results(d)
        df = headline(other, level)
        parts += [f"#### The {'FracAtlas' if kind == 'fracatlas' else 'phantom'} edition", "",
                  f"Built from the results store `{d.parent.name}/{d.name}`: {provenance(other, d.parent.name)}. "
                  "Its Table VIII beside the paper's, as above:", "",
                  headline_table(df, differences(other)), "", verdicts_text(root, other), ""]
    if not parts:
        return ""
    return "\n".join(["### The other editions of this book", "",
                      "Each verdict rests on the data of its own edition: the numbers above on this build's, those "
                      "below on the other edition's, built separately (`make book`, `make book FRACATLAS=...`).", "",
                      *parts])


def _figure(png: str, name: str, alt: str, caption: str) -> str:
    """A numbered MyST figure of a PNG in book/generated (a path from the source root: it works when included)."""
    alt = alt.replace("\n", " ")
    return f"```{{figure}} /book/generated/{png}\n:name: {name}\n:alt: {alt}\n:width: 100%\n\n{caption}\n```\n"


def front_markdown(root: Path, profile: str, results_dir: Path, store: dict[str, Any], details: dict[str, str],
                   df: pd.DataFrame | None, level: float) -> str:
    """The front page's answer as MyST: the pipeline figure, the headline figure and table, the verdicts.

    `df` is `headline(store, level)`, None when the store has no Table VIII yet.
    """
    from hipaug.book import power
    from hipaug.paper import TABLE8_FOLDS

    where = provenance(store, profile)
    pipeline = _figure(PIPELINE_PNG, "front-pipeline", pipeline_alt(details),
                       "The reproduction, step by step, with the numbers of this run where it recorded them "
                       f"({where}).")
    if df is None:
        return "\n".join([pipeline, f"**No results yet** for {where}: the results store `{results_dir}` has no "
                          "Table VIII (`table8_folds.csv`). Build the book (`make book`) or run chapter 5 to fill it; "
                          "this page then shows the answer.", ""])
    n_run = int(df.loc[df["source"] == "run", "n"].max()) if (df["source"] == "run").any() else 0
    rep = store.get("run", {}).get("design") == "replications"
    caption = (f"Table VIII, the paper beside this run. Dots: mean over folds or replications; bars: {level * 100:g}% "
               f"t-interval of the mean, cut at 0 and 100 (the paper's from its mean ± SD over its {TABLE8_FOLDS} folds, "
               f"quoted; this run's from its {n_run} {'independent replications' if rep else 'fold results'}). "
               f"This run: {where}.")
    test = ("the paired t-test across independent replications (nothing is shared: the corrected test's correction "
            "is zero)" if rep else "the corrected resampled t-test, which allows for the folds sharing training images")
    return "\n".join([
        pipeline,
        "The paper's Table VIII and this run side by side ({numref}`front-headline`; chapter {ref}`table8` has "
        "every condition and fold). Numbers are in percent; each mean has its plain t-interval over the folds, the same "
        "for the paper (from its SD) and this run. The last column gives the paper's difference with the verdict of "
        f"its paired t-test, and this run's difference with the {level * 100:g}% CI and p value of {test}.", "",
        _figure(HEADLINE_PNG, "front-headline", headline_alt(df, store_label(store, profile)), caption),
        headline_table(df, differences(store)), "",
        power.seen_text(store), "", premise_front(root, store), "",
        verdicts_text(root, store), "",
        editions_text(root, results_dir, store.get("run", {}).get("source", "phantom"), level)])


# ------------------------------------------------------------------ driver
def write_front(root: Path, out: Path, profile: str, results_dir: Path | None = None) -> list[Path]:
    """Write `front.md` and its two PNGs into `out` from the build's results store; return the paths written."""
    results_dir, store = results_store(profile, results_dir)
    details = pipeline_details(store)
    written = [out / PIPELINE_PNG]
    write_if_changed(written[0], png_bytes(pipeline_figure(details), DPI))
    level = _confidence(store, profile) if "table8_folds" in store else math.nan
    df = headline(store, level) if "table8_folds" in store else None
    if df is not None:
        written.append(out / HEADLINE_PNG)
        write_if_changed(written[-1], png_bytes(headline_figure(df, store_label(store, profile)), DPI))
    text = front_markdown(root, profile, results_dir, store, details, df, level)
    write_if_changed(out / "front.md", text)
    return [*written, out / "front.md"]
