"""`hipaug reproduce --profile smoke` end to end (reuses the artifact cache the nbval run filled)."""

from __future__ import annotations

import pandas as pd
import pytest

from hipaug.cli import main
from hipaug.config import load_profile


@pytest.mark.slow
def test_reproduce_smoke_writes_table8(tmp_path, capsys):
    assert main(["reproduce", "--profile", "smoke", "--out", str(tmp_path)]) == 0
    out = tmp_path / "smoke" / "phantom"
    table = pd.read_csv(out / "table8.csv", index_col=0)
    assert list(table.index) == list(load_profile("smoke").transfer.conditions)
    assert {"accuracy", "sensitivity", "specificity", "f1", "auc"} <= set(table.columns)
    assert table["accuracy"].str.match(r"^\d+\.\d ± \d+\.\d$").all()  # the book's one rounding rule (hipaug.core.numbers)
    folds = pd.read_csv(out / "table8_folds.csv")
    k = load_profile("smoke").transfer.k_folds
    assert len(folds) == k * len(table) and folds["accuracy"].between(0, 1).all()
    assert (out / "table8.md").read_text().startswith("# Table VIII analogue")
    assert (out / "run.json").is_file()
