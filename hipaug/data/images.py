"""Decoding one radiograph file to a float32 array in [0, 1], and the resize to a square.

Paper step: data (Lin & Chung, TAAI 2019, read limb and pelvic radiographs); the loader in
``hipaug.data.loading`` calls these for every file.

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
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "DICOM_EXTENSIONS", "BadImageError", "read_image", "decode_image", "resize_pad"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm", ".dicom")
DICOM_EXTENSIONS = (".dcm", ".dicom")


class BadImageError(ValueError):
    """An image file that cannot be used; the message is user-facing (one line, no file name)."""


def one_line(exc: BaseException | str, limit: int = 240) -> str:
    """Collapse a message (or 'ExcType: message') to one line of at most `limit` characters."""
    text = " ".join(str(exc).split())
    if isinstance(exc, BaseException):
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_dicom(path: Path) -> bool:
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
    if is_dicom(path):
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
            raise BadImageError(f"not a readable DICOM file ({one_line(exc)})") from None
        if "PixelData" not in ds:
            raise BadImageError("not a DICOM file (no 'DICM' header and no pixel data)")
    except Exception as exc:
        raise BadImageError(f"not a readable DICOM file ({one_line(exc)})") from None
    if "PixelData" not in ds:
        raise BadImageError("DICOM file has no pixel data")
    try:
        arr = ds.pixel_array
    except Exception as exc:
        ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(ts, "name", ts)
        raise BadImageError(f"cannot decode DICOM pixel data (transfer syntax {name}; {one_line(exc)})") from None
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


def decode_reason(exc: BaseException) -> str:
    """Turn a decoder's exception into the one-line reason the loader reports for the file."""
    msg = str(exc)
    if isinstance(exc, BadImageError):
        return one_line(msg)  # our own messages are already user-facing
    if isinstance(exc, OSError) and "truncated" in msg.lower():
        return f"truncated image ({one_line(exc)})"
    return f"cannot decode image ({one_line(exc)})"
