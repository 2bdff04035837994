"""sketchrnn.sample and the train / sample / interpolate commands."""
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

torch = pytest.importorskip("torch")

from sketchprep.cli import main  # noqa: E402
from sketchprep.dataset import load_dataset  # noqa: E402
from sketchrnn.model import HParams  # noqa: E402
from sketchrnn.sample import (decode, encode, interpolate, lerp, load_run, read_drawing, reconstruct,  # noqa: E402
                              sample, sample_categorical, slerp)
from sketchrnn.train import train  # noqa: E402

from conftest import REPO  # noqa: E402
from test_sketchrnn_train import TINY, tiny_dataset  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    data = tiny_dataset(tmp / "tiny.npz")
    train([data], tmp / "run", HParams(**TINY), max_steps=4)
    return str(tmp / "run")


# --- the reference's sampling bugs -------------------------------------------------------------------

def test_categorical_draw_never_falls_off_the_end():
    """Fix of REFERENCE F.9: the reference walks the cumulative sum and returns -1 (the last category:
    p3, end of sketch, for the pen) when round-off keeps the sum below the uniform draw."""
    probs = torch.tensor([[0.3, 0.3, 0.39999]] * 3 + [[0.5, 0.49999, 0.0]], dtype=torch.float32)
    u = torch.tensor([0.0, 0.5, 1 - 2 ** -24, 1 - 2 ** -24])
    idx = sample_categorical(probs, u)
    assert idx.tolist() == [0, 1, 2, 1]                  # never past the end, never a zero-probability category
    many = sample_categorical(torch.tensor([[0.5, 0.5, 0.0]]).expand(10000, 3), torch.rand(10000))
    assert set(many.tolist()) == {0, 1}


def _reference_slerp(p0, p1, t):
    omega = np.arccos(np.dot(p0 / np.linalg.norm(p0), p1 / np.linalg.norm(p1)))
    so = np.sin(omega)
    return np.sin((1.0 - t) * omega) / so * p0 + np.sin(t * omega) / so * p1


