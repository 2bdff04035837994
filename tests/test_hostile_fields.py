"""Fields of model, run and data files with the wrong type or value: each refused at the one place that
kind of file is loaded, with one `Error:` line naming the file and the field, and nothing written.

Model files: a sketch-rnn-js `.gen.json`'s `info`, a Magenta `model_config.json` and the scalars of its
TF checkpoint (`global_step`, `beta1_power`, `beta2_power`). Run files: `metrics.jsonl` rows (`plot`).
Data files: a dataset's `meta.options` (read back by `export --html` and `complete --prefix`). `import`
checks the run it is about to write as loading will, so it never writes one that `sample` refuses.
"""
from __future__ import annotations

import glob
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torch")

from conftest import shared_fixture
from hostile import run_case
from test_export_js import browser_run, sample_npz  # noqa: F401  (fixtures)
from test_hostile_browser import _model
from tf_bundle import write_bundle

from sketchprep.dataset import load_dataset, save_dataset

SLOW = 30.0   # a subprocess that imports torch, on a loaded machine


@pytest.fixture
def folder(tmp_path, browser_run):  # noqa: F811  (fixture)
    shutil.copytree(browser_run, tmp_path / "run")
    return tmp_path


# ---- sketch-rnn-js models: every info field that is read is typed ----------------------------------


INFO = {"mode": 2, "version": 6, "max_seq_len": 250, "name": "x", "scale_factor": 10.0}


@pytest.mark.parametrize("change, message", [
    ({"step": "many"}, "info.step must be a whole number from 0 to 1000000000000, not 'many'"),
    ({"step": -5}, "info.step must be a whole number from 0 to 1000000000000, not -5"),
    ({"step": 1e30}, "info.step must be a whole number"),
    ({"notes": 5}, "info.notes must be a list of at most 100 strings, not 5"),
    ({"notes": ["fine", 7]}, "info.notes must be a list of at most 100 strings"),
    ({"max_seq_len": "250"}, "info.max_seq_len must be a whole number from 1 to 100000, not '250'"),
    ({"max_seq_len": 10**9}, "info.max_seq_len must be a whole number from 1 to 100000"),
    ({"scale_factor": 1e-300}, "info.scale_factor must be a number from 0.000001 to 1000000"),
    ({"name": ["a", "list"]}, "info.name must be a string"),
])
def test_js_model_info_fields(tmp_path, change, message):
    (tmp_path / "m.gen.json").write_bytes(_model(4, info={**INFO, **change}))
    run_case(tmp_path, ["import", "m.gen.json", "--out", "imported"], message=message, max_seconds=SLOW)


# ---- Magenta TF models: the config and the checkpoint's scalars --------------------------------------


def tf_model(tmp_path, name="m", **changes) -> str:
    """The shared u_lstm Magenta checkpoint (with its Adam slots and scalars), some tensors replaced."""
    from sketchrnn.tf_checkpoint import TFCheckpoint

    index = glob.glob(str(shared_fixture("tf_checkpoints", "u_lstm") / "*.index"))[0]
    tensors = TFCheckpoint(index[: -len(".index")]).read_all()
    tensors.update({f"vector_rnn/{k}": v for k, v in changes.items()})
    (tmp_path / name).mkdir()
    write_bundle(tmp_path / name / "vector-1", tensors)
    return name


@pytest.mark.parametrize("changes, message", [
    ({"global_step": np.array([1, 2], np.int64)}, "global_step must be one number, not a int64 array of shape (2,)"),
    ({"global_step": np.array(-3, np.int64)}, "global_step must be a whole number from 0 to 1000000000000, not -3"),
    ({"global_step": np.array(np.nan, np.float32)}, "global_step must be a whole number"),
    ({"beta2_power": np.array(np.nan, np.float32)}, "beta2_power must be a number from 0 to 1, not nan"),
    ({"beta2_power": np.ones((2, 2), np.float32)}, "beta2_power must be one number"),
    ({"beta1_power": np.array(7.0, np.float32)}, "beta1_power must be a number from 0 to 1, not 7.0"),
])
def test_tf_checkpoint_scalars(tmp_path, changes, message):
    run_case(tmp_path, ["import", tf_model(tmp_path, **changes), "--out", "imported"], message=message,
             max_seconds=SLOW)


def test_tf_config_nested_too_deeply(tmp_path):
    name = tf_model(tmp_path)
    (tmp_path / name / "model_config.json").write_text("[" * 100_000 + "]" * 100_000)
    run_case(tmp_path, ["import", name, "--out", "imported"], message="JSON nested too deeply", max_seconds=SLOW)
    (tmp_path / name / "model_config.json").write_text(json.dumps({"learning_rate": float("nan")}))
    run_case(tmp_path, ["import", name, "--out", "imported"],
             message="hparam learning_rate must be a number > 0 and <= 10, not nan", max_seconds=SLOW)


