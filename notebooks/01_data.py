# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (hipaug)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-data)=
# # The data: limb and pelvic radiographs
#
# {cite:t}`linMedicalDataAugmentation2019` work with two private, de-identified data sets
# from Linkou Chang Gung Memorial Hospital: a **Limb X-ray** set, which the AC-GAN augments
# and on which the classifier is pre-trained, and a **Pelvic X-ray** set for hip-fracture
# detection (see the reader's highlights in {ref}`annotations-linMedicalDataAugmentation2019`).
# Neither is public, and the paper does not give the limb classes, the counts or the
# resolution. This chapter shows what hipaug uses instead: a physics-inspired phantom
# (line integrals of attenuation through analytic anatomy, Beer-Lambert, scatter, heel effect,
# quantum noise, collimation and a laterality marker), or your own folders
# ({ref}`own-data`) through the same parameters.

# %% tags=["parameters"]
profile = "default"  # smoke | default | paper | path to a YAML profile
seed = None  # None: the profile's seed
limb_dir = None  # None: phantom limb radiographs
pelvic_dir = None  # None: phantom pelvic radiographs
device = None  # None: the profile's (auto | cpu | cuda)
artifacts = None  # None: $HIPAUG_ARTIFACTS, else artifacts/ of the hipaug checkout

# %%
from IPython.display import Markdown, display

from hipaug.book import plots
from hipaug.data import fold_table
from hipaug.book.notebook import card_markdown, data_summary, setup, show_figure
from hipaug.book.prose import describe_cv, describe_phantom

pipe = setup(profile, seed=seed, limb_dir=limb_dir, pelvic_dir=pelvic_dir, device=device, artifacts=artifacts)
limb, pelvic = pipe.limb, pipe.pelvic
print(f"profile={pipe.profile.name} source={pipe.source} image_size={pipe.profile.image_size} seed={pipe.seed}")

# %% tags=["remove-input"]
data_summary(pipe)

# %% [markdown]
# ## Where the phantom is calibrated
#
# A phantom can be made as easy or as hard as one likes, so its settings decide which question
# the book asks. They are set so that the question is the paper's: a without-GAN baseline near
# the paper's Table VIII, a realism filter that recognises real limb images, and AC-GAN samples
# that carry their class, fracture included. Chapter 5 ({ref}`ch-transfer`) checks this run
# against those targets; the comments of the profile's YAML file record the measurements behind
# each choice.

# %% tags=["remove-input"]
Markdown(describe_phantom(pipe.profile, pipe.source))

# %% [markdown]
# ## The limb set
#
# The phantom's classes follow `phantom.limb_labels` (by default one class per body part and
# fracture status; the paper's classes are unknown); your own folder brings its own. Fractures
# are cortical breaks: a thin low-attenuation line across the bone (transverse, oblique or
# comminuted), with the distal fragment displaced or angulated from subtle to obvious.
#
# Each set has a card (classes, patients, the size and bit depth of the source files,
# intensities), examples per class ({numref}`fig-limb-examples`, {numref}`fig-pelvic-examples`)
# and the intensity histogram of each class ({numref}`fig-limb-intensities`,
# {numref}`fig-pelvic-intensities`). The histograms show how much of each image is background
# and where soft tissue and bone sit on the grey scale: classes of one body part should overlap
# closely, since a fracture changes few pixels. On your own
# data the card also lists warnings: identical images in two classes, patients in several
# classes, class sizes differing more than threefold, source files of mixed bit depth.

# %%
card_markdown(pipe, limb, "limb")

# %% tags=["remove-output"]
fig = plots.class_grid(limb.images, limb.labels, limb.class_names, per_class=8, seed=pipe.seed)
show_figure(fig, "fig-limb-examples", pipe, per_class=8, classes=len(limb.class_names), images=len(limb))

# %% [markdown]
# ```{glue:figure} fig-limb-examples
# :name: fig-limb-examples
# :alt: A grid of greyscale limb radiographs: each row holds examples of one class, whose name is written at the row's left.
#
# Limb radiographs drawn at random, up to {glue:text}`fig-limb-examples-per_class` per class, one row
# for each of the {glue:text}`fig-limb-examples-classes` classes of the set's
# {glue:text}`fig-limb-examples-images` images; {glue:md}`fig-limb-examples-run`.
# ```

# %% tags=["remove-output"]
fig = plots.intensity_histograms(limb)
show_figure(fig, "fig-limb-intensities", pipe, classes=len(limb.class_names), images=len(limb))

