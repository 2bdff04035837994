"""sketchrnn.train: schedules in the loop, evaluation, checkpoints, resume, DDP, and learning for real."""
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sketchprep.dataset import save_dataset  # noqa: E402
from sketchprep.errors import OptionError  # noqa: E402
from sketchrnn import model as model_module  # noqa: E402
from sketchrnn.data import Batches, load_data  # noqa: E402
from sketchrnn.model import HParams, SketchRNN, kl_weight_at  # noqa: E402
from sketchrnn.train import (LATEST, TrainingError, evaluate, load_checkpoint, train)  # noqa: E402

from conftest import REPO, shared_data  # noqa: E402

torch.set_num_threads(1)

TINY = dict(enc_rnn_size=8, dec_rnn_size=12, z_size=4, num_mixture=3, batch_size=8, save_every=3)


def tiny_dataset(path, n_train=40, seed=0):
    rng = np.random.default_rng(seed)

    def walk():
        n = int(rng.integers(5, 25))
        s = np.zeros((n, 3), np.int16)
        s[:, :2] = rng.integers(-30, 31, size=(n, 2))
        s[:, 2] = rng.random(n) < 0.2
        s[-1, 2] = 1
        return s

    save_dataset(path, {"train": [walk() for _ in range(n_train)], "valid": [walk() for _ in range(10)],
                        "test": [walk() for _ in range(10)]})
    return str(path)


@pytest.fixture
def data(tmp_path):
    return tiny_dataset(tmp_path / "tiny.npz")


def _state(run_dir):
    return load_checkpoint(os.path.join(run_dir, LATEST))


