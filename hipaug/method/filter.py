"""The realism filter of Lin & Chung (2019): a VGG-16 trained on real limb radiographs
scores every AC-GAN image, and only images it confidently assigns to the class they were
generated for are kept.

The paper says the classifier's predictions select "realistic images" but not the rule.
A `Rule` keeps an image when P(generated class) >= `threshold`, or keeps the `top_k`
best-scored images of each class; it is a value with its check, its label and its selection,
and no default: each profile's `filter` section sets one (`FilterSpec.rule`), and it is not the
paper's. `AblationSpec` lists the other rules chapter 6 compares.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hipaug.core import atomic_write_text
from hipaug.data import ImageDataset, write_dataset
from hipaug.errors import ConfigError, DataError


def check_rule(threshold, top_k, where: str = "") -> None:
    """Raise a one-line ConfigError unless exactly one of threshold (in [0, 1]) and top_k (>= 1) is set.

    `where` prefixes the field names with the profile section they come from (e.g. "filter.").
    """
    if (threshold is None) == (top_k is None):
        # No silent default: a hidden value here once disagreed with every profile's rule.
        raise ConfigError(f"{where.rstrip('.') or 'filter rule'}: set exactly one of threshold and top_k (the other to null)")
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or not 0.0 <= threshold <= 1.0):
        raise ConfigError(f"{where}threshold={threshold} must be in [0, 1]")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"{where}top_k={top_k} must be an integer >= 1")


@dataclass(frozen=True)
class Rule:
    """Which synthetic images the filter keeps: P(generated class) >= threshold, or the top_k best per class."""

    threshold: float | None = None  # keep if P(generated class) >= threshold (None: use top_k)
    top_k: int | None = None  # keep the k best-scored images of each class (None: use threshold)

    def __post_init__(self) -> None:
        check_rule(self.threshold, self.top_k)

    @property
    def label(self) -> str:
        """The rule in a few characters, as tables and figures show it: 'p>=0.9' or 'top-15'."""
        return f"top-{self.top_k}" if self.top_k is not None else f"p>={self.threshold:g}"

    def select(self, scores: pd.DataFrame) -> np.ndarray:
        """The boolean mask of the rows of `scores` (see `score_probs`) the rule accepts."""
        if self.top_k is not None:
            rank = scores.groupby("generated_class")["p_generated"].rank(ascending=False, method="first")
            return (rank <= self.top_k).to_numpy()
        return (scores["p_generated"] >= self.threshold).to_numpy()


@dataclass(frozen=True)
class FilterSpec:
    """The realism filter: how many synthetic images to draw and which to keep."""

    synthetic_per_class: int = 150  # AC-GAN samples drawn per limb class (paper: unknown)
    threshold: float | None = 0.9  # keep if P(generated class) >= threshold (paper's rule unknown)
    top_k: int | None = None  # alternatively keep the k best per class (set threshold to null)

    def __post_init__(self) -> None:
        if not isinstance(self.synthetic_per_class, int) or self.synthetic_per_class < 1:
            raise ConfigError(f"filter.synthetic_per_class={self.synthetic_per_class!r} must be an integer >= 1")
        check_rule(self.threshold, self.top_k, "filter.")

    @property
    def rule(self) -> Rule:
        """The selection rule of this profile."""
        return Rule(self.threshold, self.top_k)


@dataclass(frozen=True)
class AblationSpec:
    """Beyond the paper: other selection rules for the with-GAN condition (chapter 6)."""

    thresholds: tuple[float, ...] = (0.5, 0.99)  # alternative acceptance thresholds
    top_k: tuple[int, ...] = ()  # keep the k best per class (varies the number of synthetic images)

    def __post_init__(self) -> None:
        for t in self.thresholds:
            check_rule(t, None, "ablation.thresholds: ")
        for k in self.top_k:
            check_rule(None, k, "ablation.top_k: ")

    @property
    def rules(self) -> tuple[Rule, ...]:
        """The ablation's rules: every threshold, then every top-k."""
        return tuple(Rule(threshold=t) for t in self.thresholds) + tuple(Rule(top_k=k) for k in self.top_k)


