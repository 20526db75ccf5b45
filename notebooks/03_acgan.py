# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (hipaug)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-acgan)=
# # The AC-GAN: synthetic limb radiographs
#
# The paper augments the limb set with an auxiliary-classifier GAN
# {cite}`odenaConditionalImageSynthesis2017`: a generator $G(z, c)$ draws an image of class
# $c$ from noise $z$, and a discriminator $D$ has two heads, one saying real or fake and one
# predicting the class. Both networks are DCGAN-style convolutional networks
# {cite}`radfordUnsupervisedRepresentationLearning2016`; their depth follows the image size and
# their width is a parameter (the paper's architecture is unknown).
#
# The losses act on logits. With $s = D_{\text{adv}}(x)$ and $q = D_{\text{cls}}(x)$:
#
# $$L_D = \text{BCE}(s_{\text{real}}, 1-\varepsilon) + \text{BCE}(s_{\text{fake}}, 0) + \lambda\,\text{CE}(q_{\text{real}}, c)$$
#
# $$L_G = \text{BCE}(s_{\text{fake}}, 1) + \lambda\,\text{CE}(q_{\text{fake}}, c)$$
#
# Two widely copied public AC-GANs put a softmax in front of a loss that applies its own
# (log-)softmax: the class loss is then computed on probabilities squashed twice, and its
# gradient nearly vanishes. hipaug's discriminator returns logits and has no softmax layer
# (tested). hipaug's default (`aux_fake_in_d: false`) trains D's class head on real images
# only: training it on generated images as well is a known route to collapse within a class.
#
# One addition is **hipaug's choice, not the paper's**: on the digits check the plain AC-GAN
# collapsed within each class (it ignored $z$ and drew one image per class, with perfect
# GAN-test accuracy). hipaug therefore adds the mode-seeking term of MSGAN
# {cite}`maoModeSeekingGenerative2019` to $L_G$, which rewards images that differ when their
# latent vectors differ (its weight is `mode_seeking`; 0 gives the plain AC-GAN). The
# `g_pair_ratio` column of the training history (image distance per latent distance within a
# class) monitors collapse.

# %% tags=["parameters"]
profile = "default"
seed = None
limb_dir = None
pelvic_dir = None
device = None
artifacts = None

# %%
import dataclasses

import pandas as pd
from IPython.display import Markdown

from hipaug.models import acgan
from hipaug.training import read_history

from hipaug.book import plots
from hipaug.book.notebook import data_summary, setup, show_figure
from hipaug.book.prose import describe_acgan

pipe = setup(profile, seed=seed, limb_dir=limb_dir, pelvic_dir=pelvic_dir, device=device, artifacts=artifacts)
cfg = pipe.profile.acgan
pd.Series({k: str(v) for k, v in dataclasses.asdict(cfg).items()}, name="AC-GAN settings").to_frame()

# %% tags=["remove-input"]
data_summary(pipe)

# %% tags=["remove-input"]
Markdown(describe_acgan(pipe.profile))

# %% [markdown]
# ## Architecture

# %%
G, D = acgan.build_models(cfg, num_classes=len(pipe.limb.class_names))
pd.DataFrame({"network": ["G", "D"],
              "parameters": [sum(p.numel() for p in m.parameters()) for m in (G, D)],
              "conv layers": [sum(1 for x in m.modules() if "Conv" in type(x).__name__) for m in (G, D)]})

# %%
print(G)
print(D)

# %% [markdown]
# ## Training
#
# The AC-GAN is trained on the real limb **training** images only (the validation images are
# kept apart for the realism filter and the quality measures). Training is cached: this cell
# trains once per configuration, seed and data, and resumes from the last checkpoint if a run
# was interrupted. {numref}`fig-acgan-history` follows the two players: D's losses and
# accuracies should stay away from the extremes (a discriminator that is always right gives G no
# signal), and G's loss should not climb steadily.

# %% tags=["remove-output"]
run_dir = pipe.gan.path
history = read_history(run_dir)
fig = plots.gan_history(history)
show_figure(fig, "fig-acgan-history", pipe, steps=int(history["step"].iloc[-1]),
            images=len(pipe.limb_split[0]))

