"""The experiment as one table of steps: its graph and dry run, a new step as one entry, the shared store under
concurrency and Ctrl-C, and Dask runs that write the same bytes as the serial run, also when a worker is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from hipaug.cli import main
from hipaug.config import load_profile
from hipaug.errors import ConfigError
from hipaug.pipeline import Node, Pipeline, Run, Step
from hipaug.pipeline.executors import resolve_executor
from hipaug.pipeline.plan import Task, critical_path, probe, simulate, tasks
from hipaug.pipeline.table import targets

ROOT = Path(__file__).resolve().parents[1]
# Smoke, cut down (three conditions, three folds); HIPAUG_GRID_TEST_PROFILE=smoke runs the same checks on smoke.
PROFILE = os.environ.get("HIPAUG_GRID_TEST_PROFILE") or str(ROOT / "tests" / "fixtures" / "profiles" / "grid.yaml")


def _env(**extra) -> dict:
    return {**os.environ, "HIPAUG_PROGRESS": "0", "PYTHONPATH": str(ROOT), **extra}


# ------------------------------------------------------------------ the graph
def test_graph_has_one_task_per_step_and_fold_in_dependency_order(tmp_path):
    run = Run("smoke", artifacts=tmp_path / "a", results=tmp_path / "r")
    graph = tasks(run, targets(run, ("results", "ablations")))
    t, ab = run.profile.transfer, run.profile.ablation
    ids = [x.id for x in graph]
    assert len(ids) == len(set(ids))
    seen: set[str] = set()
    for x in graph:
        assert set(x.deps) <= seen, f"{x.id} comes before its inputs {x.deps}"
        seen.add(x.id)
    n_rules = len(ab.thresholds) + len(ab.top_k)
    assert sum(x.node.step == "finetune" for x in graph) == (len(t.conditions) * t.repeats + n_rules) * t.k_folds
    assert {x.id for x in graph if x.node.step == "pretrain"} >= {f"pretrain/{c}" for c in t.conditions if c != "scratch"}
    assert f"finetune/with_gan/r0/f{t.k_folds - 1}" in ids and ("acgan",) in [x.deps for x in graph if x.id == "synthetic"]
    assert all(x.flops > 0 for x in graph if x.node.step in ("acgan", "finetune", "filter"))
    # every file of the results store is written by a step of the table
    records = {f for x in graph for f in run.table[x.node.step].records}
    assert {"table8_folds.csv", "paired_tests.csv", "gan_quality.json", "ablation_folds.csv", "data_summary.json",
            "filter_summary.json", "acgan_summary.json", "operating_point.csv", "classic_folds.csv"} <= records
    assert not (tmp_path / "a").exists(), "building the graph wrote to the store"


def test_critical_path_and_predicted_makespan():
    def t(name, deps, flops):
        return Task(Node(name, (), name), deps, flops)

    g = [t("a", (), 3.0), t("b", ("a",), 2.0), t("c", (), 4.0), t("d", ("b", "c"), 1.0), t("e", (), 1.0)]
    assert critical_path(g) == (["a", "b", "d"], 6.0)
    assert simulate(g, 1) == 11.0  # one worker: the sum
    assert simulate(g, 2) == 6.0  # a||c, then b||e, then d: the critical path is reached
    assert simulate(g, 8) == 6.0  # never below the critical path


def test_probe_sees_built_steps_without_building(tmp_path):
    run = Run(PROFILE, artifacts=tmp_path / "a", results=tmp_path / "r")
    graph = tasks(run, targets(run))
    assert not any(probe(run, graph).values()) and not (tmp_path / "a").exists()
    run.check_data()  # builds the two phantom sets, nothing else
    built = probe(run, graph)
    assert {k for k, v in built.items() if v} == {"phantom-limb", "phantom-pelvic"}
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if not p.name.startswith(".")) == \
        ["phantom-limb", "phantom-pelvic"]


def test_dry_run_prints_the_graph_and_computes_nothing(tmp_path, capsys):
    assert main(["reproduce", "--profile", "smoke", "--artifacts", str(tmp_path / "a"), "--out", str(tmp_path / "r"),
                 "--dry-run", "--ablations"]) == 0
    out = capsys.readouterr().out
    last = load_profile("smoke").transfer.k_folds - 1
    assert "critical path" in out and f"finetune/with_gan/r0/f{last}" in out and "predicted" in out
    assert "8 workers" in out and " no " in out and "gan_quality" in out and "ablation_folds" in out
    assert not (tmp_path / "a").exists() and not (tmp_path / "r").exists()


# ------------------------------------------------------------------ a new step is one entry
def _toy_spec(run, params, inputs) -> dict:
    return {"pelvic": run.pelvic.fingerprint, "after": inputs["data"].key}


def _toy_build(run, params, inputs, out) -> None:
    (out / "toy.json").write_text(json.dumps({"pelvic_images": len(run.pelvic), "pid": os.getpid()}))


# A results step: it reads the pelvic phantom, writes toy.json, and the results store records it.
def _toy_load(run, params, art) -> dict:
    return json.loads((art.path / "toy.json").read_text())


TOY = Step("toy", spec=_toy_spec, build=_toy_build, needs=lambda run, params: {"data": Node("phantom-pelvic", (), "phantom-pelvic")},
           load=_toy_load, cost=lambda run, params, flops: 1e9, records=("toy.json",), group="results")


@pytest.mark.slow
@pytest.mark.parametrize("executor", ["serial", "dask:2"])
def test_a_toy_step_is_one_entry_in_the_dry_run_and_on_both_executors(tmp_path, capsys, executor):
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Dask workers do not import the tests
    pipe = Pipeline(PROFILE, artifacts=tmp_path / "a", results=tmp_path / "r", steps=(TOY,), executor=executor)
    dry = pipe.plan()
    assert "toy" in [t.id for t in dry.tasks] and "toy" in dry.to_text() and not dry.built["toy"]
    toy = pipe.result("toy")
    assert toy["pelvic_images"] == load_profile(PROFILE).phantom.pelvic_n
    assert json.loads((pipe.results_dir / "toy.json").read_text()) == toy
    assert (toy["pid"] == os.getpid()) == (executor == "serial"), "the step ran in the wrong process"
    assert pipe.plan().built["toy"]


def test_import_hipaug_needs_no_dask():
    code = ("import sys, hipaug, hipaug.pipeline, hipaug.pipeline.plan, hipaug.pipeline.executors, hipaug.cli, hipaug.book; "
            "assert not {'dask', 'distributed'} & set(sys.modules), sorted(m for m in sys.modules if 'dask' in m)")
    subprocess.run([sys.executable, "-c", code], check=True, env=_env())


def test_executor_parameter(monkeypatch):
    assert type(resolve_executor(None)).__name__ == "SerialExecutor"
    assert type(resolve_executor("serial")).__name__ == "SerialExecutor"
    assert Pipeline("smoke", executor="serial").executor is None  # serial: each step on demand, as by default
    assert type(resolve_executor("dask")).__name__ == "DaskExecutor"
    assert resolve_executor("dask:3").workers == 3 and resolve_executor("dask:3").scheduler is None
    assert resolve_executor("tcp://10.0.0.1:8786").scheduler == "tcp://10.0.0.1:8786"
    for bad in ("spark", "dask:0", "dask:two", "tcp://"):
        with pytest.raises(ConfigError, match=f"executor='{bad}' is not one of serial, auto, dask, dask:N"):
            resolve_executor(bad)
    with pytest.raises(ConfigError, match="executor='spark'"):
        Pipeline("smoke", executor="spark")
    assert type(resolve_executor("auto")).__name__ == "AutoExecutor" and Pipeline("smoke", executor="auto").executor is None  # nothing to run side by side
    monkeypatch.setitem(sys.modules, "distributed", None)  # the cluster extra not installed
    monkeypatch.delitem(sys.modules, "hipaug.pipeline.distributed", raising=False)
    with pytest.raises(ConfigError, match=r"cluster extra .*pip install -e '\.\[cluster\]'"):
        resolve_executor("dask")


# ------------------------------------------------------------------ errors of the command line
def _one_error_line(err: str) -> str:
    lines = [x for x in err.strip().splitlines() if x.startswith("hipaug: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_unreachable_scheduler_is_one_line_and_exit_2(tmp_path, capsys):
    t0 = time.perf_counter()
    assert main(["reproduce", "--profile", "smoke", "--artifacts", str(tmp_path), "--scheduler",
                 "tcp://127.0.0.1:9"]) == 2
    assert "--scheduler tcp://127.0.0.1:9: cannot reach" in _one_error_line(capsys.readouterr().err)
    assert not any(tmp_path.iterdir()), "work started before connecting"
    # Nothing listens there: refused at once, not after Dask's connect timeout (DaskExecutor.timeout, 10 s).
    assert time.perf_counter() - t0 < 8


def test_jobqueue_without_settings_is_one_line(tmp_path, capsys):
    import dask

    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        assert main(["reproduce", "--profile", "smoke", "--artifacts", str(tmp_path), "--jobqueue", "slurm",
                     "--workers", "2"]) == 2
    assert "jobqueue.yaml" in _one_error_line(capsys.readouterr().err)


def test_each_local_worker_gets_its_own_gpu(monkeypatch):
    from hipaug.pipeline.distributed import OneGPU

    plugin = OneGPU(["2", "3"])
    for name, gpu in ((0, "2"), (1, "3"), (2, "2")):
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        plugin.setup(SimpleNamespace(name=name))
        assert os.environ["CUDA_VISIBLE_DEVICES"] == gpu


# ------------------------------------------------------------------ the shared store
_BUILDER = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from hipaug.core import artifacts
    root, go = Path(sys.argv[1]), Path(sys.argv[2])
    if sys.argv[3] == "nolock":  # the control: what the store would do without its lock
        import contextlib
        artifacts.FileLock = lambda path: contextlib.nullcontext()
    def build(out):
        with open(root / "builds.log", "a") as f:
            f.write(f"{os.getpid()}\\n")
        for i in range(5):  # written in pieces: a second builder in the same folder would interleave
            with open(out / "result.txt", "a") as f:
                f.write(f"{os.getpid()} {i}\\n")
            time.sleep(0.3)
    print("ready", flush=True)
    while not go.exists():
        time.sleep(0.01)
    art = artifacts.load_or_run("step", {"seed": 1}, build, root=root)
    print(json.dumps({"cached": art.cached, "text": (art.path / "result.txt").read_text()}))
""")


