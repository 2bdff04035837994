"""Google's published sketch-rnn models as runs: the drawing box (import, complete, export), `evaluate`,
`train --init` and the warm-up, and what a decoder-only model refuses. The models are the shared fixtures
(`fixtures/pretrained`, as published); the drawings are the shared Quick, Draw! ones of their classes."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from conftest import SAMPLE, shared_data, shared_fixture  # noqa: E402

from sketchprep.cli import main  # noqa: E402
from sketchprep.dataset import load_dataset, save_dataset  # noqa: E402
from sketchrnn.checkpoint import load_checkpoint, load_run  # noqa: E402
from sketchrnn.evaluation import evaluate_run  # noqa: E402
from sketchrnn.model import HParams, lr_at  # noqa: E402
from sketchrnn.sample import complete, read_prefix  # noqa: E402
from sketchrnn.train import FINETUNE_LEARNING_RATE, FINETUNE_WARMUP_STEPS, train  # noqa: E402

MODELS = ("cat", "owl", "flamingo", "dog", "bus")
GRID = (1, 1.5, 2, 2.5, 3, 3.5)          # boxes 255 x these, as `import --size` would set them


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def one_error_line(result) -> str:
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert "Traceback" not in result.output and len([ln for ln in lines if ln.startswith("Error:")]) == 1, \
        result.output
    return next(ln for ln in lines if ln.startswith("Error:"))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("pretrained")


def _convert(workdir, word: str, split: str, name: str):
    out = workdir / f"{name}.npz"
    if not out.exists():
        r = invoke("convert", shared_data("quickdraw_simplified_ndjson", f"{word}.ndjson"), out, "--split", split,
                   "--multiple", "1", "-q")
        assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def drawings(workdir):
    """Each class's 25 shared drawings, all in the test split, as convert makes them (the 255 box)."""
    return {word: _convert(workdir, word, "0/0/1", word) for word in MODELS}


@pytest.fixture(scope="module")
def imported(workdir, one_torch_thread):
    """Each shared model imported without --size (its box estimated), and what import printed."""
    out = {}
    for word in MODELS:
        run = workdir / f"run_{word}"
        r = invoke("import", shared_fixture("pretrained", f"{word}.gen.json"), "--out", run)
        assert r.exit_code == 0, r.output
        out[word] = (run, r.output)
    return out


# --- the box -----------------------------------------------------------------------------------------------

def test_import_picks_a_box_as_good_as_the_best_given_size(imported, drawings):
    for word in MODELS:
        run_dir, printed = imported[word]
        run = load_run(run_dir)
        assert f"box {run.box:.0f} (estimated from 200 of its drawings" in printed
        chosen = evaluate_run(run, [drawings[word]])["test"]
        assert chosen.n == 25
        grid = {f: evaluate_run(dataclasses.replace(run, box=255.0 * f), [drawings[word]])["test"].nll_per_point
                for f in GRID}
        assert chosen.nll_per_point <= min(grid.values()) + 0.1, (word, run.box, chosen.nll_per_point, grid)
        # a box far from the model's (the 255 box that an imported model used to get) is measurably worse
        assert grid[1] > chosen.nll_per_point + 0.2, (word, grid)


def test_import_size_sets_the_box_and_export_keeps_it(workdir, one_torch_thread):
    model = shared_fixture("pretrained", "owl.gen.json")
    r = invoke("import", model, "--out", workdir / "owl_510", "--size", 510)
    assert r.exit_code == 0, r.output
    assert "box 510 (--size)" in r.output
    assert load_checkpoint(workdir / "owl_510" / "latest.pt")["box"] == 510.0
    # export writes the box into info (an extra key the runtimes ignore), import reads it back
    r = invoke("export", workdir / "owl_510", "-o", workdir / "owl.gen.json")
    assert r.exit_code == 0, r.output
    info = orjson.loads((workdir / "owl.gen.json").read_bytes())[0]
    assert info["box"] == 510.0 and info["scale_factor"] == pytest.approx(76.6042)
    r = invoke("import", workdir / "owl.gen.json", "--out", workdir / "owl_back")
    assert r.exit_code == 0 and "box 510 (from the model file)" in r.output, r.output
    assert load_run(workdir / "owl_back").box == 510.0
    # the drawing page maps its canvas to the box
    r = invoke("export", workdir / "owl_510", "--html", workdir / "page")
    assert r.exit_code == 0, r.output
    html = (workdir / "page" / "index.html").read_text()
    assert '"size":510.0' in html
    r = invoke("import", model, "--out", workdir / "owl_bad", "--size", "-3")
    assert r.exit_code == 2 and "--size must be a number > 0" in one_error_line(r)


