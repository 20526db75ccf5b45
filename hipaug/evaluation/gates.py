"""The thresholds a run is held to: the validity gates of every verdict, and the phantom's operating point.

One place for each number. The claims ledger reads `Gates` (a claim may only tighten them), the
book states them from here, and `OperatingPoint` (a profile's `operating_point` section) checks
where a phantom experiment sits; its filter check is the gate's, not a second threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from hipaug.errors import ConfigError


@dataclass(frozen=True)
class Gates:
    """What a run must meet before a claim gets a verdict; a failed gate makes its tests "not testable".

    `learned` applies to every condition a paired test compares, `filter_valid` to every test
    involving a GAN condition or a GAN quality proportion. The paper gives no such thresholds;
    these are the book's, with their reasons.
    """

    # learned: mean fold AUC. 0.70 is the usual floor of "acceptable" discrimination (Hosmer &
    # Lemeshow); nearer 0.5 the model ranks at chance, and a difference between two such
    # conditions says nothing about augmentation.
    min_auc: float = 0.70
    # learned: every fold's sensitivity and specificity. Below 0.10 the fold calls (almost) every
    # image one class, so its accuracy is the class balance of the fold, not a measurement.
    min_class_rate: float = 0.10
    # filter_valid: accuracy of the realism filter (the limb VGG-16) on held-out real limb images.
    # Its scores choose the synthetic images; below 0.60 (chance is at most 0.5 with two or more
    # limb classes) it cannot tell a realistic image of a class from noise.
    min_filter_accuracy: float = 0.60
    # filter_valid: synthetic images accepted, as a fraction of the real limb training images
    # (n_accepted / n_real_train). Under 0.10 they barely change pre-training, so "with GAN" would
    # be "without GAN" under another name.
    min_accepted_fraction: float = 0.10

    def __post_init__(self) -> None:
        for name in ("min_auc", "min_class_rate", "min_filter_accuracy", "min_accepted_fraction"):
            v, top = getattr(self, name), (float("inf") if name == "min_accepted_fraction" else 1.0)  # the others are rates
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= v <= top:
                raise ConfigError(f"gate {name}={v!r} must be a number in [0, {top:g}]")


GATES = Gates()  # the gates of every verdict


@dataclass(frozen=True)
class OperatingPoint:
    """Where a profile's phantom experiment is calibrated to sit; checked after the run (phantom data only).

    The paper's without-GAN model is at 88.46 % accuracy; a baseline far below that, or a generator
    whose samples do not carry their class, would test a different question. The realism filter
    is held to the gate `Gates.min_filter_accuracy`, the same number the verdicts use. Empty
    bounds check nothing (smoke, a user's own profile).
    """

    without_gan_accuracy: tuple[float, ...] = ()  # (low, high) bounds of without_gan's mean fold accuracy
    min_gan_test_ratio: float | None = None  # lowest GAN-test accuracy / filter accuracy on real images

    def __post_init__(self) -> None:
        acc = self.without_gan_accuracy
        if acc and (len(acc) != 2 or not 0.0 <= acc[0] <= acc[1] <= 1.0):
            raise ConfigError(f"operating_point.without_gan_accuracy={list(acc)} must be [low, high] within [0, 1]")
        v = self.min_gan_test_ratio
        if v is not None and not 0.0 <= v <= 2.0:
            raise ConfigError(f"operating_point.min_gan_test_ratio={v} must be in [0, 2]")

    @property
    def empty(self) -> bool:
        """True when the profile sets no calibration target (then nothing is checked, the filter included)."""
        return not self.without_gan_accuracy and self.min_gan_test_ratio is None
