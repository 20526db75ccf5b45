"""The experiment as a task graph: one task per cached step Table VIII needs, with its FLOPs and inputs.

The tasks are the pipeline's cached steps: the phantoms, the AC-GAN, its samples, the realism
filter and its scores, one pre-training per condition (and per ablation rule), and one
fine-tuning per (condition, repeat, fold). A task's output is its artifact in the content-keyed
store, so any process that reads the store can run it, a task whose artifact exists is skipped,
and the results assembled from the artifacts do not depend on who built them, or in which order.

`SerialExecutor` runs the tasks in this process; `hipaug.pipeline.distributed.DaskExecutor` on a
Dask cluster (the `cluster` extra; only that module imports dask). `plan` is the dry run: it
probes the store without building anything, finds the critical path and predicts the wall time
on W workers from the tasks' FLOPs (`hipaug.pipeline.cost`).
"""

from __future__ import annotations

import dataclasses
import heapq
from dataclasses import dataclass

from hipaug.errors import ConfigError
from hipaug.pipeline.store import NotBuilt

SUSTAINED_TFLOPS = 50.0  # assumed sustained GPU throughput of a prediction (bf16; as bench_paper_cost)
PREDICT_WORKERS = (1, 4, 8)  # worker (GPU) counts the dry run predicts


@dataclass(frozen=True)
class Task:
    """One cached step of the grid."""

    id: str  # unique and readable: "acgan", "pretrain/with_gan", "finetune/with_gan@p>=0.5/r0/f3"
    kind: str  # phantom | acgan | synthetic | filter | filter-scores | pretrain | finetune
    args: tuple  # the arguments of the pipeline call that builds it (see run_task)
    deps: tuple[str, ...]  # ids of the tasks whose artifacts this one reads
    flops: float  # estimated FLOPs (an upper bound: no early stopping)


def _rule(threshold: float | None, top_k: int | None) -> str:
    if threshold is not None:
        return f"@p>={threshold:g}"
    return f"@top-{top_k}" if top_k is not None else ""


def step_costs(pipe) -> dict[str, float]:
    """FLOPs of one task of each kind for this pipeline's profile and data."""
    from hipaug.pipeline.cost import Sizes, limb_class_count, network_flops, step_flops

    prof = pipe.profile
    if pipe.limb_dir is None and pipe.pelvic_dir is None:
        sizes = Sizes.of_profile(prof, limb_class_count(prof))  # nothing is rendered or loaded
    else:
        sizes = Sizes(len(pipe.limb.class_names), len(pipe.limb), len(pipe.pelvic))
    return step_flops(prof, network_flops(prof, sizes.n_classes), sizes)


def grid_tasks(pipe, conditions: tuple[str, ...] | None = None, ablations: bool = False,
               costs: dict[str, float] | None = None) -> list[Task]:
    """The tasks of Table VIII's `conditions` (the profile's by default) and the ablation rules, in dependency order."""
    prof = pipe.profile
    conditions = tuple(prof.transfer.conditions if conditions is None else conditions)
    costs = costs if costs is not None else step_costs(pipe)
    tasks: list[Task] = []

    def add(tid: str, kind: str, args: tuple, deps: tuple[str, ...], flops: float) -> str:
        tasks.append(Task(tid, kind, args, deps, flops))
        return tid

    limb = (add("phantom-limb", "phantom", ("limb",), (), 0.0),) if pipe.limb_dir is None else ()
    pelvic = (add("phantom-pelvic", "phantom", ("pelvic",), (), 0.0),) if pipe.pelvic_dir is None else ()
    ab = prof.ablation
    rules = [(None, None)] + ([(t, None) for t in ab.thresholds] + [(None, k) for k in ab.top_k] if ablations else [])
    gan_conditions = {"with_gan", "unfiltered_gan"}
    # without_gan pre-trains with the filter's exact settings: one artifact, built once by `filter`.
    shared = dataclasses.replace(prof.pretrain, augment=None) == prof.filter_train
    gan = bool(gan_conditions & set(conditions)) or len(rules) > 1
    if gan:
        add("acgan", "acgan", (), limb, costs["acgan"])
        add("synthetic", "synthetic", (), ("acgan",), costs["synthetic"])
    if gan or (shared and "without_gan" in conditions):
        add("filter", "filter", (), limb, costs["filter"])
    if gan:
        add("filter-scores", "filter-scores", (), ("filter", "synthetic"), costs["filter-scores"])
    for threshold, top_k in rules:
        ablation = (threshold, top_k) != (None, None)
        for c in ("with_gan",) if ablation else conditions:
            name, pre = f"{c}{_rule(threshold, top_k)}", ()
            if c in gan_conditions:
                pre = (add(f"pretrain/{name}", "pretrain", (c, threshold, top_k), ("filter-scores",), costs["pretrain"]),)
            elif c == "without_gan" and shared:
                pre = (add(f"pretrain/{name}", "pretrain", (c, None, None), ("filter",), 0.0),)
            elif c != "scratch":
                pre = (add(f"pretrain/{name}", "pretrain", (c, None, None), limb, costs["pretrain"]),)
            for r in range(1 if ablation else prof.transfer.repeats):  # ablations: the first repeat
                for f in range(prof.transfer.k_folds):
                    add(f"finetune/{name}/r{r}/f{f}", "finetune", (c, threshold, top_k, r, f), pre + pelvic,
                        costs["finetune"])
    return tasks


