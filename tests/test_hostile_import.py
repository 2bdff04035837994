"""Hostile input to `sketchprep import`: damaged, truncated, lying or foreign checkpoints and configs.

Each is refused with one `Error:` line naming the file, exit 1, and no run folder. The cases whose
point is a bound (memory, time, files left behind) run in a subprocess through tests/hostile.py;
the others through CliRunner, which is much faster.
"""
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")
from click.testing import CliRunner
from conftest import shared_fixture
from hostile import run_case
from tf_bundle import write_bundle

from sketchprep.cli import main

SLOW = 30.0   # bound for a subprocess case: importing torch alone takes seconds on a loaded machine


def u_lstm_tensors() -> dict[str, np.ndarray]:
    case = np.load(shared_fixture("tf_reference", "u_lstm.npz"))
    return {k: case[k] for k in case.files if k.startswith("vector_rnn/")}


def copy_fixture(dest):
    shutil.copytree(shared_fixture("tf_checkpoints", "u_lstm"), dest)
    for p in dest.iterdir():
        p.chmod(0o644)
    return dest


def refused(tmp_path, model: str, message: str) -> None:
    res = CliRunner().invoke(main, ["import", model, "--out", str(tmp_path / "run")])
    assert res.exit_code == 1, res.output
    errors = [ln for ln in res.output.splitlines() if ln.startswith("Error:")]
    assert len(errors) == 1 and message.lower() in errors[0].lower(), res.output
    assert not (tmp_path / "run").exists()


def crafted(tmp_path, name="m", **kwargs):
    folder = tmp_path / name
    folder.mkdir()
    write_bundle(folder / "vector-1", kwargs.pop("tensors", None) or u_lstm_tensors(), **kwargs)
    return str(folder)


# ---- in a subprocess: bounds and files ----------------------------------------------------------


def test_damaged_data_file(tmp_path):
    folder = copy_fixture(tmp_path / "model")
    data = folder / "vector-1234.data-00000-of-00001"
    raw = bytearray(data.read_bytes())
    raw[100] ^= 0xFF
    data.write_bytes(bytes(raw))
    run_case(tmp_path, ["import", "model", "--out", "run"], message="checksum mismatch (damaged file)",
             max_seconds=SLOW)


def test_truncated_and_missing_files(tmp_path):
    folder = copy_fixture(tmp_path / "model")
    index = folder / "vector-1234.index"
    full = index.read_bytes()
    index.write_bytes(full[:-20])
    run_case(tmp_path, ["import", "model", "--out", "run"], message="not a TensorFlow checkpoint index",
             max_seconds=SLOW)
    index.write_bytes(full)
    data = folder / "vector-1234.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:1000])
    run_case(tmp_path, ["import", "model", "--out", "run"], message="truncated", max_seconds=SLOW)
    data.unlink()
    run_case(tmp_path, ["import", "model", "--out", "run"], message="missing checkpoint data file",
             max_seconds=SLOW)


def test_entry_claiming_a_huge_tensor_allocates_nothing(tmp_path):
    """A shape of 2^40 x 2^20 floats (4 EiB) with a matching size: refused before any allocation."""
    crafted(tmp_path, lie={"vector_rnn/RNN/LSTMCell/bias": {"shape": (1 << 40, 1 << 20), "size": 4 << 60}})
    run_case(tmp_path, ["import", "m", "--out", "run"], message="file ends inside the tensor", max_seconds=SLOW,
             max_mb=1000)


def test_not_a_model(tmp_path):
    (tmp_path / "empty").mkdir()
    run_case(tmp_path, ["import", "empty", "--out", "run"], message="no TensorFlow checkpoint here",
             max_seconds=SLOW)
    (tmp_path / "notes.txt").write_text("hello")
    run_case(tmp_path, ["import", "notes.txt", "--out", "run"], message="not a Magenta model folder",
             max_seconds=SLOW)


# ---- in process ---------------------------------------------------------------------------------


