"""`sketchprep import`: Magenta TensorFlow checkpoints (and the dispatch to magenta-js JSON) -> run folders.

The two checkpoints in `../shared/fixtures/tf_checkpoints` were written by the reference's own Saver;
their weights equal two `tf_reference` cases, so an imported model must reproduce those cases' costs,
outputs and gradients (same tolerances as tests/test_tf_parity.py).
"""
import json
import shutil

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner
from conftest import shared_data, shared_fixture
from test_tf_parity import failures
from tf_bundle import write_bundle

from sketchprep.cli import main
from sketchrnn.magenta import (
    MagentaImportError,
    architecture,
    find_checkpoint,
    hparams_from_config,
    import_model,
    load_reference_case,
    read_magenta,
    reference_differences,
    reference_expected,
    run_reference_case,
)
from sketchrnn.model import HParams
from sketchrnn.tf_checkpoint import CheckpointFormatError, TFCheckpoint
from sketchrnn.train import LATEST, load_checkpoint, model_from_checkpoint

FOLDERS = ["c_layer_norm_layer_norm", "u_lstm"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # batches of 4 sketches: threads only add overhead


def ckpt_folder(name: str):
    return shared_fixture("tf_checkpoints", name)


def copy_folder(name: str, dest):
    shutil.copytree(ckpt_folder(name), dest)
    for p in dest.iterdir():
        p.chmod(0o644)
    return dest


@pytest.mark.parametrize("name", FOLDERS)
def test_imported_run_reproduces_reference_case(tmp_path, name):
    result = import_model(ckpt_folder(name), tmp_path / "run")
    ckpt = load_checkpoint(tmp_path / "run" / LATEST)
    case = load_reference_case(shared_fixture("tf_reference", f"{name}.npz"))
    model = model_from_checkpoint(ckpt).train()
    diff = reference_differences(run_reference_case(model, case), reference_expected(case))
    assert not failures(diff), failures(diff)
    assert diff["cost"] <= 1e-5
    # hparams from model_config.json, architecture from the checkpoint
    hps = HParams.from_dict(ckpt["hparams"])
    cfg = json.loads((ckpt_folder(name) / "model_config.json").read_text())
    for key in ("dec_model", "dec_rnn_size", "num_mixture", "conditional", "max_seq_len", "batch_size", "kl_weight"):
        assert getattr(hps, key) == cfg[key], key
    assert ckpt["step"] == 1234 == result.step            # the reference's global_step
    assert ckpt["max_len"] == 31
    assert result.scale_source == "default" and ckpt["scale_factor"] == 1.0
    assert any("scale factor 1.0" in n for n in result.notes)


@pytest.mark.parametrize("big_endian", [False, True])
def test_hyper_checkpoint_in_the_published_layout(tmp_path, big_endian):
    """A conditional hyper/hyper model written as a Saver would (here by tests/tf_bundle.py, in 2 shards),
    with a model_config.json in the published models' style: imported, it reproduces the reference case."""
    case = load_reference_case(shared_fixture("tf_reference", "c_hyper_hyper.npz"))
    tensors = {k: v for k, v in case.arrays.items() if k.startswith("vector_rnn/")}
    tensors["vector_rnn/global_step"] = np.array(4321, dtype=np.int32)
    folder = tmp_path / "hyper"
    folder.mkdir()
    write_bundle(folder / "vector-4321", tensors, shards=2, big_endian=big_endian)
    (folder / "checkpoint").write_text('model_checkpoint_path: "/tmp/sketch_rnn/log/vector-4321"\n')
    (folder / "model_config.json").write_text(json.dumps({
        "data_set": "aaron_sheep.npz", "conditional": 1, "is_training": 1, "use_recurrent_dropout": 0,
        "use_input_dropout": 0, "use_output_dropout": 0, "dec_model": "hyper", "enc_model": "hyper",
        "dec_rnn_size": 32, "enc_rnn_size": 16, "z_size": 8, "num_mixture": 3, "max_seq_len": 31,
        "batch_size": 4, "kl_weight": 0.5}))
    result = import_model(folder, tmp_path / "run", scale_factor=3.0)
    assert not result.optimizer and any("no Adam slots" in n for n in result.notes)
    ckpt = load_checkpoint(tmp_path / "run" / LATEST)
    assert ckpt["step"] == 4321 and ckpt["scale_factor"] == 3.0
    hps = HParams.from_dict(ckpt["hparams"])
    assert (hps.hyper_num_units, hps.hyper_embedding_size, hps.use_recurrent_dropout) == (16, 4, False)
    diff = reference_differences(run_reference_case(model_from_checkpoint(ckpt).train(), case),
                                 reference_expected(case))
    assert not failures(diff), failures(diff)


@pytest.mark.parametrize("name", FOLDERS)
def test_adam_slots_become_torch_adam_state(tmp_path, name):
    imported = read_magenta(ckpt_folder(name))
    assert imported.optimizer_state is not None
    model = model_from_checkpoint({"hparams": imported.hps.to_dict(), "model": imported.state_dict})
    opt = torch.optim.Adam(model.parameters())
    opt.load_state_dict(imported.optimizer_state)           # what `train --resume` does
    states = list(opt.state.values())
    assert len(states) == len(list(model.parameters()))
    for p, st in zip(model.parameters(), states):
        assert st["exp_avg"].shape == p.shape and st["exp_avg_sq"].shape == p.shape
        assert float(st["step"]) == 0.0                      # beta1_power 0.9, beta2_power 0.999: no update yet
        assert not st["exp_avg"].any()                       # the fixture's slots were never updated


def test_adam_slots_map_like_their_variables(monkeypatch):
    """Slots filled with known functions of their variable (m = 2w, v = w^2, 10 updates) come out as the
    same functions of the imported parameter: the slots go through the same layout map as the weights."""
    real_read = TFCheckpoint.read

    def read(self, name):
        if name.endswith("/Adam"):
            return 2 * real_read(self, name[len("vector_rnn/"):-len("/Adam")])
        if name.endswith("/Adam_1"):
            return real_read(self, name[len("vector_rnn/"):-len("/Adam_1")]) ** 2
        if name.endswith("beta2_power"):
            return np.float32(0.999 ** 11)                   # TF: beta^(n+1) after n = 10 updates
        return real_read(self, name)

    monkeypatch.setattr(TFCheckpoint, "read", read)
    imported = read_magenta(ckpt_folder("c_layer_norm_layer_norm"))
    model = model_from_checkpoint({"hparams": imported.hps.to_dict(), "model": imported.state_dict})
    params = list(model.named_parameters())                 # torch Adam's state is indexed in this order
    states = imported.optimizer_state["state"]
    assert len(states) == len(params)
    for i, (name, w) in enumerate(params):
        assert torch.equal(states[i]["exp_avg"], 2 * w), name
        assert torch.allclose(states[i]["exp_avg_sq"], w * w), name
        assert float(states[i]["step"]) == 10.0


def test_v1_checkpoint_is_refused_with_a_reason(tmp_path):
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "vector-100"\n')
    (tmp_path / "vector-100").write_bytes(b"old format")
    with pytest.raises(MagentaImportError, match="V1 TensorFlow checkpoint"):
        find_checkpoint(tmp_path)


def test_checkpoint_reader_reads_every_tensor_with_checksums():
    prefix, config = find_checkpoint(ckpt_folder("c_layer_norm_layer_norm"))
    assert prefix.endswith("vector-1234") and config.endswith("model_config.json")
    ckpt = TFCheckpoint(prefix)
    case = np.load(shared_fixture("tf_reference", "c_layer_norm_layer_norm.npz"))
    tf_vars = [k for k in case.files if k.startswith("vector_rnn/")]
    assert len(tf_vars) == 26
    for k in tf_vars:
        got = ckpt.read(k)
        assert got.dtype == np.float32 and np.array_equal(got, case[k]), k
    assert int(ckpt.read("vector_rnn/global_step")) == 1234
    assert ckpt.read("vector_rnn/beta2_power") == np.float32(0.999)


def test_every_path_form_finds_the_checkpoint(tmp_path):
    src = ckpt_folder("u_lstm")
    for given in (src, src / "vector-1234", src / "vector-1234.index", src / "vector-1234.data-00000-of-00001"):
        assert find_checkpoint(given)[0] == str(src / "vector-1234"), given
    # a `checkpoint` file that names an absolute path on the machine that trained the model
    folder = copy_folder("u_lstm", tmp_path / "moved")
    (folder / "checkpoint").write_text('model_checkpoint_path: "/home/someone/log/vector-1234"\n')
    assert find_checkpoint(folder)[0] == str(folder / "vector-1234")
    (folder / "checkpoint").unlink()                        # no `checkpoint` file: the highest step
    assert find_checkpoint(folder)[0] == str(folder / "vector-1234")


@pytest.mark.parametrize("name", ["c_hyper_hyper", "c_lstm_hyper", "c_layer_norm_lstm", "u_hyper", "u_layer_norm"])
def test_architecture_is_read_from_the_weights(name):
    """Cell types, sizes, z, mixtures, conditional and the HyperLSTM sizes, from the variable shapes alone."""
    case = load_reference_case(shared_fixture("tf_reference", f"{name}.npz"))
    shapes = {k: v.shape for k, v in case.arrays.items() if k.startswith("vector_rnn/")}
    arch = architecture(shapes)
    hps, _ = hparams_from_config(None, arch)
    keys = ["dec_model", "dec_rnn_size", "num_mixture", "conditional"]
    keys += ["enc_model", "enc_rnn_size", "z_size"] if case.hps.conditional else []
    keys += ["hyper_num_units", "hyper_embedding_size"] if "hyper" in name else []
    for key in keys:
        assert getattr(hps, key) == getattr(case.hps, key), key


def test_config_quirks():
    arch = {"dec_model": "lstm", "dec_rnn_size": 512, "num_mixture": 20, "conditional": True, "enc_model": "lstm",
            "enc_rnn_size": 256, "z_size": 128}
    # the published models: flags as 0/1, one data set as a string, numbers as strings
    hps, notes = hparams_from_config({"data_set": "aaron_sheep.npz", "conditional": 1, "is_training": 0,
                                      "use_recurrent_dropout": 1, "recurrent_dropout_prob": "0.9",
                                      "max_seq_len": 250.0, "kl_weight": 0.5, "dec_rnn_size": 512}, arch)
    assert hps.data_set == ["aaron_sheep.npz"] and hps.conditional is True and hps.use_recurrent_dropout is True
    assert hps.recurrent_dropout_prob == 0.9 and hps.max_seq_len == 250
    assert hps.is_training is True and any("is_training" in n for n in notes)
    # the Python 3 trainer's config: only the key names (REFERENCE F.1)
    hps, notes = hparams_from_config(["data_set", "num_steps", "dec_model"], arch)
    assert hps.dec_rnn_size == 512 and hps.z_size == 128 and any("only hparam names" in n for n in notes)
    # a config that disagrees with the weights: the weights win, the user is told
    hps, notes = hparams_from_config({"dec_rnn_size": 256, "future_key": 3}, arch)
    assert hps.dec_rnn_size == 512
    assert any("dec_rnn_size=256" in n for n in notes) and any("future_key" in n for n in notes)
    with pytest.raises(MagentaImportError, match="batch_size"):
        hparams_from_config({"batch_size": "many"}, arch)


def test_json_model_dispatches_to_the_js_reader(tmp_path):
    imported = read_magenta(ckpt_folder("u_lstm"))
    seen = []

    def fake_reader(path):
        seen.append(path)
        return imported.hps, imported.state_dict, 7.5, {"notes": ["decoder only"]}

    js = tmp_path / "model.gen.json"
    js.write_text("[]")
    r = import_model(js, tmp_path / "run", read_js=fake_reader)
    assert seen == [str(js)] and r.kind == "magenta-js"
    assert r.scale_factor == 7.5 and r.scale_source == "model" and not r.optimizer
    assert load_checkpoint(tmp_path / "run" / LATEST)["scale_factor"] == 7.5


def test_js_model_round_trip(tmp_path):
    """A run exported to sketch-rnn-js JSON and imported back: same decoder (up to the format's int16 weights)."""
    magenta_js = pytest.importorskip("sketchrnn.magenta_js")
    from sketchrnn.magenta import save_imported_run
    from sketchrnn.model import SketchRNN
    from sketchrnn.sample import load_run

    hps = HParams(conditional=False, dec_model="lstm", dec_rnn_size=32, num_mixture=20, use_recurrent_dropout=False)
    torch.manual_seed(0)
    save_imported_run(tmp_path / "run", hps, SketchRNN(hps).state_dict(), 12.5, 7, "test")
    magenta_js.export_js_model(load_run(tmp_path / "run"), tmp_path / "m.gen.json")
    res = CliRunner().invoke(main, ["import", str(tmp_path / "m.gen.json"), "--out", str(tmp_path / "back")])
    assert res.exit_code == 0, res.output
    assert "sketch-rnn-js model" in res.stdout and "scale factor 12.5 (from the model)" in res.stdout
    a, b = load_run(tmp_path / "run"), load_run(tmp_path / "back")
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.allclose(x, y, atol=10 / 32767), name


def test_cli_import_then_sample(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["import", str(ckpt_folder("c_layer_norm_layer_norm")), "--out", str(tmp_path / "run"),
                               "--scale-factor", "20"])
    assert res.exit_code == 0, res.output
    assert "layer_norm/layer_norm, enc 16, dec 32, z 8, M 3; 10,885 parameters; step 1234; Adam state kept; " \
           "scale factor 20 (--scale-factor)" in res.stdout
    res = runner.invoke(main, ["sample", str(tmp_path / "run"), "-o", str(tmp_path / "s.npz"), "-n", "3"])
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "s.npz", allow_pickle=True) as f:
        assert len(f["test"]) == 3
    # a second import into the same folder is refused, then allowed with --overwrite
    args = ["import", str(ckpt_folder("u_lstm")), "--out", str(tmp_path / "run")]
    res = runner.invoke(main, args)
    assert res.exit_code == 2 and "already holds a run" in res.output
    res = runner.invoke(main, args + ["--overwrite"])
    assert res.exit_code == 0, res.output
    assert not load_checkpoint(tmp_path / "run" / LATEST)["hparams"]["conditional"]


