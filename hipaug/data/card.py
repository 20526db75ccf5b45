"""The dataset card: what a dataset holds, the problems worth a look, and the folder check.

Paper step: data (Lin & Chung, TAAI 2019, describe the limb and pelvic sets); the book's data
chapter and ``hipaug check-data`` show the card.

Dataset card and its warnings
    ``dataset_card(ds)`` summarises classes, counts, patients, intensities and the source files
    (native size and bit depth of each file, recorded by the decoder and cached with the
    decoded images). Problems a real export often has are listed as warnings on the card, not
    errors (loading still works): identical images (same pixels after decoding and resizing)
    in two classes, or in one class under two patients (a copy on each side of a fold);
    patients with images in more than one class; class sizes differing more than
    ``IMBALANCE_RATIO`` (3) times; source files of more than one bit depth (e.g. 8-bit JPEG
    and 16-bit DICOM: a classifier can learn the file type instead of the fracture).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hipaug.data.dataset import ImageDataset, fingerprint_tensors
from hipaug.data.loading import load_dataset
from hipaug.errors import DataError

__all__ = ["IMBALANCE_RATIO", "DatasetCard", "dataset_card", "check_pelvic", "check_dataset"]

IMBALANCE_RATIO = 3.0  # card warning when the largest class has more than this many times the smallest's images


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
def check_pelvic(pelvic: ImageDataset, positive_class: str) -> int:
    """Return the index of the positive class; refuse anything but a two-class set containing it."""
    if len(pelvic.class_names) != 2:
        raise DataError(f"pelvic set must have exactly 2 classes, found {len(pelvic.class_names)}: {', '.join(pelvic.class_names)}")
    if positive_class not in pelvic.class_names:
        raise DataError(f"positive_class '{positive_class}' is not a pelvic class ({', '.join(pelvic.class_names)})")
    return pelvic.class_names.index(positive_class)


def check_dataset(root: str | Path, image_size: int = 64, on_error: str = "raise",
                  positive_class: str | None = None) -> DatasetCard:
    """Decode every image of a dataset folder (no cache) and return its card; DataError if unusable.

    on_error="skip" lists every bad file in the card instead of stopping at the first one.
    positive_class: check the folder as a pelvic set (exactly two classes, one of them this).
    """
    ds = load_dataset(root, image_size=image_size, on_error=on_error, cache=False)
    if positive_class is not None:
        try:
            check_pelvic(ds, positive_class)
        except DataError as exc:
            msg = str(exc)
            raise DataError(msg if str(ds.root) in msg else f"{ds.root}: {msg}") from None
    return dataset_card(ds)
