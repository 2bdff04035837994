"""`train` as a user meets it: presets, --max-time, threads, signals, data fingerprints, the grids
written at every evaluation, `plot`, empty samples, and `pipeline run`'s live progress."""
import ast
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

torch = pytest.importorskip("torch")

from conftest import REPO
from test_sketchrnn_train import tiny_dataset

from sketchprep.cli import main
from sketchprep.errors import OptionError
from sketchprep.render import save_grid
from sketchrnn.model import HParams
from sketchrnn.presets import describe_presets, preset_names, read_preset
from sketchrnn.train import LATEST, load_checkpoint, parse_duration

TINY_SETS = ["--set", "enc_rnn_size=8", "--set", "dec_rnn_size=12", "--set", "z_size=4", "--set", "num_mixture=3",
             "--set", "batch_size=8"]


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def run_cli(args, cwd, **kwargs):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-m", "sketchprep", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.fixture
def data(tmp_path):
    return tiny_dataset(tmp_path / "tiny.npz")


# --- presets -------------------------------------------------------------------------------------


def test_named_presets_are_valid_hparams_with_a_measured_speed():
    assert {"tiny", "cpu", "small_dataset", "reference"} <= set(preset_names())
    comments = dict(describe_presets())
    for name, comment in comments.items():
        HParams.from_dict(read_preset(name), source=name)
        assert comment, name
    for name in ("tiny", "cpu", "small_dataset", "reference", "classes"):
        assert "s/step" in comments[name] and "MEASURED" not in comments[name], (name, comments[name])
    assert HParams.from_dict(read_preset("reference")) == HParams()          # Magenta's defaults
    assert read_preset("tiny")["num_steps"] <= 1000                           # a smoke run ends by itself


def test_presets_ship_with_the_package():
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"presets/*.json"' in pyproject
    old = json.loads((REPO / "pipelines" / "presets" / "small_dataset.json").read_text())
    assert {k: v for k, v in old.items() if not k.startswith("_")} == read_preset("small_dataset")


def test_preset_names_and_files(tmp_path):
    with pytest.raises(OptionError, match="no such preset; did you mean 'tiny'"):
        read_preset("tinny")
    f = tmp_path / "mine.json"
    f.write_text('{"_comment": "x", "z_size": 7}')
    assert read_preset(str(f)) == {"z_size": 7}
    with pytest.raises(OptionError, match="not JSON"):
        f.write_text("{"), read_preset(str(f))


def test_list_presets_and_unknown_preset(data, tmp_path):
    result = cli("train", "--list-presets")
    assert result.exit_code == 0 and "tiny\n" in result.output and "s/step" in result.output
    result = cli("train", data, "--out", tmp_path / "r", "--preset", "nope")
    assert result.exit_code == 2 and "Error: --preset 'nope': no such preset" in result.output


@pytest.mark.parametrize("text, seconds", [("45m", 2700), ("1h30m", 5400), ("20s", 20), ("90", 90), ("1.5h", 5400),
                                           ("2m30s", 150)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "5x", "-3s", "0", "1m2h"])
def test_bad_durations(text):
    with pytest.raises(OptionError, match="--max-time"):
        parse_duration(text)


# --- a run as a user starts it -------------------------------------------------------------------


def test_tiny_preset_run_writes_grids_and_agrees_with_sample(data, tmp_path):
    out = tmp_path / "run"
    result = cli("train", data, "--out", out, "--preset", "tiny", "--set", "batch_size=8", "--set", "num_steps=40",
                 "--set", "save_every=20")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["recon-000020.png", "recon-000040.png",
                                                                  "step-000020.png", "step-000040.png"]
    assert Image.open(out / "samples" / "step-000040.png").size == (384, 384)        # 16 cells of 96 px
    assert "plan: 40 steps" in result.output and "estimate: 20 steps to go" in result.output
    best_step = load_checkpoint(out / "best.pt")["best_step"]
    assert "best valid cost" in result.output and f"at step {best_step};" in result.output
    sampled = cli("sample", out, "-o", tmp_path / "s.png", "-n", "3")
    assert f"(step {best_step})" in sampled.output          # the step train reported, counted the same way
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["split"] == "valid"] == [20, 40]
    again = cli("train", data, "--out", out, "--preset", "tiny")
    assert again.exit_code == 2 and "--resume" in again.output and "--overwrite" in again.output
    over = cli("train", data, "--out", out, *TINY_SETS, "--set", "save_every=5", "--max-steps", "5", "--overwrite")
    assert over.exit_code == 0, over.output
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["recon-000005.png", "step-000005.png"]


