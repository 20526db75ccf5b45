"""Import the FracAtlas release as hipaug's limb and hip dataset folders, with a defect report and a card.

Paper step: data (Lin & Chung, TAAI 2019: pre-train on limb radiographs, fine-tune on hip ones).
FracAtlas (Abedeen et al., Scientific Data 10, 521, 2023; doi:10.6084/m9.figshare.22363012,
CC BY 4.0) is the public stand-in for their private sets. The release's layout and the inventory
are in ``hipaug.data.fracatlas_release``, the checks in ``hipaug.data.fracatlas_defects``.

What ``import_release(src, out)`` writes (``hipaug data fracatlas SRC --out OUT``)
    ``OUT/limb/manifest.csv`` (classes ``LIMB_CLASSES``: part x fracture over hand, leg and
    shoulder), ``OUT/hip/manifest.csv`` (``fracture`` vs ``normal``), ``OUT/hip/boxes.csv``
    (fracture boxes of the hip images), ``OUT/defects.txt`` (one line per finding, then a
    summary), ``OUT/card.md`` and ``OUT/fracatlas.json`` (the import's record). Manifests have
    ``path,label,patient_id`` and the release's flags (``image_id``, ``part``, ``parts``,
    ``mixed``, ``hardware``, ``multiscan``, ``frontal``, ``lateral``, ``oblique``, ``fractured``,
    ``fracture_count``); paths are absolute. A folder SRC is never copied: the manifests point
    into it. A zip SRC is extracted to ``OUT/release/FracAtlas/``. Everything is assembled in a
    temporary folder beside OUT and renamed into place: an interrupted import leaves the
    previous OUT, or none.

Patients
    The release has no patient ids: ``patient_id`` is the ``image_id`` (one image, one patient).

Multi-part rule (``MULTI_PART_RULE``)
    An image with the hip flag goes to the hip set only, whatever other part it shows (a hip
    radiograph often shows the femur, flagged ``leg``), and never to the limb set. An image with
    exactly one limb-part flag (hand, leg or shoulder) and no hip flag goes to the limb set. An
    image with two or more limb-part flags and no hip flag is left out of both sets (its class
    would be a guess), and so is an image with no part flag. The ``mixed`` flag is not used: the
    part flags decide (a disagreement is a ``part_flags`` finding). The card shows each case's count.

Labels, duplicates, unreadable files
    ``LABEL_RULE`` and ``DUPLICATE_RULE`` (``hipaug.data.fracatlas_defects``); unreadable files are
    skipped. Every image left out is listed by file in ``defects.txt``; nothing is dropped silently.

Boxes
    COCO boxes are in the original image's pixels; ``boxes.csv`` holds them in the stored file's
    pixels as hipaug decodes it (EXIF orientation applied), scaled by the stored size over the COCO
    JSON's width and height, with that size (``width``, ``height``). ``boxes_on_square`` maps them
    onto the loader's ``S x S`` canvas.
"""

from __future__ import annotations

import secrets
import shutil
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from hipaug.core import atomic_write_text, check_image_size, write_json
from hipaug.data.card import dataset_card
from hipaug.data.dataset import from_arrays
from hipaug.data.fracatlas_card import Summary, card_markdown, report_text, sort_findings
from hipaug.data.fracatlas_defects import (FileScan, box_scales, duplicate_findings, file_findings, label_findings,
                                           part_flag_findings, scan_files, size_summary)
from hipaug.data.fracatlas_release import (PART_FLAGS, Defect, Inventory, extract_release, find_release_root,
                                           folder_inventory, read_coco, zip_inventory)
from hipaug.data.folders import MANIFEST_NAME
from hipaug.data.images import one_line
from hipaug.data.writer import replace_dir
from hipaug.errors import ConfigError, DataError

__all__ = ["LIMB_PARTS", "LIMB_CLASSES", "HIP_CLASSES", "MULTI_PART_RULE", "RECORD_NAME", "ImportReport",
           "part_rule", "import_release", "boxes_on_square", "read_boxes", "edition_of"]

LIMB_PARTS = ("hand", "leg", "shoulder")  # part flags whose images make the limb set
LIMB_CLASSES = tuple(sorted(f"{p}_{c}" for p in LIMB_PARTS for c in ("fracture", "normal")))  # limb class names
HIP_CLASSES = ("fracture", "normal")  # hip class names (hipaug's pelvic loader: two, one named fracture)
MULTI_PART_RULE = ("an image with the hip flag goes to the hip set only, whatever other part it shows; an image with "
                   "one limb-part flag (hand, leg, shoulder) and no hip flag goes to the limb set; an image with two "
                   "or more limb-part flags and no hip flag, or with no part flag, is left out of both sets")