def _assert_same_state(a, b):
    assert a["step"] == b["step"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k


def test_a_crashed_run_resumes_exactly(data, tmp_path):
    """Kill after 8 steps (the last checkpoint holds 6): resume gives the uninterrupted run's
    weights, optimizer state and train metrics, bit for bit (recurrent dropout and augmentation on)."""
    hps = HParams(**TINY)
    full = train([data], tmp_path / "full", hps, max_steps=11, log_every=1)

    def crash(step, metrics):
        if step == 7:           # the index of the 8th step
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        train([data], tmp_path / "crash", hps, max_steps=11, log_every=1, on_step=crash)
    assert _state(tmp_path / "crash")["step"] == 6        # saved by the evaluation after 6 steps
    resumed = train([], tmp_path / "crash", None, resume=True, max_steps=11, log_every=1)
    _assert_same_state(_state(tmp_path / "full"), _state(tmp_path / "crash"))
    rows = lambda r: [(m["step"], m["cost"]) for m in r.history if m["split"] == "train"]  # noqa: E731
    assert rows(resumed) == rows(full)[6:]
    lines = [json.loads(x) for x in (tmp_path / "crash" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if x["split"] == "train"] == list(range(1, 12))   # no duplicated rows
    assert [x["step"] for x in lines if x["split"] == "valid"] == [3, 6, 9, 11]


def test_resume_drops_damaged_metrics_lines(data, tmp_path):
    """A metrics.jsonl line that is not a row (a write cut short by a kill, a damaged disk) is dropped on
    resume and counted in the log, not a traceback."""
    hps = HParams(**TINY)
    train([data], tmp_path / "run", hps, max_steps=3, log_every=1)
    path = tmp_path / "run" / "metrics.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "not json", "[1, 2]", '{"step": "x"}', *lines[1:]]) + '\n{"split": "tr')
    said = []
    train([], tmp_path / "run", None, resume=True, max_steps=5, log_every=1, log=said.append)
    assert any("metrics.jsonl: 4 damaged line(s) dropped" in line for line in said), said
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert [x["step"] for x in rows if x["split"] == "train"] == [1, 2, 3, 4, 5]


def test_a_signal_saves_and_resume_continues_exactly(data, tmp_path):
    hps = HParams(**{**TINY, "save_every": 100})
    train([data], tmp_path / "full", hps, max_steps=6)

    def interrupt(step, metrics):
        if step == 2:
            os.kill(os.getpid(), signal.SIGINT)

    result = train([data], tmp_path / "int", hps, max_steps=6, on_step=interrupt)
    # the flag is read during the next step, which still completes: 4 steps done, saved as step 4
    assert result.stopped == "interrupted" and result.step == 4 and _state(tmp_path / "int")["step"] == 4
    train([data], tmp_path / "int", None, resume=True, max_steps=6)
    _assert_same_state(_state(tmp_path / "full"), _state(tmp_path / "int"))


def test_checkpoints_are_never_half_written(data, tmp_path, monkeypatch):
    hps = HParams(**TINY)
    train([data], tmp_path / "run", hps, max_steps=4)
    before = (tmp_path / "run" / LATEST).read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"partial checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        train([], tmp_path / "run", None, resume=True, max_steps=8)
    assert (tmp_path / "run" / LATEST).read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "hparams.json", "latest.pt",
                                                                    "metrics.jsonl", "samples"]


def test_checkpoint_contents(data, tmp_path):
    """Loadable with weights_only=True; holds the scale factor (fix F.14), hparams, step, data files."""
    hps = HParams(**TINY)
    result = train([data], tmp_path / "run", hps, max_steps=4)
    ckpt = torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    assert ckpt["scale_factor"] == pytest.approx(load_data([data]).scale_factor)
    assert ckpt["hparams"]["data_set"] == ["tiny.npz"] and ckpt["data_files"] == [os.path.abspath(data)]
    # steps are counted as steps done everywhere: best.pt of the evaluation after 3 or 4 steps says so
    assert ckpt["step"] == ckpt["best_step"] == result.best_step in (3, 4)
    assert set(ckpt) >= {"model", "optimizer", "hparams", "scale_factor", "max_len", "step", "seed", "classes"}
    model = SketchRNN(HParams.from_dict(ckpt["hparams"]))
    model.load_state_dict(ckpt["model"])
    assert json.loads((tmp_path / "run" / "hparams.json").read_text()) == ckpt["hparams"]


def test_validation_uses_the_current_kl_weight(data, tmp_path):
    """Fix of REFERENCE F.3 (the reference's eval model keeps kl_weight_start): valid cost = recon +
    kl_weight_t * max(KL, kl_tolerance) with the step's annealed weight; recon and KL apart."""
    hps = HParams(**TINY, kl_decay_rate=0.5, kl_tolerance=0.0)
    result = train([data], tmp_path / "run", hps, max_steps=3)
    valid = [r for r in result.history if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [3]
    r = valid[0]
    assert r["kl_weight"] == pytest.approx(kl_weight_at(hps, 2)) and r["kl_weight"] > 0.3   # of the 3rd update
    assert r["cost"] == pytest.approx(r["r_cost"] + r["kl_weight"] * r["kl"], rel=1e-6)
    assert [x["split"] for x in result.history].count("test") == 1     # test evaluated on improvement


def test_evaluate_is_deterministic_and_uses_every_sketch(data):
    d = load_data([data])
    torch.manual_seed(0)
    model = SketchRNN(HParams(**TINY))
    batches = Batches(d.splits["valid"], 3, d.target_steps)
    a, b = (evaluate(model, batches, 0.3, torch.device("cpu")) for _ in range(2))
    assert a == b and a["n"] == 10
    assert model.training


def test_early_stopping(data, tmp_path):
    hps = HParams(**{**TINY, "save_every": 1}, learning_rate=1e-12, min_learning_rate=0.0, use_recurrent_dropout=False,
                  random_scale_factor=0.0, augment_stroke_prob=0.0)
    result = train([data], tmp_path / "run", hps, max_steps=50, patience=2)
    assert result.stopped == "early_stopping" and result.step < 10


def test_a_non_finite_loss_stops_with_a_clear_error(data, tmp_path, monkeypatch):
    monkeypatch.setattr(model_module, "pen_loss", lambda logits, target: logits.sum(-1) * float("nan"))
    with pytest.raises(TrainingError, match="the loss is not finite at step 1;"):
        train([data], tmp_path / "run", HParams(**TINY), max_steps=3)


def test_run_folder_errors(data, tmp_path):
    train([data], tmp_path / "run", HParams(**TINY), max_steps=1)
    with pytest.raises(OptionError, match="already holds a run .*--resume.*--overwrite"):
        train([data], tmp_path / "run", HParams(**TINY), max_steps=1)
    with pytest.raises(OptionError, match="these differ: z_size"):
        train([], tmp_path / "run", HParams(**{**TINY, "z_size": 5}), resume=True, max_steps=2)
    with pytest.raises(TrainingError, match="no such checkpoint"):
        train([data], tmp_path / "other", None, resume=True)
    small = tiny_dataset(tmp_path / "small.npz", n_train=5)
    with pytest.raises(OptionError, match="the train split has 5 sketches, fewer than batch_size"):
        train([small], tmp_path / "small_run", HParams(**TINY), max_steps=1)


def test_ddp_two_cpu_processes(data, tmp_path):
    """`torchrun --nproc_per_node=2 -m sketchprep train ...`: gloo on CPU, the replicas stay equal
    (checked inside train), rank 0 writes the checkpoint. --standalone lets torchrun bind a free port
    itself: picking one here and passing it on raced with other tests and processes (a port free when
    picked was taken when torchrun bound it)."""
    # each worker's stdout and stderr go to a file (torchrun's own summary names only the signal), and a
    # worker killed by a signal prints where every thread of it was (PYTHONFAULTHANDLER)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    logs = tmp_path / "logs"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "--log-dir", str(logs), "--redirects", "3", "-m", "sketchprep", "train", data, "--out", str(tmp_path / "ddp"), "--max-steps", "4", "--threads", "1",
           "--set", "enc_rnn_size=8", "--set", "dec_rnn_size=12", "--set", "z_size=4", "--set", "num_mixture=3",
           "--set", "batch_size=8", "--set", "save_every=2", "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    workers = "".join(f"\n--- {p.relative_to(logs)} ---\n{p.read_text(errors='replace')[-4000:]}"
                      for p in sorted(logs.rglob("*.log")))
    assert proc.returncode == 0, proc.stderr[-3000:] + workers
    ckpt = _state(tmp_path / "ddp")
    assert ckpt["world_size"] == 2 and ckpt["step"] == 4
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["n"] for r in rows if r["split"] == "valid"] == [10, 10]    # the two shards summed


