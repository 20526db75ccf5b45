"""Figures of the book. Each function draws one figure and returns it (the notebook shows it)."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch

from hipaug.evaluation import EvaluationError, curve_column

PALETTE = {"scratch": "#9e9e9e", "classic": "#ff9800", "without_gan": "#1976d2", "with_gan": "#2e7d32",
           "unfiltered_gan": "#8e24aa"}
LABELS = {"scratch": "scratch", "classic": "classic aug.", "without_gan": "without GAN", "with_gan": "with GAN",
          "unfiltered_gan": "unfiltered GAN"}


def style() -> None:
    """The book's plotting style."""
    sns.set_theme(context="notebook", style="whitegrid", font_scale=0.9)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 100, "image.cmap": "gray"})


def _imshow(ax, img, title: str | None = None) -> None:
    ax.imshow(np.asarray(img).squeeze(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([]), ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title, fontsize=7)


def class_grid(images: torch.Tensor, labels: torch.Tensor, class_names, per_class: int = 6, seed: int = 0,
               title: str | None = None, row_label_width: float = 1.6):
    """One row per class, `per_class` examples each (drawn with `seed`)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    fig, axes = plt.subplots(len(class_names), per_class, figsize=(row_label_width + per_class * 1.1, len(class_names) * 1.1),
                             squeeze=False)
    for r, name in enumerate(class_names):
        idx = np.flatnonzero(labels == r)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False) if len(idx) else []
        for c in range(per_class):
            ax = axes[r, c]
            if c < len(pick):
                _imshow(ax, images[pick[c]])
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name.replace("_", "\n"), rotation=0, ha="right", va="center", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def intensity_histograms(ds, bins: int = 50, title: str | None = None):
    """One step histogram of pixel intensities per class (density over [0, 1], log scale)."""
    x = ds.images.detach().cpu().reshape(len(ds), -1).numpy()
    y = np.asarray(ds.labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    colours = sns.color_palette("tab10" if len(ds.class_names) <= 10 else "husl", len(ds.class_names))
    ncol = 1 if len(ds.class_names) <= 6 else 2
    fig, ax = plt.subplots(figsize=(5 + 2.2 * ncol, 3))  # the legend sits right of the axes
    for j, (name, colour) in enumerate(zip(ds.class_names, colours)):
        if (y == j).any():
            density, _ = np.histogram(x[y == j], bins=edges, density=True)
            ax.stairs(density, edges, color=colour, lw=1.2, label=f"{name} ({int((y == j).sum())})")
    # Log scale: background and padding pile up in a few bins; the tissue and bone range would be flat lines.
    ax.set_yscale("log")
    ax.set_xlim(0, 1)
    ax.set_xlabel("pixel intensity (0 black, 1 white)")
    ax.set_ylabel("density")
    ax.legend(fontsize=7, ncol=ncol, loc="upper left", bbox_to_anchor=(1.01, 1))
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def gan_history(history: pd.DataFrame):
    """AC-GAN losses and accuracies over training."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    loss_cols = [c for c in ("d_loss", "g_loss") if c in history]
    history.plot(x="step", y=loss_cols, ax=axes[0])
    axes[0].set_title("losses")
    acc_cols = [c for c in history.columns if "acc" in c]
    if acc_cols:
        history.plot(x="step", y=acc_cols, ax=axes[1])
        axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_title("discriminator accuracies")
    fig.tight_layout()
    return fig


def sample_progress(sample_dir: str | Path, max_panels: int = 4):
    """Sample grids written during AC-GAN training (fixed noise; one row per class)."""
    from PIL import Image

    files = sorted(Path(sample_dir).glob("step_*.png"))
    if len(files) > max_panels:
        files = [files[int(round(i))] for i in np.linspace(0, len(files) - 1, max_panels)]
    fig, axes = plt.subplots(1, len(files), figsize=(3.6 * len(files), 4.2), squeeze=False)
    for ax, f in zip(axes[0], files):
        ax.imshow(np.asarray(Image.open(f).convert("L")), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"step {int(f.stem.split('_')[1])}")
        ax.set_xticks([]), ax.set_yticks([])
        ax.grid(False)
    fig.tight_layout()
    return fig


def training_curves(history: pd.DataFrame, title: str):
    """Train/validation loss and accuracy per epoch of a classifier."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3))
    for col in ("train_loss", "val_loss"):
        if col in history:
            axes[0].plot(history["epoch"], history[col], marker="o", ms=3, label=col)
    for col in ("train_acc", "val_acc"):
        if col in history:
            axes[1].plot(history["epoch"], history[col], marker="o", ms=3, label=col)
    axes[0].set_title("loss"), axes[1].set_title("accuracy")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def score_histogram(scores: pd.DataFrame, threshold: float | None):
    """Filter scores P(generated class) per class, with the acceptance threshold."""
    fig, ax = plt.subplots(figsize=(8, 3.2))
    sns.histplot(data=scores, x="p_generated", hue="generated_class", bins=20, multiple="stack", ax=ax)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1)
        ax.text(threshold, ax.get_ylim()[1] * 0.95, f" threshold {threshold:g}", va="top", fontsize=8)
    ax.set_xlabel("P(class the image was generated for) under the limb VGG-16")
    fig.tight_layout()
    return fig


def accepted_vs_rejected(images: torch.Tensor, scores: pd.DataFrame, n: int = 8):
    """The best-scored accepted and worst-scored rejected synthetic images."""
    acc = scores[scores["accepted"]].sort_values("p_generated", ascending=False).head(n)
    rej = scores[~scores["accepted"]].sort_values("p_generated").head(n)
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 3.2), squeeze=False)
    for r, (part, name) in enumerate(((acc, "accepted"), (rej, "rejected"))):
        for c in range(n):
            ax = axes[r, c]
            if c < len(part):
                i = part.index[c]
                _imshow(ax, images[i], f"{part.loc[i, 'generated_class']}\np={part.loc[i, 'p_generated']:.2f}")
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(name)
    fig.tight_layout()
    return fig


def threshold_sweep(sweep: pd.DataFrame, threshold: float | None):
    """Acceptance rate per class as a function of the threshold."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    sns.lineplot(data=sweep, x="threshold", y="rate", hue="generated_class", ax=ax)
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_ylabel("acceptance rate")
    ax.set_ylim(-0.02, 1.02)
    fig.tight_layout()
    return fig


def paired_folds(folds: pd.DataFrame, metrics, conditions):
    """Per-fold values of each metric, one line per fold across conditions (paired design)."""
    metrics = list(metrics)
    ncols = min(len(metrics), 4)  # wrap: seven metrics in one row would not fit the text column
    nrows = -(-len(metrics) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.6 * ncols, 3.2 * nrows), squeeze=False)
    for ax in axes.flat[len(metrics):]:
        ax.axis("off")
    d = folds[folds["condition"].isin(conditions)].copy()
    d["condition"] = pd.Categorical(d["condition"], categories=list(conditions), ordered=True)
    d = d.sort_values("condition")
    for ax, m in zip(axes.flat, metrics):
        for (_, fold), g in d.groupby(["repeat", "fold"], observed=True):
            ax.plot(g["condition"].cat.codes, g[m], color="#bbbbbb", lw=0.8, marker="o", ms=3)
        means = d.groupby("condition", observed=True)[m].mean()
        ax.plot(range(len(means)), means.values, color="k", lw=2, marker="D", ms=5)
        ax.set_xticks(range(len(conditions)), [LABELS.get(c, c) for c in conditions], rotation=35, fontsize=8)
        ax.set_title(m)
    fig.tight_layout()
    return fig


