"""FracAtlas defects: decode every image file once and find what is wrong with each file and row.

Paper step: data (the public limb set standing in for Lin & Chung's private radiographs, TAAI 2019).
``hipaug.data.fracatlas`` runs the checks and writes their report, one line per finding; this module
says what each check looks for (``KINDS``) and applies the label and duplicate rules.

What is checked
    Every image file is read once: its bytes (sha256), its PIL mode, and a full decode by the
    decoder the loaders use (``hipaug.data.read_image``, which calls ``Image.load()``: truncated
    JPEG data fails there), then its ``THUMB_SIZE`` x ``THUMB_SIZE`` thumbnail. Counts and file
    lists are computed from the files, never typed.

Label rule (``LABEL_RULE``)
    An image's label has three sources in the release: its folder (``images/Fractured`` or
    ``images/Non_fractured``), the ``fractured`` flag and ``fracture_count``. When they
    disagree (or the folder names no label, or the image is in both folders) no source is
    trusted: the image is left out of both sets and listed.

Duplicate rule (``DUPLICATE_RULE``)
    Files with the same thumbnail (identical decoded pixels at ``THUMB_SIZE``; byte-identical
    files always are; unreadable files by their bytes) form a group. Among the members the import would use, the one
    with the lowest image_id (FracAtlas numbers its images in order: copies come later) is kept
    and the others are left out (a copy on each side of a fold inflates every score); when the
    members would land in different classes, all are left out. Every other member is reported
    as a byte or a pixel duplicate of the kept one (or of the group's first file).
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from hipaug.core import progress
from hipaug.data.fracatlas_release import CSV_NAME, FOLDER_LABELS, PART_FLAGS, Defect, Inventory
from hipaug.data.images import decode_reason, read_image, resize_pad
from hipaug.data.writer import to_uint8

__all__ = ["KINDS", "THUMB_SIZE", "LABEL_RULE", "DUPLICATE_RULE", "FileScan", "scan_files", "file_findings",
           "label_findings", "part_flag_findings", "duplicate_findings", "box_scales", "size_summary"]

THUMB_SIZE = 32  # side of the thumbnail whose pixels identify duplicates
LABEL_RULE = ("an image whose folder, `fractured` flag and `fracture_count` disagree is left out of both sets "
              "(no source is trusted over the others)")
DUPLICATE_RULE = ("of byte- or pixel-identical images the one with the lowest image_id is kept, the others are left out; "
                  "when the copies would land in different classes, all are left out")
KINDS = {  # kind -> what it finds (the report's summary shows each with its count, in this order)
    "unreadable": "truncated or corrupt image: the full decode fails",
    "missing_image": f"row of {CSV_NAME} naming an image that is not there",
    "unlisted_image": f"image file with no row of {CSV_NAME}",
    "bad_row": f"row of {CSV_NAME} with an invalid image_id or flag",
    "duplicate_row": f"image_id on several rows of {CSV_NAME}",
    "label_disagreement": "folder, `fractured` flag and `fracture_count` disagree",
    "duplicate_bytes": "byte-identical to another image",
    "duplicate_pixels": f"identical {THUMB_SIZE}x{THUMB_SIZE} thumbnail, other bytes",
    "part_flags": "`mixed` flag disagrees with the part flags, or no part flag",
    "annotation": f"COCO boxes disagree with {CSV_NAME} or the stored image",
    "jpeg_end": "JPEG does not end at its end-of-image marker (decodes in full)",
    "mode": "PIL mode other than the majority's (decoded to grey like every file)",
}


@dataclass(frozen=True)
class FileScan:
    """What one image file is: bytes, PIL mode, decoded size, and whether it decodes at all."""

    rel: str  # path relative to the release folder ("images/<folder>/<name>")
    size: int  # bytes on disk
    sha256: str  # of the bytes
    mode: str  # PIL mode from the header ("" when not an image)
    width: int  # decoded width, EXIF orientation applied (0 when unreadable)
    height: int  # decoded height (0 when unreadable)
    bits: int  # stored bit depth (0 when unreadable)
    error: str  # why the full decode failed ("" when it worked)
    trailing: int  # bytes after a JPEG's last end-of-image marker (-1: none; 0: ends there or not a JPEG)
    tail_zero: bool  # the trailing bytes are all zero (padding rather than data)
    thumb: str  # hash of the decoded THUMB_SIZE thumbnail ("" when unreadable)

    @property
    def ok(self) -> bool:
        return not self.error


def _scan_file(path: Path, rel: str, image_size: int) -> tuple[FileScan, np.ndarray | None]:
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError as exc:
        return FileScan(rel, 0, "", "", 0, 0, 0, decode_reason(exc), 0, True, ""), None
    try:
        mode = Image.open(io.BytesIO(data)).mode
    except Exception:  # not an image at all: the decode below says why
        mode = ""
    trailing, tail_zero = 0, True
    if data[:2] == b"\xff\xd8":
        end = data.rfind(b"\xff\xd9")
        trailing = len(data) - end - 2 if end >= 0 else -1
        tail_zero = end >= 0 and not data[end + 2:].strip(b"\0")
    sha = hashlib.sha256(data).hexdigest()
    try:
        arr, bits = read_image(path)  # full decode: Image.load() raises on truncated data
        img = resize_pad(arr, image_size)
    except Exception as exc:
        return FileScan(rel, len(data), sha, mode, 0, 0, 0, decode_reason(exc), trailing, tail_zero, ""), None
    thumb = hashlib.blake2b(to_uint8(resize_pad(img, THUMB_SIZE)).tobytes(), digest_size=16).hexdigest()
    h, w = arr.shape
    return FileScan(rel, len(data), sha, mode, int(w), int(h), int(bits), "", trailing, tail_zero, thumb), img


def scan_files(root: Path, rels: tuple[str, ...], image_size: int) -> tuple[list[FileScan], np.ndarray]:
    """Read and fully decode every file; return the scans and the (N, S, S) images (zeros where unreadable)."""
    images = np.zeros((len(rels), image_size, image_size), dtype=np.float32)
    scans = []
    for i, rel in enumerate(progress(rels, desc="check FracAtlas images", unit="img")):
        scan, img = _scan_file(root / rel, rel, image_size)
        scans.append(scan)
        if img is not None:
            images[i] = img
    return scans, images


def file_findings(scans: list[FileScan]) -> tuple[list[Defect], Counter]:
    """Unreadable files, JPEG ends, and the files not in the majority PIL mode; and the mode counts."""
    out = [Defect("unreadable", s.rel, s.error, "skipped") for s in scans if not s.ok]
    for s in scans:
        if s.ok and s.trailing:
            if s.trailing < 0:
                what = "no end-of-image marker"
            else:
                what = f"{s.trailing} {'zero' if s.tail_zero else 'non-zero'} byte(s) after the end-of-image marker"
            out.append(Defect("jpeg_end", s.rel, what, "kept (decodes in full)"))
    modes = Counter(s.mode for s in scans if s.ok)
    if len(modes) > 1:
        major = modes.most_common(1)[0][0]
        out += [Defect("mode", s.rel, f"mode {s.mode} (majority {major})", "kept; decoded to grey")
                for s in scans if s.ok and s.mode != major]
    return out, modes


def label_findings(inv: Inventory, scans: list[FileScan]) -> tuple[list[Defect], set[str]]:
    """Files whose folder, `fractured` flag and `fracture_count` disagree; return findings and their paths."""
    folders = defaultdict(list)
    for s in scans:
        folders[PurePosixPath(s.rel).name].append(PurePosixPath(s.rel).parent.name)
    out, bad = [], set()
    for s in scans:
        row = inv.row_of(s.rel)
        if row is None:
            continue
        name = PurePosixPath(s.rel).name
        where = folders[name]
        flag, count = int(row["fractured"]), int(row["fracture_count"])
        folder = FOLDER_LABELS.get(where[0]) if len(where) == 1 else None
        if folder == flag and (count > 0) == bool(flag):
            continue
        if len(where) > 1:
            what = f"in {' and '.join(f'images/{w}' for w in where)}"
        elif folder is None:
            what = f"images/{where[0]} is not {' or '.join(f'images/{f}' for f in FOLDER_LABELS)}"
        else:
            what = f"in images/{where[0]}"
        out.append(Defect("label_disagreement", s.rel, f"{what} but fractured={flag}, fracture_count={count}",
                          "left out"))
        bad.add(s.rel)
    return out, bad


def part_flag_findings(inv: Inventory, scans: list[FileScan]) -> list[Defect]:
    """Files whose `mixed` flag disagrees with the number of part flags, or with no part flag at all."""
    out = []
    for s in scans:
        row = inv.row_of(s.rel)
        if row is None:
            continue
        parts = [p for p in PART_FLAGS if row[p] == 1]
        if not parts:
            out.append(Defect("part_flags", s.rel, "no body-part flag", "left out (no part)"))
        elif (len(parts) > 1) != bool(row["mixed"]):
            out.append(Defect("part_flags", s.rel, f"mixed={row['mixed']} but parts: {'+'.join(parts)}",
                              "kept; the part flags decide"))
    return out


def duplicate_findings(scans: list[FileScan], target: dict[str, str]) -> tuple[list[Defect], set[str]]:
    """Apply the duplicate rule; `target` maps each usable file to its set and class ("limb/hand_normal").

    Return one finding per reported member and the files the rule leaves out.
    """
    groups = defaultdict(list)
    for s in scans:  # unreadable files can still be byte copies of each other
        groups[s.thumb if s.ok else f"bytes:{s.sha256}"].append(s)
    out, dropped = [], set()
    for members in groups.values():
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda s: (PurePosixPath(s.rel).name, s.rel))  # by image_id: the original first
        used = [s for s in members if s.rel in target]
        classes = sorted({target[s.rel] for s in used})
        keep = used[0] if len(classes) == 1 else None
        ref = keep or members[0]  # the copy every other member is reported against
        for s in members:
            if s is keep or (not used and s is ref):  # the kept copy, or (none used) the one the others name
                continue
            if s.rel not in target:
                action = "left out already (another rule)"
            elif keep is None:
                action = f"left out (copies in different classes: {', '.join(classes)})"
            else:
                action = f"left out (copy of {keep.rel})"
            other = ref if s is not ref else next(m for m in members if m is not ref)
            kind = "duplicate_bytes" if s.sha256 == other.sha256 else "duplicate_pixels"
            same = "same bytes" if kind == "duplicate_bytes" else "same decoded pixels"
            out.append(Defect(kind, s.rel, f"{same} as {other.rel} (group of {len(members)})", action))
            if s.rel in target:
                dropped.add(s.rel)
    return out, dropped


def box_scales(inv: Inventory, scans: list[FileScan], sizes: dict[str, tuple[int, int]],
               boxes: dict[str, list]) -> tuple[list[Defect], dict[str, tuple[float, float]]]:
    """Check the COCO boxes against dataset.csv and the stored size; return findings and each file's scale."""
    out, scale = [], {}
    if not sizes and not boxes:  # no usable COCO JSON (its own finding says so): nothing to compare
        return out, scale
    by_name = {PurePosixPath(s.rel).name: s for s in scans if s.ok}
    for name in sorted(set(boxes) - set(by_name)):
        out.append(Defect("annotation", name, f"{len(boxes[name])} box(es) for an image that is not readable here",
                          "boxes left out"))
    for name, s in sorted(by_name.items()):
        row = inv.row_of(s.rel)
        n = len(boxes.get(name, ()))
        if row is not None and n != int(row["fracture_count"]):
            out.append(Defect("annotation", s.rel, f"{n} box(es) but fracture_count={row['fracture_count']}",
                              "boxes kept as given"))
        if row is not None and n and not int(row["fractured"]):
            out.append(Defect("annotation", s.rel, f"{n} box(es) on an image with fractured=0", "boxes kept as given"))
        if not n:
            continue
        if name not in sizes:
            out.append(Defect("annotation", s.rel, "boxes but no image size in the COCO JSON", "boxes left out"))
            continue
        (w0, h0), (w, h) = sizes[name], (s.width, s.height)
        sx, sy = w / w0, h / h0
        if abs(sx - sy) > 0.02 * max(sx, sy):  # not one scale: transposed or cropped, the boxes would be wrong
            out.append(Defect("annotation", s.rel, f"stored {w}x{h} is not a scale of the COCO JSON's {w0}x{h0}",
                              "boxes left out"))
            continue
        scale[s.rel] = (sx, sy)
    return out, scale


def size_summary(scans: list[FileScan], listed: set[str], sizes: dict[str, tuple[int, int]]) -> str:
    """Min, median and max of the decoded widths and heights; how many files are downscaled."""
    ok = [s for s in scans if s.ok]
    if not ok:
        return "sizes: no readable image"
    w = np.array([s.width for s in ok])
    h = np.array([s.height for s in ok])
    smaller = {s.rel for s in ok if PurePosixPath(s.rel).name in sizes
               and s.width * s.height < sizes[PurePosixPath(s.rel).name][0] * sizes[PurePosixPath(s.rel).name][1]}
    down = {s.rel for s in ok if s.rel in listed} | smaller
    return (f"sizes (decoded, EXIF orientation applied): width min {w.min()}, median {np.median(w):g}, max {w.max()}; "
            f"height min {h.min()}, median {np.median(h):g}, max {h.max()}; {len(Counter(zip(w, h)))} distinct; "
            f"downscaled {len(down)} (listed in DOWNSCALED.txt {len(down & listed)}, smaller than the COCO JSON's "
            f"size {len(smaller)}), full size {len(ok) - len(down)}")
