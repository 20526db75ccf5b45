"""Who builds a run's nodes: this process (serial) or a Dask cluster, named by one executor string.

An executor has `run(run, tasks)`: it builds every task's artifact (inputs first) in the shared
store; results are then read from the store, the same bytes whoever built them. `SerialExecutor`
builds in this process; `hipaug.pipeline.distributed.DaskExecutor` on Dask (the `cluster` extra;
only that module imports dask). `executor_kwargs` parses the notebooks' and the book's
`executor` parameter.
"""

from __future__ import annotations

from hipaug.errors import ConfigError
from hipaug.pipeline.plan import Task
from hipaug.pipeline.run import Run


class SerialExecutor:
    """Build the tasks one after another in this process (as a run does on demand)."""

    def run(self, run: Run, tasks: list[Task]) -> None:
        for t in tasks:
            run.artifact(t.node)


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
    raise ConfigError(f"executor={executor!r} is not one of {EXECUTOR_SPECS} (or an object with run(run, tasks))")


def resolve_executor(executor):
    """None or "serial": in this process; "dask", "dask:N" or an address: Dask; or an object with run(run, tasks)."""
    executor = check_executor(executor)
    if executor is None:
        return SerialExecutor()
    if isinstance(executor, str):
        return dask_executor(**executor_kwargs(executor))
    return executor
