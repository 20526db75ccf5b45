"""The docs' commands, the commands on a user's folders and the rest (`reproduce --limb-dir`, papermill, literature): one chain of tests/test_docs_commands.py.

A module of its own so that `make test`'s two workers can run the docs' chains side by side.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_docs_commands import run_chain


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs-own-data")


@pytest.mark.slow  # the smoke profile's commands: seconds to a minute or two
def test_docs_commands_run(small_folders, outdir):
    run_chain("own-data", small_folders, outdir)
