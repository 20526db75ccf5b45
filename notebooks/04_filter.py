# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (hipaug)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-filter)=
# # The VGG-16 realism filter
#
# "We also trained the VGG-16 CNN model with the Limb X-ray dataset for the selection of
# images with the best qualities. Then we made the synthetic images as input for the trained
# VGG-16 CNN model to let the model make predictions for every synthetic image, for automatic
# selection of realistic images" ({cite:t}`linMedicalDataAugmentation2019`, p. 3; a blue
# method highlight of the reader, {ref}`annotations-linMedicalDataAugmentation2019`).
#
# The paper does not state the selection rule. hipaug keeps a synthetic image when the
# classifier gives the class it was generated for a probability of at least `threshold`
# (the profile's `filter.threshold`), or keeps the `top_k` best per class (`filter.top_k`).
# The classifier is a VGG-16 of configuration D {cite}`simonyanVeryDeepConvolutional2015`
# (13 convolutions in five blocks and three fully connected layers), narrowed by the
# profile's `arch.width` to fit a CPU. The rule and classifier of this run follow the setup cell.

# %% tags=["parameters"]
profile = "default"
seed = None
limb_dir = None
pelvic_dir = None
device = None
artifacts = None

# %%
import numpy as np
import pandas as pd
from IPython.display import Markdown

from hipaug.book import plots
from hipaug.method.filter import threshold_sweep
from hipaug.book.notebook import data_summary, setup, show_figure
from hipaug.book.prose import describe_filter

pipe = setup(profile, seed=seed, limb_dir=limb_dir, pelvic_dir=pelvic_dir, device=device, artifacts=artifacts)
clf = pipe.filter_classifier
model, history = clf.model, clf.history
train, val = pipe.limb_split
checked = pipe.result("filter_summary")  # accuracy on held-out real images, GAN-test, acceptance (results store)
summary = checked["summary"]

# %% tags=["remove-input"]
data_summary(pipe)

# %% tags=["remove-input"]
Markdown(describe_filter(pipe.profile))

# %%
pd.Series({"train images": len(train), "validation images": len(val), "classes": len(train.class_names),
           "parameters": sum(p.numel() for p in model.parameters())}).to_frame("limb classifier")

# %% [markdown]
# ## How well does the filter recognise real limb radiographs?
#
# A filter that cannot tell the limb classes apart on real images cannot judge whether a
# synthetic image shows its class. {numref}`fig-filter-training` shows its training, and the
# confusion matrix below its errors on the held-out real images.

# %% tags=["remove-output"]
fig = plots.training_curves(history, "VGG-16 on real limb images")
show_figure(fig, "fig-filter-training", pipe, epochs=len(history), train=len(train), val=len(val))

# %% [markdown]
# ```{glue:figure} fig-filter-training
# :name: fig-filter-training
# :alt: Two line charts against the epoch: at the left training and validation loss, at the right training and validation accuracy.
#
# The realism filter, a VGG-16 trained on {glue:text}`fig-filter-training-train` real limb images:
# loss (left) and accuracy (right) on them and on {glue:text}`fig-filter-training-val` held-out
# validation images, over {glue:text}`fig-filter-training-epochs` epochs;
# {glue:md}`fig-filter-training-run`.
# ```

# %%
print(f"validation accuracy on real limb images: {summary['val_accuracy']:.3f} (chance {summary['chance']:.3f})")
checked["confusion"]

# %% [markdown]
# ## Scoring the synthetic pool
#
# Each synthetic image gets the filter's probability for the class it was generated for
# ({numref}`fig-filter-scores`); the rule keeps the images that pass. {numref}`fig-filter-extremes`
# shows the clearest passes and failures.

# %% tags=["remove-output"]
synthetic = pipe.synthetic
result = pipe.filtered()
fig = plots.score_histogram(result.scores, result.threshold)
show_figure(fig, "fig-filter-scores", pipe, images=len(result.scores), accepted=int(result.scores["accepted"].sum()),
            rule=result.rule.label + (" (the dashed line)" if result.threshold is not None else ""))

