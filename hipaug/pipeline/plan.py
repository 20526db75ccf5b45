"""The dry run: which nodes a run needs, which are built, what they cost, and the wall time on W workers.

`tasks` turns the table's nodes into the graph the planner and the executors share (each node
with its inputs and FLOPs); `plan` probes the store without building anything, finds the
critical path and predicts the makespan on W workers from the FLOPs (`hipaug.pipeline.cost`).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from hipaug.pipeline.run import Run
from hipaug.pipeline.step import Node, NotBuilt
from hipaug.pipeline.table import closure, inputs_of

SUSTAINED_TFLOPS = 50.0  # assumed sustained GPU throughput of a prediction (bf16; as bench_paper_cost)
PREDICT_WORKERS = (1, 4, 8)  # worker (GPU) counts the dry run predicts


@dataclass(frozen=True)
class Task:
    """One node of the graph with what the planner needs: its inputs and its FLOPs."""

    node: Node  # what to build
    deps: tuple[str, ...]  # ids of the nodes whose artifacts it reads
    flops: float  # estimated FLOPs (an upper bound: no early stopping)

    @property
    def id(self) -> str:
        return str(self.node)


def step_costs(run: Run) -> dict[str, float]:
    """FLOPs of one build of each kind of step for this run's profile and data."""
    from hipaug.pipeline.cost import Sizes, limb_class_count, network_flops, step_flops

    prof = run.profile
    if run.limb_dir is None and run.pelvic_dir is None:
        sizes = Sizes.of_profile(prof, limb_class_count(prof))  # nothing is rendered or loaded
    else:
        sizes = Sizes(len(run.limb.class_names), len(run.limb), len(run.pelvic))
    return step_flops(prof, network_flops(prof, sizes.n_classes), sizes)


def tasks(run: Run, nodes: list[Node], costs: dict[str, float] | None = None) -> list[Task]:
    """The graph of `nodes` and everything they need, inputs first, with each node's FLOPs."""
    costs = costs if costs is not None else step_costs(run)
    return [Task(n, tuple(str(d) for d in inputs_of(run, n)), float(run.table[n.step].cost(run, n.params, costs)))
            for n in closure(run, nodes)]


def probe(run: Run, graph: list[Task]) -> dict[str, bool]:
    """Which tasks' artifacts are in the store, found without building anything.

    A task is probed only once its inputs are all built (its key depends on them); a task with an
    input still to build counts as not built.
    """
    built: dict[str, bool] = {}
    with run.probing():
        for t in graph:
            ok = all(built.get(d, True) for d in t.deps)
            if ok:
                try:
                    run.artifact(t.node)
                except NotBuilt:
                    ok = False
            built[t.id] = ok
    return built


def bottom_levels(graph: list[Task]) -> dict[str, float]:
    """Each task's FLOPs plus the longest chain of FLOPs that must follow it (its scheduling priority)."""
    children: dict[str, list[str]] = {t.id: [] for t in graph}
    for t in graph:
        for d in t.deps:
            if d in children:  # an input outside `graph` is already built
                children[d].append(t.id)
    level: dict[str, float] = {}
    for t in reversed(graph):
        level[t.id] = t.flops + max((level[c] for c in children[t.id]), default=0.0)
    return level


def critical_path(graph: list[Task]) -> tuple[list[str], float]:
    """The longest chain of dependent tasks by FLOPs, and its FLOPs (no number of workers finishes sooner)."""
    best: dict[str, tuple[float, str | None]] = {}
    for t in graph:
        prev = max((d for d in t.deps if d in best), key=lambda d: best[d][0], default=None)
        best[t.id] = (t.flops + (best[prev][0] if prev else 0.0), prev)
    if not best:
        return [], 0.0
    end = max(best, key=lambda k: best[k][0])
    path, node = [], end
    while node is not None:
        path.append(node)
        node = best[node][1]
    return path[::-1], best[end][0]


def simulate(graph: list[Task], workers: int) -> float:
    """Makespan in FLOPs on `workers` equal workers: list scheduling, longest remaining chain first."""
    level = bottom_levels(graph)
    ids = {t.id for t in graph}
    waiting = {t.id: sum(d in ids for d in t.deps) for t in graph}
    children: dict[str, list[str]] = {t.id: [] for t in graph}
    for t in graph:
        for d in t.deps:
            if d in ids:
                children[d].append(t.id)
    flops = {t.id: t.flops for t in graph}
    order = {t.id: i for i, t in enumerate(graph)}
    ready = [(-level[t.id], order[t.id], t.id) for t in graph if waiting[t.id] == 0]
    heapq.heapify(ready)
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
    makespans: dict[int, float]  # workers -> predicted makespan in FLOPs (whole graph, empty store)

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
                         f"{_after(t.deps)}")
        share = self.path_flops / self.total if self.total else 0.0
        lines += ["", f"critical path ({_flop(self.path_flops)}, {share:.0%} of all): {' > '.join(self.path)}", "",
                  f"predicted for the whole graph (longest chain first; FLOPs only, no data loading; "
                  f"hours at {tflops:g} TFLOP/s sustained per worker):"]
        for r in self.scaling_rows(tflops):
            lines.append(f"  {r['workers']:>2} workers: {_flop(r['makespan PFLOP'] * 1e15)}, "
                         f"speed-up {r['speed-up']:.2f}, {_duration(r[f'hours at {tflops:g} TFLOP/s'] * 3600)}")
        return "\n".join(lines)


def _after(deps: tuple[str, ...], shown: int = 4) -> str:
    """A task's inputs for the dry run's table: all of them, or the first few and how many more."""
    if len(deps) <= shown:
        return ", ".join(deps) or "-"
    return f"{', '.join(deps[:shown - 1])} and {len(deps) - shown + 1} more"


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


def plan(run: Run, nodes: list[Node], workers: tuple[int, ...] = PREDICT_WORKERS) -> Plan:
    """The dry run of `nodes` (and all they need): probe the store, find the critical path, predict each worker count."""
    graph = tasks(run, nodes)
    path, path_flops = critical_path(graph)
    return Plan(run.profile.name, run.source, graph, probe(run, graph), path, path_flops,
                {w: simulate(graph, w) for w in sorted(set(workers))})