def test_no_samples_and_unconditional_grids(data, tmp_path):
    result = cli("train", data, "--out", tmp_path / "a", *TINY_SETS, "--max-steps", "3", "--samples", "0")
    assert result.exit_code == 0 and not (tmp_path / "a" / "samples").exists()
    result = cli("train", data, "--out", tmp_path / "b", *TINY_SETS, "--max-steps", "3",
                 "--set", "conditional=false")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "b" / "samples").iterdir()) == ["step-000003.png"]


def test_the_reference_default_warns_about_its_length(data, tmp_path):
    from sketchrnn.train import train

    lines = []

    def stop(step, metrics):
        raise RuntimeError("enough")

    with pytest.raises(RuntimeError, match="enough"):
        train([data], tmp_path / "q", HParams(enc_rnn_size=8, dec_rnn_size=12, z_size=4, num_mixture=3, batch_size=8),
              log=lines.append, on_step=stop)
    plan = next(line for line in lines if line.startswith("plan:"))
    assert plan.startswith("plan: 10,000,000 steps (to step 10,000,000, num_steps)")
    assert "'keep large' num_steps: set --max-steps or --max-time" in plan
    result = cli("train", data, "--out", tmp_path / "r", *TINY_SETS, "--max-steps", "2")
    assert "plan: 2 steps (to step 2, --max-steps)" in result.output
    result = cli("train", data, "--out", tmp_path / "s", *TINY_SETS, "--max-steps", "10000000", "--max-time", "2s")
    assert "'keep large'" not in result.output and "--max-time" in result.output
    from sketchrnn.train import format_duration
    assert format_duration(10_000_000 * 1.75) == "202.5 days"
    assert format_duration(3725) == "1h 02m" and format_duration(750) == "12m 30s"


def test_max_time_stops_near_the_budget_with_latest_saved(data, tmp_path):
    out = tmp_path / "run"
    t0 = time.monotonic()
    result = cli("train", data, "--out", out, *TINY_SETS, "--set", "save_every=100000", "--max-time", "4s")
    wall = time.monotonic() - t0
    assert result.exit_code == 0, result.output
    assert "(max time)" in result.output
    # the budget is used, not overrun by more than a busy machine's slack (a loaded 2-core machine took a
    # few seconds more to evaluate and save than the estimate the stop was planned with)
    assert 2.0 < wall < 4.0 + 20.0, wall
    ckpt = load_checkpoint(out / LATEST)
    assert ckpt["step"] >= 1 and (out / "best.pt").exists()      # the closing evaluation ran


def test_threads_default_is_one(data, tmp_path):
    result = cli("train", data, "--out", tmp_path / "r", *TINY_SETS, "--max-steps", "1")
    assert "1 thread(s)" in result.output
    assert cli("train", data, "--out", tmp_path / "q", "--threads", "-1").exit_code == 2


# --- interrupts and resuming on changed data -----------------------------------------------------


def _wait_for(path, proc, seconds=60):
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end
        time.sleep(0.1)


