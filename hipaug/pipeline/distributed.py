"""Run the experiment's task graph on Dask distributed: a local cluster, a running one, or SLURM/PBS jobs.

The `cluster` extra (`pip install -e '.[cluster]'`: dask, distributed, dask-jobqueue); only this
module imports them. Each node of the step table (`hipaug.pipeline.plan.tasks`) becomes one Dask
task that depends on the tasks whose artifacts it reads. A worker opens the same `Run` and builds
the node's artifact in the shared store
(`hipaug.core.artifacts`: a per-key file lock, built aside and renamed into place); the driver
then assembles the results from the store exactly as a serial run does, so they are the same
bytes as long as each task runs with the same torch threads (on CPU the summation order of a
kernel depends on it; on CUDA each worker holds one GPU).

Faults: a task that raises is retried `retries` times; a worker that dies (killed, out of
memory) is restarted by its nanny and the scheduler reruns its task elsewhere (Dask's
`allowed-failures`, 3 by default). An interrupted build leaves only its `.partial/` folder.
"""

from __future__ import annotations

import logging
import os
import socket

import dask
import torch
from distributed import Client, LocalCluster
from distributed.diagnostics.plugin import WorkerPlugin

from hipaug.core.artifacts import fingerprint
from hipaug.errors import ConfigError
from hipaug.pipeline.plan import Task, bottom_levels, probe
from hipaug.pipeline.run import Run

log = logging.getLogger("hipaug")
_RUNS: dict[str, Run] = {}  # one Run per worker process and run: data and models load once


def _token(args: dict) -> str:
    """A key naming a run's arguments (its extra steps by name: functions have no canonical form)."""
    return fingerprint({**args, "steps": [s.name for s in args["steps"]]})


def _run_remote(args: dict, task: Task, threads: int | None, *_inputs) -> str:
    """Build one task's artifact on a worker (`_inputs`: the finished tasks it waits for)."""
    if threads:
        torch.set_num_threads(threads)
    key = _token(args)
    if key not in _RUNS:
        _RUNS.clear()
        _RUNS[key] = Run(**args)
    _RUNS[key].artifact(task.node)
    return task.id


def _lost(dask_scheduler, keys: list[str]) -> dict[str, int]:
    """On the scheduler: how often each task was lost with a dying worker (and so run again)."""
    return {k: ts.suspicious for k in keys if (ts := dask_scheduler.tasks.get(k)) is not None and ts.suspicious}


class OneGPU(WorkerPlugin):
    """Give each worker of a local cluster its own GPU, before anything in it touches CUDA."""

    name = "hipaug-one-gpu"

    def __init__(self, gpus: list[str]):
        self.gpus = gpus  # visible device ids of the driver, handed out round-robin by worker number

    def setup(self, worker) -> None:
        index = worker.name if isinstance(worker.name, int) else int(str(worker.name).rsplit("-", 1)[-1] or 0)
        os.environ["CUDA_VISIBLE_DEVICES"] = self.gpus[index % len(self.gpus)]


def visible_gpus() -> list[str]:
    """The CUDA devices this process may use ($CUDA_VISIBLE_DEVICES or all), as strings; [] without CUDA."""
    if not torch.cuda.is_available():
        return []
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    return [g.strip() for g in env.split(",") if g.strip()] if env else [str(i) for i in range(torch.cuda.device_count())]


def _refused_at_once(address: str) -> None:
    """Raise ConnectionRefusedError when nothing listens at a tcp:// address (Dask would retry for its timeout)."""
    host, sep, port = address.removeprefix("tcp://").rpartition(":")
    if not address.startswith("tcp://") or not sep or not port.isdigit():
        return  # another protocol, or no port: Dask's own connect decides
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=1.0).close()
    except ConnectionRefusedError:
        raise
    except OSError:
        return  # slow or filtered: leave it to Dask's timeout, a scheduler may still be starting


