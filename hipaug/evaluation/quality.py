"""GAN sample quality in a learned feature space: is the AC-GAN's output real-looking and diverse?

Frechet distance (Heusel et al. 2017) without Inception weights, improved precision/recall
(Kynkaanniemi et al. 2019), within-class diversity against a real-vs-real baseline, and
GAN-test / GAN-train accuracy (Shmelkov et al. 2018). Features are (N, D) arrays from any model.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import linalg
from scipy.spatial.distance import pdist

from hipaug.errors import ConfigError
from hipaug.evaluation.metrics import EvaluationError, as_1d


@dataclass(frozen=True)
class QualitySpec:
    """How the GAN's samples and the paired comparisons are measured (a profile's `quality` section)."""

    pr_k: int = 3  # k of the k-NN manifolds for improved precision/recall
    n_boot: int = 5000  # bootstrap resamples for CIs of mean differences
    alpha: float = 0.05  # significance level of the paired tests
    # The synthetic sets a GAN-train classifier (the filter's recipe) is trained on: "unfiltered"
    # (every sample: Shmelkov et al.'s measure of the generator) and "filtered" (the accepted ones).
    gan_train_on: tuple[str, ...] = ("unfiltered", "filtered")

    def __post_init__(self) -> None:
        bad = sorted(set(self.gan_train_on) - {"unfiltered", "filtered"})
        if bad:
            raise ConfigError(f"quality.gan_train_on has {bad[0]!r}; use unfiltered and/or filtered")


def _feats(x: Any, name: str, min_rows: int = 2) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise EvaluationError(f"{name} must be a 2-D (N, D) feature array, got shape {a.shape}")
    if a.shape[0] < min_rows:
        raise EvaluationError(f"{name} needs at least {min_rows} rows, got {a.shape[0]}")
    if not np.isfinite(a).all():
        raise EvaluationError(f"{name} contains NaN or infinite values")
    return a


def feature_stats(feats: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean, covariance) of (N, D) features (np.cov rowvar=False, ddof=1)."""
    f = _feats(feats, "feats")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Frechet distance ||mu1-mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^1/2) between two Gaussians.

    Follows the reference FID code: `scipy.linalg.sqrtm` of the product; if it is not finite or
    has a non-negligible imaginary part, retry with eps*I added to both covariances.
    """
    mu1, mu2 = np.atleast_1d(mu1).astype(np.float64), np.atleast_1d(mu2).astype(np.float64)
    s1, s2 = np.atleast_2d(sigma1).astype(np.float64), np.atleast_2d(sigma2).astype(np.float64)
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.shape[0],) * 2:
        raise EvaluationError(f"feature dimensions differ: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs {s2.shape}")
    diff = mu1 - mu2
    scale = max(1.0, float(np.trace(s1) + np.trace(s2)))

    def _sqrt_trace(a: np.ndarray, b: np.ndarray) -> float | None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # singular-matrix warnings: checked below
            cm = linalg.sqrtm(a @ b)
        if not np.isfinite(cm).all():
            return None
        if np.iscomplexobj(cm):
            # Tiny imaginary parts are round-off; large ones mean sqrtm failed.
            if np.abs(np.diagonal(cm).imag).max() > 1e-3 * scale:
                return None
            cm = cm.real
        return float(np.trace(cm))

    tr = _sqrt_trace(s1, s2)
    if tr is None:
        off = np.eye(s1.shape[0]) * eps
        tr = _sqrt_trace(s1 + off, s2 + off)
        if tr is None:
            raise EvaluationError("frechet_distance: matrix square root failed even with eps*I added")
    fd = float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr)
    return max(fd, 0.0)  # round-off can make identical sets slightly negative


def frechet_distance(feats_a: Any, feats_b: Any, eps: float = 1e-6) -> float:
    """Frechet distance between Gaussians fitted to two (N, D) feature sets (FID without Inception).

    Biased upwards for small N; compare generators at equal N and against
    `real_vs_real_baseline`.
    """
    fa, fb = _feats(feats_a, "feats_a"), _feats(feats_b, "feats_b")
    if fa.shape[1] != fb.shape[1]:
        raise EvaluationError(f"feats_a has D={fa.shape[1]} but feats_b has D={fb.shape[1]}")
    return frechet_distance_from_stats(*feature_stats(fa), *feature_stats(fb), eps=eps)


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors  # on use, as everywhere in this module (hipaug.evaluation.metrics)

    # k+1 neighbours: the first is the point itself (distance 0).
    nn_ = NearestNeighbors(n_neighbors=k + 1).fit(x)
    dist, _ = nn_.kneighbors(x)
    return dist[:, k]


def _inside_manifold(queries: np.ndarray, support: np.ndarray, radii: np.ndarray, working_memory: int) -> np.ndarray:
    from sklearn.metrics import pairwise_distances_chunked

    def reduce(chunk: np.ndarray, start: int) -> np.ndarray:
        return (chunk <= radii[None, :]).any(axis=1)

    parts = pairwise_distances_chunked(queries, support, reduce_func=reduce, working_memory=working_memory)
    return np.concatenate(list(parts))


def precision_recall(real: Any, fake: Any, k: int = 3, working_memory: int = 256) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of `fake` against `real` features.

    Each real sample's hypersphere has the radius of its k-th nearest real neighbour (itself
    excluded); precision = fraction of fakes inside any real hypersphere. Recall is the same with
    the roles swapped. Distances are computed in chunks of about `working_memory` MiB.
    """
    if int(k) < 1:
        raise EvaluationError(f"k={k} must be >= 1")
    k = int(k)
    r, f = _feats(real, "real", k + 1), _feats(fake, "fake", k + 1)
    if r.shape[1] != f.shape[1]:
        raise EvaluationError(f"real has D={r.shape[1]} but fake has D={f.shape[1]}")
    rr, rf = _knn_radii(r, k), _knn_radii(f, k)
    precision = float(_inside_manifold(f, r, rr, working_memory).mean())
    recall = float(_inside_manifold(r, f, rf, working_memory).mean())
    return {"precision": precision, "recall": recall, "k": int(k), "n_real": int(r.shape[0]), "n_fake": int(f.shape[0])}