RECORD_NAME = "fracatlas.json"  # the import's record: what a later import may replace
BOXES_NAME = "boxes.csv"
FLAG_COLUMNS = ("mixed", "hardware", "multiscan", "frontal", "lateral", "oblique", "fractured", "fracture_count")
_REASONS = ("no usable row", "unreadable", "label disagreement", "several limb parts", "no part flag", "duplicate")


@dataclass(frozen=True)
class ImportReport:
    """What an import wrote and found: the sets' counts, what the rules did, every finding."""

    out: Path  # the output folder
    release: Path  # the release folder the manifests point into
    limb_counts: dict[str, int]  # images per limb class
    hip_counts: dict[str, int]  # images per hip class
    rule_counts: dict[str, int]  # images with a row per case of the multi-part rule
    left_out: dict[str, int]  # images in neither set, per first reason
    n_boxes: int  # rows of hip/boxes.csv
    defects: tuple[Defect, ...]  # every finding, in the report's order
    text: str  # the defect report as printed (defects.txt)

    def counts_text(self) -> str:
        """The card's counts in two lines."""
        def fmt(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in d.items()) + f" (total {sum(d.values())})"

        return f"limb set: {fmt(self.limb_counts)}\nhip set: {fmt(self.hip_counts)}; {self.n_boxes} box(es)"


def part_rule(row: pd.Series) -> tuple[str | None, str]:
    """Apply the multi-part rule to a dataset.csv row: ("limb"/"hip" or None, the rule's case)."""
    parts = [p for p in PART_FLAGS if int(row[p]) == 1]
    if "hip" in parts:
        return "hip", "hip flag only" if len(parts) == 1 else "hip flag with other parts: hip set only"
    limb = [p for p in parts if p in LIMB_PARTS]
    if len(limb) == 1:
        return "limb", "one limb part"
    return None, "several limb parts, no hip: left out" if limb else "no part flag: left out"


def _label(row: pd.Series, which: str) -> str:
    fracture = "fracture" if int(row["fractured"]) else "normal"
    return fracture if which == "hip" else f"{next(p for p in LIMB_PARTS if int(row[p]))}_{fracture}"


def _targets(inv: Inventory, scans: list[FileScan], bad_label: set[str]):
    """Each usable file's set and class ("limb/hand_normal"), each other file's reason, the rule's counts."""
    targets, reason, cases = {}, {}, Counter()
    for s in scans:
        row = inv.row_of(s.rel)
        if row is None:
            reason[s.rel] = "no usable row"
            continue
        which, case = part_rule(row)
        cases[case] += 1
        if not s.ok:
            reason[s.rel] = "unreadable"
        elif s.rel in bad_label:
            reason[s.rel] = "label disagreement"
        elif which is None:
            reason[s.rel] = "several limb parts" if "several" in case else "no part flag"
        else:
            targets[s.rel] = f"{which}/{_label(row, which)}"
    return targets, reason, dict(sorted(cases.items()))


def _manifest(inv: Inventory, rels: list[str], targets: dict[str, str], release: Path) -> pd.DataFrame:
    rows = []
    for rel in rels:
        row, name = inv.row_of(rel), PurePosixPath(rel).name
        parts = [p for p in PART_FLAGS if int(row[p])]
        which, label = targets[rel].split("/")
        rows.append({"path": str(release / rel), "label": label, "patient_id": name, "image_id": name,
                     "part": "hip" if which == "hip" else label.split("_")[0], "parts": "+".join(parts),
                     **{c: int(row[c]) for c in FLAG_COLUMNS}, "folder": PurePosixPath(rel).parent.name})
    cols = ["path", "label", "patient_id", "image_id", "part", "parts", *FLAG_COLUMNS, "folder"]
    return pd.DataFrame(rows, columns=cols)