def test_a_bad_box_in_a_model_file_is_ignored_with_a_note(workdir, one_torch_thread):
    obj = orjson.loads(shared_fixture("pretrained", "bus.gen.json").read_bytes())
    obj[0]["box"] = "big"
    path = workdir / "bus_bad_box.gen.json"
    path.write_bytes(orjson.dumps(obj))
    r = invoke("import", path, "--out", workdir / "bus_bad_box", "--size", 700)
    assert r.exit_code == 0 and "box 700 (--size)" in r.output      # --size wins over the file
    buses = _convert(workdir, "bus", "15/5/5", "bus_tvt")
    r = invoke("import", path, "--out", workdir / "bus_bad_box2", "--data", buses)
    assert r.exit_code == 0, r.output
    assert "info.box 'big' in the model file is not a number > 0 and <= 1000000; ignored" in r.output
    assert "box 255 (from --data)" in r.output


def test_complete_scales_the_prefix_to_the_box_and_back(imported, workdir):
    run_dir, _ = imported["cat"]
    ndjson = shared_data("quickdraw_simplified_ndjson", "cat.ndjson")
    out = workdir / "cat_done.npz"
    r = invoke("complete", run_dir, "--prefix", ndjson, "--keep", 20, "-o", out, "-n", 6, "--seed", 3)
    assert r.exit_code == 0, r.output
    run = load_run(run_dir)
    assert f"the prefix's box 255 scaled to the run's {run.box:.0f} and back" in r.output
    prefix, _ = read_prefix(str(ndjson), None, 20)
    done = load_dataset(out).splits["test"]
    assert len(done) == 6
    for d in done:      # each completion starts with the prefix, in the prefix's units (the 255 box)
        assert np.array_equal(np.asarray(d[:20], np.float32)[:, :2], prefix[:, :2])
        assert len(d) <= run.hps.max_seq_len + 1
    # what the model added is what it draws after the prefix scaled to its box, scaled back
    r = run.box / 255.0
    scaled = prefix.copy()
    scaled[:, :2] *= r
    ours = complete(run, prefix, n=3, seed=5, box=255.0)
    direct = complete(run, scaled, n=3, seed=5)
    for a, b in zip(ours, direct):
        np.testing.assert_allclose(a[20:, :2] * r, b[20:, :2], rtol=1e-5, atol=1e-3)
        np.testing.assert_array_equal(a[20:, 2], b[20:, 2])


def test_complete_of_each_models_own_drawing_starts_with_the_prefix_in_its_units(imported, workdir):
    for word in MODELS:
        ndjson = shared_data("quickdraw_simplified_ndjson", f"{word}.ndjson")
        out = workdir / f"{word}_done.npz"
        r = invoke("complete", imported[word][0], "--prefix", ndjson, "--keep", 20, "-o", out, "-n", 2, "--seed", 1)
        assert r.exit_code == 0, r.output
        prefix, _ = read_prefix(str(ndjson), None, 20)
        done = load_dataset(out).splits["test"]
        assert len(done) == 2 and all(len(d) > 20 for d in done)
        for d in done:
            assert np.array_equal(np.asarray(d[:20], np.float32)[:, :2], prefix[:, :2]), word


