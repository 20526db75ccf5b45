"""Where the book's files are: the project folder, found from the working directory, never the install path."""

from __future__ import annotations

import os
from pathlib import Path

from hipaug.errors import ConfigError

PROJECT_ENV = "HIPAUG_PROJECT"  # the setting that names the project folder explicitly
MARKERS = ("_toc.yml", "notebooks")  # a folder holding both is a hipaug book project


def is_project(path: Path) -> bool:
    """True if `path` holds a hipaug book project (its table of contents and its notebooks)."""
    return all((path / m).exists() for m in MARKERS)


def find_project(start: str | Path | None = None, required: bool = True) -> Path | None:
    """The project folder: $HIPAUG_PROJECT, else the nearest folder at or above `start` (the cwd) with _toc.yml and notebooks/."""
    env = os.environ.get(PROJECT_ENV)
    if env:
        root = Path(env).expanduser().resolve()
        if not is_project(root):
            raise ConfigError(f"{PROJECT_ENV}={env}: not a hipaug project (needs {' and '.join(MARKERS)})")
        return root
    here = Path(start or Path.cwd()).resolve()
    for cand in (here, *here.parents):
        if is_project(cand):
            return cand
    if required:
        raise ConfigError(f"no hipaug project at or above {here} (a folder with {' and '.join(MARKERS)}); "
                          f"run from the checkout or set {PROJECT_ENV}")
    return None
