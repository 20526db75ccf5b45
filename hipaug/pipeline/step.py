"""The unit of the experiment's table: a `Step`, declared once, and a `Node`, one step with its parameters.

A step says what it reads (`needs`: other nodes, by role), what keys its artifact (`spec`), how
its artifact is built (`build`) and read back (`load`), and what it costs (`cost`, FLOPs for the
dry run). Every executor (serial, Dask), the dry run, the command line and the book walk the
same table (`hipaug.pipeline.table`), so a new step is one new entry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from hipaug.config import Profile
from hipaug.core.artifacts import Artifact
from hipaug.data import ImageDataset


class RunView(Protocol):
    """What a step's functions see of the run they belong to (`hipaug.pipeline.run.Run` is the one there is)."""

    profile: Profile  # every setting
    limb_dir: Path | None  # the user's limb folder (None: phantoms)
    pelvic_dir: Path | None  # the user's pelvic folder (None: phantoms)
    table: Mapping[str, Step]  # the steps this run walks
    seed: int  # the profile's seed
    source: str  # phantom or custom-<fingerprint>
    limb: ImageDataset  # the real limb images
    limb_left_out: dict[str, int]  # limb classes left out as too small (data.limb_min_per_class), with counts
    pelvic: ImageDataset  # the pelvic radiographs
    boxes: Any  # the pelvic set's fracture boxes on the S x S canvas (a DataFrame; None: the set has none)
    limb_split: tuple[ImageDataset, ImageDataset]  # (train, validation) real limb images
    design: str  # how conditions are compared: cv or replications (the phantom only)

    def sub_seed(self, name: str) -> int: ...  # the seed of one named step
    def splits(self) -> list[tuple[int, int]]: ...  # (repeat, fold) of every fine-tuning run of a condition
    def folds(self, repeat: int = 0) -> list: ...  # one repeat's (train, test) splits
    def load(self, node: Node) -> Any: ...  # another node's value (built if missing)


class NotBuilt(Exception):
    """A node's artifact is not in the store (raised only while probing: nothing is built then)."""


@dataclass(frozen=True)
class Node:
    """One step with its parameters: the unit an executor builds and the dry run lists."""

    step: str  # the name of a step of the table
    params: tuple = ()  # its parameters, e.g. ("with_gan", Rule(threshold=0.5), 0, 3) for a fine-tuning fold
    label: str = field(default="", compare=False)  # its readable id, e.g. "finetune/with_gan@p>=0.5/r0/f3"

    @property
    def id(self) -> str:
        """The readable id the dry run, the logs and Dask's task keys use (the step's name when unlabelled)."""
        return self.label or "/".join([self.step, *map(str, self.params)])

    def __str__(self) -> str:
        return self.id


Needs = Callable[[RunView, tuple], dict[str, Node]]
Spec = Callable[[RunView, tuple, dict[str, Artifact]], dict]
Build = Callable[[RunView, tuple, dict[str, Artifact], Path], None]
Load = Callable[[RunView, tuple, Artifact], Any]
Cost = Callable[[RunView, tuple, dict[str, float]], float]


def no_needs(run: RunView, params: tuple) -> dict[str, Node]:
    return {}


def the_folder(run: RunView, params: tuple, art: Artifact) -> Path:
    return art.path


def free(run: RunView, params: tuple, flops: dict[str, float]) -> float:
    return 0.0


@dataclass(frozen=True)
class Step:
    """One step of the experiment: its inputs, the spec that keys it, how to build and read it, its cost."""

    name: str  # the table's key; a node's id starts with it
    spec: Spec  # everything that determines the output: configs, input keys, data fingerprints, seed
    build: Build  # write the artifact into the folder it is given
    needs: Needs = no_needs  # the nodes whose artifacts it reads, by role (data, other steps)
    load: Load = the_folder  # the value a caller gets (a dataset, a model, a table); default: the folder
    cost: Cost = free  # FLOPs of one build, for the dry run (upper bounds: no early stopping)
    folder: str | None = None  # the artifact store's folder when not `name` (filter and pre-training share "classifier")
    records: tuple[str, ...] = ()  # files of the artifact copied into the results store (what the book reads)
    group: str | None = None  # None: built when another step needs it; "results": every run's results;
    #   "ablations": chapter 6's selection rules (`hipaug reproduce --ablations`)
    when: Callable[[RunView], bool] | None = None  # a target only where this holds (None: always)
    threads: Callable[[RunView], int | None] | None = None  # the torch threads every build fixes for itself
    #   (its bytes then do not depend on the process that builds it: `AutoExecutor` farms it out); None: the process's

    @property
    def store_folder(self) -> str:
        return self.folder or self.name