@pytest.mark.parametrize("lie, message", [
    ({"size": 12}, "bytes stored for shape"),
    ({"shape": (8, 17)}, "bytes stored for shape"),
    ({"shape": (8, 16)}, "LSTMCell/bias: shape (8, 16) does not fit the model"),
    ({"shape": (127,), "size": 508, "crc": None}, "LSTMCell/bias: shape (127,) does not fit the model"),
    ({"dtype": 7}, "string tensors are not supported"),
    ({"sliced": True}, "partitioned (sliced) variables are not supported"),
    ({"shard": 5}, "shard 5 of 1"),
    ({"offset": 1 << 40}, "file ends inside the tensor"),
    ({"crc": 12345}, "checksum mismatch"),
])
def test_lying_entries(tmp_path, lie, message):
    refused(tmp_path, crafted(tmp_path, lie={"vector_rnn/RNN/LSTMCell/bias": lie}), message)


def test_impossible_shape(tmp_path):
    refused(tmp_path, crafted(tmp_path, lie={"vector_rnn/RNN/output_w": {"shape": (-1, 21)}}), "impossible shape")


def test_damaged_or_foreign_tables(tmp_path):
    refused(tmp_path, crafted(tmp_path, "snappy", compressed=True), "compressed block")
    folder = crafted(tmp_path, "flipped")
    index = tmp_path / "flipped" / "vector-1.index"
    raw = bytearray(index.read_bytes())
    raw[30] ^= 0x01                                  # inside the data block
    index.write_bytes(bytes(raw))
    refused(tmp_path, folder, "block checksum mismatch")
    refused(tmp_path, crafted(tmp_path, "other", tensors={"model/dense/kernel": np.ones((3, 3), np.float32)}),
            "no sketch-rnn decoder")
    tensors = u_lstm_tensors()
    del tensors["vector_rnn/RNN/LSTMCell/bias"]
    refused(tmp_path, crafted(tmp_path, "partial", tensors=tensors), "'vector_rnn/RNN/LSTMCell/bias'")
    tensors = u_lstm_tensors()
    tensors["vector_rnn/RNN/LSTMCell/W_hh"] = np.full((32, 128), np.nan, np.float32)
    refused(tmp_path, crafted(tmp_path, "nan", tensors=tensors), "NaN or infinite")


def test_bad_configs(tmp_path):
    folder = copy_fixture(tmp_path / "model")
    config = folder / "model_config.json"
    refused(tmp_path, str(tmp_path / "missing"), "no such file or folder")
    config.write_text("{not json")
    refused(tmp_path, str(folder), "model_config.json: not JSON")
    config.write_text(json.dumps({"batch_size": "many"}))
    refused(tmp_path, str(folder), "batch_size")
    config.write_text(json.dumps({"conditional": 7}))
    refused(tmp_path, str(folder), "conditional")
    config.write_text(json.dumps({"batch_size": 0}))
    refused(tmp_path, str(folder), "hparam batch_size must be a whole number from 1 to 100000, not 0")
    config.write_text("[1, 2]")           # a list, but not of names: read as the Python 3 key list
    res = CliRunner().invoke(main, ["import", str(folder), "--out", str(tmp_path / "run")])
    assert res.exit_code == 0 and "only hparam names" in res.stderr


def test_usage_errors(tmp_path):
    model = str(shared_fixture("tf_checkpoints", "u_lstm"))
    for extra, message in ((["--scale-factor", "0"], "--scale-factor must be a number from 0.000001 to 1000000, not 0"),
                           (["--scale-factor", "nan"], "--scale-factor must be a number from 0.000001 to 1000000"),
                           (["--scale-factor", "2", "--data", "x.npz"], "not both")):
        res = CliRunner().invoke(main, ["import", model, "--out", str(tmp_path / "run"), *extra])
        assert res.exit_code == 2 and message in res.output, res.output
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(main, ["import", model, "--out", str(tmp_path / "file")])
    assert res.exit_code == 2, res.output