def _boxes(hip: list[str], scans: dict[str, FileScan], boxes: dict[str, list], scale: dict, release: Path) -> pd.DataFrame:
    rows = []
    for rel in hip:
        name = PurePosixPath(rel).name
        if rel not in scale:
            continue
        (sx, sy), s = scale[rel], scans[rel]
        for k, (x, y, w, h) in enumerate(boxes.get(name, ())):
            x0, y0 = max(0.0, x * sx), max(0.0, y * sy)
            x1, y1 = min(float(s.width), (x + w) * sx), min(float(s.height), (y + h) * sy)
            rows.append({"path": str(release / rel), "image_id": name, "box": k, "x0": round(x0, 2),
                         "y0": round(y0, 2), "x1": round(x1, 2), "y1": round(y1, 2), "width": s.width, "height": s.height})
    return pd.DataFrame(rows, columns=["path", "image_id", "box", "x0", "y0", "x1", "y1", "width", "height"])


def edition_of(*folders: Path | None) -> str | None:
    """'fracatlas' when every folder given is a set of one FracAtlas import (``OUT/limb``, ``OUT/hip``), else None.

    The results of such a run go under their own source name (`fracatlas-<fingerprint>`), apart
    from the phantom's and from other folders'.
    """
    given = [Path(f) for f in folders if f is not None]
    if not given:
        return None
    roots = {f.resolve().parent for f in given}
    return "fracatlas" if len(roots) == 1 and (roots.pop() / RECORD_NAME).is_file() else None


def read_boxes(folder: Path, image_size: int) -> pd.DataFrame | None:
    """The fracture boxes of a hip set on the loader's S x S canvas (None when the folder has no boxes.csv)."""
    path = Path(folder) / BOXES_NAME
    if not path.is_file():
        return None
    return boxes_on_square(pd.read_csv(path), image_size)


def boxes_on_square(boxes: pd.DataFrame, image_size: int) -> pd.DataFrame:
    """Map boxes.csv rows onto the loader's S x S canvas (aspect kept, long side S, centred: ``resize_pad``)."""
    image_size = check_image_size(image_size)
    out = boxes.copy()
    w, h = boxes["width"].astype(float), boxes["height"].astype(float)
    scale = image_size / np.maximum(w, h)
    nw = np.clip(np.round(w * scale), 1, image_size)
    nh = np.clip(np.round(h * scale), 1, image_size)
    left, top = (image_size - nw) // 2, (image_size - nh) // 2
    for c, off, f in (("x0", left, nw / w), ("x1", left, nw / w), ("y0", top, nh / h), ("y1", top, nh / h)):
        out[c] = boxes[c] * f + off
    return out


def _set_card(df: pd.DataFrame, index: list[int], images: np.ndarray, scans: list[FileScan], where: Path) -> str:
    """hipaug's dataset card of one set, from the images decoded during the checks (the loader's decode)."""
    if df.empty:
        return "(no images)"
    names = tuple(sorted(set(df["label"])))
    ds = from_arrays(images[index], [names.index(v) for v in df["label"]], names, meta=df)
    ds = replace(ds, root=where, source=tuple((scans[i].height, scans[i].width, scans[i].bits) for i in index))
    return dataset_card(ds).to_markdown()


def _downscaled_list(root: Path) -> set[str]:
    """Paths listed in a DOWNSCALED.txt beside or inside the release folder (a reduced copy's own list)."""
    for f in (root / "DOWNSCALED.txt", root.parent / "DOWNSCALED.txt"):
        if f.is_file():
            return {ln.strip().lstrip("./") for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip()}
    return set()


def _check(inv: Inventory, read_root: Path, image_size: int):
    """Decode every file and run every check; return the scans, images, findings and the sets' members."""
    scans, images = scan_files(read_root, inv.files, image_size)
    findings, _ = file_findings(scans)
    labels, bad_label = label_findings(inv, scans)
    targets, reason, cases = _targets(inv, scans, bad_label)
    dups, dropped = duplicate_findings(scans, targets)
    for rel in dropped:
        reason[rel] = "duplicate"
        del targets[rel]
    sizes, boxes, coco = read_coco(read_root)
    ann, scale = box_scales(inv, scans, sizes, boxes)
    findings = sort_findings([*inv.findings, *findings, *labels, *part_flag_findings(inv, scans), *dups, *coco, *ann])
    left = Counter(reason.values())
    left_out = {r: left[r] for r in _REASONS if left[r]}
    return scans, images, findings, targets, cases, left_out, (sizes, boxes, scale)


