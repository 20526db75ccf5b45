"""`DataSpec`: how much of a folder of real radiographs a run uses, and the seeded per-class cap that applies it.

A profile's `data` section. The phantom's size is `PhantomSpec`'s; a real set is used whole unless
a cap is set, e.g. the smoke profile on FracAtlas, which keeps the test loop short by pre-training
on a stratified subsample of the limb images (every class kept, the small ones whole).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipaug.data.dataset import ImageDataset
from hipaug.errors import ConfigError


@dataclass(frozen=True)
class DataSpec:
    """Caps on the images a run takes from each class of its data (None: every image)."""

    limb_max_per_class: int | None = None  # at most this many limb images per class, a seeded subsample (None: all)
    pelvic_max_per_class: int | None = None  # the same for the pelvic (hip) set

    def __post_init__(self) -> None:
        for name in ("limb_max_per_class", "pelvic_max_per_class"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
                raise ConfigError(f"data.{name}={v!r} must be an integer >= 2 or null")


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