@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_latest_and_exits_non_zero(data, tmp_path, sig, code):
    out = tmp_path / "run"
    proc = run_cli(["train", data, "--out", out, *TINY_SETS, "--set", "save_every=5", "--log-every", "1"], tmp_path)
    _wait_for(out / LATEST, proc)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    step = load_checkpoint(out / LATEST)["step"]
    assert "steps in" in stdout and "(interrupted)" in stdout
    last = stderr.strip().splitlines()[-1]
    assert last == (f"Interrupted by {sig.name}: {out / LATEST} holds step {step}; continue with: "
                    f"sketchprep train --out {out} --resume")
    assert "Traceback" not in stderr


def test_resume_refuses_changed_data_unless_told(tmp_path):
    data = tiny_dataset(tmp_path / "d.npz")
    out = tmp_path / "run"
    assert cli("train", data, "--out", out, *TINY_SETS, "--max-steps", "2").exit_code == 0
    assert "data_fingerprint" in load_checkpoint(out / LATEST)
    tiny_dataset(tmp_path / "d.npz", seed=1)                     # other content at the same path
    result = cli("train", "--out", out, "--resume", "--max-steps", "4")
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {data}: the data changed since the run was trained on it")
    assert "--allow-data-change" in result.output and result.output.count("\n") == 1
    assert load_checkpoint(out / LATEST)["step"] == 2
    result = cli("train", "--out", out, "--resume", "--max-steps", "4", "--allow-data-change")
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / LATEST)["step"] == 4
    assert cli("train", data, "--out", tmp_path / "x", "--allow-data-change").exit_code == 2


# --- pictures ------------------------------------------------------------------------------------


def test_empty_drawings_are_marked_and_counted(tmp_path, monkeypatch):
    drawing = np.array([[0, 0, 0], [30, 10, 0], [-10, 25, 1]], np.float32)
    empty = np.zeros((0, 3), np.float32)
    path = tmp_path / "g.png"
    save_grid([drawing, empty], path, cell=96.0, borders=True)
    img = np.asarray(Image.open(path).convert("L"))
    assert img.shape == (96, 192)
    assert img[:, 96 + 30:96 + 66][40:56].min() < 255          # the grey "empty" mark in the empty cell
    assert img[0, 10] < 255 and img[48, 96] < 255              # borders
    svg = tmp_path / "g.svg"
    save_grid([drawing, empty], svg, borders=True)
    assert ">empty</text>" in svg.read_text() and "<rect x=" in svg.read_text()

    from sketchrnn import sample as sample_module
    from sketchrnn.sample import empty_note
    assert empty_note([drawing, drawing]) == ""
    assert empty_note([empty, drawing, empty]).startswith("; 2 of 3 drawings are empty")

    data = tiny_dataset(tmp_path / "tiny.npz")
    assert cli("train", data, "--out", tmp_path / "run", *TINY_SETS, "--max-steps", "1").exit_code == 0
    monkeypatch.setattr(sample_module, "sample", lambda run, n, *a, **k: [empty] * (n - 1) + [drawing])
    result = cli("sample", tmp_path / "run", "-o", tmp_path / "s.png", "-n", "5")
    assert result.exit_code == 0, result.output
    assert "4 of 5 drawings are empty" in result.output and "lower temperature" in result.output


