"""One run of the experiment: its profile, its data, its seeds, its two stores, and the table it walks.

A `Run` builds (or reuses) any node of the step table: `artifact(node)` builds the node's inputs
first, keys the node by its step's spec and reuses a finished artifact with that key
(`hipaug.core.artifacts`). It holds no results of its own beyond a memo of the artifacts it has
already found; every result is a node. `record` copies a result's files into the results store
`<results>/<profile>/<source>/`, whose `run.json` says what produced them.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from hipaug import __version__
from hipaug.config import Profile, load_profile
from hipaug.core import deterministic, derive_seed, write_json
from hipaug.core.artifacts import Artifact, default_root, find_artifact, fingerprint, load_or_run
from hipaug.data import ImageDataset, load_dataset
from hipaug.errors import ConfigError, DataError
from hipaug.pipeline.step import Node, NotBuilt, Step
from hipaug.pipeline.steps import phantom
from hipaug.pipeline.table import with_steps

log = logging.getLogger("hipaug")


def default_results_root() -> Path:
    """Results store root: $HIPAUG_RESULTS or <artifacts>/../results."""
    if "HIPAUG_RESULTS" in os.environ:
        return Path(os.environ["HIPAUG_RESULTS"])
    return default_root().resolve().parent / "results"


def _check_dir(d: str | Path | None, name: str) -> Path | None:
    if d is None or str(d) in ("", "None"):
        return None
    p = Path(d).expanduser()
    if not p.is_dir():
        raise DataError(f"{name}={str(d)!r} is not a directory")
    return p.resolve()


class Run:
    """The ground every step stands on: profile, data source, seeds, the artifact and results stores, the table."""

    def __init__(self, profile: Profile | str = "default", limb_dir: str | Path | None = None,
                 pelvic_dir: str | Path | None = None, artifacts: str | Path | None = None,
                 results: str | Path | None = None, device: str | None = None, seed: int | None = None,
                 steps: tuple[Step, ...] = ()):
        if isinstance(profile, (str, Path)):
            profile = load_profile(profile, device=device, seed=seed)
        elif device is not None or seed is not None:
            raise ConfigError("pass device/seed overrides together with a profile name, not a Profile object")
        self.profile = profile
        self.limb_dir = _check_dir(limb_dir, "limb_dir")
        self.pelvic_dir = _check_dir(pelvic_dir, "pelvic_dir")
        self.artifacts = Path(artifacts) if artifacts is not None else default_root()
        self.results_root = Path(results) if results is not None else default_results_root()
        self.extra_steps = tuple(steps)
        self.table = with_steps(self.extra_steps)
        self.threads: int | None = None  # torch threads of each task when an executor sets them (run.json)
        self._probing = False  # inside probing(): a missing artifact raises NotBuilt, nothing is built
        self._found: dict[Node, Artifact] = {}  # artifacts already found or built by this run
        self._folds: dict[int, list] = {}  # each repeat's folds, computed once
        deterministic(True)

    def args(self) -> dict:
        """What another process needs to open the same run (a Dask worker)."""
        return {"profile": self.profile, "limb_dir": self.limb_dir, "pelvic_dir": self.pelvic_dir,
                "artifacts": Path(self.artifacts).resolve(), "results": Path(self.results_root).resolve(),
                "steps": self.extra_steps}

    # ---------------------------------------------------------------- seeds
    @property
    def seed(self) -> int:
        return self.profile.seed

    def sub_seed(self, name: str) -> int:
        """The seed of one step, derived from the profile's seed."""
        return derive_seed(self.seed, name)

    # ---------------------------------------------------------------- the table
    def artifact(self, node: Node) -> Artifact:
        """The node's artifact: found in the store, or built after its inputs (inside `probing()`: never built)."""
        if node in self._found:
            return self._found[node]
        if node.step not in self.table:
            raise ConfigError(f"no step {node.step!r} in the table (known: {', '.join(self.table)})")
        step = self.table[node.step]
        inputs = {role: self.artifact(n) for role, n in step.needs(self, node.params).items()}
        spec = step.spec(self, node.params, inputs)
        if self._probing:
            art = find_artifact(step.store_folder, spec, root=self.artifacts)
            if art is None:
                raise NotBuilt(str(node))
        else:
            t0 = time.perf_counter()
            art = load_or_run(step.store_folder, spec, lambda out: step.build(self, node.params, inputs, out),
                              root=self.artifacts)
            log.info(f"{node}: {'cached' if art.cached else 'built'} {art.path} ({time.perf_counter() - t0:.1f}s)")
        self._found[node] = art
        return art

    def load(self, node: Node) -> Any:
        """The node's value as its step reads it back (a dataset, a model, a table)."""
        return self.table[node.step].load(self, node.params, self.artifact(node))

    @contextmanager
    def probing(self):
        """Within this block a node whose artifact is missing raises `NotBuilt` instead of being built."""
        self._probing = True
        try:
            yield self
        finally:
            self._probing = False

    # ---------------------------------------------------------------- the results store
    @cached_property
    def source(self) -> str:
        """'phantom', 'fracatlas-<fingerprint>' (a FracAtlas import) or 'custom-<fingerprint>' naming the data."""
        from hipaug.data import edition_of

        if self.limb_dir is None and self.pelvic_dir is None:
            return "phantom"
        edition = edition_of(self.limb_dir, self.pelvic_dir) if self.limb_dir and self.pelvic_dir else None
        return f"{edition or 'custom'}-{fingerprint([self.limb.fingerprint, self.pelvic.fingerprint])[:10]}"

    @property
    def results_path(self) -> Path:
        """`<results>/<profile>/<source>/` without creating it (the book reads it)."""
        return self.results_root / self.profile.name / self.source

    @property
    def results_dir(self) -> Path:
        """`<results>/<profile>/<source>/`, created, with run.json describing the data, profile and versions."""
        d = self.results_path
        d.mkdir(parents=True, exist_ok=True)
        write_json(d / "run.json", self.describe())
        return d

    def describe(self) -> dict:
        """Profile, data source with fingerprints, seed, versions and what decides float results (recorded with results).

        On this machine and thread count the results repeat byte for byte; on another CPU a float32
        profile's results move (`hipaug.core.machine`), so the CPU, torch's kernel capability and the
        threads per task are recorded beside them.
        """
        from hipaug.core.machine import kernel_info

        return {
            "profile": self.profile.name, "seed": self.seed, "source": self.source, "design": self.design,
            "limb_dir": str(self.limb_dir) if self.limb_dir else None,
            "pelvic_dir": str(self.pelvic_dir) if self.pelvic_dir else None,
            "limb_fingerprint": self.limb.fingerprint, "pelvic_fingerprint": self.pelvic.fingerprint,
            "image_size": self.profile.image_size, "dtype": self.profile.dtype, "hipaug": __version__,
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            **kernel_info(self.threads),
        }

    def record(self, node: Node) -> Path:
        """Copy the files a result node records into the results store; return the store."""
        art, d = self.artifact(node), self.results_dir
        for name in self.table[node.step].records:
            tmp = d / f".{name}.tmp-{os.getpid()}"
            shutil.copyfile(art.path / name, tmp)
            os.replace(tmp, d / name)
        return d

    # ---------------------------------------------------------------- data
    def _data_root(self, kind: str) -> Path:
        user = self.limb_dir if kind == "limb" else self.pelvic_dir
        return user if user is not None else self.artifact(phantom(kind)).path / "data"

    def _where(self, kind: str, root: Path) -> str:
        """How an error names a data set: the parameter for a user folder, else the phantom's path."""
        user = self.limb_dir if kind == "limb" else self.pelvic_dir
        return f"{kind}_dir={str(user)!r}" if user is not None else f"phantom {kind} set {root}"

    @cached_property
    def _limb_and_left_out(self) -> tuple[ImageDataset, dict[str, int]]:
        from hipaug.data import cap_per_class, drop_small_classes

        root = self._data_root("limb")
        ds = load_dataset(root, image_size=self.profile.image_size, min_classes=1)
        ds, small = drop_small_classes(ds, self.profile.data.limb_min_per_class)
        if self.limb_dir is None:  # the phantom is drawn at the profile's sizes: the caps are for folders
            return ds, small
        return cap_per_class(ds, self.profile.data.limb_max_per_class, self.sub_seed("limb-cap")), small

    @property
    def limb_left_out(self) -> dict[str, int]:
        """The limb classes left out for having fewer images than `data.limb_min_per_class`, with their counts."""
        return self._limb_and_left_out[1]

    @cached_property
    def limb(self) -> ImageDataset:
        """The limb set: the user's folder or phantoms (at least 2 classes: a classifier and a conditional GAN)."""
        root = self._data_root("limb")
        ds = self._limb_and_left_out[0]
        if len(ds.class_names) < 2:
            raise DataError(f"{self._where('limb', root)}: the limb set needs at least 2 classes, found "
                            f"{len(ds.class_names)} ({', '.join(ds.class_names)})")
        return ds

    @cached_property
    def pelvic(self) -> ImageDataset:
        """The pelvic set: the user's folder or phantoms (two classes, one the positive class)."""
        from hipaug.data import cap_per_class, check_pelvic

        root = self._data_root("pelvic")
        ds = load_dataset(root, image_size=self.profile.image_size, min_classes=1)
        if self.pelvic_dir is not None:  # as for the limb set: a phantom set has the size its profile asks for
            ds = cap_per_class(ds, self.profile.data.pelvic_max_per_class, self.sub_seed("pelvic-cap"))
        try:
            check_pelvic(ds, self.profile.transfer.positive_class)
        except DataError as exc:
            raise DataError(f"{self._where('pelvic', root)}: {exc}") from None
        return ds

    @cached_property
    def boxes(self):
        """The pelvic set's fracture boxes on the S x S canvas (read once; None: phantoms or a folder without boxes.csv)."""
        from hipaug.data import read_boxes

        return None if self.pelvic_dir is None else read_boxes(self.pelvic_dir, self.profile.image_size)

    def check_data(self) -> "Run":
        """Load and check both data sets now, before anything is trained or written."""
        _ = self.limb, self.pelvic  # cached properties: loading them is the check
        return self

    @cached_property
    def limb_split(self) -> tuple[ImageDataset, ImageDataset]:
        """(train, val) split of the real limb set by patient, shared by every step."""
        from hipaug.method.transfer import split_limb

        return split_limb(self.limb, self.profile.pretrain.val_fraction, seed=self.sub_seed("limb-split"))

    @property
    def design(self) -> str:
        """How conditions are compared: the profile's `transfer.design` on the phantom, "cv" on real pelvic data."""
        return self.profile.transfer.design if self.pelvic_dir is None else "cv"

    def splits(self) -> list[tuple[int, int]]:
        """(repeat, fold) of every fine-tuning run of a condition: each CV repeat's folds, or one per replication."""
        t = self.profile.transfer
        if self.design == "replications":
            return [(r, 0) for r in range(t.replications)]
        return [(r, f) for r in range(t.repeats) for f in range(t.k_folds)]

    def folds(self, repeat: int = 0) -> list:
        """The (train, test) splits of one repeat, shared by every condition (paired comparisons).

        CV: the patient-level stratified folds of the repeat. Replications: one split, the
        replication's own training images and the test set shared by all.
        """
        from hipaug.method.transfer import make_folds, replication_splits

        if repeat not in self._folds:
            t = self.profile.transfer
            if self.design == "replications":
                self._folds[repeat] = [replication_splits(len(self.pelvic), t.replications, t.train_n, t.test_n)[repeat]]
            else:
                self._folds[repeat] = make_folds(self.pelvic, t.k_folds, self.sub_seed(f"folds-{repeat}"))
        return self._folds[repeat]
