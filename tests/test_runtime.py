"""Run-time helpers: a block at a fixed number of torch threads."""

from __future__ import annotations

import pytest
import torch

from hipaug.core import torch_threads


def test_torch_threads_fixes_the_block_and_restores_the_callers_setting():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with torch_threads(None):  # None: the caller's setting
            assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), torch_threads(1):
            raise RuntimeError("a failing block still gives the threads back")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
