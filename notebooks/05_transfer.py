# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (hipaug)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-transfer)=
# # Transfer learning and Table VIII
#
# The paper pre-trains the hip-fracture classifier on the limb set, without or with the
# selected AC-GAN images, replaces the head and fine-tunes on pelvic radiographs; Table VIII
# compares the two groups over five-fold cross-validation (mean ± SD) with paired t-tests,
# and the authors conclude that the "with GAN" model performs better
# ({cite:t}`linMedicalDataAugmentation2019`, p. 5; the reader's green highlight,
# {ref}`annotations-linMedicalDataAugmentation2019`). A related study from the same hospital
# pre-trained on 25,505 limb radiographs before re-training on pelvic ones
# {cite}`chengApplicationDeepLearning2019`.
#
# hipaug runs the profile's conditions on the **same** patient-level folds with the same
# VGG-16: `scratch` (no pre-training), `classic` (limb + classic augmentation),
# `without_gan`, `with_gan` and `unfiltered_gan` (as many synthetic images as `with_gan`,
# without the filter). The paper does not give its fine-tuning protocol; what this run does
# is stated below the setup cell, from the profile it ran with.

# %% tags=["parameters"]
profile = "default"
seed = None
limb_dir = None
pelvic_dir = None
device = None
artifacts = None
executor = "auto"  # who builds the fine-tuning grid: auto, serial, dask, dask:N or a Dask scheduler address

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from hipaug.book import plots
from hipaug.evaluation import METRICS, PAPER_METRICS, format_mean_sd, training_stability
from hipaug.book.notebook import data_summary, setup, show_figure
from hipaug.paper import paper_difference, paper_table8
from hipaug.book import power
from hipaug.pipeline import Pipeline
from hipaug.pipeline.plan import SUSTAINED_TFLOPS
from hipaug.core.numbers import rounded
from hipaug.book.prose import comparison_table, describe_operating_point, describe_cv, describe_finetune, describe_power, describe_pretrain

pipe = setup(profile, seed=seed, limb_dir=limb_dir, pelvic_dir=pelvic_dir, device=device, artifacts=artifacts,
             executor=executor)
table8 = pipe.result("table8_folds")  # every fold of every condition and repeat, with predictions and histories
report = pipe.result("table8")  # summary and paired tests (results store)
folds, summary, tests = table8["folds"], report["summary"], report["tests"]
conditions = list(pipe.profile.transfer.conditions)

# %% tags=["remove-input"]
data_summary(pipe)

# %% [markdown]
# ## What this run does

# %% tags=["remove-input"]
Markdown("\n\n".join([describe_cv(pipe.profile, pipe.design), describe_pretrain(pipe.profile),
                       describe_finetune(pipe.profile)]))

# %% [markdown]
# ## Did every condition learn?
#
# A comparison says something about augmentation only if both models learned. The claims
# ledger ({ref}`findings`) checks each compared condition before any verdict: its mean fold AUC
# and the lowest sensitivity or specificity of any fold (a fold near zero is a constant
# predictor). The thresholds are the verdicts' gates, `hipaug.evaluation.gates`.

# %%
from hipaug.book.claims import check_learned, load_ledger, not_learned

pre = load_ledger().preconditions
learned = pd.DataFrame([{"condition": c, "check": r.quantity, "measured": r.value, "threshold": r.threshold,
                         "passed": r.passed} for c in conditions for r in check_learned(c, folds, pre)])
learned.round(3)

# %% [markdown]
# ## Does fine-tuning settle?
#
# Accuracy of every run by epoch ({numref}`fig-transfer-finetune`: the
# {glue:text}`fig-transfer-finetune-what`), and the epoch-to-epoch jumps in the second half of
# fine-tuning (the table below it). Curves that still jump at the end mean the run's result
# depends on the epoch training stopped at.

