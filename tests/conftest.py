"""Shared test set-up: quiet progress bars, one artifact cache for nbval and the book test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HIPAUG_PROGRESS", "0")
os.environ.setdefault("HIPAUG_ARTIFACTS", str(ROOT / "artifacts"))
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under xdist each core runs a worker: one torch thread each (and in every kernel and command a test
    # starts), else two workers' OpenMP threads fight over two cores and both run several times slower.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for tiny tensors: on a shared 2-core box, competing OpenMP threads run many times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def small_folders(tmp_path_factory) -> tuple[Path, Path]:
    """Small limb and pelvic folders written by `hipaug phantom` (stand-ins for a user's radiographs)."""
    from hipaug.cli import main

    base = tmp_path_factory.mktemp("own-data")
    limb, pelvic = base / "limbs", base / "pelvis"
    assert main(["phantom", "limb", "--out", str(limb), "--per-class", "8", "--image-size", "32",
                 "--parts", "forearm", "knee"]) == 0
    assert main(["phantom", "pelvic", "--out", str(pelvic), "--n", "40", "--image-size", "32"]) == 0
    return limb, pelvic


# The heaviest test modules first (by their --durations), then the rest in collection order. `make test`
# runs with xdist's --dist loadscope --no-loadscope-reorder: it hands out whole modules in this order (a
# notebook's cells and a module's fixtures stay on one worker), and a long module started last would
# keep one core busy while the other idles.
HEAVY_FIRST = ("test_any_cpu.py", "test_docs_phantom_runs.py", "test_docs_books.py", "test_book.py", "test_grid.py",
               "test_docs_own_data.py", "test_docs_steps.py", "05_transfer.ipynb", "06_beyond.ipynb",
               "02_classic_augmentation.ipynb", "test_acgan_digits.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(HEAVY_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(HEAVY_FIRST)))  # stable: each module keeps its order
