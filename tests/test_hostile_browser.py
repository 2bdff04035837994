"""Hostile input to `export`, `import` of sketch-rnn-js files, and `complete`: one `Error:` line, the right exit
code, bounded time and memory, and no file written or left behind."""
import base64
import json
import shutil

import pytest

pytest.importorskip("torch")

from hostile import run_case
from test_export_js import browser_run, sample_npz  # noqa: F401  (fixtures)


def _model(h: int, strings=None, shapes=None, info=None) -> bytes:
    shapes = shapes or [[h, 123], [123], [5, 4 * h], [h, 4 * h], [4 * h]]
    strings = strings if strings is not None else [base64.b64encode(b"\0\0" * (a * (b if len(s) > 1 else 1)))
                                                   .decode() for s in shapes for a, b in [(s[0], s[-1])]]
    return json.dumps([info or {"mode": 2, "version": 6, "max_seq_len": 250, "name": "x", "scale_factor": 10.0},
                       shapes, strings]).encode()


@pytest.fixture
def folder(tmp_path, browser_run):  # noqa: F811  (fixture)
    shutil.copytree(browser_run, tmp_path / "run")
    return tmp_path


@pytest.mark.parametrize("name, content, message", [
    ("huge_shapes.gen.json", _model(4, shapes=[[1 << 19, 123], [123], [5, 1 << 21], [1 << 19, 1 << 21], [1 << 21]],
                                    strings=["AAAA"] * 5), "not a list of 1 or 2 positive integers"),
    ("claims_big.gen.json", _model(4, shapes=[[4000, 123], [123], [5, 16000], [4000, 16000], [16000]],
                                   strings=["AAAA"] * 5), "weight 0 holds 1 int16 values"),
    ("bad_base64.gen.json", _model(4, strings=["%%%%"] * 5), "not valid base64"),
    ("truncated.gen.json", _model(4)[:200], "not JSON"),
])
def test_import_refuses_damaged_js_models(folder, name, content, message):
    (folder / name).write_bytes(content)
    run_case(folder, ["import", name, "--out", "imported"], message=message, max_seconds=20)


def test_export_refuses_a_conditional_run_and_writes_nothing(folder, sample_npz):  # noqa: F811
    from sketchrnn.model import HParams
    from sketchrnn.train import train

    train([str(sample_npz)], folder / "cond", HParams(enc_rnn_size=8, dec_rnn_size=8, z_size=4, batch_size=10,
                                                     save_every=2), max_steps=2, samples=0)
    run_case(folder, ["export", "cond", "-o", "m.gen.json"], message="--preset browser", max_seconds=20)


@pytest.mark.parametrize("args, rc, message", [
    (["export", "run"], 2, "give -o MODEL.gen.json or --html DIR"),
    (["export", "run", "--html", "page", "--runtime-js", "missing.js"], 1, "no such file"),
    (["complete", "run", "--prefix", "nothing.svg", "-o", "c.png"], 2, "no such file"),
    (["complete", "run", "--prefix", "test:0", "--keep", "0", "-o", "c.png"], 2, "--keep must be a whole number from 1 to 100000, not 0"),
])
def test_bad_options_are_refused_before_writing(folder, args, rc, message):
    run_case(folder, args, rc=rc, message=message, max_seconds=20)


def test_complete_refuses_a_prefix_svg_that_draws_nothing(folder):
    (folder / "empty.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>')
    out = run_case(folder, ["complete", "run", "--prefix", "empty.svg", "-o", "c.png"], rc=1,
                   max_seconds=20)
    assert "empty.svg" in out.stderr


def test_complete_never_writes_over_the_dataset_it_reads(folder, sample_npz):  # noqa: F811
    before = sample_npz.read_bytes()
    run_case(folder, ["complete", "run", "--prefix", "test:0", "-o", str(sample_npz)], message="is also an input",
             max_seconds=20)
    assert sample_npz.read_bytes() == before