def roc_curves(preds: pd.DataFrame, conditions):
    """Pooled out-of-fold ROC curve per condition."""
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4.5, 4.2))
    for c in conditions:
        p = preds[preds["condition"] == c]
        if p["y_true"].nunique() < 2:
            continue
        fpr, tpr, _ = roc_curve(p["y_true"], p["y_score"])
        ax.plot(fpr, tpr, color=PALETTE.get(c), label=f"{LABELS.get(c, c)} (AUC {roc_auc_score(p['y_true'], p['y_score']):.3f})")
    ax.plot([0, 1], [0, 1], color="#cccccc", ls="--", lw=1)
    ax.set_xlabel("1 - specificity"), ax.set_ylabel("sensitivity")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def augmentation_examples(images: torch.Tensor, augmented: list[torch.Tensor], titles=("original",)):
    """Each row: an image and several classic augmentations of it."""
    n, k = images.shape[0], len(augmented)
    fig, axes = plt.subplots(n, k + 1, figsize=(1.3 * (k + 1), 1.3 * n), squeeze=False)
    for r in range(n):
        _imshow(axes[r, 0], images[r], "original" if r == 0 else None)
        for c in range(k):
            _imshow(axes[r, c + 1], augmented[c][r], f"aug. {c + 1}" if r == 0 else None)
    fig.tight_layout()
    return fig


