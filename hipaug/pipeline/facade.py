"""`Pipeline`: the thin facade the chapters, the command line and the book use over a run and its executor.

Everything it returns is a node of the step table, built (or found) on demand: with the default
serial executor each node is built when first asked for, in this process; with a parallel
executor (`"dask"`, `"dask:N"`, a scheduler address) everything the node needs is built on the
cluster first. No method depends on another having run: each asks the table for what it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hipaug.config import Profile
from hipaug.core.artifacts import Artifact
from hipaug.data import ImageDataset
from hipaug.errors import ConfigError
from hipaug.method.filter import FilterResult, Rule
from hipaug.pipeline import steps as S
from hipaug.pipeline.executors import auto_workers, check_executor, concurrency, resolve_executor
from hipaug.pipeline.plan import PREDICT_WORKERS, Plan, plan, tasks
from hipaug.pipeline.results import result
from hipaug.pipeline.run import Run
from hipaug.pipeline.step import Node, Step
from hipaug.pipeline.table import closure, targets


class Pipeline:
    """One run of the reproduction (profile, data, stores) and who builds its steps."""

    def __init__(self, profile: Profile | str = "default", limb_dir: str | Path | None = None,
                 pelvic_dir: str | Path | None = None, artifacts: str | Path | None = None,
                 results: str | Path | None = None, device: str | None = None, seed: int | None = None,
                 executor=None, steps: tuple[Step, ...] = ()):
        self.run = Run(profile, limb_dir, pelvic_dir, artifacts=artifacts, results=results, device=device, seed=seed,
                       steps=steps)
        # None or "serial": each node is built when first asked for; "dask", "dask:N", a scheduler
        # address or an executor object: everything a request needs is built by it first; "auto":
        # the latter where it runs the steps that fix their threads side by side on this machine
        # (pre-training, fine-tuning), else the former.
        self.executor = check_executor(executor)
        if self.executor == "auto" and auto_workers(self.run) < 2:
            self.executor = None
        self.run.threads = getattr(self.executor, "threads", None)

    # ---------------------------------------------------------------- the run, as the chapters name it
    @property
    def profile(self) -> Profile:
        return self.run.profile

    @property
    def seed(self) -> int:
        return self.run.seed

    @property
    def source(self) -> str:
        return self.run.source

    @property
    def limb_dir(self) -> Path | None:
        return self.run.limb_dir

    @property
    def pelvic_dir(self) -> Path | None:
        return self.run.pelvic_dir

    @property
    def limb(self) -> ImageDataset:
        return self.run.limb

    @property
    def limb_left_out(self) -> dict[str, int]:
        """The limb classes left out for having too few images (`data.limb_min_per_class`), with their counts."""
        return self.run.limb_left_out

    @property
    def pelvic(self) -> ImageDataset:
        return self.run.pelvic

    @property
    def limb_split(self) -> tuple[ImageDataset, ImageDataset]:
        return self.run.limb_split

    @property
    def results_path(self) -> Path:
        return self.run.results_path

    @property
    def results_dir(self) -> Path:
        return self.run.results_dir

    def sub_seed(self, name: str) -> int:
        return self.run.sub_seed(name)

    @property
    def design(self) -> str:
        """How conditions are compared: "replications" (the phantom, when the profile says so) or "cv"."""
        return self.run.design

    def splits(self) -> list[tuple[int, int]]:
        """(repeat, fold) of every fine-tuning run of a condition."""
        return self.run.splits()

    def folds(self, repeat: int = 0) -> list:
        return self.run.folds(repeat)

    def check_data(self) -> Pipeline:
        self.run.check_data()
        return self

    # ---------------------------------------------------------------- the table
    def build(self, nodes: list[Node]) -> None:
        """Build `nodes` and all they need with the executor (serially: on demand, so nothing here)."""
        if self.executor is not None:
            resolve_executor(self.executor).run(self.run, tasks(self.run, list(nodes)))

    def artifact(self, node: Node) -> Artifact:
        """A node's artifact (built with everything it needs if missing)."""
        self.build([node])
        return self.run.artifact(node)

    def get(self, node: Node) -> Any:
        """A node's value as its step reads it back."""
        self.build([node])
        return self.run.load(node)

    def result(self, name: str) -> Any:
        """A result the book reads: built if missing, recorded in the results store, returned as its step reads it.

        Every result it is computed from is recorded too (Table VIII's summary records its folds).
        """
        if name not in self.run.table or not self.run.table[name].records:
            known = ", ".join(s.name for s in self.run.table.values() if s.records)
            raise ConfigError(f"{name!r} is not a result of the step table (results: {known})")
        node = result(name)
        self.build([node])
        for n in closure(self.run, [node]):
            if self.run.table[n.step].records:
                self.run.record(n)
        return self.run.load(node)

    def produce(self, groups: tuple[str, ...] = ("results",)) -> list[Node]:
        """Build every result of `groups` with the executor and record them all (what `hipaug reproduce` does)."""
        nodes = targets(self.run, groups)
        self.build(nodes)
        for n in nodes:
            self.run.record(n)
        return nodes

    def step_costs(self) -> dict[str, float]:
        """FLOPs of one build of each kind of step, from the dry run's cost model (nothing is built)."""
        from hipaug.pipeline.plan import step_costs

        return step_costs(self.run)

    def finetune_seconds(self) -> dict[str, float]:
        """Mean seconds one Table VIII fine-tuning run of each condition took (as its artifact recorded them)."""
        from hipaug.core.io import read_json
        from hipaug.pipeline.results import table8_nodes

        took: dict[str, list[float]] = {}
        for n in table8_nodes(self.run):
            took.setdefault(n.params[0], []).append(float(read_json(self.artifact(n).path / "artifact.json")["seconds"]))
        return {c: sum(v) / len(v) for c, v in took.items()}

    @property
    def finetune_concurrency(self) -> int:
        """How many fine-tuning runs this pipeline's executor builds at once on this machine."""
        return concurrency(self.run, self.executor)

    def plan(self, groups: tuple[str, ...] = ("results",), workers: tuple[int, ...] = PREDICT_WORKERS) -> Plan:
        """The dry run of `produce(groups)`: nothing is computed."""
        return plan(self.run, targets(self.run, groups), workers)

    # ---------------------------------------------------------------- named nodes the chapters show
    @property
    def gan(self) -> Artifact:
        """The AC-GAN's run folder (history, sample grids, checkpoint)."""
        return self.artifact(S.ACGAN)

    @property
    def synthetic(self) -> ImageDataset:
        """The unfiltered pool of AC-GAN samples."""
        return self.get(S.SYNTHETIC)

    @property
    def filter_classifier(self):
        """The realism filter: the VGG-16 trained on the real limb training images (`TrainedClassifier`)."""
        return self.get(S.FILTER)

    def pretrained(self, condition: str, rule: Rule | None = None):
        """The limb-pre-trained VGG-16 of a condition (`TrainedClassifier`); a condition without pre-training raises."""
        from hipaug.method.conditions import condition as spec

        if not spec(condition).pretrained:
            raise ConfigError(f"condition {condition!r} is not pre-trained")
        return self.get(S.pretrain(condition, rule))

    @property
    def synthetic_probs(self):
        """The filter's class probabilities of every synthetic image (one scoring pass for every rule)."""
        return self.get(S.SCORES)

    def filtered(self, rule: Rule | None = None) -> FilterResult:
        """The filter's choice under `rule` (the profile's by default)."""
        self.build([S.SCORES])
        return S.filtered(self.run, rule)

    @property
    def boxes(self):
        """The pelvic set's fracture boxes on the S x S canvas (a DataFrame with path, x0, y0, x1, y1), or None."""
        return self.run.boxes

    def fold_model(self, condition: str, rule: Rule | None = None):
        """The fine-tuned pelvic model of fold 0 of the first repeat of a condition (for Grad-CAM)."""
        from hipaug.models.vgg import load_model

        return load_model(self.artifact(S.finetune(condition, rule, 0, 0)).path / "model_fold0.pt")