@pytest.mark.slow
def test_learning_for_real_on_aaron_sheep(tmp_path):
    """A small model, a few hundred steps on the aaron_sheep sketches of at most 60 points (583
    train): the validation reconstruction cost goes clearly down (measured: 3.14 before, 1.25 after)."""
    path = str(shared_data("sketchrnn_npz", "aaron_sheep.npz"))
    hps = HParams(max_seq_len=60, enc_rnn_size=64, dec_rnn_size=128, z_size=32, num_mixture=10, batch_size=50,
                  save_every=100, use_recurrent_dropout=False, pad_to_batch=True)
    d = load_data([path], hps.max_seq_len)
    torch.manual_seed(hps.seed)
    before = evaluate(SketchRNN(hps), Batches(d.splits["valid"], 50, d.target_steps, True), 0.01,
                      torch.device("cpu"))
    result = train([path], tmp_path / "run", hps, max_steps=300)
    valid = [r for r in result.history if r["split"] == "valid"]
    assert [r["step"] for r in valid] == [100, 200, 300]
    assert valid[-1]["r_cost"] < before["r_cost"] - 0.5, (before, valid)
    assert valid[-1]["r_cost"] < valid[0]["r_cost"]


def test_train_restores_the_callers_float_mode(data, tmp_path):
    """Flush-denormal is on while training (PERF.md) and off again afterwards (other code, e.g.
    Hypothesis, needs subnormal floats)."""
    from sketchrnn.train import flush_denormal_enabled

    assert not flush_denormal_enabled()
    seen = []
    train([data], tmp_path / "run", HParams(**TINY), max_steps=1, on_step=lambda s, m: seen.append(
        flush_denormal_enabled()))
    assert seen == [True] and not flush_denormal_enabled()