# %% [markdown]
# ```{glue:figure} fig-acgan-history
# :name: fig-acgan-history
# :alt: Two line charts against the training step: at the left the discriminator's and generator's losses, at the right the discriminator's accuracies between zero and one.
#
# AC-GAN training on the {glue:text}`fig-acgan-history-images` real limb training images, over
# {glue:text}`fig-acgan-history-steps` steps: the losses of D and G (left) and D's accuracies
# (right); {glue:md}`fig-acgan-history-run`.
# ```

# %%
history.tail(3).round(3)

# %% [markdown]
# ## Samples over training
#
# Fixed noise, one row per class: in {numref}`fig-acgan-progress` the same latent vector moves
# from noise to anatomy.

# %% tags=["remove-output"]
fig = plots.sample_progress(run_dir / "samples")
shown_steps = [ax.get_title().removeprefix("step ") for ax in fig.axes]
show_figure(fig, "fig-acgan-progress", pipe, steps=", ".join(shown_steps), panels=len(shown_steps))

# %% [markdown]
# ```{glue:figure} fig-acgan-progress
# :name: fig-acgan-progress
# :alt: Side-by-side grids of synthetic limb radiographs at increasing training steps: blurry noise at the left, recognisable bones at the right.
#
# The generator's samples at {glue:text}`fig-acgan-progress-panels` points of training (steps
# {glue:text}`fig-acgan-progress-steps`): the same noise vectors throughout, one row per limb
# class; {glue:md}`fig-acgan-progress-run`.
# ```

# %% [markdown]
# ## The synthetic pool
#
# Samples of the sampling generator (see the settings above), `filter.synthetic_per_class`
# per class: the pool the realism
# filter ({ref}`ch-filter`) chooses from. Compare {numref}`fig-acgan-pool` with the real images
# of {numref}`fig-limb-examples` in {ref}`ch-data`.

# %% tags=["remove-output"]
synthetic = pipe.synthetic
fig = plots.class_grid(synthetic.images, synthetic.labels, synthetic.class_names, per_class=8, seed=pipe.seed)
show_figure(fig, "fig-acgan-pool", pipe, per_class=8, classes=len(synthetic.class_names), images=len(synthetic))

# %% [markdown]
# ```{glue:figure} fig-acgan-pool
# :name: fig-acgan-pool
# :alt: A grid of synthetic greyscale limb radiographs: each row holds samples generated for one class, whose name is written at the row's left.
#
# Synthetic limb radiographs from the AC-GAN's sampling generator, up to
# {glue:text}`fig-acgan-pool-per_class` drawn at random per class, one row for each of the
# {glue:text}`fig-acgan-pool-classes` classes of the {glue:text}`fig-acgan-pool-images` images in
# the pool; {glue:md}`fig-acgan-pool-run`.
# ```

# %%
summary = pipe.result("acgan_summary")  # the run's last history row and the pool, recorded in the results store
assert history.drop(columns="step").notna().all().all()
assert len(synthetic) == pipe.profile.filter.synthetic_per_class * len(synthetic.class_names)
assert synthetic.class_names == pipe.limb.class_names

# %% [markdown]
# ## Exercises
#
# 1. Put a `Softmax` in front of `CrossEntropyLoss` on a batch of logits and compare the
#    gradient norms with and without it. What happens to the class head's learning?
# 2. Re-train with `aux_fake_in_d: true` in a profile copy and compare per-class diversity in
#    {ref}`ch-beyond`.
# 3. How would you tell mode collapse from a grid alone? Why is that not enough?
#
# ```{dropdown} Solutions
# 1. `CrossEntropyLoss` applies log-softmax itself; on probabilities in [0, 1] the second
#    softmax is nearly flat, so the loss barely moves and its gradient shrinks by an order of
#    magnitude or more.
# 2. Training D's class head on fakes lets G satisfy it with one prototypical image per class:
#    GAN-test accuracy stays high while diversity and recall drop.
# 3. Repeated near-identical images within a row hint at collapse, but a grid shows a handful
#    of samples; measure it (per-class diversity, recall, GAN-train accuracy) as {ref}`ch-beyond` does.
# ```
