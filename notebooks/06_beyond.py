# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (hipaug)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-beyond)=
# # Beyond the paper: ablations, GAN quality, Grad-CAM and Grad-CAM++, localisation
#
# The paper shows that "with GAN" beats "without GAN" by a small margin and that the
# synthetic images look realistic. This chapter asks what the paper could not: does the
# selection rule matter, does the filter select better images than chance, how close are the
# synthetic images to real ones in a learned feature space, and what does the fracture model
# look at?

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
from hipaug.evaluation import METRICS, cam_maps, summarize
from hipaug.book.notebook import data_summary, setup, show_figure
from hipaug.book.localisation import CAM_NAMES, describe_localisation, localisation_table, localisation_tests_table
from hipaug.book.prose import describe_ablation

pipe = setup(profile, seed=seed, limb_dir=limb_dir, pelvic_dir=pelvic_dir, device=device, artifacts=artifacts,
             executor=executor)

# %% tags=["remove-input"]
data_summary(pipe)

# %% [markdown]
# ## Ablations: the selection rule and the number of synthetic images
#
# The `with_gan` condition under other selection rules than the profile's: the thresholds in
# `ablation.thresholds` and the per-class counts in `ablation.top_k` (the same number per
# class). `unfiltered_gan` (same number of images as `with_gan`, no selection), `classic` and
# `scratch` come from {ref}`ch-transfer`. {numref}`fig-beyond-ablation` sets their fold AUCs side
# by side: differences smaller than the bars' spread are differences between folds, not rules.

# %% tags=["remove-input"]
Markdown(describe_ablation(pipe.profile))

# %% [markdown]
# What each rule keeps, class by class: a rule that keeps no image of a class pre-trains its
# `with_gan` model on no synthetic image of it.

# %%
rules_shown = (pipe.profile.filter.rule, *pipe.profile.ablation.rules)
pd.DataFrame({f"accepted, {r.label}" + (" (the profile's rule)" if i == 0 else ""): pipe.filtered(r).acceptance["accepted"]
              for i, r in enumerate(rules_shown)}).rename_axis("class")

# %%
abl = pipe.result("ablation_folds") if pipe.profile.ablation.rules else pd.DataFrame()
table8 = pipe.result("table8_folds")["folds"]
# The ablations run on the same splits as the rows they are set beside: the first repeat's folds, or every replication.
keys = (abl if len(abl) else table8[table8["repeat"] == 0])[["repeat", "fold"]].drop_duplicates()
base = table8.merge(keys, on=["repeat", "fold"])
base["rule"] = base["condition"]
base.loc[base["condition"] == "with_gan", "rule"] = f"with_gan {pipe.profile.filter.rule.label}"
rules = pd.concat([base, abl.assign(rule="with_gan " + abl["rule"])], ignore_index=True) if len(abl) else base
summarize(rules, METRICS, by="rule").round(3)

# %% tags=["remove-output"]
fig = plots.ablation_plot(rules, x="rule", metric="auc", title="AUC per fold (mean ± SD)")
plots.plt.xticks(rotation=35, ha="right")
show_figure(fig, "fig-beyond-ablation", pipe, rules=rules["rule"].nunique(),
            runs=len(rules.groupby(["rule", "repeat", "fold"])))

# %% [markdown]
# ```{glue:figure} fig-beyond-ablation
# :name: fig-beyond-ablation
# :alt: A point plot of AUC, one point with an error bar per pre-training condition or selection rule, the rule names written slanted below the axis.
#
# Fold AUC of the pelvic classifier, mean ± SD over folds, for the
# {glue:text}`fig-beyond-ablation-rules` pre-training conditions and selection rules
# ({glue:text}`fig-beyond-ablation-runs` fine-tuning runs in all); {glue:md}`fig-beyond-ablation-run`.
# ```

# %% [markdown]
# ## GAN quality in the filter's feature space
#
# Without ImageNet weights, quality is measured in the penultimate layer of the limb VGG-16:
# the Fréchet distance between Gaussians fitted to real and synthetic features
# {cite}`heuselGANsTrainedTwo2017`, improved precision (are synthetic images inside the real
# manifold?) and recall (is the real manifold covered?) {cite}`kynkaanniemiImprovedPrecisionRecall2019`,
# and GAN-train / GAN-test accuracy {cite}`shmelkovHowGoodMy2018`. Each synthetic figure is
# shown beside its **real-vs-real baseline** (training vs validation images, same sizes): the
# distance a perfect generator would reach.