# %% tags=["remove-output"]
history = table8["history"]
fig = plots.finetune_curves(history, conditions)
show_figure(fig, "fig-transfer-finetune", pipe, runs=len(history.groupby(["condition", "repeat", "fold"])),
            conditions=len(set(history["condition"])), what="".join(plots.curve_words(history)))

# %% [markdown]
# ```{glue:figure} fig-transfer-finetune
# :name: fig-transfer-finetune
# :alt: One panel per pre-training condition: thin coloured lines of accuracy against the fine-tuning epoch, one per run, and a thick black line of their mean.
#
# Fine-tuning on the pelvic sets: {glue:text}`fig-transfer-finetune-what` per epoch of each of the
# {glue:text}`fig-transfer-finetune-runs` fine-tuning runs (thin lines; a panel for each of the
# {glue:text}`fig-transfer-finetune-conditions` conditions), the black line their mean;
# {glue:md}`fig-transfer-finetune-run`.
# ```

# %%
training_stability(history).round(3)

# %% [markdown]
# ## The operating point
#
# On the phantom, the profile states where the experiment is calibrated to sit (its
# `operating_point`): the without-GAN baseline near the paper's, a realism filter that
# recognises real limb images, and AC-GAN samples that carry their class. On your own data
# the table is empty: there is nothing to calibrate.

# %%
op = pipe.result("operating_point")
op.round(3)

# %% tags=["remove-input"]
Markdown(describe_operating_point(op))

# %% [markdown]
# (table8)=
# ## Table VIII, side by side
#
# The paper's numbers are quoted from its Table VIII (hospital data, VGG-16); hipaug's are
# computed in this run on the data named above the table. Mean ± SD across folds, in percent
# (MCC and AUC × 100). The paper reports no precision (PPV), MCC or AUC; this run does.

# %%
ours = format_mean_sd(summary)
paper = paper_table8()
paper_fmt = paper.assign(value=paper["mean"].map("{:.2f}".format) + " ± " + paper["sd"].map("{:.1f}".format)) \
    .pivot(index="condition", columns="metric", values="value")[list(PAPER_METRICS)]
paper_fmt = paper_fmt.reindex(columns=list(METRICS), fill_value="not reported")  # precision, MCC, AUC: not in Table VIII
side = pd.concat({"paper (Table VIII)": paper_fmt.rename(index=lambda c: c + " (paper)"),
                  f"hipaug ({pipe.profile.name}, {pipe.source})": ours.loc[[c for c in ("without_gan", "with_gan") if c in ours.index]]})
print(f"profile={pipe.profile.name} source={pipe.source} folds={pipe.profile.transfer.k_folds} repeats={pipe.profile.transfer.repeats}")
side

# %%
ours

# %% [markdown]
# The summary above is computed from the values of every fold, folded away below.

# %% tags=["hide-output"] mystnb={"code_prompt_show": "Show the table of every fold", "code_prompt_hide": "Hide the table of every fold"}
folds[["condition", "repeat", "fold", "n_test", *METRICS]].round(3)

# %% [markdown]
# ## Paired t-tests
#
# As in the paper, each metric is compared between two conditions with a paired t-test across
# folds (`scipy.stats.ttest_rel`), labelled below as the paper's test. Cross-validation folds
# share most of their training images, so that test is anti-conservative: it finds
# differences too often. The corrected resampled t-test {cite}`nadeauInferenceGeneralizationError2003`
# keeps the mean difference but inflates its variance for the overlap (by
# $1/J + n_\text{test}/n_\text{train}$ instead of $1/J$ for $J$ fold pairs); its p value and
# confidence interval stand beside the paper's. Independent replications (the phantom's design,
# described above) share no training image: there the correction term is zero and the two tests
# agree. The last columns give the minimum difference
# the corrected test detects with 80 % power (MDD) and, for `with_gan` against `without_gan`,
# the paper's own difference from its Table VIII. Differences, intervals and MDDs are in
# points (percentage points; AUC and MCC × 100). A non-significant difference is not evidence of no
# difference, least of all when it is smaller than the MDD.

