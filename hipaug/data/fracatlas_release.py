"""The FracAtlas release as published: its table, its image files, its COCO boxes, in a folder or a zip.

Paper step: data (the public limb set standing in for Lin & Chung's private radiographs, TAAI 2019).
FracAtlas: Abedeen et al., Scientific Data 10, 521 (2023), doi:10.1038/s41597-023-02432-4; the
data doi:10.6084/m9.figshare.22363012 (CC BY 4.0). ``hipaug.data.fracatlas`` imports it.

What counts as the release
    A folder holding ``dataset.csv`` (the columns of ``COLUMNS``) beside ``images/<folder>/*.jpg``
    (``Fractured`` and ``Non_fractured``), given as that folder or its parent; or a zip holding
    such a folder (``FracAtlas.zip``). The inventory matches rows to files before any image is
    decoded; rows naming missing images are findings, but more than ``MAX_MISSING_FRACTION`` of
    them means this is not the release (a ``DataError`` naming the file). The downloader
    (``hipaug.data.fracatlas_fetch``) checks a downloaded zip with the same inventory.
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pandas as pd

from hipaug.core import progress
from hipaug.data.images import one_line
from hipaug.errors import DataError

__all__ = ["RELEASE_DIRNAME", "CSV_NAME", "COCO_PATH", "FOLDER_LABELS", "PART_FLAGS", "COLUMNS",
           "MAX_MISSING_FRACTION", "Defect", "Inventory", "find_release_root", "folder_inventory",
           "zip_inventory", "verify_release_zip", "extract_release", "read_coco"]

RELEASE_DIRNAME = "FracAtlas"  # the folder the release zip extracts to
CSV_NAME = "dataset.csv"  # the release's table: one row per image
COCO_PATH = "Annotations/COCO JSON/COCO_fracture_masks.json"  # fracture boxes, in the original image's pixels
FOLDER_LABELS = {"Fractured": 1, "Non_fractured": 0}  # images/<folder> -> the fractured flag it implies
PART_FLAGS = ("hand", "leg", "hip", "shoulder")  # body-part flags of dataset.csv
BINARY_FLAGS = PART_FLAGS + ("mixed", "hardware", "multiscan", "fractured", "frontal", "lateral", "oblique")
COLUMNS = ("image_id",) + BINARY_FLAGS + ("fracture_count",)  # the columns dataset.csv must have
MAX_MISSING_FRACTION = 0.05  # rows naming missing images tolerated as findings; more: not the release
_SAFE_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._ -]{0,200}")  # a plain file name: no folders, not hidden


@dataclass(frozen=True)
class Defect:
    """One finding of the defect report: what is wrong with one file (or row), and what the import does."""

    kind: str  # a key of hipaug.data.fracatlas_defects.KINDS
    file: str  # the file (relative to the release folder) or "dataset.csv line N"
    detail: str  # what is wrong, one line
    action: str  # what the import does about it, one line

    def line(self) -> str:
        return f"{self.kind:<18} {self.file}: {self.detail} -> {self.action}"


@dataclass(frozen=True)
class Inventory:
    """The release before any image is decoded: its table, its image files, and how rows and files match."""

    source: str  # the release folder or zip the inventory was read from
    table: pd.DataFrame  # one accepted row per image_id (index image_id; int flags; 'line' of dataset.csv)
    files: tuple[str, ...]  # every image file, relative to the release folder ("images/<folder>/<name>"), sorted
    n_rows: int  # data rows of dataset.csv, good or bad
    findings: tuple[Defect, ...]  # bad rows, duplicate rows, missing images, images with no row

    def row_of(self, rel: str) -> pd.Series | None:
        """The dataset.csv row of an image file (None: no accepted row)."""
        name = PurePosixPath(rel).name
        return self.table.loc[name] if name in self.table.index else None


def _parse_csv(raw: bytes, name: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(io.BytesIO(raw), dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: file is empty; not the FracAtlas {CSV_NAME}") from None
    except Exception as exc:
        raise DataError(f"{name}: cannot parse CSV ({one_line(exc)})") from None
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{name}: no column(s) {', '.join(missing)}; not the FracAtlas {CSV_NAME} "
                        f"(expected {', '.join(COLUMNS)})")
    df = df[list(COLUMNS)].fillna("").apply(lambda s: s.str.strip())  # a short row has NaN for its missing fields
    df["line"] = range(2, len(df) + 2)  # the header is line 1
    return df


def _accepted_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, list[Defect], set[str]]:
    """Keep the well-formed rows once each; return them, the findings, and the ids whose rows were rejected."""
    valid = {c: r"\d{1,3}" if c == "fracture_count" else "[01]" for c in COLUMNS[1:]}  # a flag, or a count
    good_id = df["image_id"].str.fullmatch(_SAFE_ID.pattern)
    good_flags = pd.concat([df[c].str.fullmatch(v) for c, v in valid.items()], axis=1).all(axis=1)
    findings, rejected = [], set()
    for i in df.index[~(good_id & good_flags)]:
        row = df.loc[i]
        bad = [f"{c}={row[c]!r}" for c, v in valid.items() if not re.fullmatch(v, row[c])]
        what = (f"image_id {row['image_id']!r} is not a plain file name" if not good_id[i]
                else "invalid value(s): " + ", ".join(bad))
        findings.append(Defect("bad_row", f"{CSV_NAME} line {row['line']}", what, "row left out"))
        if good_id[i]:
            rejected.add(row["image_id"])
    ok = df[good_id & good_flags]
    keep = []
    for image_id, rows in ok.groupby("image_id", sort=True):
        first = rows.iloc[0]
        if len(rows) == 1:
            keep.append(rows.index[0])
            continue
        same = (rows[list(COLUMNS)] == first[list(COLUMNS)]).all(axis=None)
        lines = ", ".join(str(v) for v in rows["line"])
        for _, row in rows.iloc[1 if same else 0:].iterrows():
            findings.append(Defect("duplicate_row", f"{CSV_NAME} line {row['line']}",
                                   f"image_id {image_id} is on lines {lines}" + (" (identical)" if same else " (the rows differ)"),
                                   "kept once" if same else "image left out"))
        if same:
            keep.append(rows.index[0])
        else:
            rejected.add(image_id)
    table = ok.loc[sorted(keep)].copy()
    for c in COLUMNS[1:]:
        table[c] = table[c].astype(int)
    return table.set_index("image_id").sort_index(), findings, rejected


def _match(source: str, raw_csv: bytes, csv_name: str, files: list[str]) -> Inventory:
    """Match the table's rows to the image files; DataError when this is not the release."""
    df = _parse_csv(raw_csv, csv_name)
    if not len(df):
        raise DataError(f"{csv_name}: no rows; not the FracAtlas {CSV_NAME}")
    if not files:
        raise DataError(f"{source}: no image files under images/<folder>/; not the FracAtlas release")
    table, findings, rejected = _accepted_rows(df)
    by_name = defaultdict(list)
    for rel in files:
        by_name[PurePosixPath(rel).name].append(rel)
    missing = [i for i in table.index if i not in by_name]
    if len(missing) > MAX_MISSING_FRACTION * len(df):
        raise DataError(f"{csv_name}: {len(missing)} of {len(df)} rows name images that are not under images/ "
                        f"(e.g. {missing[0]}); more than {MAX_MISSING_FRACTION:.0%} is not the FracAtlas release")
    folders = " or ".join(f"images/{f}" for f in FOLDER_LABELS)
    for i in missing:
        findings.append(Defect("missing_image", i, f"{CSV_NAME} line {table.at[i, 'line']} names it; not in {folders}",
                               "row left out"))
    for rel in files:
        name = PurePosixPath(rel).name
        if name not in table.index and name not in rejected:
            findings.append(Defect("unlisted_image", rel, f"no row of {CSV_NAME} names {name}",
                                   "left out (no flags)"))
    return Inventory(source, table, tuple(sorted(files)), len(df), tuple(findings))