def _label_names(labels: np.ndarray, class_names: Sequence[str] | None) -> list[str]:
    uniq = np.unique(labels)
    if class_names is None:
        return [str(u) for u in uniq]
    names = tuple(class_names)
    bad = [int(u) for u in uniq if not 0 <= int(u) < len(names)]
    if bad:
        raise EvaluationError(f"labels {bad} are out of range for class_names {names}")
    return [names[int(u)] for u in uniq]


def class_diversity(
    feats: Any,
    labels: Any,
    class_names: Sequence[str] | None = None,
    metric: str = "euclidean",
    max_per_class: int | None = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Return the mean pairwise distance within each class and overall ("all" row).

    A class whose synthetic samples are much less diverse than its real ones has collapsed.
    Classes larger than `max_per_class` are subsampled (seeded) to bound the O(N^2) cost.
    """
    f = _feats(feats, "feats", 1)
    lab = as_1d(labels, "labels")
    if lab.shape[0] != f.shape[0]:
        raise EvaluationError(f"feats has {f.shape[0]} rows but labels has {lab.shape[0]}")
    rng = np.random.default_rng(seed)

    def mean_dist(x: np.ndarray) -> float:
        if max_per_class is not None and x.shape[0] > max_per_class:
            x = x[rng.choice(x.shape[0], size=max_per_class, replace=False)]
        return float(pdist(x, metric=metric).mean()) if x.shape[0] >= 2 else float("nan")

    rows = []
    for u, name in zip(np.unique(lab), _label_names(lab, class_names), strict=True):
        sel = f[lab == u]
        rows.append({"class": name, "n": int(sel.shape[0]), "mean_pairwise_distance": mean_dist(sel)})
    rows.append({"class": "all", "n": int(f.shape[0]), "mean_pairwise_distance": mean_dist(f)})
    return pd.DataFrame(rows).set_index("class")


def compare_diversity(
    real_feats: Any, real_labels: Any, fake_feats: Any, fake_labels: Any,
    class_names: Sequence[str] | None = None, **kwargs: Any,
) -> pd.DataFrame:
    """Return per-class diversity of real vs synthetic features and their ratio (fake / real)."""
    r = class_diversity(real_feats, real_labels, class_names, **kwargs)
    f = class_diversity(fake_feats, fake_labels, class_names, **kwargs)
    out = pd.DataFrame({
        "n_real": r["n"], "n_fake": f["n"],
        "real": r["mean_pairwise_distance"], "fake": f["mean_pairwise_distance"],
    })
    out["ratio"] = out["fake"] / out["real"]
    return out


def real_vs_real_baseline(
    feats: Any,
    labels: Any = None,
    seed: int = 0,
    fn: Callable[[np.ndarray, np.ndarray], Any] = frechet_distance,
) -> Any:
    """Split real features into two (label-stratified) halves and return `fn(half_a, half_b)`.

    This is the floor a generator's score should be compared to; note each half has N/2 samples.
    """
    from sklearn.model_selection import train_test_split

    f = _feats(feats, "feats", 4)
    strat = None if labels is None else as_1d(labels, "labels")
    if strat is not None and strat.shape[0] != f.shape[0]:
        raise EvaluationError(f"feats has {f.shape[0]} rows but labels has {strat.shape[0]}")
    try:
        a, b = train_test_split(f, test_size=0.5, random_state=seed, stratify=strat)
    except ValueError as e:
        raise EvaluationError(f"cannot split feats into stratified halves: {e}") from None
    return fn(a, b)


def gan_test_accuracy(
    probs: Any, intended_labels: Any, class_names: Sequence[str] | None = None
) -> tuple[float, pd.Series]:
    """GAN-test (Shmelkov et al. 2018): how often a real-trained classifier gives the intended class.

    Returns (overall accuracy, per-class accuracy Series; NaN for classes with no samples).
    High GAN-test alone can hide collapse: report diversity/recall beside it.
    """
    from sklearn.metrics import accuracy_score, recall_score

    p = probs.detach().cpu().numpy() if isinstance(probs, torch.Tensor) else np.asarray(probs)
    lab = as_1d(intended_labels, "intended_labels").astype(np.int64)
    if p.ndim != 2 or p.shape[0] != lab.shape[0]:
        raise EvaluationError(f"probs must have shape ({lab.shape[0]}, C), got {p.shape}")
    c = p.shape[1]
    if lab.size and (lab.min() < 0 or lab.max() >= c):
        raise EvaluationError(f"intended_labels must be in [0, {c}), got range [{lab.min()}, {lab.max()}]")
    names = list(class_names) if class_names is not None else list(range(c))
    if len(names) != c:
        raise EvaluationError(f"class_names has {len(names)} names but probs has {c} columns")
    pred = p.argmax(axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        per = recall_score(lab, pred, labels=list(range(c)), average=None, zero_division=np.nan)
    return float(accuracy_score(lab, pred)), pd.Series(per, index=pd.Index(names, name="class"), name="gan_test")


def gan_train_test_table(real_acc: float, results: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """Tabulate GAN-train / GAN-test accuracies per generator against the real-on-real accuracy.

    `results` maps a generator name to (gan_train, gan_test); `*_ratio` columns divide by
    `real_acc` (GAN-train close to 1 means the samples are diverse and realistic enough to
    train on; GAN-test alone rewards collapsed, class-typical samples).
    """
    rows = [{"generator": k, "gan_train": float(t), "gan_test": float(s)} for k, (t, s) in results.items()]
    df = pd.DataFrame(rows, columns=["generator", "gan_train", "gan_test"]).set_index("generator")
    df["gan_train_ratio"] = df["gan_train"] / real_acc
    df["gan_test_ratio"] = df["gan_test"] / real_acc
    df.attrs["real_acc"] = float(real_acc)
    return df