def test_import_checks_the_run_it_writes_as_loading_will(tmp_path):
    """save_imported_run refuses what `load_checkpoint` would refuse, before the folder exists."""
    from sketchrnn.magenta import MagentaImportError, save_imported_run
    from sketchrnn.model import HParams, SketchRNN

    hps = HParams(conditional=False, dec_rnn_size=8, num_mixture=2)
    state = SketchRNN(hps).state_dict()
    with pytest.raises(MagentaImportError, match="step -1 is not a whole number"):
        save_imported_run(tmp_path / "run", hps, state, 1.0, -1, "src")
    with pytest.raises(MagentaImportError, match="max_len 300 is over its hparam max_seq_len 250"):
        save_imported_run(tmp_path / "run", hps, state, 1.0, 0, "src", max_len=300)
    with pytest.raises(Exception, match="the scale factor must be a number from 0.000001"):
        save_imported_run(tmp_path / "run", hps, state, float("inf"), 0, "src")
    assert not (tmp_path / "run").exists()


# ---- run files: metrics.jsonl rows --------------------------------------------------------------


@pytest.mark.parametrize("row, message", [
    ({"split": "train", "step": 20, "r_cost": 1.0, "kl": 0.1}, "metrics.jsonl:2: a train row without 'cost'"),
    ({"split": "valid", "step": 20, "r_cost": 1.0, "cost": 1.2}, "metrics.jsonl:2: a valid row without 'kl'"),
    ({"split": "train", "step": 20, "r_cost": "x", "cost": 1, "kl": 0}, "r_cost 'x' is not a number"),
    ({"split": "train", "step": "20", "r_cost": 1, "cost": 1, "kl": 0}, "step '20' is not a whole number"),
    ({"split": 5, "step": 20}, "a row without split and step"),
])
def test_plot_rows_with_missing_or_wrong_fields(tmp_path, row, message):
    pytest.importorskip("matplotlib")
    good = {"split": "train", "step": 10, "r_cost": 1.0, "cost": 1.1, "kl": 0.1, "kl_weight": 0.01}
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    run_case(tmp_path, ["plot", "run"], message=message)


# ---- data files: meta.options, read back by export --html and complete --prefix ----------------------


def _with_meta_options(src, dest, options):
    ds = load_dataset(src)
    save_dataset(dest, ds.splits, ids=ds.ids or None, labels=ds.labels or None, meta={**ds.meta, "options": options})


@pytest.mark.parametrize("options, message", [
    ("fast", "meta.options is a str, not an object"),
    ({"size": "big"}, "meta.options.size must be a number from 0 to 32767, not 'big'"),
    ({"size": float("nan")}, "meta.options.size must be a number from 0 to 32767, not nan"),
    ({"epsilon": -1}, "meta.options.epsilon must be a number from 0 to 1000000, not -1"),
    ({"distance": ["line"]}, "meta.options.distance must be one of line, segment"),
])
def test_export_html_with_bad_meta_options_writes_no_page(folder, sample_npz, options, message):  # noqa: F811
    """The run's dataset is read before the first file of the page is written: no half-written page.
    (A run that keeps its drawing box does not read its dataset for the page: here it keeps none, as runs
    written before the box, so the page's size comes from the dataset.)"""
    data = folder / "data.npz"
    _with_meta_options(sample_npz, data, options)
    import torch

    for name in ("best.pt", "latest.pt"):
        ckpt = torch.load(folder / "run" / name, weights_only=True)
        ckpt["data_files"] = [str(data)]
        ckpt.pop("box", None)
        torch.save(ckpt, folder / "run" / name)
    run_case(folder, ["export", "run", "--html", "page"], message=message, max_seconds=SLOW)
    assert not (folder / "page").exists()
    out = run_case(folder, ["validate", "data.npz"])
    assert "bad_meta" in out.stdout and message in out.stdout, out.stdout


def test_complete_uses_its_own_limits_not_the_datasets(folder, sample_npz):  # noqa: F811
    """A crafted meta that raises every reader bound does not raise complete's: a prefix drawing of 25
    million points (once resampled) is refused as it would be anywhere, fast and small."""
    import torch

    raised = {k: 2**28 for k in ("points_per_stroke", "points_per_drawing")}
    _with_meta_options(sample_npz, folder / "data.npz", {"size": 255.0, "limits": raised})
    ckpt = torch.load(folder / "run" / "best.pt", weights_only=True)
    ckpt["data_files"] = [str(folder / "data.npz")]
    torch.save(ckpt, folder / "run" / "best.pt")
    xs = [0 if k % 2 == 0 else 1000 for k in range(100_001)]
    stroke = [xs, [k % 1000 for k in range(100_001)], list(range(100_001))]
    (folder / "zig.ndjson").write_text(json.dumps({"key_id": "z", "word": "cat", "drawing": [stroke]}) + "\n")
    run_case(folder, ["complete", "run", "--prefix", "zig.ndjson", "-o", "c.svg"], message="points-per-stroke",
             max_seconds=SLOW, max_mb=700)