def test_complete_draws_up_to_the_models_max_seq_len(imported):
    run = load_run(imported["cat"][0])
    short = dataclasses.replace(run, max_len=25)      # as after `import --data` of short drawings
    prefix = np.zeros((20, 3), np.float32)
    prefix[:, 0] = 4.0
    done = complete(short, prefix, n=8, seed=0, box=255.0)
    assert max(len(d) for d in done) > 26                # the old cap: the data's longest + 1
    assert all(len(d) <= run.hps.max_seq_len + 1 for d in done)


# --- evaluate ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sample_npz(workdir):
    out = workdir / "sample.npz"
    r = invoke("convert", SAMPLE, out, "--multiple", "1", "-q")
    assert r.exit_code == 0, r.output
    return out


def _last_valid(run_dir):
    rows = [json.loads(ln) for ln in (run_dir / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    return [r for r in rows if r["split"] == "valid"][-1]


def test_evaluate_gives_trainings_own_valid_costs_for_trained_and_resumed_runs(workdir, sample_npz,
                                                                                one_torch_thread):
    run_dir = workdir / "tiny"
    hps = HParams(enc_rnn_size=16, dec_rnn_size=32, z_size=8, num_mixture=3, batch_size=20, save_every=4,
                  use_recurrent_dropout=False)
    train([str(sample_npz)], run_dir, hps, max_steps=4, samples=0)
    for resumed in (False, True):
        if resumed:
            train([], run_dir, resume=True, max_steps=8, samples=0)
        r = invoke("evaluate", run_dir, sample_npz, "--checkpoint", "latest", "--json", "--split", "valid")
        assert r.exit_code == 0, r.output
        got = json.loads(r.output)
        want = _last_valid(run_dir)
        # the bundled sample holds several words: each class's scores come too (by_class)
        assert set(got) == {"valid"} and set(got["valid"]) == {"lr", "lkl", "nll_per_point", "n", "by_class"}
        assert got["valid"]["lr"] == pytest.approx(want["r_cost"], rel=1e-6, abs=1e-7)
        assert got["valid"]["lkl"] == pytest.approx(want["kl"], rel=1e-6, abs=1e-7)
        assert got["valid"]["n"] == want["n"]
    r = invoke("evaluate", run_dir, sample_npz, "--batch-size", 7)
    assert r.exit_code == 0, r.output
    assert [ln.split()[0] for ln in r.output.splitlines()[1:] if not ln.startswith("    ")] == ["train", "valid", "test"]
    assert "box 255, scale factor" in r.output.splitlines()[0]


def test_evaluate_an_imported_model_has_no_lkl(imported, drawings):
    r = invoke("evaluate", imported["dog"][0], drawings["dog"], "--json")
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert list(got) == ["test"] and got["test"]["lkl"] is None and got["test"]["n"] == 25
    assert 5 < got["test"]["nll_per_point"] < 12 and got["test"]["lr"] > 0
    r = invoke("evaluate", imported["dog"][0], drawings["dog"], "--split", "valid")
    assert r.exit_code == 2 and "hold no valid drawing" in one_error_line(r)


def test_nll_per_point_does_not_depend_on_the_size_the_drawings_are_stored_at(imported, drawings, workdir):
    run = load_run(imported["owl"][0])
    twice = np.array([2, 2, 1], np.int16)           # offsets doubled, pen states kept
    doubled = [np.asarray(d, np.int16) * twice for d in load_dataset(drawings["owl"]).splits["test"]]
    double = workdir / "owl_x2.npz"
    save_dataset(double, {"train": [], "valid": [], "test": doubled}, meta={"options": {"size": 510}})
    bare = workdir / "owl_x2_no_meta.npz"       # no metadata: the box is the drawings' median extent (510)
    save_dataset(bare, {"train": [], "valid": [], "test": doubled})
    base = evaluate_run(run, [drawings["owl"]])["test"].nll_per_point
    for data in (double, bare):
        assert evaluate_run(run, [data])["test"].nll_per_point == pytest.approx(base, abs=0.01)
    # the same model in units twice as large (a run trained on the doubled drawings): its box and scale factor
    # doubled. The offsets are clamped at 1000 of the run's units, as training clamps them (REFERENCE A.5): a box
    # of 400 keeps the 255 box's offsets (at most 255) under the clamp in both units.
    run = dataclasses.replace(run, box=400.0)
    run2 = dataclasses.replace(run, box=800.0, scale_factor=2 * run.scale_factor)
    base = evaluate_run(run, [drawings["owl"]])["test"].nll_per_point
    for data in (double, drawings["owl"]):
        assert evaluate_run(run2, [data])["test"].nll_per_point == pytest.approx(base, abs=0.01)
    # a model that reads the drawings at another size scores differently (the check can fail)
    assert abs(evaluate_run(dataclasses.replace(run, box=800.0), [drawings["owl"]])["test"].nll_per_point
               - base) > 0.05


# --- train --init ------------------------------------------------------------------------------------------

def test_warm_up_raises_the_learning_rate_linearly():
    h = HParams(learning_rate=1e-4, min_learning_rate=1e-5, decay_rate=0.9999, warmup_steps=50)
    plain = h.replace(warmup_steps=0)
    assert lr_at(h, 0) == pytest.approx(lr_at(plain, 0) / 50)
    assert lr_at(h, 24) == pytest.approx(lr_at(plain, 24) * 25 / 50)
    assert lr_at(h, 49) == lr_at(plain, 49) and lr_at(h, 500) == lr_at(plain, 500)
    assert lr_at(h, 100, warmup_start=100) == pytest.approx(lr_at(plain, 100) / 50)   # from where it starts
    assert lr_at(plain, 7) == (1e-4 - 1e-5) * 0.9999 ** 7 + 1e-5                      # off: the reference's


def _valid_nll(run_dir, data, checkpoint="latest"):
    r = invoke("evaluate", run_dir, data, "--split", "valid", "--json", "--checkpoint", checkpoint)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)["valid"]["nll_per_point"]


FAST = ["--set", "batch_size=10", "--set", "pad_to_batch=true", "--samples", 0, "--threads", 1]


def test_init_from_a_published_model_beats_training_from_scratch(imported, workdir):
    dogs = _convert(workdir, "dog", "15/5/5", "dog_tvt")
    cat = imported["cat"][0]
    r = invoke("train", dogs, "--out", workdir / "dog_init", "--init", cat, "--max-steps", 40, "--set", "save_every=40",
               *FAST)
    assert r.exit_code == 0, r.output
    cat_run = load_run(cat)
    assert "learning rate 0.0001 warmed up over 50 steps" in r.output
    assert f"box {cat_run.box:.0f} (scaled to it: dog_tvt.npz x {cat_run.box / 255:.4g})" in r.output
    ckpt = load_checkpoint(workdir / "dog_init" / "latest.pt")
    assert ckpt["step"] == 40 and ckpt["box"] == cat_run.box and ckpt["scale_factor"] == cat_run.scale_factor
    assert ckpt["hparams"]["conditional"] is False and ckpt["hparams"]["dec_rnn_size"] == 512   # still decoder-only
    assert ckpt["hparams"]["learning_rate"] == FINETUNE_LEARNING_RATE
    assert ckpt["hparams"]["warmup_steps"] == FINETUNE_WARMUP_STEPS
    # the same architecture from scratch, for the same 40 steps (its own learning rate, no warm-up)
    same = [f"{k}={ckpt['hparams'][k]}" for k in ("conditional", "dec_model", "dec_rnn_size", "num_mixture",
                                                  "use_recurrent_dropout", "max_seq_len")]
    r = invoke("train", dogs, "--out", workdir / "dog_scratch", "--max-steps", 40, "--set", "save_every=40",
               *FAST, *[a for s in same for a in ("--set", s)])
    assert r.exit_code == 0, r.output
    init, scratch = _valid_nll(workdir / "dog_init", dogs), _valid_nll(workdir / "dog_scratch", dogs)
    assert init < scratch, (init, scratch)


def test_init_on_its_own_kind_is_never_worse_than_where_it_started(imported, workdir):
    cats = _convert(workdir, "cat", "15/5/5", "cat_tvt")
    cat = imported["cat"][0]
    start = _valid_nll(cat, cats)
    r = invoke("train", cats, "--out", workdir / "cat_init", "--init", cat, "--max-steps", 60, "--set", "save_every=60",
               *FAST)
    assert r.exit_code == 0, r.output
    assert _valid_nll(workdir / "cat_init", cats) <= start


def test_init_refuses_what_changes_the_architecture(imported, sample_npz, workdir):
    owl = imported["owl"][0]
    r = invoke("train", sample_npz, "--out", workdir / "refused", "--init", owl, "--set", "dec_rnn_size=256",
               "--set", "conditional=true")
    line = one_error_line(r)
    assert r.exit_code == 2 and "keeps its architecture" in line
    assert "conditional (False there, True given)" in line and "dec_rnn_size (512 there, 256 given)" in line
    r = invoke("train", sample_npz, "--out", workdir / "refused", "--init", owl, "--preset", "browser")
    assert r.exit_code == 2 and "dec_rnn_size (512 there, 256 given)" in one_error_line(r)
    r = invoke("train", sample_npz, "--out", workdir / "refused", "--init", owl, "--resume")
    assert r.exit_code == 2 and "give one" in one_error_line(r)
    assert not (workdir / "refused").exists()
    # into the run it starts from: refused before --overwrite removes anything
    r = invoke("train", sample_npz, "--out", owl, "--init", owl / "latest.pt", "--overwrite")
    assert r.exit_code == 1 and "inside the run folder" in one_error_line(r)
    assert (owl / "latest.pt").exists()


def test_resuming_an_imported_model_warms_up_its_fresh_optimiser(imported, workdir, sample_npz):
    import shutil

    run = workdir / "bus_resumed"
    shutil.copytree(imported["bus"][0], run)
    r = invoke("train", sample_npz, "--out", run, "--resume", "--max-steps", 2, "--samples", 0, "--log-every", 1)
    assert r.exit_code == 0, r.output
    assert f"warmed up over {FINETUNE_WARMUP_STEPS} steps" in r.output
    lrs = [json.loads(ln)["lr"] for ln in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in ln]
    h = HParams.from_dict(load_checkpoint(run / "latest.pt")["hparams"])
    assert h.warmup_steps == FINETUNE_WARMUP_STEPS
    assert lrs == pytest.approx([lr_at(h, 0), lr_at(h, 1)]) and lrs[0] == pytest.approx(h.learning_rate / 50, rel=1e-3)
    ckpt = load_checkpoint(run / "latest.pt")
    assert ckpt["warmup_start"] == 0 and ckpt["box"] == load_run(imported["bus"][0]).box
    # a second resume goes on with the same warm-up (its optimiser has state now), the data still scaled
    r = invoke("train", sample_npz, "--out", run, "--resume", "--max-steps", 3, "--samples", 0, "--log-every", 1)
    assert r.exit_code == 0, r.output
    assert f"(scaled to it: sample.npz x {ckpt['box'] / 255:.4g})" in r.output
    last = [json.loads(ln)["lr"] for ln in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in ln][-1]
    assert last == pytest.approx(lr_at(h, 2))


# --- a decoder-only model ------------------------------------------------------------------------------------

@pytest.mark.parametrize("args", [("sample", "-o", "x.png", "--reconstruct", "{data}:test:0"),
                                  ("interpolate", "{data}:test:0", "{data}:test:1", "-o", "x.png")])
def test_decoder_only_models_say_why_they_cannot_encode(imported, drawings, tmp_path, args):
    cmd, *rest = args
    rest = [a.format(data=drawings["cat"]).replace("x.png", str(tmp_path / "x.png")) for a in rest]
    r = invoke(cmd, imported["cat"][0], *rest)
    line = one_error_line(r)
    assert r.exit_code == 2 and "decoder-only" in line and "has no encoder" in line
    assert not (tmp_path / "x.png").exists()
