"""A keyed artifact cache: each step's output lives in a folder named by what produced it.

The key is a hash of the step name, its configuration, the fingerprints of its inputs, the
seed and the hipaug version, so a finished artifact is reused only when all of these match
and a stale one is never picked up. Building happens in a `.partial/` folder that is renamed
into place when done, so a killed run leaves no half artifact behind (and a resumable step,
such as GAN training, finds its checkpoints in the same `.partial/` folder next time).

Several processes may share one store (the workers of `hipaug reproduce --workers N`, on one
machine or a cluster's shared file system): a build holds an exclusive lock on
`.locks/<step>-<key>.lock` (an OS file lock, released by the kernel when its process dies), so
two processes that need the same artifact build it once, and the second one reuses it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock

from hipaug import __version__
from hipaug.core.io import read_json, write_json
from hipaug.core.project import find_project

KEY_FILE = "artifact.json"


def canonical(obj: Any) -> Any:
    """Turn configs, paths and numpy scalars into plain JSON-able values (stable ordering)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {"__type__": type(obj).__name__, **{f.name: canonical(getattr(obj, f.name)) for f in dataclasses.fields(obj)}}
    if isinstance(obj, dict):
        return {str(k): canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [canonical(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return obj.item()
    return obj


def fingerprint(obj: Any) -> str:
    """Return the sha256 of the canonical JSON of `obj`."""
    blob = json.dumps(canonical(obj), sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()


def default_root() -> Path:
    """Artifacts root: $HIPAUG_ARTIFACTS; inside a hipaug project its artifacts/; else ./artifacts."""
    env = os.environ.get("HIPAUG_ARTIFACTS")
    if env:
        return Path(env).expanduser()
    # A notebook run from notebooks/ (papermill, the book) shares the cache of the project root.
    project = find_project(required=False)
    return project / "artifacts" if project is not None else Path("artifacts")


@dataclasses.dataclass(frozen=True)
class Artifact:
    """A finished artifact folder and the description it was keyed on."""

    path: Path  # the folder holding the step's outputs
    key: str  # full sha256 key
    spec: dict  # canonical description: step, config, inputs, seed, version
    cached: bool  # True when reused, False when built in this call


def artifact_key(step: str, spec: dict) -> tuple[str, dict]:
    """Return (key, full spec) for a step; the hipaug version is always part of the key."""
    full = {"step": step, "hipaug_version": __version__, **canonical(spec)}
    return fingerprint(full), full


def find_artifact(step: str, spec: dict, root: str | Path | None = None) -> Artifact | None:
    """The finished artifact of (step, spec), or None when it has not been built; never builds."""
    root = Path(root) if root is not None else default_root()
    key, full = artifact_key(step, spec)
    final = root / step / key[:16]
    if (final / KEY_FILE).is_file() and read_json(final / KEY_FILE).get("key") == key:
        return Artifact(final, key, full, cached=True)
    return None


def load_or_run(
    step: str,
    spec: dict,
    build: Callable[[Path], Any],
    root: str | Path | None = None,
) -> Artifact:
    """Reuse the finished artifact for (step, spec) or build it with `build(folder)`.

    `spec` must hold everything that determines the output (config, input fingerprints,
    seed). `build` writes into the folder it is given; when it returns, the folder is renamed
    into place atomically together with `artifact.json` (the spec, seed and timing). The build
    runs under the key's file lock: a process that finds the lock taken waits, then reuses.
    """
    root = Path(root) if root is not None else default_root()
    found = find_artifact(step, spec, root)
    if found is not None:
        return found
    key, full = artifact_key(step, spec)
    (root / ".locks").mkdir(parents=True, exist_ok=True)
    with FileLock(root / ".locks" / f"{step}-{key[:16]}.lock"):
        found = find_artifact(step, spec, root)  # built by another process while this one waited
        if found is not None:
            return found
        final = root / step / key[:16]
        if final.exists():
            shutil.rmtree(final)  # a truncated-key collision or a hand-edited folder: never reuse
        partial = root / ".partial" / f"{step}-{key[:16]}"
        partial.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        build(partial)
        # Who built it (host, process, torch threads): provenance only, never part of the key.
        built_by = {"host": socket.gethostname(), "pid": os.getpid(), "torch_threads": torch.get_num_threads()}
        write_json(partial / KEY_FILE, {"key": key, "spec": full, "seconds": round(time.perf_counter() - t0, 3),
                                        "built_by": built_by})
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, final)
    return Artifact(final, key, full, cached=False)
