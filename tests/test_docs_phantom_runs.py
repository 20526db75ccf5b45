"""The docs' commands, the runs on the phantom (`hipaug reproduce`, its dry run and Dask runs, `hipaug claims`): one chain of tests/test_docs_commands.py.

A module of its own so that `make test`'s two workers can run the docs' chains side by side.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_docs_commands import run_chain


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs-phantom-runs")


@pytest.mark.slow  # the smoke profile's commands: seconds to a minute or two
def test_docs_commands_run(small_folders, outdir):
    run_chain("phantom-runs", small_folders, outdir)
