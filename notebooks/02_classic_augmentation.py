# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (hipaug)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-classic)=
# # Classic augmentation: the paper's starting point
#
# The paper opens with the claim that "classic data augmentation methods such as flipping,
# rotating, and scaling, are helpful in classification tasks, but these methods usually are
# not good enough to increase diversities and variances in small datasets"
# ({cite:t}`linMedicalDataAugmentation2019`, abstract; the reader highlighted it, see
# {ref}`annotations-linMedicalDataAugmentation2019`). This chapter shows what classic
# augmentation does to a radiograph and tests the claim with the `classic` condition: the
# same VGG-16, pre-trained on the real limb set with flips, rotations, scaling and small
# intensity jitter, then fine-tuned on the pelvic folds exactly like the paper's two groups
# ({ref}`ch-transfer`).

# %% tags=["parameters"]
profile = "default"
seed = None
limb_dir = None
pelvic_dir = None
device = None
artifacts = None
executor = "auto"  # who builds the fine-tuning grid: auto, serial, dask, dask:N or a Dask scheduler address

# %%
import dataclasses

import pandas as pd
import torch
from IPython.display import Markdown

from hipaug.book import plots
from hipaug.training.augment import AugmentConfig, classic_augment
from hipaug.evaluation import METRICS, summarize
from hipaug.book.notebook import data_summary, setup, show_figure
from hipaug.core.numbers import rounded
from hipaug.book.prose import comparison_table, describe_classic

pipe = setup(profile, seed=seed, limb_dir=limb_dir, pelvic_dir=pelvic_dir, device=device, artifacts=artifacts,
             executor=executor)
aug_cfg = pipe.profile.pretrain.augment or AugmentConfig()
pd.DataFrame([dataclasses.asdict(aug_cfg)]).T.rename(columns={0: "classic augmentation"})

# %% tags=["remove-input"]
data_summary(pipe)

# %% tags=["remove-input"]
Markdown(describe_classic(pipe.profile))

# %% [markdown]
# ## What classic augmentation does
#
# Each row of {numref}`fig-classic-examples` is a real limb radiograph and random draws of the
# augmentation. The anatomy, the fracture and the patient stay the same: classic augmentation
# adds pose and exposure variation, not new patients, new fracture patterns or new anatomy.

# %% tags=["remove-output"]
limb = pipe.limb
gen = torch.Generator().manual_seed(pipe.sub_seed("augment-figure"))
idx = torch.randperm(len(limb), generator=gen)[:4]
originals = limb.images[idx]
augmented = [classic_augment(originals, aug_cfg, gen) for _ in range(5)]
fig = plots.augmentation_examples(originals, augmented)
show_figure(fig, "fig-classic-examples", pipe, images=len(originals), draws=len(augmented))

# %% [markdown]
# ```{glue:figure} fig-classic-examples
# :name: fig-classic-examples
# :alt: Rows of limb radiographs: the original image at the left, then random copies of it with a changed pose and brightness.
#
# Classic augmentation of {glue:text}`fig-classic-examples-images` real limb radiographs drawn at
# random (left column): each is followed by {glue:text}`fig-classic-examples-draws` random draws of
# the profile's augmentation (the settings above); {glue:md}`fig-classic-examples-run`.
# ```

# %% [markdown]
# ## Does it help transfer learning?
#
# The `classic` condition against the paper's `without_gan` (no augmentation in pre-training)
# and `with_gan` (AC-GAN images selected by the filter), on the same patient-level folds
# ({ref}`ch-data`). Each condition is computed once and cached; {ref}`ch-transfer` reuses
# these runs and explains the tests: the paper's plain paired t-test, the corrected
# resampled t-test with its confidence interval, and the minimum difference detectable with
# 80 % power (MDD), all differences in points. {numref}`fig-classic-folds` pairs the conditions
# fold by fold: a line that rises from one condition to the next is a fold where the second did
# better, and lines that cross say the folds disagree.

# %%
classic = pipe.result("classic_folds")  # without_gan, classic and with_gan on the first repeat's folds
folds, tests = classic["folds"], classic["tests"]
conditions = list(dict.fromkeys(folds["condition"]))
summarize(folds, METRICS).round(3)

# %% tags=["remove-output"]
shown = ["accuracy", "sensitivity", "specificity", "f1", "auc"]
fig = plots.paired_folds(folds, shown, conditions)
show_figure(fig, "fig-classic-folds", pipe, metrics=", ".join(shown), conditions=", ".join(conditions),
            runs=len(folds.groupby(["repeat", "fold"])))

# %% [markdown]
# ```{glue:figure} fig-classic-folds
# :name: fig-classic-folds
# :alt: Small panels, one per metric; in each, grey lines join one fold's values across the conditions and a black line joins their means.
#
# Fine-tuned pelvic classifiers fold by fold: {glue:text}`fig-classic-folds-metrics` of the
# conditions {glue:text}`fig-classic-folds-conditions` on the same patient-level test folds. A
# grey line per fold ({glue:text}`fig-classic-folds-runs` folds in all) joins its values; the
# black diamonds are the means; {glue:md}`fig-classic-folds-run`.
# ```

# %%
rounded(comparison_table(tests), 3)

# %%
assert folds[list(METRICS)].drop(columns="auc").notna().all().all()
assert folds["accuracy"].between(0, 1).all()

# %% [markdown]
# ## Exercises
#
# 1. Set `rotation` to 45 degrees in a copy of the profile (`pretrain.augment.rotation`) and
#    re-run this notebook with `-p profile my.yaml`. Does `classic` improve or degrade?
# 2. Why is a left-right flip a plausible augmentation for an AP pelvis but an up-down flip
#    is not?
# 3. Which kinds of variation found in real radiographs can classic augmentation never
#    produce?
#
# ```{dropdown} Solutions
# 1. Large rotations produce poses absent from the test radiographs; on the phantom the
#    effect is usually neutral to negative. Read the paired test, not the means alone.
# 2. The pelvis is nearly mirror-symmetric and fractures occur on either side; radiographs
#    are never displayed upside down, so an up-down flip creates impossible images.
# 3. New patients (anatomy, bone density, soft tissue), new fracture patterns and positions,
#    other devices and exposures: everything that is not a geometric or intensity transform of
#    an existing image.
# ```
