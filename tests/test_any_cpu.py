"""`make test` on any CPU: the smoke run does not depend on the kernels a CPU picks, and the references are current.

The nbval references (tests/notebooks) were written on one machine. Another CPU runs other SIMD
kernels and thread counts, so its float sums come out in other orders; the smoke profile therefore
computes in float64 (the phantoms always do), where those last-bit differences stay nine digits
below anything a chapter prints. These tests run the notebooks under a second kernel set
(`hipaug.core.machine.SECOND_KERNEL_SET`: ATen's default kernels, oneDNN at SSE4.1, one thread)
from an empty artifact cache, and check that the references hold the chapters' current code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
import torch

from hipaug.config import load_profile
from hipaug.core.machine import SECOND_KERNEL_SET

ROOT = Path(__file__).resolve().parents[1]
REFS = ROOT / "tests" / "notebooks"
NBVAL = ["--nbval", "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"),
         "--nbval-cell-timeout=900"]


def _other_cpu_env(tmp: Path) -> dict:
    """The environment of another CPU, with stores of its own (nothing computed here is reused)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "HIPAUG_"))}
    return {**env, **SECOND_KERNEL_SET, "HIPAUG_ARTIFACTS": str(tmp / "artifacts"),
            "HIPAUG_RESULTS": str(tmp / "results"), "HIPAUG_PROGRESS": "0", "PYTHONPATH": str(ROOT)}


def _code_cells(nb) -> list[str]:
    return [c.source.strip() for c in nb.cells if c.cell_type == "code"
            and "injected-parameters" not in c.metadata.get("tags", [])]


@pytest.mark.parametrize("ref", sorted(REFS.glob("*.ipynb")), ids=lambda p: p.stem)
def test_each_reference_runs_the_chapters_current_code(ref):
    """nbval runs the code stored in a reference, so a reference must hold its chapter's code, cell for cell."""
    src = ROOT / "notebooks" / f"{ref.stem}.py"
    assert src.is_file(), f"{ref.name} has no chapter notebooks/{src.name}"
    want, have = _code_cells(jupytext.read(src)), _code_cells(nbformat.read(ref, as_version=4))
    stale = next((i for i, (a, b) in enumerate(zip(want, have)) if a != b), None)
    assert len(want) == len(have) and stale is None, (
        f"{ref.relative_to(ROOT)} is stale: code cell {stale if stale is not None else len(have)} differs from "
        f"{src.relative_to(ROOT)}; regenerate the references with `make nbval-refs`")


def test_the_smoke_profile_the_references_run_computes_in_float64():
    p = load_profile("smoke")
    assert (p.dtype, p.arch.dtype, p.acgan.dtype) == ("float64", "float64", "float64")


def test_the_second_kernel_set_really_selects_other_kernels(tmp_path):
    """If an override stopped working, the test below would compare this machine with itself."""
    code = ("import json, torch, numpy; from hipaug.core.machine import kernel_info; print(json.dumps(kernel_info()))")
    here = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)}).stdout)
    there = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      env=_other_cpu_env(tmp_path)).stdout)
    assert there["torch_cpu_capability"] == "DEFAULT" and there["torch_threads"] == 1
    assert there["kernel_env"] == SECOND_KERNEL_SET
    if here["torch_cpu_capability"] == "DEFAULT":
        pytest.skip(NATIVE_FALLBACK)
    assert here["torch_cpu_capability"] != "DEFAULT"


@pytest.mark.slow
def test_the_notebooks_match_their_references_on_another_cpu(tmp_path):
    """nbval on every chapter under the second kernel set, from an empty artifact cache."""
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                          "-o", "addopts=", *NBVAL, str(REFS)], cwd=tmp_path, env=_other_cpu_env(tmp_path),
                         capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, f"nbval on another CPU failed:\n{res.stdout[-6000:]}\n{res.stderr[-2000:]}"
    assert " passed" in res.stdout and "failed" not in res.stdout.splitlines()[-1]
    assert (tmp_path / "artifacts" / "acgan").is_dir(), "the run reused a cache instead of computing"


def _render_hash(env: dict) -> str:
    code = ("import hashlib; from hipaug.data.phantoms import render_limb, render_pelvic; "
            "from hipaug.data.writer import to_uint8; "
            "a = to_uint8(render_limb(2, image_size=64, seed=3).images); b = to_uint8(render_pelvic(6, image_size=64, seed=3).images); "
            "print(hashlib.sha256(a.tobytes() + b.tobytes()).hexdigest())")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout


def test_phantoms_are_the_same_bytes_whatever_simd_numpy_uses():
    """The data every profile starts from: numpy's AVX-512, AVX2 and SSE loops render the same PNG bytes."""
    base = {**os.environ, "PYTHONPATH": str(ROOT)}
    hashes = {_render_hash({**base, "NPY_DISABLE_CPU_FEATURES": off, "OPENBLAS_CORETYPE": blas})
              for off, blas in (("", "Haswell"), ("X86_V4 AVX512_ICL AVX512_SPR", "Haswell"),
                                ("X86_V3 X86_V4 AVX512_ICL AVX512_SPR", "Prescott"))}
    assert len(hashes) == 1, hashes


# On a CPU that already runs ATen's fallback kernels (no AVX2, or a whole `make test` run under the second
# set's environment) the two kernel sets are one: the control comparisons have nothing to compare. Every
# other check of this file, the nbval run under the second set included, still runs there.
NATIVE_FALLBACK = ("this CPU already runs ATen's fallback kernels, the ones the second kernel set forces: "
                   "there is no other kernel set to compare with")


def _native_capability() -> str:
    return torch.backends.cpu.get_cpu_capability()


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float64_training_agrees_across_kernel_sets(tmp_path, dtype):
    """A float64 VGG trained here and under the second kernel set predicts the same; a float32 one does not."""
    code = ("import sys, numpy as np, torch; from hipaug.data import from_arrays; from hipaug.models.vgg import ArchSpec; "
            "from hipaug.method.transfer import build_model; from hipaug.training import TrainConfig, train_classifier, predict_proba; "
            "rng = np.random.default_rng(0); ds = from_arrays(rng.random((64, 32, 32)).astype('float32'), rng.integers(0, 2, 64), ['a', 'b']); "
            "m = build_model(ArchSpec(width=0.125, fc_width=32, dtype=sys.argv[2]), 2, 32, seed=1); "
            "r = train_classifier(m, ds, TrainConfig(epochs=3, batch_size=16, patience=None, device='cpu'), seed=2); "
            "assert str(next(r.model.parameters()).dtype) == 'torch.' + sys.argv[2]; "
            "np.save(sys.argv[1], predict_proba(r.model, ds.images).astype(np.float64))")
    here, there = tmp_path / "here.npy", tmp_path / "there.npy"
    subprocess.run([sys.executable, "-c", code, str(here), dtype], check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    subprocess.run([sys.executable, "-c", code, str(there), dtype], check=True, env=_other_cpu_env(tmp_path))
    import numpy as np

    moved = float(np.abs(np.load(here) - np.load(there)).max())
    if dtype == "float32" and _native_capability() == "DEFAULT":
        pytest.skip(NATIVE_FALLBACK)
    if dtype == "float64":
        assert moved < 1e-9, f"float64 predictions moved by {moved:.2e} across kernel sets"
    else:  # the control: the kernel sets do differ, and float32 shows it
        assert moved > 0, "float32 predictions did not move: the second kernel set computed as this machine"