def run_task(pipe, task: Task) -> None:
    """Build (or reuse) the task's artifact in this process; inputs missing from the store are built first."""
    kind, a = task.kind, task.args
    if kind == "phantom":
        pipe._phantom(*a)
    elif kind == "acgan":
        _ = pipe.gan
    elif kind == "synthetic":
        _ = pipe.synthetic
    elif kind == "filter":
        _ = pipe.filter_artifact
    elif kind == "filter-scores":
        _ = pipe.synthetic_probs
    elif kind == "pretrain":
        pipe.pretrain_artifact(*a)
    elif kind == "finetune":
        pipe.finetune_fold(*a)
    else:
        raise ConfigError(f"task {task.id}: unknown kind {kind!r}")


def probe(pipe, tasks: list[Task]) -> dict[str, bool]:
    """Which tasks' artifacts are in the store, found without building anything.

    A task is probed only once its inputs are all built (its key depends on them); a task with an
    input still to build counts as not built.
    """
    built: dict[str, bool] = {}
    with pipe.probing():
        for t in tasks:
            ok = all(built[d] for d in t.deps)
            if ok:
                try:
                    run_task(pipe, t)
                except NotBuilt:
                    ok = False
            built[t.id] = ok
    return built


def bottom_levels(tasks: list[Task]) -> dict[str, float]:
    """Each task's FLOPs plus the longest chain of FLOPs that must follow it (its scheduling priority)."""
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in t.deps:
            if d in children:  # an input outside `tasks` is already built
                children[d].append(t.id)
    level: dict[str, float] = {}
    for t in reversed(tasks):
        level[t.id] = t.flops + max((level[c] for c in children[t.id]), default=0.0)
    return level


def critical_path(tasks: list[Task]) -> tuple[list[str], float]:
    """The longest chain of dependent tasks by FLOPs, and its FLOPs (no number of workers finishes sooner)."""
    best: dict[str, tuple[float, str | None]] = {}
    for t in tasks:
        prev = max(t.deps, key=lambda d: best[d][0], default=None)
        best[t.id] = (t.flops + (best[prev][0] if prev else 0.0), prev)
    if not best:
        return [], 0.0
    end = max(best, key=lambda k: best[k][0])
    path, node = [], end
    while node is not None:
        path.append(node)
        node = best[node][1]
    return path[::-1], best[end][0]


def simulate(tasks: list[Task], workers: int) -> float:
    """Makespan in FLOPs on `workers` equal workers: list scheduling, longest remaining chain first."""
    level = bottom_levels(tasks)
    waiting = {t.id: len(t.deps) for t in tasks}
    children: dict[str, list[str]] = {t.id: [] for t in tasks}
    for t in tasks:
        for d in t.deps:
            children[d].append(t.id)
    flops = {t.id: t.flops for t in tasks}
    ready = [(-level[t.id], i, t.id) for i, t in enumerate(tasks) if not t.deps]
    heapq.heapify(ready)
    order = {t.id: i for i, t in enumerate(tasks)}
    running: list[tuple[float, str]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < workers:
            _, _, tid = heapq.heappop(ready)
            heapq.heappush(running, (now + flops[tid], tid))
        now, tid = heapq.heappop(running)
        for c in children[tid]:
            waiting[c] -= 1
            if waiting[c] == 0:
                heapq.heappush(ready, (-level[c], order[c], c))
    return now


@dataclass(frozen=True)
class Plan:
    """The dry run: the tasks, which are built, the critical path and the predicted scaling."""

    profile: str  # profile name
    source: str  # phantom or custom-<fingerprint>
    tasks: list[Task]  # in dependency order
    built: dict[str, bool]  # task id -> artifact already in the store
    path: list[str]  # the critical path's task ids
    path_flops: float  # its FLOPs
    makespans: dict[int, float]  # workers -> predicted makespan in FLOPs (whole grid, empty store)

    @property
    def total(self) -> float:
        return sum(t.flops for t in self.tasks)

    def scaling_rows(self, tflops: float = SUSTAINED_TFLOPS) -> list[dict]:
        """One row per worker count: makespan, speed-up over one worker, hours at `tflops` TFLOP/s."""
        one = self.makespans.get(1, self.total)
        return [{"workers": w, "makespan PFLOP": m / 1e15, "speed-up": one / m if m else float("nan"),
                 "bound total/W or path": max(self.total / w, self.path_flops) / 1e15,
                 f"hours at {tflops:g} TFLOP/s": m / (tflops * 1e12) / 3600} for w, m in self.makespans.items()]

    def to_text(self, tflops: float = SUSTAINED_TFLOPS) -> str:
        """The dry run as the terminal shows it."""
        todo = [t for t in self.tasks if not self.built[t.id]]
        lines = [f"task graph of profile `{self.profile}`, data `{self.source}`: {len(self.tasks)} tasks, "
                 f"{len(self.tasks) - len(todo)} built; {_flop(self.total)} in all, "
                 f"{_flop(sum(t.flops for t in todo))} to run",
                 "(FLOPs counted on the meta device; upper bounds: no early stopping)", ""]
        width = max(len(t.id) for t in self.tasks) if self.tasks else 4
        lines.append(f"{'task':<{width}}  {'FLOP':>10}  built  after")
        for t in self.tasks:
            lines.append(f"{t.id:<{width}}  {_flop(t.flops, unit=False):>10}  {'yes' if self.built[t.id] else 'no':<5}  "
                         f"{', '.join(t.deps) or '-'}")
        share = self.path_flops / self.total if self.total else 0.0
        lines += ["", f"critical path ({_flop(self.path_flops)}, {share:.0%} of all): {' > '.join(self.path)}", "",
                  f"predicted for the whole grid (longest chain first; FLOPs only, no data loading; "
                  f"hours at {tflops:g} TFLOP/s sustained per worker):"]
        for r in self.scaling_rows(tflops):
            lines.append(f"  {r['workers']:>2} workers: {_flop(r['makespan PFLOP'] * 1e15)}, "
                         f"speed-up {r['speed-up']:.2f}, {_duration(r[f'hours at {tflops:g} TFLOP/s'] * 3600)}")
        return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.3g} s"
    return f"{seconds / 60:.3g} min" if seconds < 7200 else f"{seconds / 3600:.3g} h"


