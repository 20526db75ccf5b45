"""The dataset object: decoded radiographs with labels, patients and metadata, in memory.

Paper step: data (Lin & Chung, TAAI 2019, train on limb radiographs and transfer to hip-fracture
detection); every stage passes images around as an ``ImageDataset``. Folders on disk become one
through ``hipaug.data.loading.load_dataset``; arrays through ``from_arrays``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hipaug.errors import DataError

__all__ = ["ImageDataset", "fingerprint_tensors", "from_arrays", "concat"]


@dataclass(frozen=True, eq=False)
class ImageDataset:
    """Decoded radiographs with labels, patients and per-image metadata."""

    images: torch.Tensor  # (N, 1, S, S) float32 in [0, 1]
    labels: torch.Tensor  # (N,) int64 indices into class_names
    class_names: tuple[str, ...]  # sorted class names
    paths: tuple[str, ...]  # file paths relative to root (or synthetic ids)
    patient_ids: tuple[str, ...]  # patient of each image; folds never split a patient
    meta: pd.DataFrame  # one row per image: path, label, patient_id and extra columns
    root: Path | None = None  # folder the images came from (None: built in memory)
    skipped: tuple[tuple[str, str], ...] = ()  # (path, reason) of files skipped by on_error="skip"
    fingerprint: str = field(default="")  # sha256 of content + labels + class names
    source: tuple[tuple[int, int, int], ...] = ()  # (height, width, bit depth) of each source file; () in memory

    @property
    def image_size(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.class_counts().items())
        return (f"ImageDataset(n={len(self)}, image_size={self.image_size}, classes=({counts}), "
                f"patients={len(set(self.patient_ids))}, skipped={len(self.skipped)}, "
                f"root={str(self.root) if self.root else None!r}, fingerprint={self.fingerprint[:12]!r})")

    def subset(self, indices) -> "ImageDataset":
        """Return the images at `indices` (integer indices or a boolean mask), same classes."""
        arr = np.asarray(indices)
        if arr.dtype == bool:
            arr = np.flatnonzero(arr)
        arr = arr.astype(np.int64).reshape(-1)
        idx = torch.from_numpy(arr)
        ii = arr.tolist()
        return finalise(replace(
            self,
            images=self.images[idx],
            labels=self.labels[idx],
            paths=tuple(self.paths[i] for i in ii),
            patient_ids=tuple(self.patient_ids[i] for i in ii),
            meta=self.meta.iloc[ii].reset_index(drop=True),
            source=tuple(self.source[i] for i in ii) if self.source else (),
            fingerprint="",
        ))

    def class_counts(self) -> dict[str, int]:
        counts = torch.bincount(self.labels, minlength=len(self.class_names)).tolist()
        return dict(zip(self.class_names, counts))


def fingerprint_tensors(images: torch.Tensor, labels: torch.Tensor, class_names) -> str:
    """Hash decoded content, labels and class names (what a model actually sees)."""
    h = hashlib.sha256()
    h.update(repr(tuple(class_names)).encode())
    h.update(repr(tuple(images.shape)).encode())
    h.update(images.detach().cpu().to(torch.float32).contiguous().numpy().tobytes())
    h.update(labels.detach().cpu().to(torch.int64).contiguous().numpy().tobytes())
    return h.hexdigest()


def finalise(ds: ImageDataset) -> ImageDataset:
    return replace(ds, fingerprint=fingerprint_tensors(ds.images, ds.labels, ds.class_names))


def meta_frame(meta: pd.DataFrame | None, paths, labels_str, patient_ids) -> pd.DataFrame:
    """Put path, label, patient_id first, then the extra columns of `meta` in their order."""
    head = pd.DataFrame({"path": list(paths), "label": list(labels_str), "patient_id": list(patient_ids)})
    if meta is None:
        return head
    extra = meta.drop(columns=[c for c in ("path", "label", "patient_id") if c in meta.columns])
    return pd.concat([head, extra.reset_index(drop=True)], axis=1)


def from_arrays(images, labels, class_names, patient_ids=None, meta=None, paths=None) -> ImageDataset:
    """Build an ImageDataset from arrays: images (N,S,S) or (N,1,S,S) in [0,1].

    Patient ids default to ``meta["patient_id"]`` when present, else to the paths (each image
    its own patient); paths default to ``meta["path"]`` when present, else ``mem/000000``...
    """
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    x = x.detach().cpu().to(torch.float32)
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[2] != x.shape[3]:
        raise DataError(f"images must be (N,S,S) or (N,1,S,S) square greyscale, got {tuple(x.shape)}")
    if x.numel() and not bool(torch.isfinite(x).all()):
        raise DataError("images contain NaN or infinite values")
    if x.numel() and (float(x.min()) < -1e-4 or float(x.max()) > 1 + 1e-4):
        raise DataError(f"images must be in [0, 1], got range [{float(x.min()):.4g}, {float(x.max()):.4g}]")
    x = x.clamp(0.0, 1.0)  # only float round-off can be outside here
    y = torch.as_tensor(np.asarray(labels).astype(np.int64).reshape(-1), dtype=torch.long)
    class_names = tuple(str(c) for c in class_names)
    if len(set(class_names)) != len(class_names):
        raise DataError(f"class_names contain duplicates: {class_names}")
    n = len(y)
    if x.shape[0] != n:
        raise DataError(f"{x.shape[0]} images but {n} labels")
    if n and (int(y.min()) < 0 or int(y.max()) >= len(class_names)):
        raise DataError(f"labels must be in 0..{len(class_names) - 1} for class_names {class_names}")
    if meta is not None:
        meta = pd.DataFrame(meta).reset_index(drop=True)
        if len(meta) != n:
            raise DataError(f"meta has {len(meta)} rows but there are {n} images")
    if paths is None:
        paths = meta["path"].astype(str).tolist() if meta is not None and "path" in meta else [f"mem/{i:06d}" for i in range(n)]
    paths = tuple(map(str, paths))
    if patient_ids is None:
        patient_ids = meta["patient_id"].astype(str).tolist() if meta is not None and "patient_id" in meta else paths
    patient_ids = tuple(map(str, patient_ids))
    if len(paths) != n or len(patient_ids) != n:
        raise DataError(f"{n} images but {len(paths)} paths and {len(patient_ids)} patient ids")
    frame = meta_frame(meta, paths, [class_names[i] for i in y.tolist()], patient_ids)
    return finalise(ImageDataset(x.contiguous(), y, class_names, paths, patient_ids, frame))


def concat(*datasets: ImageDataset) -> ImageDataset:
    """Concatenate datasets with identical class names and image size (meta columns are unioned)."""
    if len(datasets) == 1 and isinstance(datasets[0], (list, tuple)):
        datasets = tuple(datasets[0])
    if not datasets:
        raise DataError("concat needs at least one dataset")
    first = datasets[0]
    for d in datasets[1:]:
        if tuple(d.class_names) != tuple(first.class_names):
            raise DataError(f"concat: class names differ: {tuple(first.class_names)} vs {tuple(d.class_names)}")
        if d.image_size != first.image_size:
            raise DataError(f"concat: image sizes differ: {first.image_size} vs {d.image_size}")
    roots = {d.root for d in datasets}
    return finalise(ImageDataset(
        images=torch.cat([d.images for d in datasets]).contiguous(),
        labels=torch.cat([d.labels for d in datasets]),
        class_names=tuple(first.class_names),
        paths=tuple(p for d in datasets for p in d.paths),
        patient_ids=tuple(p for d in datasets for p in d.patient_ids),
        meta=pd.concat([d.meta for d in datasets], ignore_index=True),
        root=roots.pop() if len(roots) == 1 else None,
        skipped=tuple(s for d in datasets for s in d.skipped),
        source=tuple(s for d in datasets for s in d.source) if all(d.source for d in datasets) else (),
    ))
