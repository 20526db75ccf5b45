"""The pipeline's foundation: profile, data source, seeds, the artifact cache and the results store."""

from __future__ import annotations

import logging
import platform
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from hipaug import __version__
from hipaug.config import Profile, load_profile
from hipaug.core import atomic_write_text, derive_seed, deterministic, write_json
from hipaug.core.artifacts import Artifact, default_root, find_artifact, fingerprint, load_or_run
from hipaug.data import ImageDataset, load_dataset
from hipaug.errors import ConfigError, DataError

log = logging.getLogger("hipaug")


class NotBuilt(Exception):
    """A step's artifact is not in the store (raised only while probing: nothing is built then)."""


def _log(msg: str) -> None:
    log.info(msg)


def default_results_root() -> Path:
    """Results store root: $HIPAUG_RESULTS or <artifacts>/../results."""
    import os

    if "HIPAUG_RESULTS" in os.environ:
        return Path(os.environ["HIPAUG_RESULTS"])
    return default_root().resolve().parent / "results"


class PipelineBase:
    """Profile, data, seeds and stores of one run: the ground every step stands on."""

    def __init__(self, profile: Profile | str = "default", limb_dir: str | Path | None = None,
                 pelvic_dir: str | Path | None = None, artifacts: str | Path | None = None,
                 results: str | Path | None = None, device: str | None = None, seed: int | None = None,
                 executor=None):
        if isinstance(profile, str) or isinstance(profile, Path):
            profile = load_profile(profile, device=device, seed=seed)
        elif device is not None or seed is not None:
            raise ConfigError("pass device/seed overrides together with a profile name, not a Profile object")
        self.profile = profile
        self.limb_dir = self._check_dir(limb_dir, "limb_dir")
        self.pelvic_dir = self._check_dir(pelvic_dir, "pelvic_dir")
        self.artifacts = Path(artifacts) if artifacts is not None else default_root()
        self._results_root = Path(results) if results is not None else default_results_root()
        # Who builds the grid of steps Table VIII needs: None or "serial" builds each step when first
        # asked for, in this process; "dask", "dask:N", a scheduler address or an executor object
        # build the whole grid first (hipaug.pipeline.grid.resolve_executor). Results are the same.
        from hipaug.pipeline.grid import check_executor

        self.executor = check_executor(executor)
        self._probing = False  # True inside probing(): steps report whether they are built, never build
        self._finetune_dirs: dict[tuple, list[Path]] = {}
        self._pretrained: dict[tuple, Artifact] = {}
        self._table8: dict[tuple[str, ...], tuple[pd.DataFrame, pd.DataFrame]] = {}
        deterministic(True)

    @staticmethod
    def _check_dir(d: str | Path | None, name: str) -> Path | None:
        if d is None or str(d) in ("", "None"):
            return None
        p = Path(d).expanduser()
        if not p.is_dir():
            raise DataError(f"{name}={str(d)!r} is not a directory")
        return p.resolve()

    # ---------------------------------------------------------------- seeds, store
    @property
    def seed(self) -> int:
        return self.profile.seed

    def sub_seed(self, name: str) -> int:
        """The seed of one step, derived from the profile's seed."""
        return derive_seed(self.seed, name)

    def step(self, name: str, spec: dict, build) -> Artifact:
        """Run one cached step, logging whether it was reused (inside `probing()`: never build)."""
        if self._probing:
            found = find_artifact(name, spec, root=self.artifacts)
            if found is None:
                raise NotBuilt(name)
            return found
        t0 = time.perf_counter()
        art = load_or_run(name, spec, build, root=self.artifacts)
        _log(f"{name}: {'cached' if art.cached else 'built'} {art.path} ({time.perf_counter() - t0:.1f}s)")
        return art

    @contextmanager
    def probing(self):
        """Within this block a step whose artifact is missing raises `NotBuilt` instead of building it."""
        self._probing = True
        try:
            yield self
        finally:
            self._probing = False

    @cached_property
    def source(self) -> str:
        """'phantom' or 'custom-<fingerprint>' naming the data the results come from."""
        if self.limb_dir is None and self.pelvic_dir is None:
            return "phantom"
        fp = fingerprint([self.limb.fingerprint, self.pelvic.fingerprint])
        return f"custom-{fp[:10]}"

    @property
    def results_path(self) -> Path:
        """`<results>/<profile>/<source>/` without creating it (the book reads it)."""
        return self._results_root / self.profile.name / self.source

    @cached_property
    def results_dir(self) -> Path:
        """`<results>/<profile>/<source>/`, created; run.json describes the data, profile and versions."""
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
            "profile": self.profile.name, "seed": self.seed, "source": self.source,
            "limb_dir": str(self.limb_dir) if self.limb_dir else None,
            "pelvic_dir": str(self.pelvic_dir) if self.pelvic_dir else None,
            "limb_fingerprint": self.limb.fingerprint, "pelvic_fingerprint": self.pelvic.fingerprint,
            "image_size": self.profile.image_size, "dtype": self.profile.dtype, "hipaug": __version__,
            "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
            # A Dask executor's tasks run with its threads, not the driver's.
            **kernel_info(getattr(self.executor, "threads", None)),
        }

    def record(self, name: str, obj: Any) -> Path:
        """Write a result (DataFrame -> CSV, dict -> JSON) into the results store."""
        d = self.results_dir
        if isinstance(obj, pd.DataFrame):
            return atomic_write_text(d / f"{name}.csv", obj.to_csv(index=False))
        return write_json(d / f"{name}.json", obj)

    # ---------------------------------------------------------------- data
    def _phantom(self, kind: str) -> Path:
        from hipaug.data import phantoms

        ph, size = self.profile.phantom, self.profile.image_size
        if kind == "limb":
            spec = {"per_class": ph.limb_per_class, "labels": ph.limb_labels, "image_size": size,
                    "difficulty": ph.limb_difficulty, "parts": ph.limb_parts and list(ph.limb_parts), "seed": self.sub_seed("phantom-limb")}
            build = lambda out: phantoms.write_limb_dataset(out / "data", **spec)  # noqa: E731
        else:
            spec = {"n": ph.pelvic_n, "fracture_rate": ph.fracture_rate, "difficulty": ph.difficulty,
                    "image_size": size, "seed": self.sub_seed("phantom-pelvic")}
            build = lambda out: phantoms.write_pelvic_dataset(out / "data", **spec)  # noqa: E731
        return self.step(f"phantom-{kind}", spec, build).path / "data"

    def _where(self, kind: str, root: Path) -> str:
        """How an error names a data set: the parameter for a user folder, else the phantom's path."""
        user = self.limb_dir if kind == "limb" else self.pelvic_dir
        return f"{kind}_dir={str(user)!r}" if user is not None else f"phantom {kind} set {root}"

    @cached_property
    def limb(self) -> ImageDataset:
        """The limb set: the user's folder or phantoms (at least 2 classes: a classifier and a conditional GAN)."""
        root = self.limb_dir or self._phantom("limb")
        ds = load_dataset(root, image_size=self.profile.image_size, min_classes=1)
        if len(ds.class_names) < 2:
            raise DataError(f"{self._where('limb', root)}: the limb set needs at least 2 classes, found "
                            f"{len(ds.class_names)} ({', '.join(ds.class_names)})")
        return ds

    @cached_property
    def pelvic(self) -> ImageDataset:
        """The pelvic set: the user's folder or phantoms (two classes, one the positive class)."""
        from hipaug.method.transfer import check_pelvic

        root = self.pelvic_dir or self._phantom("pelvic")
        ds = load_dataset(root, image_size=self.profile.image_size, min_classes=1)
        try:
            check_pelvic(ds, self.profile.transfer.positive_class)
        except DataError as exc:
            raise DataError(f"{self._where('pelvic', root)}: {exc}") from None
        return ds

    def check_data(self) -> "PipelineBase":
        """Load and check both data sets now, before anything is trained or written."""
        _ = self.limb, self.pelvic  # cached properties: loading them is the check
        return self

    @cached_property
    def limb_split(self) -> tuple[ImageDataset, ImageDataset]:
        """(train, val) split of the real limb set by patient, shared by every step."""
        from hipaug.method.transfer import split_limb

        return split_limb(self.limb, self.profile.pretrain.val_fraction, seed=self.sub_seed("limb-split"))