# %% [markdown]
# ```{glue:figure} fig-limb-intensities
# :name: fig-limb-intensities
# :alt: Step histograms of pixel intensity from black to white on a logarithmic density axis, one coloured line per limb class.
#
# Pixel intensities of the limb set: a density histogram per class (logarithmic axis) over all
# {glue:text}`fig-limb-intensities-images` images in {glue:text}`fig-limb-intensities-classes`
# classes; the legend gives each class's image count; {glue:md}`fig-limb-intensities-run`.
# ```

# %% [markdown]
# ## The pelvic set
#
# AP pelvis radiographs: pelvic ring, sacrum, both hips. A fracture is on the left or right
# femur: femoral neck (subcapital or transcervical, impacted to displaced) or
# intertrochanteric. Each image carries its metadata.

# %%
card_markdown(pipe, pelvic, "pelvic")

# %% tags=["remove-output"]
fig = plots.class_grid(pelvic.images, pelvic.labels, pelvic.class_names, per_class=8, seed=pipe.seed)
show_figure(fig, "fig-pelvic-examples", pipe, per_class=8, images=len(pelvic),
            classes=" and ".join(pelvic.class_names))

# %% [markdown]
# ```{glue:figure} fig-pelvic-examples
# :name: fig-pelvic-examples
# :alt: Two rows of greyscale AP pelvis radiographs, one row per class, whose name is written at the row's left.
#
# Pelvic radiographs drawn at random, up to {glue:text}`fig-pelvic-examples-per_class` per class,
# one row each for {glue:text}`fig-pelvic-examples-classes`, from the set's
# {glue:text}`fig-pelvic-examples-images` images; {glue:md}`fig-pelvic-examples-run`.
# ```

# %% tags=["remove-output"]
fig = plots.intensity_histograms(pelvic)
show_figure(fig, "fig-pelvic-intensities", pipe, images=len(pelvic))

# %% [markdown]
# ```{glue:figure} fig-pelvic-intensities
# :name: fig-pelvic-intensities
# :alt: Step histograms of pixel intensity from black to white on a logarithmic density axis, one coloured line per pelvic class.
#
# Pixel intensities of the pelvic set: a density histogram per class (logarithmic axis) over all
# {glue:text}`fig-pelvic-intensities-images` images; the legend gives each class's image count;
# {glue:md}`fig-pelvic-intensities-run`.
# ```

# %%
meta_cols = [c for c in ("fracture_type", "side") if c in pelvic.meta.columns]
if meta_cols:
    display(pelvic.meta.groupby(["label", *meta_cols]).size().rename("images").reset_index())

# %% [markdown]
# ## Folds by patient
#
# The paper's Table VIII is a five-fold cross-validation. hipaug's folds are grouped by
# patient, so no patient's images are in both the training and the test part of a fold (a
# leak that inflates accuracy on real data, where patients often have several images). The
# first table gives the range over the folds; the table of every fold is folded away below it.

# %% tags=["remove-input"]
Markdown(describe_cv(pipe.profile, pipe.design))

# %%
folds = fold_table(pelvic, pipe.folds(0), pipe.profile.transfer.positive_class)
folds.drop(columns="fold").agg(["min", "max"]).rename_axis("over the folds")

# %% tags=["hide-output"] mystnb={"code_prompt_show": "Show the table of every fold", "code_prompt_hide": "Hide the table of every fold"}
folds

# %%
summary = pipe.result("data_summary")  # counts and patients, recorded in the results store
# Sanity: usable sets, two pelvic classes, no patient leakage across folds.
assert len(limb.class_names) >= 2 and min(summary["limb_counts"].values()) > 0
assert set(pelvic.class_names) >= {pipe.profile.transfer.positive_class} and len(pelvic.class_names) == 2
assert (folds["patients in both"] == 0).all()
assert float(limb.images.min()) >= 0.0 and float(limb.images.max()) <= 1.0

# %% [markdown]
# ## Exercises
#
# 1. Render the pelvic set at `difficulty` 0.5 and 1.5 (`hipaug phantom pelvic --difficulty`)
#    and describe what changes in the images.
# 2. Why must folds be grouped by patient? Construct a manifest where one patient has ten
#    images and show what `patient_kfold` does with them.
# 3. Bring a public limb set (e.g. FracAtlas) into the `manifest.csv` layout and run
#    `hipaug data check` on it.
#
# ```{dropdown} Solutions
# 1. Lower difficulty widens the fracture gap and its displacement and lowers noise and pose
#    variation; higher difficulty makes most fractures subtle (impacted, undisplaced).
# 2. Images of one patient are correlated (same anatomy, same exposure); if some are in the
#    training part and some in the test part, the test measures recognition of the patient,
#    not of the fracture. `patient_kfold` keeps all ten images in one fold.
# 3. Columns `path,label,patient_id`; labels e.g. `fractured`/`non_fractured`; the command
#    prints the card or one line naming the first bad file.
# ```