def _flop(x: float, unit: bool = True) -> str:
    """FLOPs with an SI prefix, three significant digits: 3.2 TFLOP, 1,610 PFLOP."""
    if x == 0:
        return "0" if not unit else "0 FLOP"
    for p, scale in (("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6)):
        if x >= scale:
            v = x / scale
            return f"{v:,.0f} {p}FLOP" if v >= 1000 else f"{v:.3g} {p}FLOP"
    return f"{x:.3g} FLOP"


def plan(pipe, tasks: list[Task], workers: tuple[int, ...] = PREDICT_WORKERS) -> Plan:
    """The dry run of `tasks`: probe the store, find the critical path, predict the makespan on each worker count."""
    path, path_flops = critical_path(tasks)
    return Plan(pipe.profile.name, pipe.source, tasks, probe(pipe, tasks), path, path_flops,
                {w: simulate(tasks, w) for w in sorted(set(workers))})


class SerialExecutor:
    """Run the tasks one after another in this process (as the pipeline does on demand)."""

    def run(self, pipe, tasks: list[Task]) -> None:
        for t in tasks:
            run_task(pipe, t)


def dask_executor(**kwargs):
    """A `DaskExecutor` (hipaug.pipeline.distributed); a one-line ConfigError when the cluster extra is missing."""
    try:
        from hipaug.pipeline.distributed import DaskExecutor
    except ImportError as exc:
        raise ConfigError(f"the Dask executor needs the cluster extra ({exc}): pip install -e '.[cluster]'") from None
    import logging

    logging.getLogger("distributed").setLevel(logging.WARNING)  # after dask's import set it: its warnings only
    return DaskExecutor(**kwargs)


EXECUTOR_SPECS = "serial, dask, dask:N (N local processes) or a scheduler address such as tcp://host:8786"
_ADDRESS_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")


def executor_kwargs(spec: str) -> dict | None:
    """Parse an executor string: None for serial, else the `DaskExecutor` arguments; a one-line error naming it."""
    text = spec.strip()
    if text in ("", "serial", "None"):
        return None
    if text == "dask":
        return {}
    if text.startswith("dask:") and text[5:].isdigit() and int(text[5:]) >= 1:
        return {"workers": int(text[5:])}
    if text.startswith(_ADDRESS_SCHEMES) and len(text.split("://", 1)[1]) > 0:
        return {"scheduler": text}
    raise ConfigError(f"executor={spec!r} is not one of {EXECUTOR_SPECS}")


def check_executor(executor):
    """Return the executor a Pipeline keeps: None (serial, on demand), a spec string, or an object with run()."""
    if executor is None:
        return None
    if isinstance(executor, str):
        return None if executor_kwargs(executor) is None else executor.strip()
    if callable(getattr(executor, "run", None)):
        return executor
    raise ConfigError(f"executor={executor!r} is not one of {EXECUTOR_SPECS} (or an object with run(pipe, tasks))")


def resolve_executor(executor):
    """None or "serial": in this process; "dask", "dask:N" or an address: Dask; or an object with run(pipe, tasks)."""
    executor = check_executor(executor)
    if executor is None:
        return SerialExecutor()
    if isinstance(executor, str):
        return dask_executor(**executor_kwargs(executor))
    return executor
