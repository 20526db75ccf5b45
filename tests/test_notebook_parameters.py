"""Notebooks under papermill: a wrong parameter stops the run right after the parameters, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
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
        # the chapters that build a fine-tuning grid take the executor too, auto by default
        text = src.read_text()
        builds_grid = any(call in text for call in ('result("classic_folds")', 'result("table8_folds")',
                                                    'result("table8")', 'result("ablation_folds")'))
        assert ('\nexecutor = "auto"' in "\n" + tagged[0].source) == builds_grid, (src.name, "executor")
        i = nb.cells.index(tagged[0])
        assert "setup(" in nb.cells[i + 1].source, f"{src.name}: the cell after parameters must validate them"
        summary = nb.cells[i + 2]
        assert summary.source.strip() == "data_summary(pipe)" and "remove-input" in summary.metadata.get("tags", []), \
            f"{src.name}: the cell after setup must say which data the chapter shows"
        # papermill picks the kernel from the header, exactly as after `jupytext --to ipynb`
        assert nb.metadata.get("kernelspec", {}).get("name") == "python3", f"{src.name}: no kernelspec in the header"


@pytest.mark.parametrize("params,needle", [
    ({"profile": "no-such-profile"}, "unknown profile 'no-such-profile'"),
    ({"profile": "smoke", "limb_dir": "/nonexistent/limbs"}, "limb_dir='/nonexistent/limbs' is not a directory"),
])
def test_wrong_parameter_fails_at_the_setup_cell(tmp_path, params, needle):
    src = tmp_path / "01_data.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "01_data.py"), src)
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters=params, progress_bar=False,
                            cwd=str(tmp_path))
    assert needle in err.value.evalue and "\n" not in err.value.evalue
    out = jupytext.read(tmp_path / "out.ipynb")
    code = [c for c in out.cells if c.cell_type == "code"]
    failed = [i for i, c in enumerate(code) if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    injected = [i for i, c in enumerate(code) if "injected-parameters" in c.metadata.get("tags", [])]
    assert failed == [injected[0] + 1] and "setup(" in code[failed[0]].source


def test_documented_commands_from_notebooks_folder_stop_a_wrong_type_at_setup(tmp_path):
    """`jupytext --to ipynb` + `papermill ... -p limb_dir 3`, run in notebooks/ as the docs allow."""
    bin_ = Path(sys.executable).parent
    env = dict(os.environ, HIPAUG_PROGRESS="0")
    res = subprocess.run([str(bin_ / "jupytext"), "--to", "ipynb", "05_transfer.py"], cwd=ROOT / "notebooks",
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out.ipynb"
    res = subprocess.run([str(bin_ / "papermill"), "05_transfer.ipynb", str(out), "-p", "profile", "smoke",
                          "-p", "limb_dir", "3"], cwd=ROOT / "notebooks", capture_output=True, text=True, env=env,
                         timeout=600)
    assert res.returncode != 0 and "No kernel name found" not in res.stderr, res.stderr[-2000:]
    assert "parameter limb_dir=3 must be a folder path (str) or None, got int" in res.stderr, res.stderr[-2000:]
    code = [c for c in jupytext.read(out).cells if c.cell_type == "code"]
    failed = [c for c in code if any(o.get("output_type") == "error" for o in c.get("outputs", []))]
    assert len(failed) == 1 and "setup(" in failed[0].source


@pytest.mark.parametrize("kwargs,needle", [
    ({"limb_dir": 3}, "parameter limb_dir=3 must be a folder path (str) or None, got int"),
    ({"pelvic_dir": 2.5}, "parameter pelvic_dir=2.5 must be a folder path (str) or None, got float"),
    ({"seed": "x"}, "parameter seed='x' must be an integer or None, got str"),
    ({"seed": True}, "parameter seed=True must be an integer or None, got bool"),
    ({"profile": 3}, "parameter profile=3 must be a profile name or the path of a .yaml profile (str), got int"),
    ({"profile": "defualt"}, "parameter profile='defualt': unknown profile 'defualt'"),
    ({"device": 0}, "parameter device=0 must be auto, cpu, cuda or None (str), got int"),
    ({"device": "tpu"}, "device='tpu' is not one of auto, cpu, cuda"),
    ({"executor": 2}, "parameter executor=2 must be serial, auto, dask, dask:N (N local processes) or a scheduler address"),
    ({"executor": "dask:0"}, "parameter executor='dask:0' must be serial, auto, dask, dask:N"),
    ({"executor": "spark"}, "parameter executor='spark' must be serial, auto, dask, dask:N"),
])
def test_setup_names_a_parameter_of_the_wrong_type(kwargs, needle):
    from hipaug.errors import HipaugError
    from hipaug.book.notebook import setup

    with pytest.raises(HipaugError) as err:
        setup(**{"profile": "smoke", **kwargs})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_setup_accepts_a_seed_given_as_text():
    from hipaug.book.notebook import check_parameters

    assert check_parameters("smoke", "3", None) == 3  # `papermill -r seed 3`
    assert check_parameters("smoke", None, None, limb_dir=None) is None


# What a chapter must take from the library instead of computing by hand: folds, metrics, tests, scores,
# seeds, and writing into the results store (every result is a step of the table: `pipe.result(name)`).
HAND_MADE = ("patient_kfold(", "make_folds(", "binary_metrics(", "paired_tests(", "paired_test(", "predict_proba(",
             "confusion_matrix(", "derive_seed(", "filter_from_probs(", "gan_test_accuracy(", ".record(",
             "sub_seed(\"folds", "sub_seed('folds")


def hand_made(code: str) -> list[str]:
    """The calls of HAND_MADE in a chapter's code cells."""
    return [c for c in HAND_MADE if c in code]


def test_chapters_take_folds_metrics_and_results_from_the_library():
    for src in NOTEBOOKS:
        code = "\n".join(c.source for c in jupytext.read(src).cells if c.cell_type == "code")
        assert not hand_made(code), f"{src.name} recomputes what the library gives: {hand_made(code)}"


def test_a_chapter_rebuilding_folds_by_hand_is_caught():
    copied = 'folds = patient_kfold(pelvic, k=5, seed=pipe.sub_seed("folds-0"))\nm = binary_metrics(y, s)'
    assert hand_made(copied) == ["patient_kfold(", "binary_metrics(", 'sub_seed("folds']