def test_slerp_matches_the_reference_and_survives_parallel_vectors():
    """Fix of REFERENCE F.16: the reference divides by sin(omega), NaN for (anti)parallel latents."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), rng.normal(size=8)
    for t in (0.0, 0.3, 1.0):
        np.testing.assert_allclose(slerp(a, b, t), _reference_slerp(a, b, t))
    with np.errstate(all="ignore"):
        assert np.isnan(_reference_slerp(np.array([1.0, 0.0]), np.array([2.0, 0.0]), 0.5)).all()
    assert np.isfinite(slerp(np.array([1.0, 0.0]), np.array([2.0, 0.0]), 0.5)).all()
    for other in (2 * a, a, np.zeros(8)):
        out = slerp(a, other, 0.5)
        assert np.isfinite(out).all()
        np.testing.assert_allclose(out, lerp(a, other, 0.5))
    assert np.isfinite(slerp(a, -a, 0.25)).all()


def test_temperature_scales_sigma_as_the_reference_code():
    """sigma x tau ("code": the reference's sample() passes sqrt(tau) and squares it) or sigma x
    sqrt(tau) ("paper": variance x tau); greedy mode returns the component's mean."""
    from sketchrnn.model import mixture_params
    from sketchrnn.sample import _draw_offsets

    m = 2
    raw = torch.zeros(1, 3 + 6 * m)
    raw[0, 3 + m:3 + 2 * m] = torch.tensor([1.0, 2.0])                  # mu_x
    raw[0, 3 + 3 * m:3 + 4 * m] = math.log(0.5)                          # sigma_x = 0.5
    p, k = mixture_params(raw), torch.tensor([1])
    dev = {}
    for form in ("code", "paper"):
        x, _ = _draw_offsets(p, k, 0.25, False, form, torch.Generator().manual_seed(0))
        dev[form] = float(x[0]) - 2.0
    n1 = float(torch.randn(1, generator=torch.Generator().manual_seed(0))[0])
    assert dev["code"] == pytest.approx(0.5 * 0.25 * n1, rel=1e-5)
    assert dev["paper"] == pytest.approx(0.5 * 0.5 * n1, rel=1e-5)
    assert float(_draw_offsets(p, k, 0.25, True, "code", torch.Generator())[0][0]) == 2.0


def test_sampling_outputs(run_dir):
    run = load_run(run_dir)
    drawings = sample(run, n=5, temperature=0.5, seed=1)
    assert len(drawings) == 5
    for d in drawings:
        assert d.dtype == np.float32 and d.ndim == 2 and d.shape[1] == 3 and len(d) <= run.max_len + 1
        if len(d):
            assert d[-1, 2] == 1 and set(np.unique(d[:, 2])) <= {0.0, 1.0}
    again = sample(run, n=5, temperature=0.5, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(drawings, again))
    z = torch.randn(1, run.hps.z_size)
    assert np.array_equal(decode(run, z, greedy=True)[0], decode(run, z, greedy=True, seed=5)[0])
    a, _ = read_drawing("test:0", run.data_files[0])
    z_mu = encode(run, [a])
    assert torch.equal(z_mu, encode(run, [a]))                       # mu: deterministic (F.8)
    assert not torch.equal(z_mu, encode(run, [a], sampled=True))
    long = np.tile(a, (30, 1))                                        # longer than any training sketch (F.15)
    assert encode(run, [long]).shape == (1, run.hps.z_size)
    assert len(reconstruct(run, a, n=3, temperature=0.2)) == 3
    morph = interpolate(run, a, read_drawing("test:1", run.data_files[0])[0], steps=4)
    assert len(morph) == 4


def test_samples_come_back_in_pixels(run_dir):
    """Greedy decoding of a drawing's own code, compared in model units and in data units."""
    run = load_run(run_dir)
    z = torch.zeros(1, run.hps.z_size)
    pixels = decode(run, z, greedy=True, max_steps=3)[0]
    run.scale_factor *= 2
    assert np.allclose(decode(run, z, greedy=True, max_steps=3)[0][:, :2], 2 * pixels[:, :2], rtol=1e-5)


# --- commands ------------------------------------------------------------------------------------------

def test_train_command(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    runner = CliRunner()
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    result = runner.invoke(main, ["train", data, "--out", str(tmp_path / "run"), "--max-steps", "4", *sets])
    assert result.exit_code == 0, result.output
    assert re.match(rf"{re.escape(str(tmp_path / 'run'))}: 4 steps in \d+ s \(max steps\); best valid cost ",
                    result.output.splitlines()[-1])
    assert "valid  step 3: cost" in result.output
    again = runner.invoke(main, ["train", data, "--out", str(tmp_path / "run"), "--max-steps", "4", *sets])
    assert again.exit_code == 2 and "already holds a run (latest.pt): continue it with --resume" in again.output
    more = runner.invoke(main, ["train", "--out", str(tmp_path / "run"), "--resume", "--max-steps", "6", "-q"])
    assert more.exit_code == 0 and more.output.startswith(f"{tmp_path / 'run'}: 6 steps")
    over = runner.invoke(main, ["train", data, "--out", str(tmp_path / "run"), "--overwrite", "--max-steps", "1",
                                "-q", *sets])
    assert over.exit_code == 0 and ": 1 steps" in over.output


def test_train_command_with_the_preset(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    preset = str(REPO / "pipelines" / "presets" / "small_dataset.json")
    sets = [a for k, v in TINY.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(main, ["train", data, "--out", str(tmp_path / "run"), "--preset", preset,
                                       "--max-steps", "1", "-q", *sets])
    assert result.exit_code == 0, result.output
    ckpt = torch.load(tmp_path / "run" / "latest.pt", weights_only=True)
    assert ckpt["hparams"]["enc_model"] == ckpt["hparams"]["dec_model"] == "layer_norm"


@pytest.mark.parametrize("args, code, message", [
    (["--set", "z_size=big"], 2, "Error: --set z_size=big: z_size must be an integer"),
    (["--set", "nope=1"], 2, "Error: --set 'nope=1': unknown hparam 'nope'"),
    (["--preset", "missing.json"], 2, "Error: --preset missing.json: No such file or directory"),
    (["--resume", "--set", "z_size=3"], 2, "Error: --resume continues with the run's own hparams"),
    (["--threads", "-1"], 2, "Error: --threads must be a whole number from 0 to"),
])
def test_train_command_errors(tmp_path, args, code, message):
    data = tiny_dataset(tmp_path / "tiny.npz")
    result = CliRunner().invoke(main, ["train", data, "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == code, result.output
    assert message in result.output


def test_train_command_bad_data(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    result = CliRunner().invoke(main, ["train", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith(f"Error: {bad}: not a readable .npz")


def test_sample_and_interpolate_commands(run_dir, tmp_path):
    runner = CliRunner()
    png = tmp_path / "s.png"
    result = runner.invoke(main, ["sample", run_dir, "-o", str(png), "-n", "4", "--temperature", "0.3"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {png}: 4 drawings")
    assert Image.open(png).size[0] > 0
    npz = tmp_path / "s.npz"
    assert runner.invoke(main, ["sample", run_dir, "-o", str(npz), "-n", "3"]).exit_code == 0
    ds = load_dataset(npz)
    assert len(ds.splits["test"]) == 3 and ds.meta["kind"] == "sketchrnn samples"
    svg = tmp_path / "r.svg"
    result = runner.invoke(main, ["sample", run_dir, "-o", str(svg), "--reconstruct", "test:2", "-n", "2",
                                  "--greedy"])
    assert result.exit_code == 0 and svg.read_text().startswith("<svg") and "tiny.npz:test:2" in svg.read_text()
    morph = tmp_path / "m.svg"
    result = runner.invoke(main, ["interpolate", run_dir, "test:0", "test:1", "-o", str(morph), "--steps", "3",
                                  "--show-inputs"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"wrote {morph}: 5 drawings (the two inputs at the ends and 3 decoded "
                                    f"between) from tiny.npz:test:0 to tiny.npz:test:1")   # what was drawn


@pytest.mark.parametrize("args, code, message", [
    (["sample", "{run}", "-o", "x.jpg"], 2, "Error: -o x.jpg: the output must end in .svg, .png or .npz"),
    (["sample", "{run}", "-o", "x.png", "--temperature", "0"], 2, "Error: --temperature must be a number from 0.001 to 10, not 0"),
    (["sample", "{run}", "-o", "x.png", "-n", "0"], 2, "Error: -n must be a whole number from 1 to 10000, not 0"),
    (["sample", "{run}", "-o", "x.png", "--reconstruct", "test:99"], 2, "has 10 test drawings"),
    (["sample", "{run}", "-o", "x.png", "--reconstruct", "test"], 2, "expected [FILE.npz:]SPLIT:INDEX"),
    (["interpolate", "{run}", "test:0", "test:1", "-o", "m.svg", "--steps", "1"], 2,
     "Error: --steps must be a whole number from 2 to 1000, not 1"),
    (["sample", "{empty}", "-o", "x.png"], 2, "no best.pt or latest.pt here"),
])
def test_sample_command_errors(run_dir, tmp_path, args, code, message):
    args = [a.format(run=run_dir, empty=str(tmp_path)) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_a_damaged_checkpoint_is_a_one_line_error(tmp_path):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"garbage")
    result = CliRunner().invoke(main, ["sample", str(bad), "-o", str(tmp_path / "s.png")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1
    assert result.output.startswith(f"Error: {bad}: not a sketchrnn checkpoint, or a damaged one")
    assert "weights_only" not in result.output  # torch's advice to load unsafely is never shown


def test_commands_without_torch():
    """`sketchprep --help` and the data commands never import torch; the torch commands say what to install."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from click.testing import CliRunner\n"
            "from sketchprep.cli import main\n"
            "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output\n"
            "r = CliRunner().invoke(main, ['sample', '.', '-o', 'x.png'])\n"
            "print(r.exit_code, r.output.strip())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("1 Error: this command needs PyTorch: install the train extra: "
                                  "pip install 'sketchprep[train]'")
    probe = "import sys, sketchprep.cli, sketchprep.dataset, sketchprep.render; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO,
                          timeout=60).stdout.strip() == "False"
    assert os.path.exists(REPO / "pipelines" / "presets" / "small_dataset.json")
    assert math.isfinite(1.0)


def test_unconditional_model_trains_and_samples(tmp_path):
    data = tiny_dataset(tmp_path / "tiny.npz")
    train([data], tmp_path / "run", HParams(**TINY, conditional=False), max_steps=2)
    run = load_run(tmp_path / "run")
    assert run.model.encoder is None
    drawings = sample(run, n=3, temperature=0.5)
    assert len(drawings) == 3
    with pytest.raises(Exception, match="unconditional"):
        encode(run, [np.array([[1, 1, 1]], np.float32)])
