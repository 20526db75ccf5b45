"""No typed settings in the book's prose; the generated sentences follow the profile."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipaug.book import prose
from hipaug.training.augment import AugmentConfig
from hipaug.config import load_profile
from hipaug.evaluation import paired_tests

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
PAGES = sorted((ROOT / "book").glob("*.md")) + [ROOT / "README.md"]

NUM = r"(?:\d+(?:[.,]\d+)*|two|three|four|five|six|seven|eight|nine|ten|twelve|twenty|fifty|hundred)"
UNIT = (r"(?:px|pixels?|steps?|epochs?|folds?|repeats?|minutes?|hours?|degrees?(?! of freedom)"
        r"|(?:synthetic |real )?images? per class)")
# What a typed setting looks like. Each is a number next to the name of a setting.
SETTING_PATTERNS = {
    "number with a unit": rf"\b{NUM}(?:[\s-]+[a-z][a-z-]*)?[\s-]+{UNIT}\b|\b{NUM}-{UNIT}\b",
    "threshold": r"\bthreshold\s*(?:of\s*|=\s*|is\s*)?\d",
    "probability rule": r"\bp\s*(?:>=|≥)\s*\d",
    "top-k rule": r"\btop[- ]\d+",
    "learning rate": r"\b(?:lr|learning rate)\s*(?:of\s*|=\s*|is\s*)?\d",
    "width": r"\bwidths?\s*(?:of\s*|=\s*)?\d",
    "weight": r"\bweight(?: decay)?\s*(?:of\s*|=\s*|is\s*)?\d",
    "batch size": r"\bbatch(?:es| size)?\s*(?:of\s*|=\s*)?\d",
    "patience": r"\bpatience\s*(?:of\s*|=\s*)?\d",
    "seed": r"\bseed\s*(?:of\s*|=\s*)?\d",
}
# (file, text on the line, why a number may stand there). Keep it short: anything else comes
# from the profile or the results through a computed cell (hipaug.book.prose).
ALLOWED = [
    ("05_transfer.py", "over five-fold cross-validation", "the paper's design, quoted"),
    ("05_transfer.py", "with five folds", "exercise about the paper's Table VIII SDs"),
    ("05_transfer.py", "-p seed 1", "exercise: re-run with another seed"),
    ("01_data.py", "Table VIII is a five-fold", "the paper's design, quoted"),
    ("02_classic_augmentation.py", "to 45 degrees in a copy of the profile", "hypothetical exercise"),
    ("06_beyond.py", "Add a threshold of 0.999", "hypothetical exercise"),
]
PATTERNS = {name: re.compile(p, re.IGNORECASE) for name, p in SETTING_PATTERNS.items()}


def notebook_markdown(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the markdown cells of a jupytext percent notebook."""
    out, in_md = [], False
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith("# %%"):
            in_md = "[markdown]" in line
        elif in_md and line.startswith("#"):
            out.append((i, line[1:].strip()))
    return out