def test_plot_command(data, tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    assert cli("train", data, "--out", out, *TINY_SETS, "--set", "save_every=2", "--max-steps", "6",
               "--log-every", "1").exit_code == 0
    result = cli("plot", out)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {out / 'curves.png'}: 6 train and 3 valid points; best valid cost")
    assert Image.open(out / "curves.png").size == (750, 520)
    assert cli("plot", out, "-o", tmp_path / "c.svg").exit_code == 0
    assert (tmp_path / "c.svg").read_text().lstrip().startswith("<?xml")
    result = cli("plot", tmp_path)
    assert result.exit_code == 1 and "no metrics.jsonl here" in result.output
    result = cli("plot", out, "-o", tmp_path / "c.txt")
    assert result.exit_code == 2 and "the picture must end in .png, .svg, .pdf" in result.output
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text('{"split": "train", "step": 1}\nnot json\n')
    result = cli("plot", bad)
    assert result.exit_code == 1 and result.output.startswith(f"Error: {bad / 'metrics.jsonl'}:2: not a JSON line")
    # a run still training: its last line, half written (no newline yet), is left out, not refused
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"split": "train", "step": 7, "co')
    result = cli("plot", out, "-o", tmp_path / "e.svg")
    assert result.exit_code == 0, result.output
    assert "6 train and 3 valid points" in result.output
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    result = cli("plot", out, "-o", tmp_path / "d.png")
    assert result.exit_code == 1
    assert result.output == "Error: drawing curves needs matplotlib: pip install 'sketchprep[plot]'\n"


# --- structure -----------------------------------------------------------------------------------


def test_no_library_module_imports_the_cli():
    """The layers point one way: sketchrnn and sketchprep's library modules never import sketchprep.cli
    (the `torchrun -m sketchprep train` entry is sketchprep/__main__.py)."""
    for path in [*(REPO / "sketchrnn").rglob("*.py"), *(REPO / "sketchprep").glob("*.py")]:
        if path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.startswith("sketchprep.cli") or (isinstance(node, ast.ImportFrom) and node.level
                                                               and n.startswith("cli")) for n in names), path


# --- pipeline run --------------------------------------------------------------------------------


def test_pipeline_output_is_relative_to_the_recipe_and_shows_progress(tmp_path, monkeypatch):
    from test_convert import many_lines

    folder = tmp_path / "recipes"
    folder.mkdir()
    (folder / "in.ndjson").write_text("\n".join(many_lines(250)))
    recipe = folder / "r.toml"
    recipe.write_text('output = "made"\n[convert]\ninputs = ["in.ndjson"]\nmultiple = 10\n'
                      '[train]\npreset = "tiny"\nmax_steps = 3\nset = ["batch_size=8"]\n')
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["pipeline", "run", str(recipe)])
    assert result.exit_code == 0, result.output
    assert (folder / "made" / "report.md").exists() and not (elsewhere / "made").exists()
    assert "train     running ..." in result.output and "train     ran" in result.output
    assert (folder / "made" / "run" / "samples" / "step-000003.png").exists()   # preset by name
    assert "![step-000003](run/samples/step-000003.png)" in (folder / "made" / "report.md").read_text()


def test_pipeline_progress_reports_the_last_log_line(tmp_path):
    from sketchprep.pipeline import _run_command

    seen = []
    proc = _run_command(["--version"], seen.append)
    assert proc.returncode == 0 and "sketchprep" in proc.stdout
    data = tiny_dataset(tmp_path / "tiny.npz")
    proc = _run_command(["train", data, "--out", str(tmp_path / "r"), *TINY_SETS, "--max-steps", "400",
                         "--log-every", "1", "--samples", "0"], seen.append)
    assert proc.returncode == 0, proc.stderr
    assert any(line.startswith("train  step") and "s/step" in line for line in seen), seen


def test_grids_go_to_tensorboard_as_images(data, tmp_path, monkeypatch):
    """With tensorboard installed, every grid is also an image event (faked writer: tensorboard is optional)."""
    from sketchrnn import train as train_module

    images = []

    class Writer:
        def __init__(self, *args, **kwargs):
            pass

        def add_scalar(self, *args):
            pass

        def add_image(self, tag, array, step, dataformats):
            images.append((tag, array.shape, step, dataformats))

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", type(sys)("fake_tensorboard"))
    sys.modules["torch.utils.tensorboard"].SummaryWriter = Writer
    train_module.train([data], tmp_path / "run", HParams(enc_rnn_size=8, dec_rnn_size=12, z_size=4, num_mixture=3,
                                                          batch_size=8, save_every=2), max_steps=2)
    assert sorted(i[0] for i in images) == ["reconstructions", "samples"]
    assert all(i[2] == 2 and i[3] == "HWC" and i[1][2] == 3 for i in images)