def png_bytes(fig, dpi: int) -> bytes:
    """The figure as PNG bytes without a timestamp or version stamp (an unchanged figure gives equal bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def cam_overlay(image, cam, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a grey image (H, W) in [0, 1] with a CAM (H, W) in [0, 1]; return RGB (H, W, 3) in [0, 1]."""
    img = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    img = np.squeeze(img).astype(np.float64)
    c = np.squeeze(np.asarray(cam, dtype=np.float64))
    if img.ndim != 2 or c.shape != img.shape:
        raise EvaluationError(f"image {img.shape} and cam {c.shape} must be the same (H, W)")
    heat = matplotlib.colormaps[cmap](np.clip(c, 0, 1))[..., :3]
    grey = np.repeat(np.clip(img, 0, 1)[..., None], 3, axis=2)
    return np.clip((1 - alpha) * grey + alpha * heat, 0, 1)


def gradcam_grid(images, cams, titles, boxes: list | None = None):
    """Radiographs (top row) with heat maps overlaid below: a row per entry of `cams` (a method, or a model).

    `cams`: maps (N, H, W), or {row label: maps}. With `boxes` (per image a list of (x0, y0, x1, y1) on its
    pixels) the annotated fracture boxes are drawn on every panel and each map's peak is marked: the
    pointing game scores a hit when it falls inside a box.
    """
    from matplotlib.patches import Rectangle

    rows = cams if isinstance(cams, dict) else {"": cams}
    n = len(images)
    fig, axes = plt.subplots(1 + len(rows), n, figsize=(1.8 * n, 1.9 * (1 + len(rows))), squeeze=False)
    for i in range(n):
        img = np.asarray(images[i]).squeeze()
        _imshow(axes[0, i], img, titles[i])
        for r, maps in enumerate(rows.values(), start=1):
            ax = axes[r, i]
            ax.imshow(cam_overlay(img, maps[i]))
            ax.set_xticks([]), ax.set_yticks([])
            ax.grid(False)
            if boxes is not None:
                peak = np.unravel_index(int(np.argmax(maps[i])), np.shape(maps[i]))
                ax.plot(peak[1], peak[0], marker="+", color="white", markersize=7, mew=1.5)
        for x0, y0, x1, y1 in boxes[i] if boxes is not None else ():
            for ax in axes[:, i]:
                ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, edgecolor="lime", lw=1.0))
    for r, label in enumerate(rows, start=1):
        axes[r, 0].set_ylabel(label, fontsize=8)
    fig.tight_layout()
    return fig


def power_curve(curve: pd.DataFrame, paper: float | None):
    """MDD (points) against the number of pairs on log axes: this run marked, the paper's difference dashed."""
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    y = curve.columns[1]
    ax.plot(curve["pairs"], curve[y], color="k", lw=1.4)
    here = curve[curve["this run"]]
    ax.plot(here["pairs"], here[y], "o", color=PALETTE.get("with_gan", "C1"), label="this run")
    if paper is not None:
        ax.axhline(abs(paper), ls="--", color="grey", lw=1, label="paper's difference")
    ax.set_xscale("log"), ax.set_yscale("log")
    ax.set_xlabel("independent pairs"), ax.set_ylabel("MDD at 80% power (points)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def ablation_plot(df: pd.DataFrame, x: str, metric: str, hue: str | None = None, title: str = ""):
    """Mean +- SD of a metric across folds against an ablation variable."""
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    sns.pointplot(data=df, x=x, y=metric, hue=hue, errorbar="sd", ax=ax, dodge=0.2 if hue else False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


# What each `curve_column` is called on an axis, and what a caption adds about it.
CURVES = {"val_acc": ("validation accuracy", ""),
          "train_acc": ("training accuracy", " on each epoch's augmented batches (no images were held out for validation)")}


def curve_words(history: pd.DataFrame) -> tuple[str, str]:
    """(axis name, caption addendum) of the accuracy the fine-tuning curves of `history` show."""
    return CURVES[curve_column(history)]


def finetune_curves(history: pd.DataFrame, conditions):
    """Accuracy per fine-tuning epoch (`curve_column`), one thin line per fold and repeat, a panel per condition."""
    col = curve_column(history)
    label = CURVES[col][0]
    conditions = [c for c in conditions if c in set(history["condition"])]
    fig, axes = plt.subplots(1, len(conditions), figsize=(2.6 * len(conditions), 2.6), sharey=True, squeeze=False)
    for ax, cond in zip(axes[0], conditions):
        sub = history[history["condition"] == cond]
        for _, run in sub.groupby(["repeat", "fold"]):
            ax.plot(run["epoch"], run[col], color=PALETTE.get(cond, "k"), lw=0.8, alpha=0.6)
        ax.plot(*sub.groupby("epoch")[col].mean().reset_index().T.to_numpy(), color="k", lw=1.6)
        ax.set_title(LABELS.get(cond, cond), fontsize=9)
        ax.set_xlabel("epoch")
    axes[0, 0].set_ylabel(label)
    fig.tight_layout()
    return fig
