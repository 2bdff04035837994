"""Hostile option values: NaN, infinity, negative and huge numbers, and sizes that would allocate without bound.

Every number a command takes has both ends (`sketchprep.limits.Bound`), and the same value is refused with
the same words whether it comes from the command line, a recipe, a preset, `--set` or `--limit`. A value out
of range is a usage error (exit 2) found before any work: so each case here is fast and small, where before
it reached Pillow, numpy, torch or a socket as a traceback, hung, or was silently accepted. Each case runs
in a subprocess (tests/hostile.py): exit code, one `Error:` line, time and memory bounds, no file left.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hostile import run_case

from sketchprep.dataset import save_dataset

TINY = {"train": [np.array([[1, 2, 0], [3, 4, 1]], np.int16)] * 20,
        "valid": [np.array([[5, 6, 1]], np.int16)] * 10, "test": [np.array([[7, 8, 1]], np.int16)] * 10}
HUGE = "9" * 400                     # 400 digits: float() makes it inf, int() an exact huge number
FAST = 10.0                          # seconds: a usage error is found before any input is read


@pytest.fixture
def folder(tmp_path) -> Path:
    save_dataset(tmp_path / "d.npz", TINY)
    (tmp_path / "in.ndjson").write_text(json.dumps(
        {"key_id": "1", "word": "cat", "drawing": [[[0, 50, 100], [0, 80, 0]]]}) + "\n")
    return tmp_path


# ---- class: numbers checked from one end only, and NaN, which passes every comparison --------------


@pytest.mark.parametrize("args, message", [
    (["render", "d.npz", "-o", "g.png", "--cell", "nan"], "--cell must be a number from 8 to 1024, not nan"),
    (["render", "d.npz", "-o", "g.png", "--cell", "inf"], "--cell must be a number from 8 to 1024, not inf"),
    (["render", "d.npz", "-o", "g.png", "--columns", "1000000000"], "--columns must be a whole number from 1 to"),
    (["render", "d.npz", "-o", "g.png", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295, not -1"),
    (["render", "d.npz", "-o", "g.png", "--seed", "100000000000000000000000"], "--seed must be a whole number"),
    (["render", "d.npz", "-o", "g.png", "--index", "1" * 30], "--index must be a whole number"),
    (["render", "d.npz", "-o", "g.png", "--compare", "nan"], "--compare must be a number > 0"),
    (["convert", "in.ndjson", "o.npz", "--size", "nan"], "--size must be a number from 0 to 32767, not nan"),
    (["convert", "in.ndjson", "o.npz", "--epsilon", "-inf"], "--epsilon must be a number from 0 to"),
    (["convert", "in.ndjson", "o.npz", "--multiple", "100000000000000000000000"], "--multiple must be a whole number"),
    (["convert", "in.ndjson", "o.npz", "--split", "1/1e-320/0"], "--split valid must be 0 or a number from 0.000001"),
    (["convert", "in.ndjson", "o.npz", "--split", "nan/1/1"], "--split train must be a whole number from 0 to"),
    (["convert", "in.ndjson", "o.npz", "--split", "1e400/0/0"], "--split train must be a whole number"),
    (["convert", "in.ndjson", "o.npz", "--seed", HUGE], "--seed must be a whole number from 0 to 4294967295, not 999"),
    (["convert", "in.ndjson", "o.npz", "--max-len", "0"], "--max-len must be a whole number from 1 to 100000, not 0"),
    (["convert", "in.ndjson", "o.npz", "--limit", "line-bytes=nan"], "--limit line-bytes must be a whole number"),
    (["convert", "in.ndjson", "o.npz", "--limit", "gzip-ratio=" + HUGE], "--limit gzip-ratio must be a whole number"),
    (["validate", "d.npz", "--batch-size", "1e30"], "--batch-size must be a whole number from 1 to 100000"),
    (["stats", "in.ndjson", "--epsilon", "nan"], "--epsilon must be a number from 0 to 1000000, not nan"),
    (["download", "quickdraw", "cat", "--timeout", "nan", "-o", "dl"], "--timeout must be a number > 0"),
    (["download", "quickdraw", "cat", "--timeout", "inf", "-o", "dl"], "--timeout must be a number > 0"),
    (["train", "d.npz", "--out", "run", "--max-steps", "-5"], "--max-steps must be a whole number from 1 to"),
    (["train", "d.npz", "--out", "run", "--max-time", HUGE], "--max-time 999"),
    (["train", "d.npz", "--out", "run", "--max-time", "1e300h"], "--max-time"),
    (["train", "d.npz", "--out", "run", "--patience", "-1"], "--patience must be a whole number from 0 to"),
    (["train", "d.npz", "--out", "run", "--device", "meta"], "--device must be auto, cpu, cuda, cuda:N or mps, not meta"),
    (["sample", "d.npz", "-o", "s.npz", "--device", "meta"], "--device must be auto, cpu, cuda, cuda:N or mps"),
    (["sample", "d.npz", "-o", "s.npz", "-t", "inf"], "--temperature must be a number from 0.001 to 10, not inf"),
    (["sample", "d.npz", "-o", "s.npz", "-t", "nan"], "--temperature must be a number from 0.001 to 10, not nan"),
    (["sample", "d.npz", "-o", "s.npz", "--seed", "-1"], "--seed must be a whole number from 0 to 4294967295"),
    (["complete", "d.npz", "--prefix", "test:0", "-o", "c.png", "--keep", "0"], "--keep must be a whole number from 1"),
    (["import", "d.npz", "--out", "run", "--scale-factor", "nan"], "--scale-factor must be a number from 0.000001"),
])
def test_out_of_range_values_are_usage_errors(folder, args, message):
    out = run_case(folder, args, rc=2, message=message, max_seconds=FAST, max_mb=300)
    assert out.stderr.count("Error:") == 1


def test_the_same_value_is_refused_with_the_same_words_from_a_recipe(folder):
    """render --cell nan on the command line, and `cell = nan` in a recipe or `--set render.cell=nan`."""
    words = "cell must be a number from 8 to 1024, not nan"
    run_case(folder, ["render", "d.npz", "-o", "g.png", "--cell", "nan"], rc=2, message="--" + words)
    (folder / "r.toml").write_text(f'[convert]\ninputs = ["in.ndjson"]\n[render]\ncell = nan\n')
    run_case(folder, ["pipeline", "run", "r.toml", "--out", "out"], message="r.toml: render." + words)
    (folder / "r.toml").write_text(f'[convert]\ninputs = ["in.ndjson"]\n')
    run_case(folder, ["pipeline", "run", "r.toml", "--out", "out", "--set", "render.cell=nan"],
             message="render." + words)
    for line, words in (("split = '1/1e-320/0'", "convert.split valid must be 0 or a number from 0.000001 to 1"),
                        ("seed = -1", "convert.seed must be a whole number from 0 to 4294967295, not -1"),
                        ("limit = ['points-per-stroke=0']", "convert.limit points-per-stroke must be a whole number")):
        (folder / "r.toml").write_text(f'[convert]\ninputs = ["in.ndjson"]\n{line}\n')
        run_case(folder, ["pipeline", "run", "r.toml", "--out", "out"], message=words)


@pytest.mark.parametrize("args, message", [
    (["--set", "learning_rate=nan"], "hparam learning_rate must be a number > 0 and <= 10, not nan"),
    (["--set", "kl_weight=inf"], "hparam kl_weight must be a number from 0 to 1000, not inf"),
    (["--set", "seed=-1"], "hparam seed must be a whole number from 0 to 4294967295, not -1"),
    (["--preset", "nan.json"], "hparam kl_weight must be a number from 0 to 1000, not nan"),
])
def test_hparams_from_set_and_presets(folder, args, message):
    (folder / "nan.json").write_text('{"kl_weight": NaN}')
    run_case(folder, ["train", "d.npz", "--out", "run", *args], rc=2, message=message, max_seconds=30)


# ---- class: sizes taken from options, bounded before anything of that size is allocated ------------


@pytest.mark.parametrize("args, message", [
    (["sample", "d.npz", "-o", "s.npz", "-n", "1000000"], "-n must be a whole number from 1 to 10000"),
    (["complete", "d.npz", "--prefix", "test:0", "-o", "c.npz", "-n", "1000000"], "-n must be a whole number"),
    (["interpolate", "d.npz", "test:0", "test:1", "-o", "m.svg", "--steps", "1000000000"],
     "--steps must be a whole number from 2 to 1000"),
    (["render", "d.npz", "-o", "g.png", "-n", "1000000"], "-n must be a whole number from 1 to 10000"),
    (["convert", "in.ndjson", "o.npz", "--workers", "3000"], "--workers must be a whole number from 1 to"),
    (["train", "d.npz", "--out", "run", "--threads", "3000"], "--threads must be a whole number from 0 to"),
    (["train", "d.npz", "--out", "run", "--samples", "100000"], "--samples must be a whole number from 0 to 1000"),
    (["train", "d.npz", "--out", "run", "--set", "dec_rnn_size=100000"],
     "hparam dec_rnn_size must be a whole number from 1 to 16384, not 100000"),
])
def test_sizes_are_bounded_before_allocating(folder, args, message):
    run_case(folder, args, rc=2, message=message, max_seconds=FAST, max_mb=300)


def test_a_model_too_large_is_refused_before_its_weights_exist(folder):
    """dec_rnn_size 16000 is within its own bound, but the model would have a billion parameters (4 GB)."""
    out = run_case(folder, ["train", "d.npz", "--out", "run", "--set", "dec_rnn_size=16000", "--set",
                            "enc_rnn_size=16000"], rc=2, message="parameters is over the bound of 268,435,456",
                   max_seconds=40, max_mb=700)
    assert not (folder / "run").exists(), out.stderr


def test_a_png_grid_is_bounded_by_its_pixels(folder):
    save_dataset(folder / "many.npz", {**TINY, "test": [np.array([[1, 2, 0], [3, 4, 1]], np.int16)] * 100})
    run_case(folder, ["render", "many.npz", "-o", "g.png", "--cell", "1000", "-n", "64"], rc=2,
             message="a PNG grid of 8000 x 8000 pixels is over the bound of 16,777,216 pixels", max_mb=300)
    run_case(folder, ["render", "many.npz", "-o", "g.png", "--cell", "100", "--columns", "10000", "-n", "2"], rc=2,
             message="a PNG grid of 1000000 x 100 pixels is over the bound", max_mb=300)
    # SVG is not a picture of pixels: the same grid is small text
    run_case(folder, ["render", "many.npz", "-o", "g.svg", "--cell", "1000", "-n", "64", "-q"], rc=0,
             creates=("g.svg",), max_mb=300)


def test_decoding_is_bounded_by_the_memory_it_needs(folder):
    """-n within its bound, but a model that draws 100,000 points per drawing: 10,000 of them need gigabytes."""
    torch = pytest.importorskip("torch")
    from sketchrnn.model import HParams, SketchRNN
    from sketchrnn.train import CHECKPOINT_FORMAT, save_checkpoint

    hps = HParams(conditional=False, dec_rnn_size=8, num_mixture=2, max_seq_len=100_000)
    model = SketchRNN(hps)
    (folder / "long").mkdir()
    save_checkpoint(folder / "long" / "best.pt", {
        "format": CHECKPOINT_FORMAT, "version": 1, "model": model.state_dict(),
        "optimizer": torch.optim.Adam(model.parameters()).state_dict(), "hparams": hps.to_dict(),
        "scale_factor": 1.0, "max_len": 100_000, "step": 1, "data_files": []})
    run_case(folder, ["sample", "long", "-o", "s.npz", "-n", "10000"], rc=2,
             message="-n 10000: 10,000 drawings of up to 100,001 points from this model need about", max_seconds=30,
             max_mb=700)


def test_torch_out_of_memory_is_one_error_line():
    """torch's allocators raise RuntimeError, not MemoryError: the boundary maps both (a real allocation)."""
    torch = pytest.importorskip("torch")
    from sketchprep.cli.app import translate_error

    with pytest.raises(RuntimeError) as e:
        torch.empty(2**60, dtype=torch.uint8)     # an exbibyte: refused by the allocator at once
    mapped = translate_error(e.value)
    assert mapped is not None and mapped.exit_code == 1 and "out of memory" in mapped.message
    assert translate_error(RuntimeError("a bug")) is None   # other RuntimeErrors keep their traceback
