"""The experiment as one table of steps, and the graph its nodes form.

`TABLE` holds every step once: the experiment's (`hipaug.pipeline.steps`) and the results the
book reads (`hipaug.pipeline.results`). `targets` are the nodes a run must produce (its results);
`closure` adds every node they need, inputs first. The serial executor, Dask, the dry run, the
command line and the book all take their nodes from here; a new step is one more entry (a
`RunView` also accepts extra steps: `RunView(..., steps=(Step(...),))`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from hipaug.errors import ConfigError
from hipaug.pipeline.results import RESULTS
from hipaug.pipeline.step import Node, RunView, Step
from hipaug.pipeline.steps import STEPS


TABLE: Mapping[str, Step] = {s.name: s for s in (*STEPS, *RESULTS)}
GROUPS = ("results", "ablations")  # the groups of target steps: every run's results, chapter 6's ablations


def with_steps(extra: Iterable[Step] = ()) -> dict[str, Step]:
    """The table with `extra` steps added (a name already in the table is an error, not an override)."""
    table = dict(TABLE)
    for s in extra:
        if s.name in table:
            raise ConfigError(f"step {s.name!r} is already in the table")
        table[s.name] = s
    return table


def targets(run: RunView, groups: Iterable[str] = ("results",)) -> list[Node]:
    """The result nodes of `groups` that apply to this run, in the table's order."""
    groups = tuple(groups)
    bad = [g for g in groups if g not in GROUPS]
    if bad:
        raise ConfigError(f"unknown group {bad[0]!r} (known: {', '.join(GROUPS)})")
    return [Node(s.name, (), s.name) for s in run.table.values()
            if s.group in groups and (s.when is None or s.when(run))]


def closure(run: RunView, nodes: Iterable[Node]) -> list[Node]:
    """Every node `nodes` need and the nodes themselves, each once, inputs before the nodes that read them."""
    order: list[Node] = []
    seen: set[Node] = set()

    def visit(node: Node, path: tuple[Node, ...]) -> None:
        if node in seen:
            return
        if node in path:
            raise ConfigError(f"the step table has a cycle: {' > '.join(map(str, (*path, node)))}")
        if node.step not in run.table:
            raise ConfigError(f"no step {node.step!r} in the table (known: {', '.join(run.table)})")
        for dep in run.table[node.step].needs(run, node.params).values():
            visit(dep, (*path, node))
        seen.add(node)
        order.append(node)

    for n in nodes:
        visit(n, ())
    return order


def inputs_of(run: RunView, node: Node) -> tuple[Node, ...]:
    """The nodes a node reads (its step's `needs`), in a fixed order."""
    return tuple(run.table[node.step].needs(run, node.params).values())
