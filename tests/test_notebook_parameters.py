"""Notebooks under papermill: a wrong parameter stops the run right after the parameters, in one line."""

from __future__ import annotations

from pathlib import Path

import jupytext
import papermill as pm
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def test_every_chapter_has_one_parameters_cell_with_the_shared_parameters():
    for src in NOTEBOOKS:
        nb = jupytext.read(src)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, src.name
        for name in ("profile", "seed", "limb_dir", "pelvic_dir", "device", "artifacts"):
            assert f"\n{name} = " in "\n" + tagged[0].source, (src.name, name)
        nxt = nb.cells[nb.cells.index(tagged[0]) + 1]
        assert "setup(" in nxt.source, f"{src.name}: the cell after parameters must validate them"


@pytest.mark.parametrize("params,needle", [
    ({"profile": "no-such-profile"}, "unknown profile 'no-such-profile'"),
    ({"profile": "smoke", "limb_dir": "/nonexistent/limbs"}, "limb_dir='/nonexistent/limbs' is not a directory"),
])
def test_wrong_parameter_fails_at_the_setup_cell(tmp_path, params, needle):
    nb = jupytext.read(ROOT / "notebooks" / "01_data.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    src = tmp_path / "01_data.ipynb"
    jupytext.write(nb, src)
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters=params, kernel_name="python3",
                            progress_bar=False, cwd=str(tmp_path))
    assert needle in err.value.evalue and "\n" not in err.value.evalue
    out = jupytext.read(tmp_path / "out.ipynb")
    code = [c for c in out.cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    injected = [i for i, c in enumerate(code) if "injected-parameters" in c.metadata.get("tags", [])]
    assert failed == [injected[0] + 1] and "setup(" in code[failed[0]].source