# %%
q = pipe.result("gan_quality")
rows = [
    ("Fréchet distance", "synthetic vs real", q["fd_synthetic_vs_real"], q["fd_real_vs_real"]),
    ("precision", "synthetic", q["pr_synthetic"]["precision"], q["pr_real_vs_real"]["precision"]),
    ("recall", "synthetic", q["pr_synthetic"]["recall"], q["pr_real_vs_real"]["recall"]),
    ("GAN-test accuracy", "all synthetic", q["gan_test_accuracy"], q["real_val_accuracy"]),
] + [("GAN-train accuracy", f"{which} synthetic", q[f"gan_train_accuracy_{which}"], q["real_val_accuracy"])
     for which in pipe.profile.quality.gan_train_on]
pd.DataFrame(rows, columns=["measure", "set", "value", "real baseline"]).round(3)

# %% [markdown]
# ### Does the filter select better images?
#
# Accepted and rejected images compared at equal sample sizes (the Fréchet distance grows as
# samples shrink).

# %%
if "fd_accepted_vs_real" in q:
    sel = pd.DataFrame({
        "accepted": [q["fd_accepted_vs_real"], q["pr_accepted"]["precision"], q["pr_accepted"]["recall"]],
        "rejected": [q["fd_rejected_vs_real"], q["pr_rejected"]["precision"], q["pr_rejected"]["recall"]]},
        index=["Fréchet distance to real", "precision", "recall"]).round(3)
else:
    sel = pd.DataFrame({"note": [f"too few accepted ({q['n_accepted']}) or rejected ({q['n_rejected']}) images to compare"]})
sel

# %% [markdown]
# ### Diversity within each class
#
# Mean pairwise feature distance within a class, synthetic against real. A ratio far below 1
# is the signature of intra-class mode collapse, which GAN-test accuracy alone cannot see.

# %%
pd.read_csv(pipe.results_dir / "diversity.csv").round(3)

# %% [markdown]
# ## Grad-CAM and Grad-CAM++: what does the fracture model look at?
#
# Heat maps of the `with_gan` model fine-tuned on fold 0, on that fold's test radiographs, for the
# fracture logit, taken from the rectified feature maps of the last convolutional layer. Grad-CAM
# {cite}`selvarajuGradCAMVisualExplanations2017` weights each feature map by its average gradient;
# Grad-CAM++ {cite}`chattopadhayGradCAMGeneralizedGradientBased2018` weights the positive
# gradients pixel by pixel, which is meant to cover a class present in several places (both hips,
# a fracture line and its displaced fragment) rather than only the strongest one. Both come from
# the torchcam library through `hipaug.evaluation.cam_maps`, whose documentation records where
# hipaug departs from it. On real data {cite:t}`chengApplicationDeepLearning2019` reported that
# Grad-CAM localised 95.9% of fractures; the phantom's metadata tell on which side the fracture
# is. {numref}`fig-beyond-cam` shows both methods on the same radiographs.

# %% tags=["remove-output"]
model = pipe.fold_model("with_gan")
pelvic = pipe.pelvic
_, test_idx = pipe.folds(0)[0]
pos = pelvic.class_names.index(pipe.profile.transfer.positive_class)
fract = [i for i in test_idx if int(pelvic.labels[i]) == pos][:6]
normal = [i for i in test_idx if int(pelvic.labels[i]) != pos][:2]
pick = fract + normal
cams = {name: cam_maps(model, pelvic.images[pick], target=pos, method=method) for method, name in CAM_NAMES.items()}
side = pelvic.meta["side"].astype(str).tolist() if "side" in pelvic.meta else ["?"] * len(pelvic)
titles = [f"{pelvic.class_names[int(pelvic.labels[i])]}\n{side[i] if int(pelvic.labels[i]) == pos else ''}" for i in pick]
fig = plots.gradcam_grid(pelvic.images[pick], cams, titles)
show_figure(fig, "fig-beyond-cam", pipe, fold=0, fractured=len(fract), normal=len(normal),
            positive=pipe.profile.transfer.positive_class)

# %% [markdown]
# ```{glue:figure} fig-beyond-cam
# :name: fig-beyond-cam
# :alt: Three rows of pelvic radiographs: the radiographs on top, titled with their class and fracture side; below them the same images with a Grad-CAM heat map, then with a Grad-CAM++ heat map, red where the model's fracture evidence is strongest.
#
# Where the `with_gan` model of fold {glue:text}`fig-beyond-cam-fold` looks for the
# {glue:text}`fig-beyond-cam-positive` class: {glue:text}`fig-beyond-cam-fractured` fractured and
# {glue:text}`fig-beyond-cam-normal` normal test radiographs of that fold (top row, titled with the
# class and the fracture side), overlaid with Grad-CAM (middle row) and Grad-CAM++ (bottom row),
# each map scaled to its own maximum; {glue:md}`fig-beyond-cam-run`.
# ```