def find_release_root(folder: str | Path) -> Path:
    """The release folder (holding dataset.csv): `folder` itself or its FracAtlas/ sub-folder."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder or zip; expected FracAtlas.zip or the folder it extracts to")
    for root in (folder, folder / RELEASE_DIRNAME):
        if (root / CSV_NAME).is_file():
            return root
    raise DataError(f"{folder}: no {CSV_NAME} (looked in {folder} and {folder / RELEASE_DIRNAME}); "
                    "not the FracAtlas release")


def _hidden(name: str) -> bool:
    return name.startswith(".") or name.lower() in ("thumbs.db", "desktop.ini")


def folder_inventory(root: Path) -> Inventory:
    """The inventory of a release folder (the one holding dataset.csv)."""
    files = []
    images = root / "images"
    if images.is_dir():
        for sub in sorted(p for p in images.iterdir() if p.is_dir() and not _hidden(p.name)):
            files += [f"images/{sub.name}/{f.name}" for f in sorted(sub.iterdir()) if f.is_file() and not _hidden(f.name)]
    csv = root / CSV_NAME
    try:
        raw = csv.read_bytes()
    except OSError as exc:
        raise DataError(f"{csv}: cannot read ({one_line(exc)})") from None
    return _match(str(root), raw, str(csv), files)


def _zip_members(path: Path) -> tuple[zipfile.ZipFile, str, list[str]]:
    """Open a release zip; return it, the prefix of its release folder ('' or 'FracAtlas/') and its members."""
    if not zipfile.is_zipfile(path):
        raise DataError(f"{path}: not a zip file; expected FracAtlas.zip or the folder it extracts to")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: cannot open the zip ({one_line(exc)})") from None
    names = [n for n in zf.namelist() if not n.endswith("/") and not n.startswith("__MACOSX/")
             and not _hidden(PurePosixPath(n).name)]
    has_images = {n.split("images/")[0] for n in names if "images/" in n}
    prefixes = sorted((n[: -len(CSV_NAME)] for n in names if PurePosixPath(n).name == CSV_NAME), key=len)
    prefixes = [p for p in prefixes if p in has_images]
    if not prefixes:
        zf.close()
        raise DataError(f"{path}: no {CSV_NAME} beside an images/ folder in the zip; not the FracAtlas release")
    return zf, prefixes[0], names


def zip_inventory(path: str | Path) -> Inventory:
    """The inventory of a release zip, read without extracting it."""
    path = Path(path)
    zf, prefix, names = _zip_members(path)
    with zf:
        files = [n[len(prefix):] for n in names if n.startswith(prefix + "images/")
                 and len(PurePosixPath(n[len(prefix):]).parts) == 3]
        try:
            raw = zf.read(prefix + CSV_NAME)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{path}: cannot read {prefix}{CSV_NAME} ({one_line(exc)})") from None
    return _match(str(path), raw, f"{path}: {prefix}{CSV_NAME}", files)


def verify_release_zip(path: str | Path) -> Inventory:
    """Check a zip by its content: every member's CRC, then rows of dataset.csv against image files."""
    path = Path(path)
    zf, _, _ = _zip_members(path)
    with zf:
        try:
            bad = zf.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise DataError(f"{path}: the zip is damaged ({one_line(exc)})") from None
    if bad is not None:
        raise DataError(f"{path}: member {bad} fails its CRC check; the download is damaged")
    return zip_inventory(path)


