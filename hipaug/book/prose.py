"""The book's sentences about settings and tests, generated from the profile and the results.

The project's rule: no setting or measured number is typed into a chapter's prose. A chapter
shows these Markdown sentences in a `remove-input` cell instead, so the text says what the code
does with the profile it ran with (`hipaug.config.Profile` and the `TrainConfig`, `ACGANConfig`
and `AugmentConfig` it holds). Each function mirrors the code it describes
(`hipaug.training.train_classifier`, `hipaug.method.transfer`, `hipaug.method.filter`, `hipaug.training.gan.train_acgan`);
change both together.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from hipaug.config import Profile
from hipaug.core.numbers import points
from hipaug.training.augment import AugmentConfig

MONITORS = {"val_loss": "the lowest validation loss", "val_acc": "the highest validation accuracy"}


def _g(x: float) -> str:
    """A setting as written in a profile (0.001, 5e-05, 0.5, 32)."""
    return f"{x:g}"


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def describe_augment(aug: AugmentConfig | None) -> str:
    """List what classic augmentation does to each image, e.g. 'left-right flips with p = 0.5, ...'."""
    if aug is None or not aug.enabled:
        return "none"
    parts = []
    if aug.hflip > 0:
        parts.append(f"left-right flips with p = {_g(aug.hflip)}")
    if aug.vflip > 0:
        parts.append(f"up-down flips with p = {_g(aug.vflip)}")
    if aug.rotation > 0:
        parts.append(f"rotations up to ±{_g(aug.rotation)}°")
    lo, hi = aug.scale
    if (lo, hi) != (1.0, 1.0):
        parts.append(f"zoom {_g(lo)}–{_g(hi)}")
    if aug.translate > 0:
        parts.append(f"shifts up to {_g(aug.translate * 100)}% of the side")
    if aug.brightness > 0:
        parts.append(f"brightness ±{_g(aug.brightness)}")
    if aug.contrast > 0:
        parts.append(f"contrast ±{_g(aug.contrast * 100)}%")
    return ", ".join(parts) if parts else "none (every perturbation is set to zero)"


def _active(aug: AugmentConfig | None) -> bool:
    return aug is not None and not aug.is_identity


def _optimiser(cfg: Any) -> str:
    opt = "Adam" if cfg.optimizer == "adam" else f"SGD (momentum {_g(cfg.momentum)})"
    sched = ", cosine-annealed to 0 over the epochs" if cfg.lr_schedule == "cosine" else " (constant)"
    wd = f", weight decay {_g(cfg.weight_decay)}" if cfg.weight_decay > 0 else ", no weight decay"
    return f"{opt} at learning rate {_g(cfg.lr)}{sched}{wd}"


def _stopping(cfg: Any, split: str | None) -> str:
    """How the kept epoch is chosen and whether training stops early (`train_classifier`); split None: no validation."""
    if split is None:
        return ("There is no validation split (`val_fraction` 0): every epoch trains on all the training images "
                "and the last epoch's weights are kept.")
    best = MONITORS.get(cfg.monitor, f"the best `{cfg.monitor}`")
    delta = f" (an improvement must exceed {_g(cfg.min_delta)})" if cfg.min_delta > 0 else ""
    if cfg.patience is None:
        return (f"There is no early stopping (`patience` is null): every epoch runs, and the weights of the epoch "
                f"with {best} on {split}{delta} are kept.")
    return (f"Early stopping ends training after {_n(cfg.patience, 'epoch')} without improvement of "
            f"`{cfg.monitor}` on {split}{delta}; the weights of the epoch with {best} are kept.")


def _min_steps(cfg: Any) -> str:
    """The training budget in optimiser steps, when the profile sets one (`TrainConfig.min_steps`)."""
    if not getattr(cfg, "min_steps", 0):
        return ""
    return (f", or as many more epochs as a smaller training set needs to take {cfg.min_steps} optimiser steps "
            "(the budget is in updates, not in passes over one data size)")


def _vgg(arch: Any) -> str:
    weights = {"never": "from random weights", "auto": "from ImageNet weights when they are in the local torch "
               "cache, else from random weights", "require": "from ImageNet weights"}.get(arch.pretrained, "")
    return (f"a VGG-16 of configuration D at width {_g(arch.width)} with {arch.fc_width}-unit hidden FC layers"
            f"{' and batch norm' if arch.batch_norm else ''}, {weights}")


def _finetune_augment(profile: Profile, same_as: AugmentConfig | None = None) -> str:
    aug = profile.finetune.augment
    if _active(aug) and aug == same_as:
        return ("Every condition, `classic` included, also fine-tunes with this augmentation, so `classic` − "
                "`without_gan` measures augmentation during pre-training only.")
    if _active(aug):
        return (f"Classic augmentation ({describe_augment(aug)}) is applied to every training batch of every "
                "condition's fine-tuning, `classic` included, so `classic` − `without_gan` measures augmentation "
                "during pre-training only.")
    return "Fine-tuning uses no augmentation in any condition."


def describe_finetune(profile: Profile) -> str:
    """Say how every condition is fine-tuned on the pelvic folds (`profile.finetune`)."""
    cfg, t = profile.finetune, profile.transfer
    if t.freeze_blocks:
        what = (f"the network, its first {_n(t.freeze_blocks, 'convolutional block')} frozen in the pre-trained "
                "conditions (`scratch` trains them all),")
    else:
        what = "the whole network"
    loss = ("cross-entropy weighted by inverse class frequency" if cfg.class_weights else "unweighted cross-entropy")
    if cfg.label_smoothing > 0:
        loss += f" with label smoothing {_g(cfg.label_smoothing)}"
    n_val = max(2, int(round(1.0 / cfg.val_fraction))) if cfg.val_fraction > 0 else 0
    split = f"a patient-level validation split of each training fold (about 1/{n_val} of its images)" if n_val else None
    aug = _finetune_augment(profile)
    max_ep = " at most" if cfg.patience is not None else ""
    scratch = ""
    if t.scratch_lr is not None and "scratch" in t.conditions:
        scratch = (f" `scratch`, which starts from random weights, takes learning rate {_g(t.scratch_lr)} instead "
                   "(`transfer.scratch_lr`): the control is the strongest network without pre-training the "
                   "calibration found, not one held back by the pre-trained conditions' rate.")
    same = "the same in every condition" if not scratch else "the same in every condition, `scratch`'s rate aside"
    return (f"**Fine-tuning** ({same}; the paper's protocol is unknown): a new two-class head "
            f"replaces the last layer and {what} is trained on each training fold for {_n(cfg.epochs, 'epoch')}"
            f"{max_ep} in batches of {cfg.batch_size}{_min_steps(cfg)}, with {_optimiser(cfg)}, on {loss}."
            f"{scratch} {_stopping(cfg, split)} {aug}")


def describe_pretrain(profile: Profile) -> str:
    """Say what each condition pre-trains on and how the budget is equalised (`profile.pretrain`)."""
    cfg, conds = profile.pretrain, list(profile.transfer.conditions)
    net = _vgg(profile.arch)
    sets = []
    if "without_gan" in conds:
        sets.append("`without_gan` on the real limb training images")
    if "classic" in conds:
        sets.append("`classic` on the same images with classic augmentation of every batch "
                    f"({describe_augment(cfg.augment or AugmentConfig())})")
    if "with_gan" in conds:
        sets.append(f"`with_gan` on the real images plus the synthetic images the realism filter keeps "
                    f"(rule {profile.filter.rule.label})")
    if "unfiltered_gan" in conds:
        sets.append("`unfiltered_gan` on the real images plus as many synthetic images drawn without the filter")
    text = [f"**Pre-training**: {net}, learns the limb classes: " + "; ".join(sets) + "." if sets else
            f"**Pre-training**: {net}."]
    if "scratch" in conds:
        text.append("`scratch` is not pre-trained.")
    n_val = max(2, int(round(1.0 / cfg.val_fraction))) if cfg.val_fraction > 0 else 0
    split = (f"the real limb validation images (a patient-level 1/{n_val} of the limb set, shared by every "
             "condition)" if n_val else "the training data")
    max_ep = " at most" if cfg.patience is not None else ""
    text.append(f"Training runs in batches of {cfg.batch_size} with {_optimiser(cfg)}, for "
                f"{_n(cfg.epochs, 'epoch')}{max_ep} on the real images alone. {_stopping(cfg, split)}")
    text.append("A condition with a larger pre-training set gets its epochs scaled by |real limb training set| / "
                "|pre-training set| (rounded, at least one), so every condition gets about the same number of "
                "optimiser steps.")
    if cfg.patience is None:
        text.append("Without early stopping every condition runs that budget in full.")
    else:
        text.append(f"With early stopping (`patience` {cfg.patience}) that number is a cap, not an equality: a "
                    "condition can stop sooner.")
    return " ".join(text)


def describe_classic(profile: Profile) -> str:
    """Say what separates the `classic` condition from `without_gan` in this profile."""
    aug = profile.pretrain.augment or AugmentConfig()  # as hipaug.method.transfer.pretrain_config does for `classic`
    return (f"**Classic augmentation in this run**: `classic` pre-trains on the real limb training images with "
            f"{describe_augment(aug)}, drawn anew for every batch; `without_gan` pre-trains on the same images "
            f"unchanged. {_finetune_augment(profile, same_as=aug)}")


def describe_cv(profile: Profile, design: str | None = None) -> str:
    """Say how conditions are compared: independent replications, or folds and how often (`profile.transfer`).

    `design` is the run's (`Pipeline.design`: real data always use CV); None takes the profile's.
    """
    t = profile.transfer
    if (design or t.design) == "replications":
        return (f"**Independent replications**: the phantom is a generator, so each of {_n(t.replications, 'replication')} "
                f"renders its own {t.train_n} pelvic training images (its validation split included), and every "
                f"model of every replication is tested on the same {t.test_n} fresh test images, in no training set. "
                "Within a replication every condition is fine-tuned on the same images with the same seed (a "
                "paired comparison). Replications share no training image, so their "
                f"{_n(t.replications, 'paired difference')} per metric and comparison are independent and the plain "
                "paired t-test across them is valid: the corrected resampled t-test's correction term is zero here, "
                "and both tests agree. A replication redraws the pelvic training images and the fine-tuning seeds; "
                "it holds the limb set, the AC-GAN, its samples, the realism filter and each condition's pre-trained "
                "backbone fixed, so the verdicts speak for this generator, filter and pre-training. Real data "
                "(your folders, FracAtlas) cannot be redrawn and use repeated cross-validation instead.")
    k, r = t.k_folds, t.repeats
    rep = ("once" if r == 1 else f"{r} times, with a new split each time")
    return (f"**Cross-validation**: the pelvic set is split into {k} folds, stratified by class and grouped by "
            f"patient (no patient's images are in two folds); every condition is fine-tuned and tested on the same "
            f"folds ({k - 1} to train, one to test). The cross-validation runs {rep}, which gives "
            f"{_n(k * r, 'paired value')} per metric and comparison.")


def describe_filter(profile: Profile) -> str:
    """Say how many synthetic images are drawn and which the realism filter keeps (`profile.filter`)."""
    f, cfg = profile.filter, profile.filter_train
    if f.top_k is not None:
        rule = (f"keeps the {f.top_k} images per class with the highest probability of the class they were "
                "generated for (rule " + f.rule.label + ")")
    else:
        rule = (f"keeps an image when it gives the class the image was generated for a probability of at least "
                f"{_g(f.threshold)} (rule {f.rule.label})")
    if cfg.patience is None:
        train = f"{_n(cfg.epochs, 'epoch')}, no early stopping"
    else:
        train = f"up to {_n(cfg.epochs, 'epoch')}, early stopping after {cfg.patience} without improvement"
    return (f"**Realism filter**: the AC-GAN draws {f.synthetic_per_class} images per limb class; {_vgg(profile.arch)}, "
            f"trained on the real limb training images ({train}), scores each, and the filter {rule}.")


def describe_acgan(profile: Profile) -> str:
    """Say how the AC-GAN is built and trained (`profile.acgan`)."""
    a = profile.acgan
    diffaug = getattr(a, "diffaug", "")
    ms = getattr(a, "mode_seeking", 0.0)
    d_norm = ("spectral norm" if a.spectral_norm else "batch norm" if getattr(a, "d_batchnorm", True)
              else "no normalisation")
    cond = "concatenated to z" if a.conditioning == "concat" else "multiplied into z"
    text = [
        f"**AC-GAN**: {_n(a.steps, 'generator step')}, each after {_n(a.n_critic, 'discriminator update')}, on "
        f"batches of {a.batch_size} at {profile.image_size} × {profile.image_size} px; Adam with learning rates "
        f"{_g(a.lr_g)} (G) and {_g(a.lr_d)} (D), betas ({_g(a.betas[0])}, {_g(a.betas[1])}).",
        f"G draws from a {a.latent_dim}-dimensional z with a class embedding {cond}. G has {a.g_width} channels "
        f"at full resolution and D {a.d_width} after its first convolution, doubling per block towards 4 × 4 up to "
        f"{a.max_mult}× that width; D uses {d_norm}.",
        f"DiffAugment: {f'`{diffaug}` on every image D sees, real and generated' if diffaug else 'off'}.",
        (f"Mode-seeking term (MSGAN) in G's loss: weight {_g(ms)}." if ms > 0
         else "Mode-seeking term: off (weight 0, the plain AC-GAN)."),
        f"Class-loss weight λ = {_g(a.aux_weight)}, one-sided label smoothing ε = {_g(a.label_smoothing)}; D's class "
        f"head learns from {'real and generated' if a.aux_fake_in_d else 'real'} images"
        f"{'' if a.aux_fake_in_d else ' only'}.",
        (f"Samples come from an exponential moving average of G's weights (decay {_g(a.ema_decay)})."
         if a.ema_decay > 0 else "Samples come from G itself (no weight averaging)."),
    ]
    return " ".join(text)


def describe_ablation(profile: Profile) -> str:
    """Say which other selection rules the ablation re-runs `with_gan` under (`profile.ablation`)."""
    a = profile.ablation
    rules = [r.label for r in a.rules]
    if not rules:
        return f"This profile defines no ablation: `with_gan` runs only under its own rule ({profile.filter.rule.label})."
    return (f"Besides the profile's rule ({profile.filter.rule.label}), `with_gan` is re-run with the rule"
            f"{'s' if len(rules) > 1 else ''} {', '.join(rules)} (`p>=t`: a threshold on the probability of the "
            "generated class; `top-k`: the k best images per class), on the same folds.")


# ------------------------------------------------------------------ paired tests beside the paper
def comparison_table(tests: pd.DataFrame) -> pd.DataFrame:
    """Tabulate `paired_test` rows: the paper's plain test, the corrected one, the MDD and the paper's difference.

    Fold metrics are fractions; differences, intervals and MDDs are shown in points (x 100). The
    paper's column appears only when a comparison has a Table VIII counterpart; there it says "not
    reported" for the metrics Table VIII lacks (precision, MCC, AUC).
    """
    from hipaug.evaluation import PAPER_METRICS
    from hipaug.paper import paper_difference

    if tests.empty:
        return pd.DataFrame()
    level = tests["confidence_level"].iloc[0] if "confidence_level" in tests else 0.95
    ci = f"{level * 100:g}% CI"
    made = [paper_difference(PAPER_METRICS[0], a, b) is not None for a, b in zip(tests["a"], tests["b"])]
    paper = [paper_difference(m, a, b) for a, b, m in zip(tests["a"], tests["b"], tests["metric"])]
    out = pd.DataFrame({
        "comparison": tests["a"] + " − " + tests["b"],
        "metric": tests["metric"],
        "n pairs": tests["n"],
        "difference (points)": tests["mean_diff"] * 100,
        "p, paired t-test (the paper's test)": tests["p_two_sided"],
        "p, corrected resampled t-test": tests["p_corrected"],
        f"corrected {ci}, low": tests["corrected_ci_low"] * 100,
        f"corrected {ci}, high": tests["corrected_ci_high"] * 100,
        "MDD at 80% power (points)": tests["mdd_80"] * 100,
        "paper's difference (points)": [("not reported" if d is None else d) if mk else np.nan
                                         for d, mk in zip(paper, made)],
    })
    return out if any(made) else out.drop(columns="paper's difference (points)")


def describe_power(tests: pd.DataFrame, metric: str = "accuracy", a: str = "with_gan", b: str = "without_gan") -> str:
    """Say whether this run could have detected a difference of the paper's size in `metric`."""
    from hipaug.paper import paper_difference

    paper = paper_difference(metric, a, b)
    rows = tests.loc[(tests["a"] == a) & (tests["b"] == b) & (tests["metric"] == metric)] if len(tests) else tests
    if paper is None or rows.empty:
        return f"This run has no `{a}` − `{b}` comparison of {metric} to set beside the paper's Table VIII."
    r = rows.iloc[0]
    mdd, plain, n = float(r["mdd_80"]) * 100, float(r.get("mdd_80_plain", math.nan)) * 100, int(r["n"])
    head = (f"The paper's Table VIII difference in {metric}, `{a}` − `{b}`, is {paper:+.2f} points (its numbers). ")
    if not math.isfinite(mdd):
        return head + (f"On this run the detectable difference is undefined ({_n(n, 'fold pair')}, "
                       "identical or too few differences), so it cannot say whether an effect of that size exists.")
    plain_txt = f" ({points(plain)} points for the paper's plain paired t-test)" if math.isfinite(plain) else ""
    verdict = ("so this run could have detected an effect of the paper's size" if abs(paper) >= mdd else
               "so this run could not reliably detect an effect of the paper's size: a non-significant result "
               "here is not evidence against it")
    return head + (f"Over {_n(n, 'fold pair')}, the smallest difference the corrected resampled t-test detects with "
                   f"80% power is {points(mdd)} points on this run{plain_txt}, {verdict}.")