# %% [markdown]
# ```{glue:figure} fig-filter-scores
# :name: fig-filter-scores
# :alt: A stacked histogram of filter scores between zero and one, coloured by the class each synthetic image was generated for, with a dashed vertical line at the acceptance threshold when the rule has one.
#
# Filter scores of the {glue:text}`fig-filter-scores-images` synthetic limb images: the
# probability the realism filter gives the class each image was generated for, stacked by class.
# The rule {glue:text}`fig-filter-scores-rule` accepted
# {glue:text}`fig-filter-scores-accepted` of them; {glue:md}`fig-filter-scores-run`.
# ```

# %%
result.acceptance.round(3)

# %% tags=["remove-output"]
fig = plots.accepted_vs_rejected(synthetic.images, result.scores, n=8)
show_figure(fig, "fig-filter-extremes", pipe, n=8)

# %% [markdown]
# ```{glue:figure} fig-filter-extremes
# :name: fig-filter-extremes
# :alt: Two rows of synthetic limb radiographs, accepted images above and rejected images below, each titled with its intended class and its score.
#
# Top row: up to {glue:text}`fig-filter-extremes-n` accepted synthetic images with the highest
# scores; bottom row: up to as many rejected ones with the lowest. Each title gives the class the
# image was generated for and the filter's probability for it; {glue:md}`fig-filter-extremes-run`.
# ```

# %% [markdown]
# GAN-test accuracy {cite}`shmelkovHowGoodMy2018` is the share of synthetic images that the
# classifier trained on real images assigns to their intended class: a measure of how
# recognisable the classes are, not of diversity (a generator drawing one perfect image per
# class scores 1.0). {ref}`ch-beyond` reports diversity beside it.

# %%
print(f"GAN-test accuracy: {summary['gan_test_accuracy']:.3f}")
checked["gan_test_per_class"].round(3)

# %% [markdown]
# ## Threshold sweep
#
# How many images each class keeps as the rule gets stricter ({numref}`fig-filter-sweep`). The
# scores are computed once; every threshold re-uses them. A class whose curve falls early is one
# the generator draws less convincingly, or one the filter confuses on real images too.

# %% tags=["remove-output"]
thresholds = np.round(np.linspace(0.0, 1.0, 21), 2)
sweep = threshold_sweep(pipe.synthetic_probs, synthetic, thresholds)
fig = plots.threshold_sweep(sweep, result.threshold)
show_figure(fig, "fig-filter-sweep", pipe, n=len(thresholds), lo=f"{thresholds[0]:g}", hi=f"{thresholds[-1]:g}",
            rule=result.rule.label)

# %% [markdown]
# ```{glue:figure} fig-filter-sweep
# :name: fig-filter-sweep
# :alt: Falling line charts, one per limb class, of the share of synthetic images accepted against the threshold, with a dashed vertical line at this run's threshold when the rule has one.
#
# Share of each class's synthetic images a threshold rule would accept, at
# {glue:text}`fig-filter-sweep-n` thresholds from {glue:text}`fig-filter-sweep-lo` to
# {glue:text}`fig-filter-sweep-hi`; the dashed line marks this run's rule,
# {glue:text}`fig-filter-sweep-rule`, when it is a threshold; {glue:md}`fig-filter-sweep-run`.
# ```

# %%
if pipe.source == "phantom":  # the phantom is calibrated for it; on your data a weak filter is a finding (findings)
    assert summary["val_accuracy"] > summary["chance"], "the filter must beat chance on real images"
assert 0 <= result.acceptance.loc["(all)", "rate"] <= 1

# %% [markdown]
# ## Exercises
#
# 1. Which classes does the filter accept least often? Relate it to the confusion matrix on
#    real images.
# 2. A threshold rule keeps more images of easy classes. When would `top_k` be the better
#    rule for augmentation?
# 3. The filter is trained on the same real images the GAN learned from. What could go wrong?
#
# ```{dropdown} Solutions
# 1. Classes the classifier confuses on real images (often normal vs fractured of the same
#    part, where the cue is a thin line) also get low scores on synthetic images.
# 2. When balance matters: `top_k` keeps the same number per class, so hard classes are not
#    under-represented in the augmented set.
# 3. The filter rewards images that look like the training images, including memorised ones;
#    it cannot tell a realistic new image from a copy. Precision/recall and nearest-neighbour
#    checks in {ref}`ch-beyond` address this.
# ```