class DaskExecutor:
    """Run grid tasks on Dask: `workers` local processes, a running scheduler, or `jobqueue` batch jobs."""

    def __init__(self, workers: int | None = None, scheduler: str | None = None, jobqueue: str | None = None,
                 threads: int | None = None, retries: int = 2, timeout: float = 10.0):
        if scheduler and jobqueue:
            raise ConfigError("give either --scheduler ADDRESS or --jobqueue KIND, not both")
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers={workers} must be >= 1")
        if threads is not None and threads < 1:
            raise ConfigError(f"--threads={threads} must be >= 1")
        if jobqueue not in (None, "slurm", "pbs"):
            raise ConfigError(f"--jobqueue={jobqueue!r} is not one of slurm, pbs")
        if jobqueue and workers is None:
            raise ConfigError(f"--jobqueue {jobqueue} needs --workers N, the number of batch jobs to submit")
        self.scheduler, self.jobqueue, self.retries, self.timeout = scheduler, jobqueue, retries, timeout
        self.workers = workers or len(visible_gpus()) or os.cpu_count() or 1  # one per GPU, else per core
        # Torch threads per task: on a local cluster, as many as the serial run in this process uses,
        # so the results are its bytes by default (CPU kernels sum in an order set by the thread
        # count); `threads` trades that for speed (compare with a serial run at the same --threads).
        # A remote worker keeps its own setting.
        local = scheduler is None and jobqueue is None
        self.threads = threads or (torch.get_num_threads() if local else None)
        self.client: Client | None = None
        self._cluster = None
        self.retried: dict[str, int] = {}  # task id -> times it was lost with a worker, of the last run

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask scheduler at {self.scheduler}"
        if self.jobqueue:
            return f"{self.workers} {self.jobqueue.upper()} jobs (dask-jobqueue)"
        return f"a local Dask cluster of {self.workers} processes, {self.threads} torch thread(s) each"

    # ------------------------------------------------------------------ cluster
    def __enter__(self) -> "DaskExecutor":
        if self.scheduler:
            try:
                _refused_at_once(self.scheduler)
                self.client = Client(self.scheduler, timeout=self.timeout)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ConfigError(f"--scheduler {self.scheduler}: cannot reach the Dask scheduler "
                                  f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no reply'})") from None
            return self
        self._cluster = self._jobqueue_cluster() if self.jobqueue else self._local_cluster()
        self.client = Client(self._cluster)
        gpus = visible_gpus()
        if gpus and not self.jobqueue:  # a batch system hands each job its own GPU
            self.client.register_plugin(OneGPU(gpus))
        return self

    def _local_cluster(self) -> LocalCluster:
        # Dask starts each worker with MALLOC_TRIM_THRESHOLD_=65536, which returns freed memory to
        # the system at once; torch frees and re-allocates its activations every step, so a worker
        # spent much of its CPU time in the kernel and a one-worker run took far longer than the
        # serial one. Unset (None), the worker allocates as the serial process does.
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                memory_limit=0)

    def _jobqueue_cluster(self):
        from dask_jobqueue import PBSCluster, SLURMCluster

        try:
            cluster = {"slurm": SLURMCluster, "pbs": PBSCluster}[self.jobqueue]()
        except ValueError as exc:  # e.g. no cores/memory configured
            raise ConfigError(f"--jobqueue {self.jobqueue}: {' '.join(str(exc).split())} (set it in "
                              "~/.config/dask/jobqueue.yaml)") from None
        cluster.scale(jobs=self.workers)
        return cluster

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self.client, self._cluster = None, None

    # ------------------------------------------------------------------ running
    def run(self, run: Run, tasks: list[Task]) -> None:
        """Build every task whose artifact is missing; return when all are in the store (or raise the first error)."""
        built = probe(run, tasks)
        todo = [t for t in tasks if not built[t.id]]
        log.info(f"grid: {len(tasks)} tasks, {len(tasks) - len(todo)} already built, {len(todo)} to run")
        if not todo:
            return
        if self.client is None:
            with self:
                self._submit(run, todo)
        else:
            self._submit(run, todo)

    def _submit(self, run: Run, todo: list[Task]) -> None:
        link = getattr(self._cluster, "dashboard_link", None) or self.client.dashboard_link
        log.info(f"grid: running on {self.describe()}" + (f"; dashboard {link}" if link else ""))
        args = run.args()
        token = _token(args)[:10]  # task keys of another profile or store never collide on a shared cluster
        level = bottom_levels(todo)
        futures = {}
        for t in todo:
            inputs = [futures[d] for d in t.deps if d in futures]
            futures[t.id] = self.client.submit(_run_remote, args, t, self.threads, *inputs, key=f"hipaug-{token}-{t.id}",
                                               retries=self.retries, priority=level[t.id])
        try:
            self.client.gather(list(futures.values()))
            lost = self.client.run_on_scheduler(_lost, keys=[f.key for f in futures.values()])
        finally:
            for f in futures.values():
                f.release()
        ids = {f.key: tid for tid, f in futures.items()}
        self.retried = {ids[k]: n for k, n in lost.items()}
        for tid, n in self.retried.items():
            log.warning(f"grid: {tid} was lost with its worker {n} time(s) and run again")