def _write(tmp: Path, inv: Inventory, read_root: Path, release: Path, out: Path, image_size: int) -> ImportReport:
    """Check the release and write every output into `tmp` (paths as they will be once `tmp` is `out`)."""
    scans, images, findings, targets, cases, left_out, (sizes, boxes, scale) = _check(inv, read_root, image_size)
    index = {s.rel: i for i, s in enumerate(scans)}
    cards, frames, counts = {}, {}, {}
    for which in ("limb", "hip"):
        rels = sorted(r for r, t in targets.items() if t.startswith(which + "/"))
        frames[which] = df = _manifest(inv, rels, targets, release)
        counts[which] = {c: int(n) for c, n in sorted(Counter(df["label"]).items())}
        (tmp / which).mkdir(parents=True)
        atomic_write_text(tmp / which / MANIFEST_NAME, df.to_csv(index=False))
        # The set's folder relative to the card: an absolute path would name a temporary folder when the
        # import is built into the artifact store and moved into place after.
        cards[which] = _set_card(df, [index[r] for r in rels], images, scans, Path(which))
    hip_rels = sorted(r for r, t in targets.items() if t.startswith("hip/"))
    box_df = _boxes(hip_rels, {s.rel: s for s in scans}, boxes, scale, release)
    atomic_write_text(tmp / "hip" / BOXES_NAME, box_df.to_csv(index=False))
    notes = tuple(f"note: the {w} set has no '{c}' image; hipaug's loaders need every class"
                  for w, need in (("hip", HIP_CLASSES), ("limb", LIMB_CLASSES)) for c in need if c not in counts[w])
    modes: dict[str, dict[str, int]] = {}
    for s in scans:
        if s.ok:
            per = modes.setdefault(PurePosixPath(s.rel).parent.name, {})
            per[s.mode] = per.get(s.mode, 0) + 1
    summary = Summary(str(release), inv.n_rows, len(inv.files), sum(s.ok for s in scans),
                      {f: dict(sorted(m.items(), key=lambda kv: -kv[1])) for f, m in modes.items()},
                      size_summary(scans, _downscaled_list(read_root), sizes), MULTI_PART_RULE, cases, left_out,
                      counts["limb"], counts["hip"], len(box_df), box_df["path"].nunique(), notes)
    text = report_text(summary, findings)
    atomic_write_text(tmp / "defects.txt", text)
    atomic_write_text(tmp / "card.md", card_markdown(summary, findings, cards))
    write_json(tmp / RECORD_NAME, {"format": "hipaug-fracatlas-import", "release": str(release),
                                   "limb": counts["limb"], "hip": counts["hip"], "rules": cases, "left_out": left_out,
                                   "findings": dict(Counter(d.kind for d in findings)), "boxes": len(box_df)})
    return ImportReport(out, release, counts["limb"], counts["hip"], cases, left_out, len(box_df), tuple(findings), text)


def _prepare_out(out: Path) -> Path:
    """Refuse an OUT that holds something other than an earlier import; return the temporary folder beside it."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / RECORD_NAME).is_file())):
        raise ConfigError(f"{out}: exists and is not a FracAtlas import (no {RECORD_NAME}); choose a new or empty folder")
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(4)}.tmp")
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise ConfigError(f"{out.parent}: cannot write the import there ({one_line(exc)})") from None
    return tmp


def import_release(src: str | Path, out: str | Path, image_size: int = 64) -> ImportReport:
    """Import FracAtlas (``FracAtlas.zip`` or the folder it extracts to) into OUT's limb and hip sets.

    image_size: side the images are decoded to for the card (the checks decode every file in full
    first). Raises DataError (one line naming the file) when SRC is not the release.
    """
    image_size = check_image_size(image_size)
    src, out = Path(src).expanduser(), Path(out).expanduser().absolute()
    if not src.exists():
        raise DataError(f"{src}: does not exist; expected FracAtlas.zip or the folder it extracts to")
    is_zip = src.is_file()
    if is_zip:
        inv = zip_inventory(src)  # not the release: fail before writing anything
    else:
        root = find_release_root(src).resolve()
        if root == out or out in root.parents:
            raise ConfigError(f"{out}: holds the release {root}; the import would replace it, choose another folder")
        inv = folder_inventory(root)
    tmp = _prepare_out(out)
    try:
        if is_zip:
            read_root = extract_release(src, tmp / "release")
            release = out / read_root.relative_to(tmp)
        else:
            read_root = release = root
        report = _write(tmp, inv, read_root, release, out, image_size)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return report
