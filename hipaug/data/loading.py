"""Loading a dataset folder: decode every listed file once, cache the tensors, check the classes.

Paper step: data (Lin & Chung, TAAI 2019); every stage reads its radiographs through
``load_dataset``. The folder layout is in ``hipaug.data.folders``, decoding in
``hipaug.data.images``.

Errors
    Every problem is a ``DataError`` with one line naming the file. ``on_error="raise"``
    (default) stops at the first bad file; ``"skip"`` skips bad FILES (corrupt, truncated,
    non-image, missing manifest path) and lists each with its reason in ``ds.skipped`` and the
    dataset card. Structural problems (missing root, no images, empty class folder, a single
    class, manifest without labels or with duplicate paths) always raise.

Cache
    ``load_dataset(..., cache=True)`` stores the decoded tensor in ``DIR/.hipaug_cache/`` (or
    ``$HIPAUG_CACHE`` when set; ``~/.cache/hipaug`` or ``$XDG_CACHE_HOME/hipaug`` when DIR is not
    writable), keyed by the loader version, Pillow/pydicom versions, image size, error policy,
    the manifest bytes and every file's path, size and mtime, so a stale cache is never used.
    Files hold only tensors and plain containers (read with ``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from hipaug.core import atomic_torch_save, check_image_size, progress, torch_load
from hipaug.data.dataset import ImageDataset, finalise
from hipaug.data.folders import MANIFEST_NAME, FolderScan, scan_folder
from hipaug.data.images import decode_reason, read_image, resize_pad
from hipaug.errors import ConfigError, DataError

__all__ = ["LOADER_VERSION", "CACHE_DIRNAME", "load_dataset"]

LOADER_VERSION = 2  # bump when decoding/resizing or the cache content changes: invalidates every cache
CACHE_DIRNAME = ".hipaug_cache"
_ON_ERROR = ("raise", "skip")


def _user_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hipaug"


def _cache_dirs(root: Path) -> list[Path]:
    """Candidate cache folders, preferred first."""
    env = os.environ.get("HIPAUG_CACHE")
    if env:
        return [Path(env).expanduser()]
    dirs = []
    if os.access(root, os.W_OK):
        dirs.append(root / CACHE_DIRNAME)
    dirs.append(_user_cache_dir())
    return dirs


def _cache_key(root: Path, scan: FolderScan, stats, image_size: int, on_error: str) -> tuple[str, str]:
    import PIL
    import pydicom

    ident = json.dumps([str(root.resolve()), image_size, on_error])
    prefix = hashlib.sha256(ident.encode()).hexdigest()[:12]
    obj = {
        "loader": LOADER_VERSION, "pillow": PIL.__version__, "pydicom": pydicom.__version__,
        "ident": ident, "layout": scan.layout, "manifest": scan.manifest_sha,
        "files": [[r, lab, st] for r, lab, st in zip(scan.rel, scan.label, stats)],
    }
    return prefix, hashlib.sha256(json.dumps(obj).encode()).hexdigest()


def _cache_read(dirs: list[Path], name: str, key: str):
    for d in dirs:
        f = d / name
        if not f.is_file():
            continue
        try:
            blob = torch_load(f)
        except Exception:  # unreadable/partial cache: decode again
            continue
        if isinstance(blob, dict) and blob.get("key") == key and blob.get("loader") == LOADER_VERSION:
            return blob
    return None


def _cache_write(dirs: list[Path], prefix: str, name: str, blob: dict) -> Path | None:
    for d in dirs:
        try:
            d.mkdir(parents=True, exist_ok=True)
            path = atomic_torch_save(blob, d / name)
        except OSError:
            continue  # read-only dataset folder: try the user cache
        for old in d.glob(f"{prefix}-*.pt"):  # older versions of the same dataset+size
            if old.name != name:
                old.unlink(missing_ok=True)
        return path
    warnings.warn(f"hipaug: could not write a decoded-image cache in any of {', '.join(map(str, dirs))}", stacklevel=3)
    return None

def _file_stats(scan: FolderScan) -> list:
    """[size, mtime_ns] of every listed file (None when it cannot be read): part of the cache key."""
    stats = []
    for f in scan.full:
        try:
            st = f.stat()
            stats.append([st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append(None)
    return stats


def _from_cache(blob: dict, scan: FolderScan):
    """(ok, images, skipped, source) from a cache entry, or None if it names files the scan lacks."""
    pos = {r: i for i, r in enumerate(scan.rel)}
    if not all(r in pos for r in blob["paths"]):
        return None  # cannot happen with a matching key; be safe anyway
    return ([pos[r] for r in blob["paths"]], blob["images"], [tuple(s) for s in blob["skipped"]],
            [tuple(s) for s in blob["source"]])


def _where(root: Path, scan: FolderScan, i: int) -> str:
    """The path of candidate `i` as the user knows it (absolute manifest paths stay absolute)."""
    p = Path(scan.rel[i])
    return str(p if p.is_absolute() else root / p)


def _decode_all(root: Path, scan: FolderScan, bad: dict, image_size: int, on_error: str):
    """Decode and resize every candidate the scan did not reject; return (ok, images, skipped, source)."""
    todo = [i for i in range(len(scan.rel)) if i not in bad]
    buf = np.empty((len(todo), image_size, image_size), dtype=np.float32)
    ok, skipped_at, source = [], dict(bad), []
    for i in progress(todo, desc=f"decode {root.name or root}", unit="img"):
        try:
            arr, bits = read_image(scan.full[i])
            img = resize_pad(arr, image_size)
        except Exception as exc:
            reason = decode_reason(exc)
            if on_error == "raise":
                raise DataError(f"{_where(root, scan, i)}: {reason}") from None
            skipped_at[i] = reason
            continue
        buf[len(ok)] = img
        ok.append(i)
        source.append((int(arr.shape[0]), int(arr.shape[1]), int(bits)))
    images = torch.from_numpy(buf[: len(ok)].copy() if len(ok) < len(todo) else buf)[:, None]
    skipped = [(scan.rel[i], skipped_at[i]) for i in sorted(skipped_at)]
    return ok, images, skipped, source


def _class_names(root: Path, scan: FolderScan, ok: list[int], skipped: list, min_classes: int) -> tuple[str, ...]:
    """The classes after skipping; DataError when one lost every image or fewer than `min_classes` remain."""
    n = len(scan.rel)
    names = tuple(c for c in scan.class_names if c)
    present = {scan.label[i] for i in ok}
    for c in names:
        if c not in present:
            mine = {scan.rel[i] for i in range(n) if scan.label[i] == c}
            why = [f"{r}: {reason}" for r, reason in skipped if r in mine]
            raise DataError(f"{root}: class '{c}' has no readable images ({len(why)} skipped, e.g. {why[0] if why else '-'})")
    if len(names) < min_classes:
        where_lbl = f"labels in {MANIFEST_NAME}" if scan.layout == "manifest" else "class folders"
        raise DataError(f"{root}: found {len(names)} class ({', '.join(repr(c) for c in names)}); need at least {min_classes} {where_lbl}")
    return names


def load_dataset(root: str | Path, image_size: int = 64, on_error: str = "raise", cache: bool = True,
                 min_classes: int = 2) -> ImageDataset:
    """Load a dataset folder (ImageFolder layout or manifest.csv) as (N,1,S,S) float32 in [0,1].

    on_error: "raise" stops at the first bad file; "skip" skips bad files and lists them in
    ``ds.skipped``. cache: reuse/store decoded tensors (see module docstring). min_classes: the
    fewest classes accepted (2 for a classifier; 1 for e.g. a folder of synthetic images).
    """
    image_size = check_image_size(image_size)
    if on_error not in _ON_ERROR:
        raise ConfigError(f"on_error={on_error!r} is not one of {', '.join(_ON_ERROR)}")
    root = Path(root).expanduser()
    scan = scan_folder(root)
    bad = dict(scan.bad)
    if bad and on_error == "raise":
        i = min(bad)
        raise DataError(f"{_where(root, scan, i)}: {bad[i]}")

    got, prefix, key, dirs = None, "", "", []
    if cache:
        prefix, key = _cache_key(root, scan, _file_stats(scan), image_size, on_error)
        dirs = _cache_dirs(root)
        blob = _cache_read(dirs, f"{prefix}-{key[:40]}.pt", key)
        got = None if blob is None else _from_cache(blob, scan)
    ok, images, skipped, source = got if got is not None else _decode_all(root, scan, bad, image_size, on_error)
    names = _class_names(root, scan, ok, skipped, min_classes)  # structural checks after skipping
    if cache and got is None:
        _cache_write(dirs, prefix, f"{prefix}-{key[:40]}.pt", {
            "format": "hipaug-data-cache", "loader": LOADER_VERSION, "key": key,
            "paths": [scan.rel[i] for i in ok], "images": images, "skipped": [list(s) for s in skipped],
            "source": [list(s) for s in source],
        })

    index = {c: j for j, c in enumerate(names)}
    labels = torch.tensor([index[scan.label[i]] for i in ok], dtype=torch.long)
    meta = scan.meta.iloc[ok].reset_index(drop=True)
    return finalise(ImageDataset(
        images=images.contiguous(), labels=labels, class_names=names,
        paths=tuple(scan.rel[i] for i in ok),
        patient_ids=tuple(meta["patient_id"].astype(str)),
        meta=meta, root=root, skipped=tuple(skipped), source=tuple(source),
    ))
