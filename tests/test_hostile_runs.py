"""Run folders: no command writes inside a run it reads, `export --html` replaces only its own page, and one
process at a time writes a run (`train`, `train --resume`, `train --overwrite`, `import`); a second one gets one
`Error:` line naming the folder and the PID that holds it, and changes nothing."""
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("torch")

from hostile import ROOT, run_case, run_sketchprep, snapshot
from test_export_js import browser_run, sample_npz  # noqa: F401  (fixtures)

from sketchprep.outputs import LOCK_NAME


@pytest.fixture
def folder(tmp_path, browser_run):  # noqa: F811  (fixture)
    shutil.copytree(browser_run, tmp_path / "run")
    return tmp_path


# ---------------------------------------------------------------------------------------------------
# Nothing is written inside a run folder that is an input


@pytest.mark.parametrize("args", [
    ["export", "run", "-o", "run/hparams.json"],                 # a file of the run: it was overwritten before
    ["export", "run", "-o", "run/model.gen.json"],               # a new name: still the run's folder
    ["export", "run/latest.pt", "-o", "run/m.gen.json"],         # the run named by its checkpoint
    ["export", "run", "--html", "run/page"],
    ["export", "run", "--html", "run"],
    ["sample", "run", "-o", "run/samples/step-000040.png"],      # train's own grid
    ["sample", "run/best.pt", "-o", "run/s.npz"],
    ["interpolate", "run", "test:0", "test:1", "-o", "run/m.svg"],
    ["complete", "run", "--prefix", "test:0", "-o", "run/c.png"],
    ["plot", "run", "-o", "run/metrics.png"],
])
def test_outputs_inside_an_input_run_are_refused(folder, args):
    run_case(folder, args, message="is inside the run folder", max_seconds=20)


def test_a_link_into_the_run_is_the_run(folder):
    (folder / "alias").symlink_to(folder / "run")
    run_case(folder, ["export", "run", "-o", "alias/hparams.json"], message="is inside the run folder", max_seconds=20)


def test_plot_still_writes_its_own_curves_into_the_run(folder):
    pytest.importorskip("matplotlib")
    run_case(folder, ["plot", "run"], rc=0, creates=("run/curves.png",), max_seconds=30)


# ---------------------------------------------------------------------------------------------------
# export --html replaces only a page it wrote


@pytest.mark.parametrize("name", ["index.html", "app.js", "model.gen.json", "sketchrnn-lite.js"])
def test_html_never_replaces_a_users_own_files(folder, name):
    (folder / "site").mkdir()
    (folder / "site" / name).write_text("the user's own file")
    run_case(folder, ["export", "run", "--html", "site"], message=f"already holds {name}, and this tool did not "
             "write it", max_seconds=20)


def test_html_replaces_its_own_page_whole(folder):
    run_case(folder, ["export", "run", "--html", "site"], rc=0, max_seconds=30,
             creates=tuple(f"site/{n}" for n in ("index.html", "app.js", "sketchrnn-lite.js", "model.gen.json")))
    (folder / "site" / "notes.txt").write_text("the user's notes beside the page")
    run_case(folder, ["export", "run", "--html", "site", "--name", "again"], rc=0, max_seconds=30,
             creates=tuple(f"site/{n}" for n in ("index.html", "model.gen.json")))
    assert "again" in (folder / "site" / "index.html").read_text()
    assert (folder / "site" / "notes.txt").read_text() == "the user's notes beside the page"
    (folder / "site" / "index.html").write_text("<html>rewritten by the user, marker gone</html>")
    run_case(folder, ["export", "run", "--html", "site"], message="already holds index.html", max_seconds=20)


# ---------------------------------------------------------------------------------------------------
# One writer per run folder


def _train_args(data, out, *more):
    return ["train", str(data), "--out", str(out), "--preset", "tiny", "--set", "num_steps=10000000",
            "--samples", "0", "-q", *more]


def _holding(folder, proc, deadline=120.0):
    """Wait until `proc` holds the lock of `folder` and has saved a checkpoint (generous: a loaded machine)."""
    lock, latest = folder / LOCK_NAME, folder / "latest.pt"
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        try:
            if lock.read_text().strip() == str(proc.pid) and latest.exists():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the first train did not start (exit {proc.poll()}): "
                         f"{proc.stderr.read().decode() if proc.poll() is not None else ''}")


@pytest.fixture
def training(tmp_path, sample_npz):  # noqa: F811
    """A `train` process writing tmp_path/run, stopped (and waited for) at the end."""
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "sketchprep", *_train_args(sample_npz, out)], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        _holding(out, proc)
        yield proc, out
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_second_writers_are_refused_naming_the_holder(training, sample_npz, browser_run, tmp_path):  # noqa: F811
    proc, out = training
    model = tmp_path / "m.gen.json"
    assert run_sketchprep(["export", str(browser_run), "-o", str(model)], tmp_path, timeout=60).rc == 0
    for args in (_train_args(sample_npz, out),                                   # the same --out
                 ["train", "--out", str(out), "--resume", "--max-steps", "5", "-q"],
                 _train_args(sample_npz, out, "--overwrite"),                    # would remove latest.pt first
                 ["import", str(model), "--out", str(out), "--overwrite"]):
        outcome = run_sketchprep(args, tmp_path, timeout=60)
        assert "Traceback" not in outcome.stderr, outcome.stderr
        assert outcome.rc == 1, (args, outcome.stderr)
        assert outcome.error_lines == [f"Error: {out}: this run folder is in use by another sketchprep process "
                                       f"(PID {proc.pid}), which holds its lock. Wait for it to end, or choose "
                                       "another run folder"], args
        assert proc.poll() is None, "the first run stopped"
        assert (out / "latest.pt").exists() and (out / LOCK_NAME).read_text().strip() == str(proc.pid)
    import torch

    assert "imported_from" not in torch.load(out / "latest.pt", weights_only=True)  # still the first run's


def test_a_killed_run_leaves_no_stale_lock(training, sample_npz):  # noqa: F811
    proc, out = training
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / LOCK_NAME).exists()  # kill -9 ran no cleanup, yet the kernel released the lock
    before = snapshot(out)
    outcome = run_sketchprep(["train", "--out", str(out), "--resume", "--max-steps", "1", "-q"], out.parent, timeout=60)
    assert outcome.rc == 0 and "Traceback" not in outcome.stderr, outcome.stderr
    assert not (out / LOCK_NAME).exists() and snapshot(out) != before