# %%
rounded(comparison_table(tests), 3)

# %% tags=["remove-input"]
Markdown(describe_power(tests))

# %% [markdown]
# (transfer-premise)=
# ## Does limb pre-training help at all?
#
# The paper's question, whether GAN-augmented limb images make a better pre-training, presumes
# that limb pre-training helps hip-fracture detection in the first place. The first table scores
# each pre-trained backbone on the held-out real limb images, on its own task and on fracture
# against normal: a backbone that never learned limb fractures has none to transfer. The
# paragraph below it tests the premise with the claims' paired test, `without_gan` against
# `scratch`, and says what the answer means for the GAN claims.

# %%
from hipaug.book import premise
from hipaug.core.project import find_project

backbones = premise.backbones(pipe)
backbones.round(1)

# %% tags=["remove-input"]
Markdown(premise.describe_backbones(backbones) + "\n\n"
         + premise.describe(premise.premise_row(tests), pipe.design, not_learned(premise.PAIR, folds, pre)))

# %% [markdown]
# Chapter 5 tests the premise on every build; `benchmarks/study_transfer.py` asks why it comes out
# as it does, on the profile's own replications: what a backbone's frozen features already know
# about hip fractures (a linear probe), and what fine-tuning from it reaches, for no pre-training,
# the build's limb pre-training, the same for twice the epochs, and pre-training on other pelvic
# phantoms (the most any backbone could bring). It is a study, not part of the build, so its
# table is the latest record, dated, for this build's profile.

# %% tags=["remove-input"]
study, study_caption = premise.study(find_project(required=False), pipe.profile.name)
display(Markdown(study_caption))
rounded(study, 2) if study is not None else None

# %% [markdown]
# ## Power: what this design could see
#
# The minimum detectable difference (MDD) falls with the number of independent pairs, as
# $1/\sqrt{J}$ for replications; under cross-validation's correction it cannot fall below
# $\sqrt{n_\text{test}/n_\text{train}}$ times the SD of the differences, however many folds are
# run. {numref}`fig-transfer-power` draws it for the SD of `with_gan` − `without_gan` accuracy
# differences this run measured, against the paper's Table VIII difference. The table below gives
# what detecting that difference would cost: on this machine at this build's own fine-tuning
# speed, and for the `paper` profile on GPUs (the dry run's FLOPs at an assumed sustained rate).

# %% tags=["remove-input"]
row = power.comparison_row(tests)
paper_acc = paper_difference("accuracy", "with_gan", "without_gan")
alpha = pipe.profile.quality.alpha
n_needed = power.needs(row, paper_acc, alpha) if row is not None else None
Markdown(power.describe(row, paper_acc, n_needed, pipe.design))

# %% tags=["remove-output"]
if row is not None and np.isfinite(row["mdd_80"]):
    curve = power.power_curve(row, alpha)
    fig = plots.power_curve(curve, paper_acc)
    show_figure(fig, "fig-transfer-power", pipe, n=int(row["n"]), sd=f"{row['sd_diff'] * 100:.1f}",
                unit=power.pair_unit(pipe.design))

# %% [markdown]
# ```{glue:figure} fig-transfer-power
# :name: fig-transfer-power
# :alt: A falling line on logarithmic axes: the minimum detectable accuracy difference against the number of pairs, with a horizontal dashed line at the paper's difference and a marker at this run's number of pairs.
#
# The smallest `with_gan` − `without_gan` accuracy difference a two-sided paired t-test detects
# with 80 % power, against the number of {glue:text}`fig-transfer-power-unit`, at the SD of
# differences this run measured ({glue:text}`fig-transfer-power-sd` points); the marker is this
# run ({glue:text}`fig-transfer-power-n`), the dashed line the paper's Table VIII difference;
# {glue:md}`fig-transfer-power-run`.
# ```