def describe_profile(profile: Profile) -> str:
    """One line with the settings that set a profile's size and cost (for the reproducibility page)."""
    t, ft, a = profile.transfer, profile.finetune, profile.acgan
    design = (f"{_n(t.replications, 'independent replication')} of {t.train_n} pelvic training images, one test set of "
              f"{t.test_n} (on the phantom; real data: {t.k_folds} folds × {_n(t.repeats, 'repeat')})"
              if t.design == "replications" else f"{t.k_folds} folds × {_n(t.repeats, 'repeat')}")
    stop = (f"{_n(ft.epochs, 'epoch')}, no early stopping" if ft.patience is None
            else f"up to {_n(ft.epochs, 'epoch')}, early stopping after {ft.patience}")
    return (f"`{profile.name}`: {profile.image_size} px images; VGG-16 at width {_g(profile.arch.width)}; AC-GAN "
            f"{_n(a.steps, 'step')} in batches of {a.batch_size}; filter {profile.filter.rule.label} on "
            f"{profile.filter.synthetic_per_class} synthetic images per class; {design}; fine-tuning {stop}.")


def describe_operating_point(op: pd.DataFrame) -> str:
    """Say whether the run met the profile's calibration targets (the `operating_point` result's table)."""
    if op.empty:
        return "This profile sets no operating point for this data, so there is nothing to check."
    missed = op.loc[~op["met"].astype(bool), "target"].tolist()
    if not missed:
        return f"The run meets all {len(op)} targets of its operating point."
    return ("**The run misses its operating point** (" + "; ".join(missed) + "). Claims that depend on it are "
            "judged by the ledger's preconditions; read the verdicts of this run with that in mind.")


