"""Dataset folders: radiographs on disk (phantom or real) as in-memory tensors.

Lin & Chung (TAAI 2019) train on limb radiographs (AC-GAN augmentation, VGG-16) and transfer to
hip-fracture detection; every stage reads its images through this module.

On-disk format (one for everything)
    ``DIR/<class_name>/**/*.png|jpg|jpeg|tif|tiff|dcm|dicom`` (ImageFolder layout; extension-less
    files are accepted when they carry the DICOM ``DICM`` magic), or ``DIR/manifest.csv`` with
    columns ``path,label`` and optional ``patient_id``, ``split`` and extra metadata columns (kept
    in ``ds.meta``). If ``manifest.csv`` exists it wins and only the files it lists are read.
    Manifest paths are relative to DIR (absolute paths allowed). Ignored on purpose: hidden
    entries (name starts with ``.``, e.g. ``.DS_Store``, the ``.hipaug_cache`` folder),
    ``Thumbs.db`` / ``desktop.ini``, and non-image files at the top level of DIR (README, ...).
    Without a ``patient_id`` column (and always in the ImageFolder layout) every image is its
    own patient: use a manifest when patients have several images, or folds will leak.

Decoding and normalisation (float32 in [0, 1], per image)
    8-bit grey /255; 16-bit grey (PNG ``I;16``, TIFF) /65535 (the stored bit depth, not the
    image's own range, so 16-bit precision survives); RGB/RGBA/palette/LA -> luma (ITU-R 601,
    alpha ignored) /255; 32-bit integer or float images: kept if already in [0, 1], else
    per-image min-max. DICOM (pydicom): Modality LUT (rescale slope/intercept or LUT sequence),
    then the first VOI LUT (sequence) or window centre/width (LINEAR, LINEAR_EXACT, SIGMOID) to
    [0, 1]; without VOI, per-image min-max of the modality values; MONOCHROME1 is inverted so
    bone is bright. Multi-frame files use the first frame.

Resize and pad
    Aspect-preserving resize so the long side is ``image_size`` (Pillow bilinear on float32,
    antialiased when shrinking), centred on a square canvas. The pad value is the median of the
    resized image's one-pixel border: radiograph backgrounds are usually near 0 but not always
    (film scans, inverted images), and a border-matched pad avoids a hard edge that a classifier
    could learn as a shortcut for the original aspect ratio. Images already ``S x S`` are not
    resampled at all.

Dataset card and its warnings
    ``dataset_card(ds)`` summarises classes, counts, patients, intensities and the source files
    (native size and bit depth of each file, recorded by the decoder and cached with the
    decoded images). Problems a real export often has are listed as warnings on the card, not
    errors (loading still works): identical images (same pixels after decoding and resizing)
    in two classes, or in one class under two patients (a copy on each side of a fold);
    patients with images in more than one class; class sizes differing more than
    ``IMBALANCE_RATIO`` (3) times; source files of more than one bit depth (e.g. 8-bit JPEG
    and 16-bit DICOM: a classifier can learn the file type instead of the fracture).

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
import io
import json
import os
import re
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .errors import ConfigError, DataError
from .utils import atomic_torch_save, atomic_write_text, check_image_size, progress, torch_load

__all__ = [
    "IMAGE_EXTENSIONS",
    "BadImageError",
    "LOADER_VERSION",
    "DatasetCard",
    "ImageDataset",
    "IMBALANCE_RATIO",
    "check_dataset",
    "concat",
    "dataset_card",
    "decode_image",
    "fingerprint_tensors",
    "from_arrays",
    "load_dataset",
    "patient_kfold",
    "patient_split",
    "read_image",
    "resize_pad",
    "write_dataset",
]

LOADER_VERSION = 2  # bump when decoding/resizing or the cache content changes: invalidates every cache
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom")
DICOM_EXTENSIONS = (".dcm", ".dicom")
MANIFEST_NAME = "manifest.csv"
CACHE_DIRNAME = ".hipaug_cache"
_IGNORED_NAMES = {"thumbs.db", "desktop.ini"}
_ON_ERROR = ("raise", "skip")
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,150}")
IMBALANCE_RATIO = 3.0  # card warning when the largest class has more than this many times the smallest's images


# --------------------------------------------------------------------------------------------
# The dataset object
# --------------------------------------------------------------------------------------------


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
        return _finalise(replace(
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


def _finalise(ds: ImageDataset) -> ImageDataset:
    return replace(ds, fingerprint=fingerprint_tensors(ds.images, ds.labels, ds.class_names))


def _meta_frame(meta: pd.DataFrame | None, paths, labels_str, patient_ids) -> pd.DataFrame:
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
    frame = _meta_frame(meta, paths, [class_names[i] for i in y.tolist()], patient_ids)
    return _finalise(ImageDataset(x.contiguous(), y, class_names, paths, patient_ids, frame))


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
    return _finalise(ImageDataset(
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


def write_dataset(ds: ImageDataset, out_dir: str | Path) -> Path:
    """Write ``out_dir/<class>/<name>.png`` (8-bit) and ``out_dir/manifest.csv``; return out_dir.

    ``<name>`` is the stem of each ``ds.paths`` entry when those are safe and unique within a
    class (e.g. ``gan-s0-000001``), else the image index. The manifest (``path,label,patient_id``
    + extra meta columns, paths relative) is written last and atomically, so a folder with a
    manifest is complete.
    """
    from PIL import Image

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    u8 = (ds.images[:, 0].clamp(0, 1) * 255.0).round().to(torch.uint8).numpy()
    labels = ds.labels.tolist()
    width = max(6, len(str(max(len(ds) - 1, 0))))
    stems = [Path(p).stem for p in ds.paths]
    if not (all(_SAFE_STEM.fullmatch(st) for st in stems) and len(set(zip(labels, stems))) == len(stems)):
        stems = [f"{i:0{width}d}" for i in range(len(ds))]
    rel_paths = [f"{ds.class_names[y]}/{st}.png" for y, st in zip(labels, stems)]
    for c in ds.class_names:
        _check_class_dirname(c)
        (out / c).mkdir(exist_ok=True)
    for i in progress(range(len(ds)), desc=f"write {out.name}", unit="img"):
        Image.fromarray(u8[i]).save(out / rel_paths[i])
    frame = _meta_frame(ds.meta, rel_paths, [ds.class_names[i] for i in labels], ds.patient_ids)
    atomic_write_text(out / MANIFEST_NAME, frame.to_csv(index=False))
    return out


def _check_class_dirname(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or name.startswith("."):
        raise DataError(f"class name {name!r} cannot be used as a folder name")


# --------------------------------------------------------------------------------------------
# Decoding
# --------------------------------------------------------------------------------------------


class BadImageError(ValueError):
    """An image file that cannot be used; the message is user-facing (one line, no file name)."""


def _one_line(exc: BaseException | str, limit: int = 240) -> str:
    """Collapse a message (or 'ExcType: message') to one line of at most `limit` characters."""
    text = " ".join(str(exc).split())
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_dicom(path: Path) -> bool:
    if path.suffix.lower() in DICOM_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_image(path: str | Path) -> tuple[np.ndarray, int]:
    """Decode one image file; return a float32 (H, W) array in [0, 1] and the stored bit depth.

    The array is at native resolution; the bit depth is that of one stored sample (8 for 8-bit
    PNG/JPEG and RGB, 16 for 16-bit PNG/TIFF, BitsStored for DICOM, 32 for integer/float TIFF).
    Raises BadImageError (a ValueError), OSError or any decoder error for unreadable files; the
    loader turns those into one-line DataErrors naming the file.
    """
    path = Path(path)
    if _is_dicom(path):
        return _decode_dicom(path)
    return _decode_pillow(path)


def decode_image(path: str | Path) -> np.ndarray:
    """Decode one image file to a float32 (H, W) array in [0, 1] at its native resolution."""
    return read_image(path)[0]


def _minmax(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.float64, copy=False)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.float32)
    return ((a - lo) / (hi - lo)).astype(np.float32)


def _decode_pillow(path: Path) -> tuple[np.ndarray, int]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        im = Image.open(path)
    except UnidentifiedImageError:
        raise BadImageError("not a readable image (unknown or corrupt format)") from None
    with im:
        im.load()  # forces full decode: truncated/corrupt data fails here, not later
        if im.format == "JPEG":
            im = ImageOps.exif_transpose(im)
        mode = im.mode
        if mode == "L":
            return np.asarray(im, dtype=np.float32) / 255.0, 8
        if mode.startswith("I;16"):
            return np.asarray(im).astype(np.float32) / 65535.0, 16
        if mode == "I":
            a = np.asarray(im)
            if im.format == "PNG":  # older Pillow opens 16-bit PNGs as 'I'
                return a.astype(np.float32) / 65535.0, 16
            return _minmax(a), 32
        if mode == "F":
            a = np.asarray(im, dtype=np.float32)
            if not np.isfinite(a).all():
                raise BadImageError("float image contains NaN or infinite values")
            if a.size and a.min() >= 0.0 and a.max() <= 1.0:
                return a.copy(), 32
            return _minmax(a), 32
        if mode in ("1", "P", "PA", "LA", "La", "RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            grey = im.convert("L") if mode in ("1", "P", "PA", "LA", "La", "RGB", "RGBA", "RGBX") else im.convert("RGB").convert("L")
            return np.asarray(grey, dtype=np.float32) / 255.0, 1 if mode == "1" else 8
        raise BadImageError(f"unsupported image mode {mode!r}")


def _dicom_window(x: np.ndarray, ds) -> np.ndarray:
    """Apply the first window centre/width (PS3.3 C.11.2.1.2) mapping to [0, 1]."""
    from pydicom.multival import MultiValue

    def first(v) -> float:  # multi-valued: several alternative windows, use the first
        return float(v[0]) if isinstance(v, (list, tuple, MultiValue)) else float(v)

    c, w = first(ds.WindowCenter), first(ds.WindowWidth)
    func = str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if w <= 0:
        raise BadImageError(f"WindowWidth {w:g} must be positive")
    if func == "LINEAR_EXACT":
        y = (x - c) / w + 0.5
    elif func == "SIGMOID":
        y = 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    else:  # LINEAR (the default); width 1 is a threshold
        w1 = max(w - 1.0, 1e-6)
        y = (x - (c - 0.5)) / w1 + 0.5
    return np.clip(y, 0.0, 1.0)


def _decode_dicom(path: Path) -> tuple[np.ndarray, int]:
    import pydicom

    try:
        from pydicom.pixels import apply_modality_lut, apply_voi
    except ImportError:  # pydicom < 3
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi  # type: ignore

    try:
        ds = pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError:
        try:  # some writers omit the 128-byte preamble and 'DICM' magic
            ds = pydicom.dcmread(path, force=True)
        except Exception as exc:
            raise BadImageError(f"not a readable DICOM file ({_one_line(exc)})") from None
        if "PixelData" not in ds:
            raise BadImageError("not a DICOM file (no 'DICM' header and no pixel data)")
    except Exception as exc:
        raise BadImageError(f"not a readable DICOM file ({_one_line(exc)})") from None
    if "PixelData" not in ds:
        raise BadImageError("DICOM file has no pixel data")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", ts)
        raise BadImageError(f"cannot decode DICOM pixel data (transfer syntax {name}; {_one_line(exc)})") from None
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    spp = int(ds.get("SamplesPerPixel", 1) or 1)
    bits = int(ds.get("BitsStored", 0) or ds.get("BitsAllocated", 0) or 8 * arr.dtype.itemsize)
    if frames > 1:
        arr = arr[0]  # first frame only (documented)
    if spp == 3:  # pydicom returns RGB for colour data; luma like Pillow's 'L'
        rgb = arr.astype(np.float64) / float(2**bits - 1)
        return np.clip(rgb @ np.array([0.299, 0.587, 0.114]), 0, 1).astype(np.float32), bits
    if arr.ndim != 2:
        raise BadImageError(f"unexpected DICOM pixel array shape {tuple(arr.shape)}")
    x = apply_modality_lut(arr, ds)
    if ds.get("VOILUTSequence"):
        item = ds.VOILUTSequence[0]
        if np.issubdtype(x.dtype, np.floating) and np.all(np.mod(x, 1) == 0):
            x = x.astype(np.int64)  # LUT lookup wants integer input values
        y = apply_voi(x, ds, 0).astype(np.float64)
        top = float(2 ** int(item.LUTDescriptor[2]) - 1)
        top = max(top, float(y.max()) if y.size else 1.0)
        y = y / top
    elif "WindowCenter" in ds and "WindowWidth" in ds and ds.WindowCenter is not None and ds.WindowWidth is not None:
        y = _dicom_window(x.astype(np.float64), ds)
    else:
        y = _minmax(x)
    y = np.asarray(y, dtype=np.float32)
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper() == "MONOCHROME1":
        y = 1.0 - y  # MONOCHROME1: low values are bright; invert so bone is bright
    return y, bits


def resize_pad(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize (H, W) keeping aspect so the long side is `size`, then pad to (size, size).

    The pad value is the median of the resized image's one-pixel border (see module docstring).
    """
    from PIL import Image

    a = np.asarray(arr, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise BadImageError(f"expected a non-empty 2-D image, got shape {tuple(a.shape)}")
    h, w = a.shape
    if h == size and w == size:
        return a
    scale = size / max(h, w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    if (nh, nw) != (h, w):
        # Pillow resizes with a filter support scaled by the reduction factor: antialiased.
        a = np.asarray(Image.fromarray(np.ascontiguousarray(a)).resize((nw, nh), Image.Resampling.BILINEAR),
                       dtype=np.float32)
        a = np.clip(a, 0.0, 1.0)
    if (nh, nw) == (size, size):
        return np.ascontiguousarray(a)
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    out = np.full((size, size), float(np.median(border)), dtype=np.float32)
    top, left = (size - nh) // 2, (size - nw) // 2
    out[top:top + nh, left:left + nw] = a
    return out


# --------------------------------------------------------------------------------------------
# Scanning a dataset folder
# --------------------------------------------------------------------------------------------


@dataclass
class _Scan:
    layout: str  # "manifest" | "folder"
    class_names: tuple[str, ...]  # sorted
    rel: list[str]  # candidate images (relative posix path, or absolute for outside root)
    full: list[Path]
    label: list[str]
    meta: pd.DataFrame  # one row per candidate, aligned with rel
    bad: list[tuple[int, str]]  # (candidate index, reason) found while scanning
    manifest_sha: str = ""


def _hidden(rel_parts) -> bool:
    return any(p.startswith(".") or p.lower() in _IGNORED_NAMES for p in rel_parts)


def _scan_folder(root: Path) -> _Scan:
    class_dirs, loose = [], []
    for p in sorted(root.iterdir()):
        if _hidden([p.name]):
            continue
        if p.is_dir():
            class_dirs.append(p)
        elif p.suffix.lower() in IMAGE_EXTENSIONS:
            loose.append(p)
    if not class_dirs:
        if loose:
            raise DataError(f"{root}: images must be in class folders ({root}/<class>/*.png) or listed in {MANIFEST_NAME}; found {len(loose)} loose image(s) such as {loose[0].name}")
        raise DataError(f"{root}: no class folders and no {MANIFEST_NAME}; expected {root}/<class>/*.png")
    rel, full, label, bad = [], [], [], []
    for p in loose:  # an image outside any class has no label: bad file, never silently ignored
        bad.append((len(rel), "image outside a class folder (no label)"))
        rel.append(p.name), full.append(p), label.append("")
    for d in class_dirs:
        files = []
        for dirpath, dirnames, filenames in os.walk(d, followlinks=True):
            dirnames[:] = sorted(n for n in dirnames if not _hidden([n]))
            files.extend(Path(dirpath) / n for n in sorted(filenames) if not _hidden([n]))
        if not files:
            raise DataError(f"{d}: class folder is empty (hidden files are ignored)")
        for f in files:
            r = f.relative_to(root).as_posix()
            ext = f.suffix.lower()
            if ext not in IMAGE_EXTENSIONS and not (ext == "" and _is_dicom(f)):
                bad.append((len(rel), f"not an image file (extension {ext or 'none'!r}; expected {', '.join(IMAGE_EXTENSIONS)})"))
            rel.append(r), full.append(f), label.append(d.name)
    names = tuple(sorted(d.name for d in class_dirs))
    meta = pd.DataFrame({"path": rel, "label": label, "patient_id": rel})
    return _Scan("folder", names, rel, full, label, meta, bad)


def _scan_manifest(root: Path) -> _Scan:
    mpath = root / MANIFEST_NAME
    try:
        raw = mpath.read_bytes()
    except OSError as exc:
        raise DataError(f"{mpath}: cannot read ({_one_line(exc)})") from None
    try:
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{mpath}: file is empty; expected a header 'path,label[,patient_id,...]'") from None
    except Exception as exc:
        raise DataError(f"{mpath}: cannot parse CSV ({_one_line(exc)})") from None
    df.columns = [str(c).strip() for c in df.columns]
    if len(set(df.columns)) != len(df.columns):
        raise DataError(f"{mpath}: duplicate column names in header {list(df.columns)}")
    for col in ("path", "label"):
        if col not in df.columns:
            raise DataError(f"{mpath}: no '{col}' column (columns: {', '.join(df.columns)}); expected 'path,label[,patient_id,...]'")
    if len(df) == 0:
        raise DataError(f"{mpath}: no rows; the manifest lists no images")
    # Extra columns: let pandas infer numbers/bools again (they were read as text).
    extra = [c for c in df.columns if c not in ("path", "label", "patient_id")]
    if extra:
        typed = pd.read_csv(io.BytesIO(raw), keep_default_na=False, na_values=[""], skipinitialspace=True,
                            dtype={c: str for c in ("path", "label", "patient_id")})
        typed.columns = [str(c).strip() for c in typed.columns]
        df[extra] = typed[extra]
    rel, full, label, pids, bad, seen = [], [], [], [], [], {}
    has_pid = "patient_id" in df.columns
    for i in range(len(df)):
        line = i + 2
        p, lab = df.at[i, "path"], df.at[i, "label"]
        if pd.isna(p) or not str(p).strip():
            raise DataError(f"{mpath} line {line}: empty path")
        p = str(p).strip()
        if pd.isna(lab) or not str(lab).strip():
            raise DataError(f"{mpath} line {line}: empty label for {p}")
        lab = str(lab).strip()
        if has_pid:
            pid = df.at[i, "patient_id"]
            if pd.isna(pid) or not str(pid).strip():
                raise DataError(f"{mpath} line {line}: empty patient_id for {p}")
            pid = str(pid).strip()
        pp = Path(p)
        f = pp if pp.is_absolute() else root / pp
        key = os.path.normpath(str(f))
        if key in seen:
            raise DataError(f"{mpath}: duplicate path {p} (lines {seen[key]} and {line})")
        seen[key] = line
        r = pp.as_posix() if pp.is_absolute() else Path(os.path.normpath(p)).as_posix()
        if not f.exists():
            bad.append((len(rel), f"does not exist (listed in {MANIFEST_NAME} line {line})"))
        elif f.is_dir():
            bad.append((len(rel), f"is a folder, not an image file (listed in {MANIFEST_NAME} line {line})"))
        rel.append(r), full.append(f), label.append(lab), pids.append(pid if has_pid else r)
    meta = df.copy()
    meta["path"], meta["label"] = rel, label
    meta = _meta_frame(meta, rel, label, pids)
    return _Scan("manifest", tuple(sorted(set(label))), rel, full, label, meta, bad,
                 manifest_sha=hashlib.sha256(raw).hexdigest())


def _scan(root: Path) -> _Scan:
    if not root.exists():
        raise DataError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected a dataset folder ({root}/<class>/*.png or {MANIFEST_NAME})")
    return _scan_manifest(root) if (root / MANIFEST_NAME).is_file() else _scan_folder(root)


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


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


def _cache_key(root: Path, scan: _Scan, stats, image_size: int, on_error: str) -> tuple[str, str]:
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


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


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
    scan = _scan(root)
    n = len(scan.rel)

    def where(i: int) -> str:
        p = Path(scan.rel[i])
        return str(p if p.is_absolute() else root / p)

    bad = dict(scan.bad)
    if bad and on_error == "raise":
        i = min(bad)
        raise DataError(f"{where(i)}: {bad[i]}")

    stats = []
    for i, f in enumerate(scan.full):
        try:
            st = f.stat()
            stats.append([st.st_size, st.st_mtime_ns])
        except OSError:
            stats.append(None)

    blob, prefix, key, dirs = None, "", "", []
    if cache:
        prefix, key = _cache_key(root, scan, stats, image_size, on_error)
        dirs = _cache_dirs(root)
        blob = _cache_read(dirs, f"{prefix}-{key[:40]}.pt", key)
        pos = {r: i for i, r in enumerate(scan.rel)}
        if blob is not None and not all(r in pos for r in blob["paths"]):
            blob = None  # cannot happen with a matching key; be safe anyway

    if blob is not None:
        ok = [pos[r] for r in blob["paths"]]
        images = blob["images"]
        skipped = [tuple(s) for s in blob["skipped"]]
        source = [tuple(s) for s in blob["source"]]
    else:
        todo = [i for i in range(n) if i not in bad]
        buf = np.empty((len(todo), image_size, image_size), dtype=np.float32)
        ok, skipped_at, source = [], dict(bad), []
        for i in progress(todo, desc=f"decode {root.name or root}", unit="img"):
            try:
                arr, bits = read_image(scan.full[i])
                img = resize_pad(arr, image_size)
            except Exception as exc:
                reason = _decode_reason(exc)
                if on_error == "raise":
                    raise DataError(f"{where(i)}: {reason}") from None
                skipped_at[i] = reason
                continue
            buf[len(ok)] = img
            ok.append(i)
            source.append((int(arr.shape[0]), int(arr.shape[1]), int(bits)))
        images = torch.from_numpy(buf[: len(ok)].copy() if len(ok) < len(todo) else buf)[:, None]
        skipped = [(scan.rel[i], skipped_at[i]) for i in sorted(skipped_at)]

    # Structural checks after skipping: every class keeps at least one image.
    labels_str = [scan.label[i] for i in ok]
    names = tuple(c for c in scan.class_names if c)
    present = set(labels_str)
    for c in names:
        if c not in present:
            mine = {scan.rel[i] for i in range(n) if scan.label[i] == c}
            why = [f"{r}: {reason}" for r, reason in skipped if r in mine]
            raise DataError(f"{root}: class '{c}' has no readable images ({len(why)} skipped, e.g. {why[0] if why else '-'})")
    if len(names) < min_classes:
        where_lbl = f"labels in {MANIFEST_NAME}" if scan.layout == "manifest" else "class folders"
        raise DataError(f"{root}: found {len(names)} class ({', '.join(repr(c) for c in names)}); need at least {min_classes} {where_lbl}")

    if cache and blob is None:
        _cache_write(dirs, prefix, f"{prefix}-{key[:40]}.pt", {
            "format": "hipaug-data-cache", "loader": LOADER_VERSION, "key": key,
            "paths": [scan.rel[i] for i in ok], "images": images, "skipped": [list(s) for s in skipped],
            "source": [list(s) for s in source],
        })

    index = {c: j for j, c in enumerate(names)}
    labels = torch.tensor([index[c] for c in labels_str], dtype=torch.long)
    meta = scan.meta.iloc[ok].reset_index(drop=True)
    return _finalise(ImageDataset(
        images=images.contiguous(), labels=labels, class_names=names,
        paths=tuple(scan.rel[i] for i in ok),
        patient_ids=tuple(meta["patient_id"].astype(str)),
        meta=meta, root=root, skipped=tuple(skipped), source=tuple(source),
    ))


def _decode_reason(exc: BaseException) -> str:
    msg = str(exc)
    if isinstance(exc, BadImageError):
        return _one_line(msg)  # our own messages are already user-facing
    if isinstance(exc, OSError) and "truncated" in msg.lower():
        return f"truncated image ({_one_line(exc)})"
    return f"cannot decode image ({_one_line(exc)})"


# --------------------------------------------------------------------------------------------
# Patient-level splits
# --------------------------------------------------------------------------------------------


def _check_patients_per_class(ds: ImageDataset, n_splits: int, what: str) -> None:
    y = ds.labels.tolist()
    for c, name in enumerate(ds.class_names):
        pats = {p for p, yy in zip(ds.patient_ids, y) if yy == c}
        if len(pats) < n_splits:
            raise DataError(f"class '{name}' has {len(pats)} patient(s), fewer than {what}; "
                            f"add data or lower the number of folds")


def _group_folds(ds: ImageDataset, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedGroupKFold

    y = ds.labels.numpy()
    groups = np.asarray(ds.patient_ids, dtype=object)
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=int(seed))
    folds = []
    for tr, te in cv.split(np.zeros((len(y), 1)), y, groups):
        if len(te) == 0 or len(tr) == 0:
            raise DataError(f"patient split produced an empty fold with {n_splits} folds; too few patients")
        folds.append((np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)))
    return folds


def patient_kfold(ds: ImageDataset, k: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """K folds (train_idx, test_idx), stratified by label, grouped by patient.

    scikit-learn StratifiedGroupKFold(shuffle=True, random_state=seed): no patient is in two
    test folds and every image is in exactly one test fold.
    """
    k = int(k)
    if k < 2:
        raise ConfigError(f"k={k} folds: need at least 2")
    _check_patients_per_class(ds, k, f"k={k} folds")
    folds = _group_folds(ds, k, seed)
    counts = np.bincount(np.concatenate([te for _, te in folds]), minlength=len(ds))
    if not np.all(counts == 1):  # guard the contract
        raise DataError("patient_kfold: internal error, an image is not in exactly one test fold")
    return folds


def patient_split(ds: ImageDataset, val_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One (train_idx, val_idx) split, stratified by label and grouped by patient.

    Takes the first fold of StratifiedGroupKFold(n_splits=round(1/val_fraction), shuffle=True,
    random_state=seed), so the validation share is about 1/n_splits of the images.
    """
    vf = float(val_fraction)
    if not 0.0 < vf <= 0.5:
        raise ConfigError(f"val_fraction={val_fraction} must be in (0, 0.5]")
    n_splits = max(2, int(round(1.0 / vf)))
    _check_patients_per_class(ds, n_splits, f"the {n_splits} groups needed for val_fraction={vf:g}")
    return _group_folds(ds, n_splits, seed)[0]


# --------------------------------------------------------------------------------------------
# Dataset card
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetCard:
    """What a dataset contains: counts, patients, intensities, source files, skipped files, warnings."""

    root: str | None  # dataset folder (None: built in memory)
    n_images: int  # images loaded
    image_size: int  # side S of the square (S, S) images
    class_counts: dict[str, int]  # images per class
    n_patients: int  # distinct patient ids
    images_per_patient: dict[str, float]  # min / median / mean / max
    patients_per_class: dict[str, int]  # distinct patients with at least one image of the class
    intensity: dict[str, float]  # mean / sd / min / max over all pixels
    class_mean_intensity: dict[str, float]  # mean pixel value per class
    meta_columns: tuple[str, ...]  # columns of ds.meta
    split_counts: dict[str, int]  # images per value of a 'split' column (empty if none)
    skipped: tuple[tuple[str, str], ...]  # (path, reason) of skipped files
    fingerprint: str  # sha256 of content + labels + class names
    source_sizes: dict[str, int] = field(default_factory=dict)  # files per native size "HxW", most common first
    bit_depths: dict[int, int] = field(default_factory=dict)  # files per stored bit depth (both empty: in memory)
    warnings: tuple[str, ...] = ()  # problems worth a look before training; loading still works

    def to_dict(self) -> dict:
        d = asdict(self)
        d["meta_columns"] = list(self.meta_columns)
        d["skipped"] = [{"path": p, "reason": r} for p, r in self.skipped]
        d["warnings"] = list(self.warnings)
        return d

    def _source_text(self) -> str:
        n = sum(self.source_sizes.values())
        sizes = self.source_sizes
        if len(sizes) <= 3:
            size_text = ", ".join(f"{k} {v}" for k, v in sizes.items())
        else:  # real exports have many sizes: give the range and the most common
            hw = np.array([[int(v) for v in k.split("x")] for k in sizes])
            top, k = next(iter(sizes.items()))
            size_text = (f"{len(sizes)} sizes, height {hw[:, 0].min()}-{hw[:, 0].max()}, "
                         f"width {hw[:, 1].min()}-{hw[:, 1].max()}, most common {top} {k}")
        bits = ", ".join(f"{b}-bit {v}" for b, v in self.bit_depths.items())
        return f"{n} file(s); size (h x w): {size_text}; bit depth: {bits}"

    def _rows(self) -> list[tuple[str, str]]:
        ipp = self.images_per_patient
        it = self.intensity
        rows = [
            ("dataset", self.root or "(in memory)"),
            ("images", f"{self.n_images} ({self.image_size}x{self.image_size} greyscale)"),
        ]
        if self.source_sizes:
            rows.append(("source files", self._source_text()))
        rows += [
            ("classes", ", ".join(f"{c} {n}" for c, n in self.class_counts.items())),
            ("patients", f"{self.n_patients} (images per patient: min {ipp['min']:g}, median {ipp['median']:g}, "
                         f"mean {ipp['mean']:.2f}, max {ipp['max']:g}); per class: "
                         + ", ".join(f"{c} {n}" for c, n in self.patients_per_class.items())),
            ("intensity", f"mean {it['mean']:.3f}, sd {it['sd']:.3f}, min {it['min']:.3f}, max {it['max']:.3f}; "
                          "class mean: " + ", ".join(f"{c} {v:.3f}" for c, v in self.class_mean_intensity.items())),
            ("metadata", ", ".join(self.meta_columns)),
        ]
        if self.split_counts:
            rows.append(("splits", ", ".join(f"{s} {n}" for s, n in self.split_counts.items())))
        rows.append(("skipped", f"{len(self.skipped)} file(s)"))
        rows.append(("warnings", str(len(self.warnings)) if self.warnings else "none"))
        rows.append(("fingerprint", self.fingerprint[:12]))
        return rows

    def to_text(self) -> str:
        rows = self._rows()
        w = max(len(k) for k, _ in rows)
        lines = [f"{k:<{w}}  {v}" for k, v in rows]
        if self.skipped:
            lines += ["skipped files:"] + [f"  - {p}: {r}" for p, r in self.skipped]
        if self.warnings:
            lines += ["warnings:"] + [f"  - {m}" for m in self.warnings]
        return "\n".join(lines)

    def to_markdown(self) -> str:
        def esc(s: str) -> str:
            return str(s).replace("|", "\\|")

        lines = ["| field | value |", "|---|---|"]
        lines += [f"| {k} | {esc(v)} |" for k, v in self._rows()]
        lines += ["", "| class | images | patients | mean intensity |", "|---|---:|---:|---:|"]
        lines += [f"| {esc(c)} | {n} | {self.patients_per_class.get(c, 0)} | {self.class_mean_intensity.get(c, float('nan')):.3f} |"
                  for c, n in self.class_counts.items()]
        if self.skipped:
            lines += ["", "Skipped files:", ""] + [f"- `{esc(p)}`: {esc(r)}" for p, r in self.skipped]
        if self.warnings:
            lines += ["", "**Warnings** (loading still works; worth a look before training):", ""]
            lines += [f"- {m}" for m in self.warnings]
        return "\n".join(lines) + "\n"


def _by_class(counts: Counter, class_names) -> str:
    """'a 3, b 1' in class order for a Counter of label indices."""
    return ", ".join(f"{class_names[c]} {counts[c]}" for c in sorted(counts))


def _card_warnings(ds: ImageDataset) -> list[str]:
    """The problems a real export often has (see the module docstring), one line each."""
    out = []
    names, paths, pids = ds.class_names, ds.paths, ds.patient_ids
    y = ds.labels.tolist()
    n = len(ds)

    # Identical images: the same decoded, resized pixels (a copied file or a re-export).
    groups: dict[bytes, list[int]] = {}
    flat = ds.images.detach().cpu().reshape(n, -1).contiguous().numpy() if n else np.zeros((0, 0), np.float32)
    for i in range(n):
        groups.setdefault(hashlib.blake2b(flat[i].tobytes(), digest_size=16).digest(), []).append(i)
    cross, leak = [], []
    for idx in groups.values():
        first = idx[0]
        other = next((j for j in idx[1:] if y[j] != y[first]), None)
        if other is not None:
            cross.append((first, other))
            continue
        other = next((j for j in idx[1:] if pids[j] != pids[first]), None)
        if other is not None:
            leak.append((first, other))
    if cross:
        i, j = cross[0]
        out.append(f"identical images in two classes ({len(cross)} case(s)), e.g. {paths[i]} ({names[y[i]]}) and "
                   f"{paths[j]} ({names[y[j]]}): one label is wrong or a file was copied; keep one copy")
    if leak:
        i, j = leak[0]
        out.append(f"identical images under different patients ({len(leak)} case(s)), e.g. {paths[i]} and {paths[j]} "
                   f"({names[y[i]]}): the copies can fall on both sides of a fold; keep one copy or give them one patient_id")

    # Patients in several classes (only possible when patients have several images).
    classes_of: dict[str, set[int]] = {}
    for p, c in zip(pids, y):
        classes_of.setdefault(p, set()).add(c)
    multi = [p for p, cs in classes_of.items() if len(cs) > 1]
    if multi:
        p = multi[0]
        out.append(f"{len(multi)} patient(s) have images in more than one class, e.g. patient {p}: "
                   f"{', '.join(names[c] for c in sorted(classes_of[p]))}; expected when classes are body parts, "
                   "otherwise check the labels")

    # Class imbalance.
    counts = ds.class_counts()
    if len(counts) >= 2:
        big, small = max(counts, key=counts.get), min(counts, key=counts.get)
        if counts[small] == 0:
            out.append(f"class {small} has no images")
        elif counts[big] / counts[small] > IMBALANCE_RATIO:
            out.append(f"class sizes differ {counts[big] / counts[small]:.1f}-fold ({big} {counts[big]}, {small} "
                       f"{counts[small]}; warned above {IMBALANCE_RATIO:g}): training sees the small class rarely "
                       "and accuracy mostly reflects the large one")

    # Mixed bit depths: classes exported differently are a shortcut a classifier can learn.
    if ds.source:
        depth = [s[2] for s in ds.source]
        if len(set(depth)) > 1:
            parts = []
            for b in sorted(set(depth)):
                idx = [i for i, d in enumerate(depth) if d == b]
                parts.append(f"{b}-bit {len(idx)} ({_by_class(Counter(y[i] for i in idx), names)}; e.g. {paths[idx[0]]})")
            out.append("mixed bit depths of the source files: " + "; ".join(parts)
                       + ": if classes come from different kinds of file, a classifier can learn the file type "
                       "instead of the fracture")
    return out


def dataset_card(ds: ImageDataset) -> DatasetCard:
    """Summarise a dataset (counts, patients, intensities, source files, skipped files, warnings)."""
    x = ds.images
    n = len(ds)
    y = ds.labels
    if n:
        flat = x.reshape(n, -1).to(torch.float64)
        sd, mean = torch.std_mean(flat, unbiased=False)
        intensity = {"mean": float(mean), "sd": float(sd), "min": float(x.min()), "max": float(x.max())}
        per_image = flat.mean(dim=1)
        class_mean = {c: float(per_image[y == j].mean()) if bool((y == j).any()) else float("nan")
                      for j, c in enumerate(ds.class_names)}
    else:
        intensity = {k: float("nan") for k in ("mean", "sd", "min", "max")}
        class_mean = {c: float("nan") for c in ds.class_names}
    per_patient = pd.Series(ds.patient_ids, dtype=object).value_counts() if n else pd.Series(dtype=int)
    ipp = ({"min": float(per_patient.min()), "median": float(per_patient.median()),
            "mean": float(per_patient.mean()), "max": float(per_patient.max())} if n else
           {k: float("nan") for k in ("min", "median", "mean", "max")})
    ylist = y.tolist()
    ppc = {c: len({p for p, yy in zip(ds.patient_ids, ylist) if yy == j}) for j, c in enumerate(ds.class_names)}
    splits = {}
    if "split" in ds.meta.columns:
        splits = {str(k): int(v) for k, v in ds.meta["split"].astype(str).value_counts(sort=False).sort_index().items()}
    sizes = dict(Counter(f"{h}x{w}" for h, w, _ in ds.source).most_common())
    depths = dict(sorted(Counter(b for _, _, b in ds.source).items()))
    return DatasetCard(
        root=str(ds.root) if ds.root is not None else None,
        n_images=n, image_size=ds.image_size, class_counts=ds.class_counts(),
        n_patients=len(set(ds.patient_ids)), images_per_patient=ipp, patients_per_class=ppc,
        intensity=intensity, class_mean_intensity=class_mean,
        meta_columns=tuple(map(str, ds.meta.columns)), split_counts=splits,
        skipped=tuple((str(p), str(r)) for p, r in ds.skipped),
        fingerprint=ds.fingerprint or fingerprint_tensors(ds.images, ds.labels, ds.class_names),
        source_sizes=sizes, bit_depths=depths, warnings=tuple(_card_warnings(ds)),
    )


def check_dataset(root: str | Path, image_size: int = 64, on_error: str = "raise",
                  positive_class: str | None = None) -> DatasetCard:
    """Decode every image of a dataset folder (no cache) and return its card; DataError if unusable.

    on_error="skip" lists every bad file in the card instead of stopping at the first one.
    positive_class: check the folder as a pelvic set (exactly two classes, one of them this).
    """
    ds = load_dataset(root, image_size=image_size, on_error=on_error, cache=False)
    if positive_class is not None:
        from .transfer import check_pelvic  # the one pelvic rule, shared with the pipeline

        try:
            check_pelvic(ds, positive_class)
        except DataError as exc:
            msg = str(exc)
            raise DataError(msg if str(ds.root) in msg else f"{ds.root}: {msg}") from None
    return dataset_card(ds)