def test_imported_run_trains_on(tmp_path):
    """`train --resume` continues an imported model from the reference's global_step with its Adam state."""
    data = shared_data("sketchrnn_npz", "aaron_sheep.npz")
    runner = CliRunner()
    res = runner.invoke(main, ["import", str(ckpt_folder("u_lstm")), "--out", str(tmp_path / "run"),
                               "--data", str(data)])
    assert res.exit_code == 0, res.output
    assert "(from --data)" in res.stdout
    ckpt = load_checkpoint(tmp_path / "run" / LATEST)
    assert ckpt["scale_factor"] > 1 and ckpt["data_files"] == [str(data)]
    res = runner.invoke(main, ["train", "--out", str(tmp_path / "run"), "--resume", "--max-steps", "1236", "-q"])
    assert res.exit_code == 0, res.output
    after = load_checkpoint(tmp_path / "run" / LATEST)
    assert after["step"] == 1236 and after["scale_factor"] == ckpt["scale_factor"]
    assert float(next(iter(after["optimizer"]["state"].values()))["step"]) == 2.0


def test_reader_rejects_garbage(tmp_path):
    (tmp_path / "x.index").write_bytes(b"\0" * 100)
    with pytest.raises(CheckpointFormatError, match="bad table magic"):
        TFCheckpoint(tmp_path / "x")