def extract_release(path: str | Path, dest: Path) -> Path:
    """Extract a release zip's release folder into ``dest/FracAtlas``; return that folder.

    Only the release folder's members are written (no ``__MACOSX``), and a member whose name
    would leave ``dest`` is refused. ``dest`` is the import's temporary folder: the caller
    renames it into place, so a half-extracted release is never seen.
    """
    path = Path(path)
    zf, prefix, names = _zip_members(path)
    root = dest / RELEASE_DIRNAME
    with zf:
        for n in progress([n for n in names if n.startswith(prefix)], desc=f"extract {path.name}", unit="file"):
            rel = PurePosixPath(n[len(prefix):])
            if rel.is_absolute() or ".." in rel.parts or "\\" in n:
                raise DataError(f"{path}: member {n!r} would be written outside the release folder")
            target = root.joinpath(*rel.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(n) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        out.write(chunk)
            except (zipfile.BadZipFile, EOFError) as exc:
                raise DataError(f"{path}: cannot extract {n} ({one_line(exc)})") from None
            os.chmod(target, 0o444)  # the release is read-only, like the shared copy
    return root


def read_coco(root: Path) -> tuple[dict[str, tuple[int, int]], dict[str, list[tuple[float, ...]]], list[Defect]]:
    """The COCO JSON's original (width, height) and boxes (x, y, w, h) per file name, and its findings."""
    path = root / COCO_PATH
    if not path.is_file():
        return {}, {}, [Defect("annotation", COCO_PATH, "missing", "no boxes written")]
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        images = {int(im["id"]): (str(im["file_name"]), (int(im["width"]), int(im["height"]))) for im in coco["images"]}
        anns = [(int(a["image_id"]), tuple(float(v) for v in a["bbox"])) for a in coco["annotations"]]
    except (ValueError, KeyError, TypeError) as exc:
        return {}, {}, [Defect("annotation", COCO_PATH, f"cannot read ({one_line(exc)})", "no boxes written")]
    sizes = {name: wh for name, wh in images.values()}
    boxes: dict[str, list[tuple[float, ...]]] = defaultdict(list)
    findings = []
    for image_id, box in anns:
        if image_id not in images or len(box) != 4 or box[2] <= 0 or box[3] <= 0:
            findings.append(Defect("annotation", COCO_PATH, f"annotation of image id {image_id} with bbox {list(box)} "
                                   "names no image or is empty", "box left out"))
            continue
        boxes[images[image_id][0]].append(box)
    return sizes, dict(boxes), findings