def page_prose(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of a Markdown page outside code fences (MyST directive fences are prose)."""
    out, stack = [], []  # open fences: (marker, is_code)
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = re.match(r"^\s*(```+|~~~+)(.*)$", line)
        if m and stack and m.group(1) == stack[-1][0] and not m.group(2).strip():
            stack.pop()
            continue
        if m and stack and stack[-1][1]:
            continue  # a fence-like line inside a code block is code
        if m:
            stack.append((m.group(1), not m.group(2).strip().startswith("{")))
            continue
        if not any(code for _, code in stack):
            out.append((i, line))
    return out


def typed_settings() -> tuple[list[str], set[int]]:
    """Every setting-like number in prose not on the allowlist, and the allowlist entries used."""
    found, used = [], set()
    sources = [(p, notebook_markdown(p)) for p in NOTEBOOKS] + [(p, page_prose(p)) for p in PAGES]
    for path, lines in sources:
        for lineno, text in lines:
            for name, rx in PATTERNS.items():
                for m in rx.finditer(text):
                    allowed = [k for k, (f, snippet, _) in enumerate(ALLOWED) if f == path.name and snippet in text]
                    if allowed:
                        used.update(allowed)
                        continue
                    found.append(f"{path.relative_to(ROOT)}:{lineno}: {name}: '{m.group(0)}' in: {text.strip()}")
    return found, used


def test_prose_has_no_typed_settings():
    found, _ = typed_settings()
    assert not found, ("typed settings in prose (render them from the profile with hipaug.book.prose in a "
                       "remove-input cell, or allowlist a quotation of the paper):\n" + "\n".join(found))


def test_allowlist_has_no_stale_entries():
    _, used = typed_settings()
    stale = [ALLOWED[k] for k in range(len(ALLOWED)) if k not in used]
    assert not stale, f"allowlist entries that match nothing any more: {stale}"


@pytest.mark.parametrize("text", [
    "fine-tuned for 20 epochs", "at 224 px", "the same five patient-level folds", "a threshold of 0.9",
    "(`mode_seeking`, weight 1.0)", "lr = 1e-3", "a VGG at width 1/8", "with patience 5",
    "100 images per class", "about ten minutes on 2 CPU cores", "batches of 32", "rule top-15",
])
def test_the_scanner_catches_typed_settings(text):
    assert any(rx.search(text) for rx in PATTERNS.values()), text


def test_the_scanner_skips_code_fences_but_not_dropdowns(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("prose\n```bash\nhipaug filter --threshold 0.9\n```\n```{dropdown} Solutions\n"
                    "train for 20 epochs\n```\nafter\n", encoding="utf-8")
    assert [t for _, t in page_prose(page)] == ["prose", "train for 20 epochs", "after"]


def test_computed_sentences_hide_their_code():
    for src in NOTEBOOKS:
        cells = src.read_text(encoding="utf-8").split("# %%")
        for cell in cells:
            if "Markdown(describe_" in cell:
                assert cell.startswith(' tags=["remove-input"]'), f"{src.name}: a computed sentence must hide its input"


# ------------------------------------------------------------------ the sentences follow the profile
@pytest.fixture(scope="module")
def smoke():
    return load_profile("smoke")


def with_section(profile, section: str, **changes):
    return dataclasses.replace(profile, **{section: dataclasses.replace(getattr(profile, section), **changes)})


def test_finetune_states_early_stopping_or_its_absence(smoke):
    off = prose.describe_finetune(with_section(smoke, "finetune", patience=None))
    on = prose.describe_finetune(with_section(smoke, "finetune", patience=5))
    assert "no early stopping" in off and "Early stopping" not in off
    assert "Early stopping ends training after 5 epochs" in on and "at most" in on
    assert "patient-level validation split of each training fold" in off


def test_finetune_without_validation_keeps_the_last_epoch(smoke):
    text = prose.describe_finetune(with_section(smoke, "finetune", val_fraction=0.0, patience=None))
    assert "no validation split" in text and "the last epoch's weights are kept" in text
    assert "validation loss" not in text and "validation split of each training fold" not in text


def test_finetune_states_the_rate_of_scratch(smoke):
    p = dataclasses.replace(smoke, transfer=dataclasses.replace(smoke.transfer, scratch_lr=0.0005))
    text = prose.describe_finetune(p)
    assert "`scratch`, which starts from random weights, takes learning rate 0.0005 instead" in text
    assert "`scratch`'s rate aside" in text and "takes learning rate" not in prose.describe_finetune(smoke)


def test_finetune_states_optimiser_schedule_decay_weights(smoke):
    p = with_section(smoke, "finetune", lr=0.003, epochs=17, batch_size=12, weight_decay=0.0, lr_schedule="cosine",
                     class_weights=False, optimizer="sgd", momentum=0.8)
    text = prose.describe_finetune(p)
    for needle in ("learning rate 0.003", "17 epochs", "batches of 12", "no weight decay", "cosine-annealed",
                   "unweighted cross-entropy", "SGD (momentum 0.8)"):
        assert needle in text, needle
    text = prose.describe_finetune(with_section(smoke, "finetune", weight_decay=0.0005, class_weights=True))
    assert "weight decay 0.0005" in text and "inverse class frequency" in text


def test_finetune_states_whether_every_condition_is_augmented(smoke):
    plain = prose.describe_finetune(with_section(smoke, "finetune", augment=None))
    aug = prose.describe_finetune(with_section(smoke, "finetune", augment=AugmentConfig(rotation=7.0)))
    assert "no augmentation in any condition" in plain
    assert "every condition's fine-tuning" in aug and "±7°" in aug
    frozen = prose.describe_finetune(dataclasses.replace(smoke, transfer=dataclasses.replace(smoke.transfer,
                                                                                             freeze_blocks=2)))
    assert "first 2 convolutional blocks frozen" in frozen


def test_pretrain_budget_is_a_cap_only_with_patience(smoke):
    cap = prose.describe_pretrain(with_section(smoke, "pretrain", patience=4))
    full = prose.describe_pretrain(with_section(smoke, "pretrain", patience=None))
    assert "cap, not an equality" in cap and "`patience` 4" in cap
    assert "runs that budget in full" in full and "cap" not in full
    assert "|real limb training set| / |pre-training set|" in full
    for cond in ("`classic`", "`with_gan`", "`unfiltered_gan`", "`scratch`"):
        assert cond in full, cond
    only = dataclasses.replace(smoke, transfer=dataclasses.replace(smoke.transfer, conditions=("without_gan", "with_gan")))
    assert "`unfiltered_gan`" not in prose.describe_pretrain(only)


def test_cv_states_folds_and_repeats(smoke):
    text = prose.describe_cv(dataclasses.replace(smoke, transfer=dataclasses.replace(smoke.transfer, k_folds=10,
                                                                                     repeats=2)))
    assert "10 folds" in text and "2 times" in text and "20 paired values" in text and "patient" in text
    assert "runs once" in prose.describe_cv(smoke)


def test_filter_states_the_rule_and_the_pool(smoke):
    thr = prose.describe_filter(with_section(smoke, "filter", threshold=0.7, top_k=None, synthetic_per_class=44))
    top = prose.describe_filter(with_section(smoke, "filter", threshold=None, top_k=12))
    assert "at least 0.7" in thr and "44 images per limb class" in thr and "p>=0.7" in thr
    assert "the 12 images per class" in top and "top-12" in top


def test_acgan_states_steps_widths_diffaug_and_mode_seeking(smoke):
    a = smoke.acgan
    if "diffaug" not in {f.name for f in dataclasses.fields(a)}:
        pytest.skip("ACGANConfig has no diffaug field yet")
    text = prose.describe_acgan(with_section(smoke, "acgan", steps=321, g_width=24, d_width=40, batch_size=20,
                                             diffaug="translation,cutout", mode_seeking=0.0))
    for needle in ("321 generator steps", "G has 24 channels", "D 40", "batches of 20", "`translation,cutout`",
                   "Mode-seeking term: off"):
        assert needle in text, needle
    text = prose.describe_acgan(with_section(smoke, "acgan", diffaug="", mode_seeking=2.5, ema_decay=0.0))
    assert "DiffAugment: off" in text and "weight 2.5" in text and "no weight averaging" in text


def test_ablation_and_profile_lines(smoke):
    assert "p>=0.5" in prose.describe_ablation(smoke) and "top-10" in prose.describe_ablation(smoke)
    none = dataclasses.replace(smoke, ablation=dataclasses.replace(smoke.ablation, thresholds=(), top_k=()))
    assert "no ablation" in prose.describe_ablation(none)
    line = prose.describe_profile(smoke)
    assert f"{smoke.image_size} px" in line and f"{smoke.acgan.steps} steps" in line and smoke.filter.rule.label in line


# ------------------------------------------------------------------ the tests beside the paper's
def fold_table(diff: float, noise: float, k: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    base = rng.uniform(0.7, 0.8, size=k)
    rows = []
    for cond, shift in (("without_gan", 0.0), ("with_gan", diff)):
        for f in range(k):
            rows.append({"condition": cond, "fold": f, "n_test": 30, "accuracy": base[f] + shift + rng.normal(0, noise),
                         "auc": base[f]})
    return pd.DataFrame(rows)


def test_comparison_table_shows_both_tests_mdd_and_the_paper():
    tests = paired_tests(fold_table(0.02, 0.01), "with_gan", "without_gan", ["accuracy"], n_boot=200).reset_index()
    table = prose.comparison_table(tests)
    row = table.iloc[0]
    assert row["p, paired t-test (the paper's test)"] == pytest.approx(tests["p_two_sided"].iloc[0])
    assert row["p, corrected resampled t-test"] == pytest.approx(tests["p_corrected"].iloc[0])
    assert row["MDD at 80% power (points)"] == pytest.approx(100 * tests["mdd_80"].iloc[0])
    assert row["paper's difference (points)"] == pytest.approx(0.76)
    assert any(c.startswith("corrected 95% CI") for c in table.columns)
    other = paired_tests(fold_table(0.02, 0.01).replace({"with_gan": "classic"}), "classic", "without_gan",
                         ["accuracy"], n_boot=200).reset_index()
    assert "paper's difference (points)" not in prose.comparison_table(other).columns


def test_comparison_table_has_precision_and_mcc_and_the_paper_did_not_report_them():
    f = fold_table(0.02, 0.01)
    rng = np.random.default_rng(1)
    f["precision"] = f["accuracy"] + rng.normal(0, 0.01, len(f))
    f["mcc"] = 2 * f["accuracy"] - 1 + rng.normal(0, 0.01, len(f))
    tests = paired_tests(f, "with_gan", "without_gan", ["accuracy", "precision", "mcc", "auc"], n_boot=200)
    table = prose.comparison_table(tests.reset_index()).set_index("metric")
    paper = table["paper's difference (points)"]
    assert paper["accuracy"] == pytest.approx(0.76)
    assert (paper["precision"], paper["mcc"], paper["auc"]) == ("not reported",) * 3
    for m in ("precision", "mcc"):
        assert table.loc[m, "difference (points)"] == pytest.approx(100 * tests.loc[m, "mean_diff"])
        assert table.loc[m, "p, corrected resampled t-test"] == pytest.approx(tests.loc[m, "p_corrected"])


def test_power_sentence_says_whether_the_paper_effect_was_detectable():
    noisy = paired_tests(fold_table(0.0, 0.05), "with_gan", "without_gan", ["accuracy"], n_boot=200).reset_index()
    quiet = paired_tests(fold_table(0.0, 0.0005), "with_gan", "without_gan", ["accuracy"], n_boot=200).reset_index()
    assert "could not reliably detect" in prose.describe_power(noisy)
    assert "could have detected" in prose.describe_power(quiet)
    assert "+0.76 points" in prose.describe_power(noisy)
    assert "no `with_gan` − `without_gan` comparison" in prose.describe_power(noisy.iloc[:0])


def test_the_design_sentence_follows_the_run_not_only_the_profile():
    """The default profile draws replications on the phantom; on real data the same profile runs CV, and says so."""
    p = load_profile("default")
    t = p.transfer
    rep = prose.describe_cv(p)
    assert rep.startswith("**Independent replications**") and f"{t.replications} replications" in rep
    assert f"{t.train_n} pelvic training images" in rep and f"{t.test_n} fresh test images" in rep
    cv = prose.describe_cv(p, "cv")
    assert cv.startswith("**Cross-validation**") and f"{t.k_folds} folds" in cv
    assert "independent replications" in prose.describe_profile(p)
    assert f"{p.finetune.min_steps} optimiser steps" in prose.describe_finetune(p)
    assert "optimiser steps" not in prose.describe_finetune(load_profile("smoke"))
