"""Write a phantom batch to disk: ``<class>/<patient_id>.png`` and ``manifest.csv``, atomically.

Paper step: data (the folders the pipeline and ``hipaug phantom limb|pelvic`` produce).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hipaug.data.phantoms.render import PhantomBatch, render_limb, render_pelvic
from hipaug.data.writer import to_uint8, write_image_folder


def write_dataset(batch: PhantomBatch, out_dir: str | Path) -> Path:
    """Write ``out_dir/<class>/<patient_id>.png`` (8-bit grey) and ``out_dir/manifest.csv``, atomically.

    Goes through the one dataset writer (`hipaug.data.writer.write_image_folder`): an existing
    dataset folder (with a manifest) is replaced, any other non-empty folder is refused.
    """
    ids = list(batch.meta["patient_id"])
    if len(set(ids)) != len(ids):
        ids = [f"{i:06d}_{p}" for i, p in enumerate(ids)]
    rel = [f"{batch.class_names[batch.labels[i]]}/{ids[i]}.png" for i in range(len(batch))]
    front = pd.DataFrame({"path": rel, "label": [batch.class_names[j] for j in batch.labels],
                          "patient_id": batch.meta["patient_id"].to_numpy()})
    manifest = pd.concat([front, batch.meta.drop(columns=["patient_id"])], axis=1)
    return write_image_folder(out_dir, to_uint8(batch.images), rel, manifest, folders=batch.class_names)


def write_limb_dataset(out: str | Path, per_class: int = 150, image_size: int = 64, seed: int = 0,
                       labels: str = "part+fracture", difficulty: float = 1.0,
                       parts: Sequence[str] | None = None) -> Path:
    """Render and write the limb phantom dataset (CLI entry point)."""
    return write_dataset(render_limb(per_class, image_size, seed, labels, difficulty, parts), out)


def write_pelvic_dataset(out: str | Path, n: int = 400, fracture_rate: float = 0.5,
                         image_size: int = 64, seed: int = 0, difficulty: float = 1.0) -> Path:
    """Render and write the AP pelvis phantom dataset (CLI entry point)."""
    return write_dataset(render_pelvic(n, image_size, seed, fracture_rate, difficulty), out)