@pytest.mark.parametrize("lock", ["lock", "nolock"])
def test_two_processes_build_one_artifact_once(tmp_path, lock):
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", _BUILDER, str(tmp_path), str(go), lock], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env()) for _ in range(2)]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    go.touch()
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        outs.append((p.returncode, out, err))
    builds = (tmp_path / "builds.log").read_text().split()
    if lock == "nolock":  # the control shows what the test would catch: both build, into one folder
        assert len(builds) == 2
        return
    assert all(rc == 0 for rc, _, _ in outs), outs
    res = [json.loads(out.strip().splitlines()[-1]) for _, out, _ in outs]
    assert len(builds) == 1 and sorted(r["cached"] for r in res) == [False, True]
    assert res[0]["text"] == res[1]["text"] == "".join(f"{builds[0]} {i}\n" for i in range(5))


def test_ctrl_c_leaves_no_finished_artifact(tmp_path):
    code = textwrap.dedent("""
        import sys, time
        from pathlib import Path
        from hipaug.core.artifacts import load_or_run
        def build(out):
            (out / "half.txt").write_text("half")
            print("building", flush=True)
            time.sleep(60)
        load_or_run("step", {"seed": 1}, build, root=Path(sys.argv[1]))
    """)
    p = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_env())
    assert p.stdout.readline().strip() == "building"
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and "KeyboardInterrupt" in err
    assert not (tmp_path / "step").exists() or not any((tmp_path / "step").iterdir()), "a half artifact is in place"
    assert [x.name for x in (tmp_path / ".partial").iterdir()][0].startswith("step-")  # kept aside, to resume
    from hipaug.core.artifacts import load_or_run

    art = load_or_run("step", {"seed": 1}, lambda out: (out / "done.txt").write_text("done"), root=tmp_path)
    assert not art.cached and (art.path / "done.txt").is_file()