def describe_phantom(profile: Profile, source: str = "phantom") -> str:
    """The phantom's settings and the operating point it is calibrated for (or that a user's data replaces it)."""
    ph, op = profile.phantom, profile.operating_point
    if source != "phantom":
        return (f"This run uses your own folders (`{source}`), so the phantom settings below do not apply and "
                "there is no operating point to meet.")
    parts = ", ".join(f"`{p}`" for p in ph.limb_parts) if ph.limb_parts else "every body part"
    text = (f"Profile `{profile.name}` renders {ph.limb_per_class} limb images per class ({parts}; classes by "
            f"`{ph.limb_labels}`) at limb difficulty {_g(ph.limb_difficulty)}, and {ph.pelvic_n} pelvic "
            f"radiographs ({_g(ph.fracture_rate * 100)}% with a hip fracture) at difficulty {_g(ph.difficulty)}, "
            f"all at {profile.image_size} px. Lower difficulty means more conspicuous fractures.")
    targets = []
    if op.without_gan_accuracy:
        lo, hi = op.without_gan_accuracy
        targets.append(f"`without_gan` mean fold accuracy between {_g(lo)} and {_g(hi)}")
    if not op.empty:  # the filter is held to the verdicts' gate, the one threshold there is for it
        from hipaug.evaluation.gates import GATES

        targets.append(f"filter accuracy on held-out real limb images of at least {_g(GATES.min_filter_accuracy)} "
                       "(the gate every verdict uses)")
    if op.min_gan_test_ratio is not None:
        targets.append(f"GAN-test accuracy at least {_g(op.min_gan_test_ratio)} × the filter's accuracy on real images")
    if targets:
        text += " Operating point: " + "; ".join(targets) + "."
    else:
        text += " This profile sets no operating point."
    return text

