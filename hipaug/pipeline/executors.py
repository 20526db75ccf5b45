"""Who builds a run's nodes: this process (serial) or a Dask cluster, named by one executor string.

An executor has `run(run, tasks)`: it builds every task's artifact (inputs first) in the shared
store; results are then read from the store, the same bytes whoever built them. `SerialExecutor`
builds in this process; `hipaug.pipeline.distributed.DaskExecutor` on Dask (the `cluster` extra;
only that module imports dask); `AutoExecutor` spreads only the tasks whose results cannot depend
on the process that builds them over local workers. `executor_kwargs` parses the notebooks' and
the book's `executor` parameter.
"""

from __future__ import annotations

import os

from hipaug.errors import ConfigError
from hipaug.pipeline.plan import Task
from hipaug.pipeline.run import Run


class SerialExecutor:
    """Build the tasks one after another in this process (as a run does on demand)."""

    def run(self, run: Run, tasks: list[Task]) -> None:
        for t in tasks:
            run.artifact(t.node)


def step_threads(run: Run, step: str) -> int | None:
    """The torch threads every build of `step` fixes for itself (its `Step.threads`), or None."""
    threads = run.table[step].threads
    return threads(run) if threads is not None else None


def pinned_threads(run: Run, task: Task) -> int | None:
    """The torch threads a task fixes for itself, or None."""
    return step_threads(run, task.node.step)


class AutoExecutor:
    """Build the tasks that fix their own torch threads on local worker processes, the rest here.

    A CPU kernel's summation order depends on its thread count, so a task's bytes depend on the
    process that builds it unless it fixes its threads (the fine-tuning folds do, through
    `finetune.num_threads`). Those tasks go to a local Dask cluster of one worker per
    `threads` cores, each at that many threads: on 2 cores two single-thread fine-tunings at once
    do ~1.4x the work of one on both cores (small convolutions scale poorly across threads).
    Everything else (the GAN, the filter, pre-training, the results) is built in this process
    with all its threads, before the grid when the grid needs it and after it otherwise. Serial
    when no task fixes its threads, the cores fit only one worker, or the cluster extra is missing.
    """

    threads = None  # each task sets its own

    @staticmethod
    def workers(threads: int | None) -> int:
        """How many tasks of `threads` torch threads run at once here (1: serially)."""
        n = _cores() // threads if threads else 1
        return n if n >= 2 and _has_dask() else 1

    def run(self, run: Run, tasks: list[Task]) -> None:
        pinned = {t.id: n for t in tasks if (n := pinned_threads(run, t))}
        threads = max(pinned.values(), default=None)
        workers = self.workers(threads)
        if workers < 2:
            SerialExecutor().run(run, tasks)
            return
        after = set(pinned)  # tasks that need a pinned task, directly or not
        for t in tasks:  # inputs first
            if any(d in after for d in t.deps):
                after.add(t.id)
        SerialExecutor().run(run, [t for t in tasks if t.id not in after])
        grid = [t for t in tasks if t.id in pinned]
        dask_executor(workers=workers, threads=threads).run(run, grid)
        SerialExecutor().run(run, [t for t in tasks if t.id in after and t.id not in pinned])


def auto_workers(run: Run) -> int:
    """The local workers `AutoExecutor` would start for `run`: by the most threads any of its steps fixes (1: serial)."""
    return AutoExecutor.workers(max(filter(None, (step_threads(run, s) for s in run.table)), default=None))


def concurrency(run: Run, executor, step: str = "finetune") -> int:
    """How many builds of `step` `executor` runs at once on this machine (1: one after another, or unknown)."""
    executor = check_executor(executor)
    if isinstance(executor, AutoExecutor) or executor == "auto":
        return AutoExecutor.workers(step_threads(run, step))
    if isinstance(executor, str):
        return executor_kwargs(executor).get("workers") or 1  # a remote cluster's size is not known here
    return int(getattr(executor, "workers", 1) or 1)


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _has_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


def dask_executor(**kwargs):
    """A `DaskExecutor` (hipaug.pipeline.distributed); a one-line ConfigError when the cluster extra is missing."""
    try:
        from hipaug.pipeline.distributed import DaskExecutor
    except ImportError as exc:
        raise ConfigError(f"the Dask executor needs the cluster extra ({exc}): pip install -e '.[cluster]'") from None
    import logging

    logging.getLogger("distributed").setLevel(logging.WARNING)  # after dask's import set it: its warnings only
    return DaskExecutor(**kwargs)


EXECUTOR_SPECS = "serial, auto, dask, dask:N (N local processes) or a scheduler address such as tcp://host:8786"
_ADDRESS_SCHEMES = ("tcp://", "tls://", "ucx://", "inproc://", "ws://", "wss://")


def executor_kwargs(spec: str) -> dict | None:
    """Parse an executor string: None for serial, else the `DaskExecutor` arguments; a one-line error naming it."""
    text = spec.strip()
    if text in ("", "serial", "None"):
        return None
    if text == "auto":
        return {"auto": True}
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
    raise ConfigError(f"executor={executor!r} is not one of {EXECUTOR_SPECS} (or an object with run(run, tasks))")


def resolve_executor(executor):
    """None or "serial": in this process; "auto": `AutoExecutor`; "dask", "dask:N" or an address: Dask; or an object."""
    executor = check_executor(executor)
    if executor is None:
        return SerialExecutor()
    if isinstance(executor, str):
        kwargs = executor_kwargs(executor)
        return AutoExecutor() if kwargs.pop("auto", False) else dask_executor(**kwargs)
    return executor
