"""Writing a dataset folder: 8-bit PNGs plus manifest.csv, assembled aside and renamed into place.

Paper step: data (Lin & Chung, TAAI 2019); phantoms, AC-GAN samples and filtered sets are all
written here, in the layout ``hipaug.data.folders`` reads back.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from hipaug.core import progress
from hipaug.data.dataset import ImageDataset, meta_frame
from hipaug.data.folders import MANIFEST_NAME
from hipaug.errors import ConfigError, DataError

__all__ = ["to_uint8", "write_image_folder", "write_dataset"]

_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")


def to_uint8(x) -> np.ndarray:
    """Map [0, 1] floats (numpy array or torch tensor) to uint8: clip, times 255, round half to even."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().clamp(0, 1).mul(255.0).round().to(torch.uint8).numpy()
    return np.rint(np.clip(np.asarray(x), 0.0, 1.0) * 255.0).astype(np.uint8)


def replace_dir(tmp: Path, out: Path) -> None:
    """Rename the finished folder `tmp` to `out`, moving an existing `out` aside first and removing it after."""
    if out.exists():
        old = out.with_name(f".{out.name}.old-{secrets.token_hex(4)}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def write_image_folder(out_dir: str | Path, images_u8: np.ndarray, rel_paths: Sequence[str],
                       manifest: pd.DataFrame, folders: Sequence[str] = ()) -> Path:
    """Write ``out_dir/<rel_path>`` PNGs (8-bit grey) and ``out_dir/manifest.csv``; return out_dir.

    images_u8: (N, H, W) uint8 (see ``to_uint8``); rel_paths: N paths relative to out_dir;
    manifest: the manifest table, written as is; folders: sub-folders to create even when empty
    (the class folders). The folder is assembled under a temporary name beside ``out_dir`` and
    renamed into place, so readers never see half a dataset. An existing dataset folder (with a
    manifest) is replaced; any other non-empty folder is refused.
    """
    from PIL import Image

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MANIFEST_NAME).exists())):
        raise ConfigError(f"out_dir={str(out)!r} exists and is not a dataset folder (no {MANIFEST_NAME}); "
                          "choose a new or empty folder")
    if not len(images_u8) == len(rel_paths) == len(manifest):
        raise DataError(f"{out}: {len(images_u8)} images, {len(rel_paths)} paths and {len(manifest)} manifest rows")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    tmp.mkdir()  # not mkdtemp: the dataset keeps the usual (umask) permissions, not 0700
    try:
        for name in folders:
            (tmp / name).mkdir(parents=True, exist_ok=True)
        for i in progress(range(len(rel_paths)), desc=f"write {out.name}", unit="img"):
            (tmp / rel_paths[i]).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images_u8[i]).save(tmp / rel_paths[i], format="PNG")
        (tmp / MANIFEST_NAME).write_bytes(manifest.to_csv(index=False).encode("utf-8"))
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _check_class_dirname(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"class name {name!r} cannot be used as a folder name")


def write_dataset(ds: ImageDataset, out_dir: str | Path) -> Path:
    """Write ``out_dir/<class>/<name>.png`` (8-bit) and ``out_dir/manifest.csv``; return out_dir.

    ``<name>`` is the stem of each ``ds.paths`` entry when those are safe and unique within a
    class (e.g. ``gan-s0-000001``), else the image index. The manifest has ``path,label,patient_id``
    + extra meta columns, paths relative. Atomic: see ``write_image_folder`` (an existing dataset
    folder is replaced, any other non-empty folder refused).
    """
    labels = ds.labels.tolist()
    width = max(6, len(str(max(len(ds) - 1, 0))))
    stems = [Path(p).stem for p in ds.paths]
    if not (all(_SAFE_STEM.fullmatch(st) for st in stems) and len(set(zip(labels, stems))) == len(stems)):
        stems = [f"{i:0{width}d}" for i in range(len(ds))]
    rel_paths = [f"{ds.class_names[y]}/{st}.png" for y, st in zip(labels, stems)]
    for c in ds.class_names:
        _check_class_dirname(c)
    frame = meta_frame(ds.meta, rel_paths, [ds.class_names[i] for i in labels], ds.patient_ids)
    return write_image_folder(out_dir, to_uint8(ds.images[:, 0]), rel_paths, frame, folders=ds.class_names)