# %% [markdown]
# On an AP radiograph the patient's left is on the image's right. Where the data record the
# fracture's side (the phantom does), the table gives, for each fractured radiograph of
# {numref}`fig-beyond-cam`, the share of each method's map in the image's right half: when the
# mass lies on the fractured side, the model uses the fracture; when it lies elsewhere, it may use
# a shortcut. Where the data mark the fracture with a box instead, the next section scores it.

# %%
W = pelvic.image_size
if "side" in pelvic.meta:
    cam_side = pd.DataFrame({"fracture side": [side[i] for i in fract]})
    for name, maps in cams.items():
        cam_side[f"{name} mass in image-right half"] = [float(c[:, W // 2:].sum() / max(c.sum(), 1e-8))
                                                       for c in maps[: len(fract)]]
    display(cam_side.round(3))

# %% [markdown]
# ## Does each model look at the fracture?
#
# Where a data set marks its fractures (FracAtlas' annotators drew a box around each), every
# fold's model of every condition is scored on its test images that carry a box, with both
# methods: the **pointing game** (is the map's peak inside a box?) and the **energy share** (the
# share of the map's total inside the boxes). A map that knew nothing would score the share of the
# image the boxes cover on both, the chance column. Two conditions are compared on the same images,
# each image's scores averaged over the repeats that tested it: McNemar's exact test on the
# pointing game (the images only one of them hits) and Wilcoxon's signed-rank test on the energy
# share, with a bootstrap interval of its mean difference.

# %% tags=["remove-input"]
loc = pipe.result("localisation") if pipe.boxes is not None else None
Markdown(describe_localisation(None if loc is None else loc["summary"], None if loc is None else loc["tests"],
                               alpha=pipe.profile.quality.alpha))

# %%
if loc is not None:
    display(localisation_table(loc["summary"]))
    display(localisation_tests_table(loc["tests"]))

# %% tags=["remove-output"]
if loc is not None:
    shown = [c for c in ("scratch", "without_gan", "with_gan") if c in pipe.profile.transfer.conditions]
    boxed = pipe.boxes
    boxed_paths = set(boxed["path"])
    seen = [i for i in test_idx if pelvic.paths[i] in boxed_paths][:6]
    maps = {c: cam_maps(pipe.fold_model(c), pelvic.images[seen], target=pos, method="gradcam") for c in shown}
    rects = [list(boxed.loc[boxed["path"] == pelvic.paths[i], ["x0", "y0", "x1", "y1"]].itertuples(index=False))
             for i in seen]
    fig = plots.gradcam_grid(pelvic.images[seen], maps, [f"test image {k + 1}" for k in range(len(seen))], boxes=rects)
    show_figure(fig, "fig-beyond-boxes", pipe, images=len(seen), conditions=len(shown))

# %% [markdown]
# ```{glue:figure} fig-beyond-boxes
# :name: fig-beyond-boxes
# :alt: A grid of hip radiographs: the radiographs on top, and below them a row per pre-training condition with its Grad-CAM heat map, a green rectangle around each annotated fracture and a white cross at the map's peak.
#
# The annotated fracture boxes (green) over the Grad-CAM maps of {glue:text}`fig-beyond-boxes-conditions`
# conditions' fold-0 models, on {glue:text}`fig-beyond-boxes-images` boxed test radiographs of
# that fold; the white cross is the map's peak, a pointing-game hit when it lies inside a box;
# {glue:md}`fig-beyond-boxes-run`.
# ```

# %%
assert all(np.isfinite(m).all() and m.min() >= 0 and m.max() <= 1 for m in cams.values())
assert np.isfinite(q["fd_synthetic_vs_real"]) and np.isfinite(q["fd_real_vs_real"])
assert 0 <= q["pr_synthetic"]["precision"] <= 1 and 0 <= q["pr_synthetic"]["recall"] <= 1

# %% [markdown]
# ## Exercises
#
# 1. Why must the Fréchet distance of synthetic images be compared with a real-vs-real
#    baseline computed on sets of the same size?
# 2. A generator reaches GAN-test accuracy 0.99 but recall 0.1. What does it draw?
# 3. Add a threshold of 0.999 to `ablation.thresholds` in a profile copy. What happens to the
#    number of selected images and to the with-GAN results?
#
# ```{dropdown} Solutions
# 1. The estimate is biased upwards for small samples and depends on the feature space; only
#    the gap to the baseline (same features, same N) says how far the generator is from real.
# 2. A few prototypical, easily classified images per class: high precision, little coverage of
#    the real variation (mode collapse).
# 3. Few images pass; with-GAN then approaches without-GAN, since the pre-training set is
#    almost only real images.
# ```