# ------------------------------------------------------------------ same bytes, also with a worker killed
@pytest.fixture(scope="module")
def serial_run(tmp_path_factory) -> Path:
    """The serial reference: `hipaug reproduce` in one process, one torch thread."""
    tmp = tmp_path_factory.mktemp("serial")
    r = subprocess.run([sys.executable, "-m", "hipaug", "reproduce", "--profile", PROFILE, "--threads", "1",
                        "--artifacts", str(tmp / "a"), "--out", str(tmp / "r")], env=_env(), cwd=tmp,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return tmp / "r" / load_profile(PROFILE).name / "phantom"


def _same_files(a: Path, b: Path, names: list[str] | None = None) -> None:
    names = names or sorted(p.name for p in a.iterdir())
    assert names and set(names) <= {p.name for p in b.iterdir()}, f"{b} lacks some of {names}"
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), f"{n} differs"


@pytest.mark.slow
def test_two_workers_write_the_serial_bytes(serial_run, tmp_path):
    r = subprocess.run([sys.executable, "-m", "hipaug", "reproduce", "--profile", PROFILE, "--workers", "2",
                        "--threads", "1", "--artifacts", str(tmp_path / "a"), "--out", str(tmp_path / "r")],
                       env=_env(), cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "local Dask cluster of 2 processes" in r.stderr
    _same_files(serial_run, tmp_path / "r" / load_profile(PROFILE).name / "phantom")
    assert not any((tmp_path / "a" / ".partial").iterdir())


@pytest.mark.slow
def test_the_transfer_notebook_on_two_dask_workers_writes_the_serial_bytes(serial_run, tmp_path, monkeypatch):
    """Chapter 5 under papermill with `-p executor dask:2`: the grid runs on Dask, Table VIII is the serial one."""
    import jupytext
    import papermill as pm

    for name, value in (("HIPAUG_ARTIFACTS", tmp_path / "a"), ("HIPAUG_RESULTS", tmp_path / "r"),
                        ("OMP_NUM_THREADS", 1), ("HIPAUG_PROGRESS", 0)):  # one torch thread per task, as serial_run
        monkeypatch.setenv(name, str(value))
    src = tmp_path / "05_transfer.ipynb"
    jupytext.write(jupytext.read(ROOT / "notebooks" / "05_transfer.py"), src)
    pm.execute_notebook(str(src), str(tmp_path / "out.ipynb"), parameters={"profile": PROFILE, "executor": "dask:2"},
                        cwd=str(ROOT / "notebooks"), progress_bar=False)
    folds = [json.loads(p.read_text()) for p in (tmp_path / "a" / "finetune-fold").glob("*/artifact.json")]
    run = Run(PROFILE, artifacts=tmp_path / "x")
    assert len(folds) == len([t for t in tasks(run, targets(run)) if t.node.step == "finetune"])
    builders = {f["built_by"]["pid"] for f in folds}
    assert len(builders) == 2, f"the folds were not built by two worker processes: {builders}"
    _same_files(serial_run, tmp_path / "r" / load_profile(PROFILE).name / "phantom",
                ["paired_tests.csv", "table8_folds.csv", "table8_summary.csv"])


def _kill_a_busy_worker(ex, store: Path, killed: list, stop: threading.Event) -> None:
    """Once a fine-tuning fold is being built, SIGKILL the worker process that runs a fine-tuning task."""
    while not stop.is_set():
        partial = store / ".partial"
        if partial.is_dir() and any(p.name.startswith("finetune-fold-") for p in partial.iterdir()):
            busy = {w: keys for w, keys in ex.client.processing().items() if any("-finetune/" in str(k) for k in keys)}
            if busy:
                worker = next(iter(busy))
                pid = ex.client.run(os.getpid, workers=[worker])[worker]
                os.kill(pid, signal.SIGKILL)
                killed.append((worker, pid))
                return
        time.sleep(0.05)


@pytest.mark.slow
def test_a_killed_worker_is_replaced_and_the_results_are_the_same(serial_run, tmp_path):
    from hipaug.pipeline.distributed import DaskExecutor

    ex = DaskExecutor(workers=2, threads=1)
    pipe = Pipeline(PROFILE, artifacts=tmp_path / "a", results=tmp_path / "r", executor=ex)
    killed: list = []
    stop = threading.Event()
    with ex:
        trim = ex.client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_")
        assert set(trim.values()) == {None}, f"workers trim freed memory at once (slow torch steps): {trim}"
        killer = threading.Thread(target=_kill_a_busy_worker, args=(ex, tmp_path / "a", killed, stop), daemon=True)
        killer.start()
        try:
            pipe.check_data()
            pipe.result("table8")  # everything it needs first (on the cluster), then Table VIII from the store
        finally:
            stop.set()
            killer.join()
    assert killed, "no worker was killed: the test did not test anything"
    assert any(tid.startswith("finetune/") for tid in ex.retried), f"no fine-tuning task was run again: {ex.retried}"
    _same_files(serial_run, pipe.results_dir, ["paired_tests.csv", "run.json", "table8_folds.csv",
                                               "table8_summary.csv"])
    assert not any((tmp_path / "a" / ".partial").iterdir())


def test_pretrained_of_a_condition_without_pre_training_is_one_line(tmp_path):
    pipe = Pipeline("smoke", artifacts=tmp_path / "a", results=tmp_path / "r")
    with pytest.raises(ConfigError, match="condition 'scratch' is not pre-trained"):
        pipe.pretrained("scratch")


def _pinned_profile(tmp_path: Path, sections: tuple[str, ...] = ("pretrain", "finetune")) -> Path:
    """The grid profile with every run of `sections` (pre-training, fine-tuning) fixed at one torch thread."""
    text = Path(PROFILE).read_text()
    for section in sections:
        assert text.count(f"\n{section}:\n") == 1
        text = text.replace(f"\n{section}:\n", f"\n{section}:\n  num_threads: 1\n")
    path = tmp_path / "grid-pinned.yaml"
    path.write_text(text)
    return path


def test_auto_runs_the_folds_that_fix_their_threads_side_by_side_and_nothing_else(tmp_path, monkeypatch):
    from hipaug.pipeline import executors

    monkeypatch.setattr(executors, "_cores", lambda: 2)
    assert executors.concurrency(Run("smoke"), "auto") == 1  # smoke's folds take the process's threads: serial
    pinned = Run(_pinned_profile(tmp_path), artifacts=tmp_path / "a")
    assert executors.concurrency(pinned, "auto") == 2 and executors.concurrency(pinned, None) == 1
    assert executors.concurrency(pinned, "dask:3") == 3
    monkeypatch.setattr(executors, "_cores", lambda: 1)
    assert executors.concurrency(pinned, "auto") == 1  # one core fits one worker: serial
    graph = tasks(pinned, targets(pinned))
    assert {t.node.step for t in graph if executors.pinned_threads(pinned, t)} == {"pretrain", "finetune"}


def test_auto_stays_side_by_side_when_only_pre_training_fixes_its_threads(tmp_path, monkeypatch):
    from hipaug.pipeline import executors

    monkeypatch.setattr(executors, "_cores", lambda: 2)
    only_pretrain = _pinned_profile(tmp_path, ("pretrain",))
    assert Pipeline(only_pretrain, artifacts=tmp_path / "a", executor="auto").executor == "auto"
    assert Pipeline("smoke", artifacts=tmp_path / "a", executor="auto").executor is None  # nothing fixes threads
    monkeypatch.setattr(executors, "_cores", lambda: 1)
    assert Pipeline(only_pretrain, artifacts=tmp_path / "a", executor="auto").executor is None


@pytest.mark.slow
def test_auto_writes_the_serial_bytes_with_the_folds_on_two_workers(serial_run, tmp_path):
    """`hipaug reproduce` without grid options: the pinned folds on one worker per core, the rest here."""
    from hipaug.pipeline.executors import AutoExecutor

    r = subprocess.run([sys.executable, "-m", "hipaug", "reproduce", "--profile", str(_pinned_profile(tmp_path)),
                        "--artifacts", str(tmp_path / "a"), "--out", str(tmp_path / "r")],
                       env=_env(OMP_NUM_THREADS="1"), cwd=tmp_path, capture_output=True, text=True)  # as serial_run
    assert r.returncode == 0, r.stderr[-3000:]
    pid = {p.parent.parent.name: json.loads(p.read_text())["built_by"]["pid"]
           for p in (tmp_path / "a").glob("*/*/artifact.json")}
    folds = {json.loads(p.read_text())["built_by"]["pid"] for p in (tmp_path / "a" / "finetune-fold").glob("*/artifact.json")}
    assert len(folds) == AutoExecutor.workers(1) >= 2, f"the folds were not built side by side: {folds}"
    classifiers = [json.loads(p.read_text()) for p in (tmp_path / "a" / "classifier").glob("*/artifact.json")]
    backbones = {a["built_by"]["pid"] for a in classifiers if a["spec"]["train_cfg"]["num_threads"] == 1}
    assert backbones and backbones <= folds, f"the pre-trainings were not built on the workers: {backbones}"
    assert pid["acgan"] in {a["built_by"]["pid"] for a in classifiers}, "the filter left the driver"
    assert pid["acgan"] not in folds and pid["phantom-pelvic"] == pid["acgan"], "a step that takes the process's threads left it"
    _same_files(serial_run, tmp_path / "r" / load_profile(PROFILE).name / "phantom",
                ["paired_tests.csv", "table8_folds.csv", "table8_summary.csv"])
