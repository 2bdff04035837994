"""`convert --workers 2` killed from outside (what `timeout`, Slurm and `kill -9` do): no worker is left
running, no temporary file is left behind, and the previous OUT is untouched."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REPO, ctrl_c_reaches_child

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the workers")

PREVIOUS = b"the previous dataset"
# How long a stopped command and its workers may take to be gone before the test calls it a hang: far above
# the 0.02-0.74 s measured on a quiet machine (docs/limits.md), because a busy one (load 10 on 2 cores) took
# over 3 s; still far below the 60 s chunk the workers are busy with below.
GONE_WITHIN = 30


@pytest.fixture(scope="module")
def big_input(tmp_path_factory):
    """~60 MB of raw Quick, Draw! lines: several seconds of work for two workers."""
    rng = np.random.default_rng(0)
    templates = []
    for _ in range(200):
        strokes = []
        for _ in range(4):
            xs = (np.cumsum(rng.normal(0, 3, 40)) + 200).round(1).tolist()
            ys = (np.cumsum(rng.normal(0, 3, 40)) + 200).round(1).tolist()
            strokes.append([xs, ys, list(range(0, 400, 10))])
        templates.append(json.dumps(strokes))
    path = tmp_path_factory.mktemp("big") / "big.ndjson"
    with open(path, "w") as f:
        f.writelines(f'{{"word": "cat", "key_id": "{i}", "drawing": {templates[i % len(templates)]}}}\n' for i in range(20000))
    return path


def _children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return False


def _assert_gone_within(pids: list[int], seconds: float) -> None:
    gone_by = time.monotonic() + seconds
    while any(_running(p) for p in pids) and time.monotonic() < gone_by:
        time.sleep(0.05)
    assert not [p for p in pids if _running(p)], "workers outlived their parent"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGINT])
def test_killed_convert_leaves_no_worker_and_no_temporary_file(tmp_path, big_input, sig):
    out = tmp_path / "out.npz"
    out.write_bytes(PREVIOUS)
    proc = subprocess.Popen([sys.executable, "-m", "sketchprep", "convert", str(big_input), str(out), "--workers", "2",
                             "--multiple", "1", "-q"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True,
                            preexec_fn=ctrl_c_reaches_child)
    try:
        deadline = time.monotonic() + 20
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
            workers = [c for c in _children(proc.pid) if _running(c)]
        assert len(workers) >= 2, "the workers did not start"
        time.sleep(0.5)  # both busy with chunks
        assert proc.poll() is None, "finished before it could be killed: make the input bigger"
        os.kill(proc.pid, sig)  # the parent only: the workers must follow by themselves
        _, stderr = proc.communicate(timeout=GONE_WITHIN)
        _assert_gone_within(workers, GONE_WITHIN)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert out.read_bytes() == PREVIOUS
    assert sorted(os.listdir(tmp_path)) == ["out.npz"], "a temporary file was left behind"
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        return
    text = stderr.decode()
    assert "Traceback" not in text, text
    assert [line for line in text.splitlines() if line.startswith("Error:")] == [
        "Error: terminated (SIGTERM); outputs are written whole or not at all, nothing was left half-written"
        if sig == signal.SIGTERM else "Error: interrupted (Ctrl-C); outputs are written whole or not at all"]
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130)


def test_a_later_write_removes_what_kill_9_left(tmp_path):
    """A temporary name left by a process that is gone (kill -9 in the instant between link and rename) is
    removed by the next write of the same output; one of a live process is not."""
    from sketchprep.outputs import TMP_SUFFIX, atomic_output

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.npz.{dead.pid}.0badc0de{TMP_SUFFIX}"
    live = tmp_path / f".out.npz.{os.getpid()}.0badc0de{TMP_SUFFIX}"
    stale.write_bytes(b"half")
    live.write_bytes(b"in progress")
    with atomic_output(tmp_path / "out.npz") as f:
        f.write(b"new")
    assert sorted(os.listdir(tmp_path)) == sorted(["out.npz", live.name])
    assert (tmp_path / "out.npz").read_bytes() == b"new"


def test_workers_busy_with_a_long_chunk_die_with_a_killed_parent(tmp_path):
    """kill -9 of the parent while each worker is deep in a long chunk (here: a 60 s sleep): the kernel ends
    the workers (PR_SET_PDEATHSIG), they do not finish their chunk first."""
    parent = ("import os, sys, time, multiprocessing\n"
              "from concurrent.futures import ProcessPoolExecutor\n"
              "from sketchprep.convert import _worker_init\n"
              "pool = ProcessPoolExecutor(2, mp_context=multiprocessing.get_context('fork'), initializer=_worker_init,"
              " initargs=(os.getpid(),))\n"
              "futures = [pool.submit(time.sleep, 60) for _ in range(2)]\n"
              "print('ready', flush=True)\n"
              "time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", parent], cwd=tmp_path, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    try:
        assert proc.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 10
        workers: list[int] = []
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            workers = [c for c in _children(proc.pid) if _running(c)]
        assert len(workers) == 2
        time.sleep(0.3)  # both inside time.sleep(60)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=GONE_WITHIN)
        _assert_gone_within(workers, GONE_WITHIN)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for w in workers:
            if _running(w):
                os.kill(w, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------------
# `pipeline run`: its steps never outlive it


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0")]
    except OSError:
        return []


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_killed_pipeline_leaves_no_step_running(tmp_path, sig):
    """The pipeline is signalled while its train step trains: the step stops (saving latest.pt) and nothing
    holds the run folder afterwards. SIGKILL: the kernel tells the step (PR_SET_PDEATHSIG); SIGTERM and SIGINT:
    the pipeline passes the signal on, waits for the step, and exits 143 / 130 with one Error line. The step is
    quiet: one that logs would also stop on its own at its first write into the dead pipeline's pipe."""
    pytest.importorskip("torch")
    from conftest import SAMPLE

    from sketchprep.outputs import LOCK_NAME, folder_lock

    (tmp_path / "r.toml").write_text(f'[convert]\ninputs = ["{SAMPLE}"]\nmultiple = 1\n[train]\npreset = "tiny"\n'
                                     'set = ["num_steps=10000000"]\nsamples = 0\nquiet = true\n')
    run = tmp_path / "o" / "run"
    proc = subprocess.Popen([sys.executable, "-m", "sketchprep", "pipeline", "run", "r.toml", "--out", "o"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    step = None
    try:
        deadline = time.monotonic() + 180  # convert, then train's start-up: generous for a loaded machine
        while time.monotonic() < deadline and proc.poll() is None:
            steps = [c for c in _children(proc.pid) if "train" in _cmdline(c)]
            if steps and (run / "latest.pt").exists():
                step = steps[0]
                break
            time.sleep(0.1)
        assert step is not None, f"the train step did not start: {proc.poll()}"
        os.kill(proc.pid, sig)  # the pipeline only
        _, stderr = proc.communicate(timeout=120)
        _assert_gone_within([step], 120)  # it finishes the step in progress and saves first
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if step is not None and _running(step):
            os.kill(step, signal.SIGKILL)
    with folder_lock(run, "run folder"):  # nobody writes the run any more
        pass
    assert not (run / LOCK_NAME).exists()
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        return
    text = stderr.decode()
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: terminated (SIGTERM); outputs are written whole or not at all, nothing was left "
                      "half-written" if sig == signal.SIGTERM else
                      "Error: interrupted (Ctrl-C); outputs are written whole or not at all"], text
    assert proc.returncode == (143 if sig == signal.SIGTERM else 130)