@dataclass(frozen=True)
class FilterResult:
    """Scores of every synthetic image, the selection and its acceptance rates."""

    scores: pd.DataFrame  # one row per synthetic image: path, generated_class, p_generated, predicted_class, p_max, accepted
    acceptance: pd.DataFrame  # per class: generated, accepted, rate, mean_p_generated
    selected: ImageDataset  # the accepted images (class names = the synthetic set's)
    rule: Rule  # the rule applied

    @property
    def threshold(self) -> float | None:
        return self.rule.threshold

    @property
    def top_k(self) -> int | None:
        return self.rule.top_k


def rule_for(spec: FilterSpec, threshold: float | None = None, top_k: int | None = None) -> Rule:
    """The rule to apply: an explicit threshold or top_k (not both), else the profile's."""
    if threshold is None and top_k is None:
        return spec.rule
    return Rule(threshold, top_k)


def score_probs(probs: np.ndarray, synthetic: ImageDataset, classifier_classes: tuple[str, ...]) -> pd.DataFrame:
    """Tabulate classifier probabilities against the class each image was generated for."""
    missing = [c for c in synthetic.class_names if c not in classifier_classes]
    if missing:
        raise DataError(f"synthetic class '{missing[0]}' is not a class of the classifier ({', '.join(classifier_classes)})")
    col = np.array([classifier_classes.index(c) for c in synthetic.class_names])[synthetic.labels.numpy()]
    pred = probs.argmax(1)
    return pd.DataFrame({
        "path": list(synthetic.paths),
        "generated_class": [synthetic.class_names[i] for i in synthetic.labels.tolist()],
        "p_generated": probs[np.arange(len(col)), col],
        "predicted_class": [classifier_classes[i] for i in pred],
        "p_max": probs.max(1),
    })


def acceptance_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Per generated class: how many were drawn, accepted, and the acceptance rate."""
    g = scores.groupby("generated_class")
    out = pd.DataFrame({
        "generated": g.size(),
        "accepted": g["accepted"].sum().astype(int),
        "mean_p_generated": g["p_generated"].mean(),
    })
    out["rate"] = out["accepted"] / out["generated"]
    total = pd.DataFrame({"generated": [int(out["generated"].sum())], "accepted": [int(out["accepted"].sum())],
                          "mean_p_generated": [float(scores["p_generated"].mean())]}, index=["(all)"])
    total["rate"] = total["accepted"] / total["generated"]
    return pd.concat([out, total])[["generated", "accepted", "rate", "mean_p_generated"]]


def filter_from_probs(probs: np.ndarray, classifier_classes: tuple[str, ...], synthetic: ImageDataset,
                      rule: Rule) -> FilterResult:
    """Apply `rule` to precomputed probabilities (every rule re-uses one scoring pass)."""
    scores = score_probs(probs, synthetic, tuple(classifier_classes))
    scores["accepted"] = rule.select(scores)
    keep = np.flatnonzero(scores["accepted"].to_numpy())
    return FilterResult(scores, acceptance_table(scores), synthetic.subset(keep), rule)


def filter_synthetic(model: torch.nn.Module, classifier_classes: tuple[str, ...], synthetic: ImageDataset,
                     rule: Rule, device: str = "cpu", batch_size: int = 256) -> FilterResult:
    """Score `synthetic` with the limb classifier and keep the realistic images."""
    from hipaug.training import predict_proba

    probs = predict_proba(model, synthetic.images, batch_size=batch_size, device=device)
    return filter_from_probs(probs, classifier_classes, synthetic, rule)


def threshold_sweep(probs: np.ndarray, synthetic: ImageDataset, thresholds) -> pd.DataFrame:
    """Accepted share of each class at every threshold (one row per class and threshold): chapter 4's sweep."""
    return pd.concat([
        filter_from_probs(probs, synthetic.class_names, synthetic, Rule(threshold=float(t))).acceptance
        .drop(index="(all)").reset_index(names="generated_class").assign(threshold=t)
        for t in thresholds], ignore_index=True)


def write_filter_result(result: FilterResult, out_dir: str | Path) -> Path:
    """Write the selected images as a dataset folder, with scores.csv and acceptance.csv beside them."""
    out = Path(out_dir)
    write_dataset(result.selected, out)
    atomic_write_text(out / "scores.csv", result.scores.to_csv(index=False))
    atomic_write_text(out / "acceptance.csv", result.acceptance.to_csv(index_label="class"))
    return out
