# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (hipaug)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-filter)=
# # 4. The VGG-16 realism filter
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
from sklearn.metrics import confusion_matrix

from hipaug.book import plots
from hipaug.evaluation import gan_test_accuracy
from hipaug.method.filter import filter_from_probs
from hipaug.book.notebook import data_summary, setup
from hipaug.book.prose import describe_filter
from hipaug.training import predict_proba

pipe = setup(profile, seed=seed, limb_dir=limb_dir, pelvic_dir=pelvic_dir, device=device, artifacts=artifacts)
model, history, _ = pipe.limb_classifier
train, val = pipe.limb_split

# %% tags=["remove-input"]
data_summary(pipe)

# %% tags=["remove-input"]
Markdown(describe_filter(pipe.profile))

# %%
pd.Series({"train images": len(train), "validation images": len(val), "classes": len(train.class_names),
           "parameters": sum(p.numel() for p in model.parameters())}).to_frame("limb classifier")

# %% [markdown]
# ## How well does the filter recognise real limb radiographs?

# %%
fig = plots.training_curves(history, "VGG-16 on real limb images")
plots.plt.show()

# %%
val_probs = predict_proba(model, val.images)
val_pred = val_probs.argmax(1)
val_acc = float((val_pred == val.labels.numpy()).mean())
cm = pd.DataFrame(confusion_matrix(val.labels.numpy(), val_pred, labels=range(len(val.class_names))),
                  index=val.class_names, columns=val.class_names)
print(f"validation accuracy on real limb images: {val_acc:.3f} (chance {1 / len(val.class_names):.3f})")
cm

# %% [markdown]
# ## Scoring the synthetic pool

# %%
synthetic = pipe.synthetic
result = pipe.filtered()
fig = plots.score_histogram(result.scores, result.threshold)
plots.plt.show()

# %%
result.acceptance.round(3)

# %%
fig = plots.accepted_vs_rejected(synthetic.images, result.scores, n=8)
plots.plt.show()

# %% [markdown]
# GAN-test accuracy {cite}`shmelkovHowGoodMy2018` is the share of synthetic images that the
# classifier trained on real images assigns to their intended class: a measure of how
# recognisable the classes are, not of diversity (a generator drawing one perfect image per
# class scores 1.0). {ref}`ch-beyond` reports diversity beside it.

# %%
gan_test, per_class = gan_test_accuracy(pipe.synthetic_probs, synthetic.labels.numpy(), synthetic.class_names)
print(f"GAN-test accuracy: {gan_test:.3f}")
per_class.round(3).to_frame("GAN-test accuracy")

# %% [markdown]
# ## Threshold sweep
#
# How many images each class keeps as the rule gets stricter. The scores are computed once;
# every threshold re-uses them.

# %%
sweep = pd.concat([
    filter_from_probs(pipe.synthetic_probs, synthetic.class_names, synthetic, threshold=t).acceptance
    .drop(index="(all)").reset_index(names="generated_class").assign(threshold=t)
    for t in np.round(np.linspace(0.0, 1.0, 21), 2)], ignore_index=True)
fig = plots.threshold_sweep(sweep, result.threshold)
plots.plt.show()

# %%
pipe.record("filter_acceptance", result.acceptance.reset_index(names="class"))
pipe.record("filter_summary", {"val_accuracy": val_acc, "chance": 1 / len(val.class_names), "gan_test_accuracy": gan_test,
                               "threshold": result.threshold, "top_k": result.top_k,
                               "accepted": int(result.scores["accepted"].sum()), "generated": len(result.scores)})
if pipe.source == "phantom":  # the phantom is calibrated for it; on your data a weak filter is a finding (findings)
    assert val_acc > 1 / len(val.class_names), "the filter must beat chance on real images"
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
