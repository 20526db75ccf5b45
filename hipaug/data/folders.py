"""Scanning a dataset folder on disk: which files, which labels, which patients.

Paper step: data (Lin & Chung, TAAI 2019, use folders of labelled radiographs); the loader in
``hipaug.data.loading`` decodes what the scan lists.

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
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hipaug.data.dataset import meta_frame
from hipaug.data.images import IMAGE_EXTENSIONS, is_dicom, one_line
from hipaug.errors import DataError

__all__ = ["MANIFEST_NAME"]

MANIFEST_NAME = "manifest.csv"
_IGNORED_NAMES = {"thumbs.db", "desktop.ini"}


@dataclass
class FolderScan:
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


def _scan_folder(root: Path) -> FolderScan:
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
            if ext not in IMAGE_EXTENSIONS and not (ext == "" and is_dicom(f)):
                bad.append((len(rel), f"not an image file (extension {ext or 'none'!r}; expected {', '.join(IMAGE_EXTENSIONS)})"))
            rel.append(r), full.append(f), label.append(d.name)
    names = tuple(sorted(d.name for d in class_dirs))
    meta = pd.DataFrame({"path": rel, "label": label, "patient_id": rel})
    return FolderScan("folder", names, rel, full, label, meta, bad)


def _scan_manifest(root: Path) -> FolderScan:
    mpath = root / MANIFEST_NAME
    try:
        raw = mpath.read_bytes()
    except OSError as exc:
        raise DataError(f"{mpath}: cannot read ({one_line(exc)})") from None
    try:
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, na_values=[""], skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataError(f"{mpath}: file is empty; expected a header 'path,label[,patient_id,...]'") from None
    except Exception as exc:
        raise DataError(f"{mpath}: cannot parse CSV ({one_line(exc)})") from None
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
    meta = meta_frame(meta, rel, label, pids)
    return FolderScan("manifest", tuple(sorted(set(label))), rel, full, label, meta, bad,
                 manifest_sha=hashlib.sha256(raw).hexdigest())


def scan_folder(root: Path) -> FolderScan:
    if not root.exists():
        raise DataError(f"{root}: dataset folder does not exist")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder; expected a dataset folder ({root}/<class>/*.png or {MANIFEST_NAME})")
    return _scan_manifest(root) if (root / MANIFEST_NAME).is_file() else _scan_folder(root)
