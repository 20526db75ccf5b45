"""The FracAtlas import's two texts: the defect report (one line per finding, then a summary) and the card.

Paper step: data (the public limb set standing in for Lin & Chung's private radiographs, TAAI 2019).
``hipaug.data.fracatlas`` computes every number shown here; nothing in this module is a count.
The per-set part of the card is ``hipaug.data.dataset_card``'s Markdown.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from hipaug.data.fracatlas_defects import DUPLICATE_RULE, KINDS, LABEL_RULE
from hipaug.data.fracatlas_release import Defect

__all__ = ["DATA_DOI", "PAPER_DOI", "LICENCE", "CITATION", "Summary", "sort_findings", "report_text", "card_markdown"]

DATA_DOI = "10.6084/m9.figshare.22363012"  # the FracAtlas release on figshare
PAPER_DOI = "10.1038/s41597-023-02432-4"  # the dataset paper
LICENCE = "CC BY 4.0"  # the release's licence: cite the paper and the data wherever results are shown
CITATION = ('I. Abedeen, M. A. Rahman, F. Z. Prottyasha, T. Ahmed, T. M. Chowdhury, S. Shatabda, "FracAtlas: A '
            'Dataset for Fracture Classification, Localization and Segmentation of Musculoskeletal Radiographs", '
            f"Scientific Data 10, 521 (2023), doi:{PAPER_DOI}")


@dataclass(frozen=True)
class Summary:
    """The computed numbers both texts show."""

    release: str  # the release folder the manifests point into
    n_rows: int  # data rows of dataset.csv
    n_files: int  # image files under images/
    n_readable: int  # files that decode in full
    modes: dict[str, dict[str, int]]  # folder -> PIL mode -> files (readable files)
    sizes: str  # the size line (min / median / max, downscaled vs full size)
    multi_part_rule: str  # the rule, in words
    rule_counts: dict[str, int]  # images with a row per case of the multi-part rule
    left_out: dict[str, int]  # images in neither set, per reason
    limb_counts: dict[str, int]  # images per limb class
    hip_counts: dict[str, int]  # images per hip class
    n_boxes: int  # rows of hip/boxes.csv
    n_box_images: int  # hip images with at least one box
    set_notes: tuple[str, ...]  # problems of the sets themselves (a class with no image)


def sort_findings(findings: list[Defect]) -> list[Defect]:
    """The report's order: by kind (as KINDS lists them), then by file."""
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(findings, key=lambda d: (order.get(d.kind, len(order)), d.file, d.detail))


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) + f" (total {sum(d.values())})" if d else "none"


def _summary_lines(s: Summary, findings: list[Defect]) -> list[str]:
    kinds = Counter(d.kind for d in findings)
    lines = [f"release: {s.release}: {s.n_rows} rows of dataset.csv, {s.n_files} image files, "
             f"{s.n_readable} readable"]
    lines += [f"{k}: {kinds.get(k, 0)} ({what})" for k, what in KINDS.items()]
    total = Counter()
    for per in s.modes.values():
        total.update(per)
    lines.append("PIL modes: " + _counts(dict(total.most_common())) + "; by folder: "
                 + "; ".join(f"{f} " + ", ".join(f"{m} {n}" for m, n in per.items()) for f, per in s.modes.items()))
    lines.append(s.sizes)
    lines.append("multi-part rule: " + _counts(s.rule_counts))
    lines.append("left out of both sets: " + _counts(s.left_out))
    lines.append("limb set: " + _counts(s.limb_counts))
    lines.append("hip set: " + _counts(s.hip_counts) + f"; {s.n_boxes} box(es) on {s.n_box_images} image(s)")
    lines += list(s.set_notes)
    return lines


def report_text(s: Summary, findings: list[Defect]) -> str:
    """The defect report: a header, one line per finding (KIND FILE: DETAIL -> ACTION), then the summary."""
    lines = [f"FracAtlas defect report for {s.release}", "finding            file: detail -> action"]
    lines += [d.line() for d in findings] or ["(no findings)"]
    lines += ["summary:"] + [f"  {line}" for line in _summary_lines(s, findings)]
    return "\n".join(lines) + "\n"


def _table(head: tuple[str, str], d: dict[str, int]) -> list[str]:
    rows = [f"| {head[0]} | {head[1]} |", "|---|---:|"] + [f"| {k} | {v} |" for k, v in d.items()]
    return rows + [f"| total | {sum(d.values())} |"]


def card_markdown(s: Summary, findings: list[Defect], set_cards: dict[str, str]) -> str:
    """The dataset card: source and citation, the rules and what they did, both sets, the defect summary."""
    kinds = Counter(d.kind for d in findings)
    lines = [
        "# FracAtlas for hipaug: the limb and hip sets", "",
        f"Imported from `{s.release}` by `hipaug data fracatlas`; every number on this card is computed by the import.",
        "", "## Source", "",
        f"- Data: FracAtlas, figshare, doi:[{DATA_DOI}](https://doi.org/{DATA_DOI}); licence {LICENCE} "
        "(<https://creativecommons.org/licenses/by/4.0/>). Cite the paper and the data wherever results on it are shown.",
        f"- Paper: {CITATION}.",
        f"- Release: {s.n_rows} rows of `dataset.csv`, {s.n_files} image files, {s.n_readable} of them readable.",
        "- Patients: the release has no patient ids, so every image is its own patient (`patient_id` is the "
        "`image_id`: one image, one patient). Two images of one person can fall on both sides of a fold.",
        "", "## Rules", "",
        f"**Multi-part rule.** {s.multi_part_rule[0].upper()}{s.multi_part_rule[1:]}.", "",
        *_table(("case (images with a row of dataset.csv)", "images"), s.rule_counts), "",
        f"**Labels.** {LABEL_RULE[0].upper()}{LABEL_RULE[1:]} ({kinds.get('label_disagreement', 0)} image(s)).", "",
        f"**Duplicates.** {DUPLICATE_RULE[0].upper()}{DUPLICATE_RULE[1:]} "
        f"({kinds.get('duplicate_bytes', 0)} byte and {kinds.get('duplicate_pixels', 0)} pixel duplicate(s) reported).", "",
        f"**Unreadable files** are skipped ({kinds.get('unreadable', 0)}).", "",
        *_table(("left out of both sets, by first reason", "images"), s.left_out), "",
    ]
    for name, title, counts in (("limb", "Limb set (`limb/manifest.csv`)", s.limb_counts),
                                ("hip", "Hip set (`hip/manifest.csv`; fracture boxes in `hip/boxes.csv`)", s.hip_counts)):
        lines += [f"## {title}", "", *_table(("class", "images"), counts), ""]
        if name == "hip":
            lines += [f"Boxes: {s.n_boxes} on {s.n_box_images} image(s), in the stored file's pixels.", ""]
        lines += [set_cards.get(name, "(no images)"), ""]
    lines += ["## Defects", "", "One line per finding in `defects.txt`; its summary:", "", "```text",
              *_summary_lines(s, findings), "```", ""]
    return "\n".join(lines)
