"""`DataSpec`: how much of a folder of real radiographs a run uses, and the seeded per-class cap that applies it.

A profile's `data` section. The phantom's size is `PhantomSpec`'s; a real set is used whole unless
a cap is set, e.g. the smoke profile on FracAtlas, which keeps the test loop short by pre-training
on a stratified subsample of the limb images (every class kept, the small ones whole).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from hipaug.data.dataset import ImageDataset, finalise
from hipaug.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """Caps on the images a run takes from each class of a folder of radiographs (None: every image).

    A phantom set is drawn at the sizes of the profile's `phantom` section and is never cut.
    """

    limb_max_per_class: int | None = None  # at most this many limb images per class, a seeded subsample (None: all)
    pelvic_max_per_class: int | None = None  # the same for the pelvic (hip) set
    # Limb classes with fewer images are left out (None: none is). A class of a few images teaches
    # neither the AC-GAN (it cannot draw it) nor the realism filter (it never predicts it), so its
    # synthetic images would be chosen by a filter that cannot judge them. The book names each one.
    limb_min_per_class: int | None = None

    def __post_init__(self) -> None:
        for name in ("limb_max_per_class", "pelvic_max_per_class", "limb_min_per_class"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
                raise ConfigError(f"data.{name}={v!r} must be an integer >= 2 or null")


def drop_small_classes(ds: ImageDataset, n: int | None) -> tuple[ImageDataset, dict[str, int]]:
    """`ds` without its classes of fewer than `n` images (labels renumbered), and the {class: count} left out."""
    counts = ds.class_counts()
    small = {c: k for c, k in counts.items() if n is not None and k < n}
    if not small:
        return ds, {}
    kept = [c for c in ds.class_names if c not in small]
    old = torch.tensor([ds.class_names.index(c) for c in kept])
    renumber = torch.full((len(ds.class_names),), -1, dtype=torch.int64)
    renumber[old] = torch.arange(len(kept))
    sub = ds.subset(np.isin(ds.labels.numpy(), old.numpy()))
    return finalise(replace(sub, labels=renumber[sub.labels], class_names=tuple(kept))), small


def cap_per_class(ds: ImageDataset, n: int | None, seed: int) -> ImageDataset:
    """At most `n` images of each class of `ds`, drawn at random with `seed`; `ds` itself when no class has more."""
    counts = ds.class_counts()
    if n is None or max(counts.values(), default=0) <= n:
        return ds
    rng = np.random.default_rng(seed)
    labels = ds.labels.numpy()
    keep = []
    for c in range(len(ds.class_names)):
        idx = np.flatnonzero(labels == c)
        keep += sorted(rng.permutation(idx)[:n].tolist())
    return ds.subset(np.sort(np.asarray(keep, dtype=np.int64)))