# %%
if row is not None and n_needed is not None:
    costs = pipe.step_costs()
    per_pair_seconds = sum(pipe.finetune_seconds().values())
    display(power.compute_table(n_needed, per_pair_seconds, len(conditions) * costs["finetune"],
                                len(conditions) * Pipeline("paper").step_costs()["finetune"], SUSTAINED_TFLOPS,
                                concurrent=pipe.finetune_concurrency).round(2))

# %% [markdown]
# {numref}`fig-transfer-folds` shows what the tests compare: each fold's value under every
# condition. When the grey lines run parallel, fold difficulty dominates and pairing removes it;
# when they cross, the conditions' order changes from fold to fold.

# %% tags=["remove-output"]
fig = plots.paired_folds(folds, METRICS, conditions)
show_figure(fig, "fig-transfer-folds", pipe, metrics=", ".join(METRICS), conditions=", ".join(conditions),
            runs=len(folds.groupby(["repeat", "fold"])))

# %% [markdown]
# ```{glue:figure} fig-transfer-folds
# :name: fig-transfer-folds
# :alt: Small panels, one per metric; in each, grey lines join one fold's values across the pre-training conditions and a black line joins their means.
#
# Every metric fold by fold: {glue:text}`fig-transfer-folds-metrics` of the conditions
# {glue:text}`fig-transfer-folds-conditions` on the same patient-level pelvic test folds. A grey
# line per fold ({glue:text}`fig-transfer-folds-runs` folds in all) joins its values; the black
# diamonds are the means; {glue:md}`fig-transfer-folds-run`.
# ```

# %% [markdown]
# ## ROC curves (pooled out-of-fold predictions)
#
# {numref}`fig-transfer-roc` pools every fold's test predictions per condition: a curve closer to
# the top-left corner separates fractured from normal hips better at every operating threshold.

# %% tags=["remove-output"]
preds = table8["predictions"]
fig = plots.roc_curves(preds, conditions)
show_figure(fig, "fig-transfer-roc", pipe, conditions=len(conditions),
            predictions=int(preds.groupby("condition").size().max()))

# %% [markdown]
# ```{glue:figure} fig-transfer-roc
# :name: fig-transfer-roc
# :alt: ROC curves, one coloured line per pre-training condition, rising from the bottom-left to the top-right corner above a dashed diagonal; the legend gives each condition's AUC.
#
# ROC curves of the {glue:text}`fig-transfer-roc-conditions` conditions from their pooled
# out-of-fold predictions on the pelvic set (up to {glue:text}`fig-transfer-roc-predictions` per
# condition); the legend gives each curve's AUC; {glue:md}`fig-transfer-roc-run`.
# ```

# %%
assert folds[list(PAPER_METRICS)].notna().all().all()
assert folds[[m for m in METRICS if m != "mcc"]].stack().between(0, 1).all() and folds["mcc"].between(-1, 1).all()
assert set(folds["condition"]) == set(conditions)

# %% [markdown]
# ## Exercises
#
# 1. The paper reports SDs of 0.5 to 2.1 points with five folds. How large must a mean
#    difference be for a paired t-test at $\alpha = 0.05$ to detect it, if the SD of the
#    per-fold differences is 1 point?
# 2. Why pair the conditions by fold rather than compare two independent samples?
# 3. Re-run this notebook with `-p seed 1`. Which conclusions survive?
#
# ```{dropdown} Solutions
# 1. With 4 degrees of freedom $t_{0.975} \approx 2.78$, so the mean difference must exceed
#    $2.78 \times 1/\sqrt{5} \approx 1.24$ points to be significant with the plain test; to be
#    detected with 80 % power it must be larger still, and larger again with the corrected
#    test (compare the MDD column above).
# 2. Folds differ in difficulty; pairing removes that shared variation, as both conditions are
#    tested on the same images.
# 3. Compare the verdicts in {ref}`findings` across seeds: a conclusion that flips with the
#    seed is not supported by this run's folds.
# ```
