"""One model, many classes: the class-conditional sketch-rnn (`class_conditional=true`), its class list,
balanced batches, per-class evaluation, `sample/complete/interpolate --class` and `export --class`."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from conftest import REPO, shared_data  # noqa: E402
from test_export_js import LITE_JS, magenta_sketch  # noqa: E402,F401  (the @magenta/sketch fixture)

from sketchprep.cli import main  # noqa: E402
from sketchprep.dataset import load_dataset, save_dataset  # noqa: E402
from sketchprep.errors import DatasetFormatError, OptionError  # noqa: E402
from sketchrnn.checkpoint import LATEST, load_checkpoint, save_checkpoint  # noqa: E402
from sketchrnn.data import Batches, Split, class_shares, load_data  # noqa: E402
from sketchrnn.evaluation import evaluate, evaluate_by_class  # noqa: E402
from sketchrnn.magenta_js import ModelFormatError, fold_class  # noqa: E402
from sketchrnn.model import HParams, SketchRNN  # noqa: E402
from sketchrnn.sample import class_vectors, complete, decode, encode, interpolate, load_run, sample  # noqa: E402
from sketchrnn.train import train  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = dict(enc_rnn_size=8, dec_rnn_size=12, z_size=4, num_mixture=3, batch_size=8, save_every=3,
            class_embedding_size=4)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def walks(rng, n, lo, hi, step):
    out = []
    for _ in range(n):
        k = int(rng.integers(lo, hi))
        s = np.zeros((k, 3), np.int16)
        s[:, :2] = rng.integers(-step, step + 1, size=(k, 2))
        s[:, 2] = rng.random(k) < 0.2
        s[-1, 2] = 1
        out.append(s)
    return out


def labelled(path, classes, sizes, seed=0):
    """A dataset with `<split>_labels` and meta classes: class i has sizes[i] train drawings (5 valid, 5 test)."""
    rng = np.random.default_rng(seed)
    splits, labels = {}, {}
    for split in ("train", "valid", "test"):
        counts = sizes if split == "train" else [5] * len(sizes)
        splits[split] = [s for i, n in enumerate(counts) for s in walks(rng, n, 5 + 10 * i, 15 + 10 * i, 10 + 20 * i)]
        labels[split] = [i for i, n in enumerate(counts) for _ in range(n)]
    save_dataset(path, splits, labels=labels, meta={"classes": list(classes)})
    return str(path)


def plain(path, n=30, seed=0, lo=5, hi=25, step=30):
    rng = np.random.default_rng(seed)
    save_dataset(path, {"train": walks(rng, n, lo, hi, step), "valid": walks(rng, 8, lo, hi, step),
                        "test": walks(rng, 8, lo, hi, step)})
    return str(path)


@pytest.fixture
def two_files(tmp_path):
    return plain(tmp_path / "short.npz", seed=1, lo=4, hi=10), plain(tmp_path / "long.npz", seed=2, lo=20, hi=40)


# --- hparams and the model -------------------------------------------------------------------------------

def test_hparams_of_the_class_model():
    hps = HParams().with_overrides(["class_conditional=true", "class_balance=sqrt", "class_embedding_size=7"])
    assert (hps.class_conditional, hps.class_balance, hps.class_embedding_size, hps.num_classes) == \
        (True, "sqrt", 7, 0)
    assert HParams().class_balance == "none" and not HParams().class_conditional   # the reference's shuffle
    with pytest.raises(OptionError, match="class_balance must be one of none, equal, sqrt"):
        HParams(class_balance="square")
    with pytest.raises(OptionError, match="num_classes must be a whole number from 0 to 100000"):
        HParams(num_classes=-1)
    with pytest.raises(OptionError, match="needs num_classes >= 1"):
        SketchRNN(HParams(class_conditional=True))


@pytest.mark.parametrize("conditional", [False, True])
def test_the_decoder_reads_the_class_at_every_step(conditional):
    """Two classes, the same drawings and z: the costs differ, and only the class embedding rows of the
    batch's classes get a gradient."""
    torch.manual_seed(0)
    model = SketchRNN(HParams(**TINY, conditional=conditional, class_conditional=True, num_classes=3)).eval()
    x = torch.zeros(4, 9, 5)
    x[:, 0, 2] = 1
    x[:, 1:, :2] = torch.randn(4, 8, 2)
    x[:, 1:, 2] = 1
    lengths = torch.full((4,), 8)
    eps = torch.zeros(4, TINY["z_size"])
    a = model(x, lengths, 8, 0.5, eps=eps, labels=torch.zeros(4, dtype=torch.long))
    b = model(x, lengths, 8, 0.5, eps=eps, labels=torch.ones(4, dtype=torch.long))
    assert a.r_cost.item() != pytest.approx(b.r_cost.item(), abs=1e-6)
    b.cost.backward()
    grad = model.decoder.class_embedding.weight.grad
    assert grad[1].abs().sum() > 0 and grad[0].abs().sum() == 0 and grad[2].abs().sum() == 0
    with pytest.raises(ValueError, match="needs the batch's labels"):
        model(x, lengths, 8, 0.5)


@pytest.mark.parametrize("cell, impls", [("lstm", ("loop", "fast", "fused")), ("layer_norm", ("loop", "fast")),
                                         ("hyper", ("loop",))])
@pytest.mark.parametrize("conditional", [False, True])
def test_every_rnn_path_gives_the_same_costs(cell, impls, conditional):
    """The context (z and the class embedding) projected once per sketch (fast, loop) or read at every
    step (fused), in every cell: the same costs and gradients; bf16 close to them."""
    torch.manual_seed(0)
    hps = HParams(**{**TINY, "hyper_num_units": 8, "hyper_embedding_size": 4}, dec_model=cell, enc_model=cell,
                  conditional=conditional, class_conditional=True, num_classes=2, use_recurrent_dropout=False)
    model = SketchRNN(hps).eval()
    rng = np.random.default_rng(0)
    split = Split([s.astype(np.float32) / 10 for s in walks(rng, 6, 4, 12, 20)], np.array([0, 1, 0, 1, 1, 0]))
    b = Batches(split, 6, 12).random_batch(0)
    x, lengths, labels = torch.from_numpy(b.strokes5), torch.from_numpy(b.lengths), torch.from_numpy(b.labels)
    results = {}
    for impl in impls:
        model.set_rnn_impl(impl)
        model.zero_grad()
        losses = model(x, lengths, 12, 0.5, torch.Generator().manual_seed(1), labels=labels)
        losses.cost.backward()
        results[impl] = (losses.r_cost.item(), model.decoder.class_embedding.weight.grad.clone())
    cost, grad = results["loop"]
    for impl, (c, g) in results.items():
        assert c == pytest.approx(cost, rel=1e-5), impl
        torch.testing.assert_close(g, grad, rtol=1e-4, atol=1e-6, msg=impl)
    model.set_rnn_impl("auto")
    bf16 = SketchRNN(hps.replace(precision="bf16")).eval()
    bf16.load_state_dict(model.state_dict())
    low = bf16(x, lengths, 12, 0.5, torch.Generator().manual_seed(1), labels=labels)
    assert low.r_cost.item() == pytest.approx(cost, rel=0.05)


# --- the class list -------------------------------------------------------------------------------------

def test_classes_come_from_the_metadata_or_one_per_file(tmp_path, two_files):
    both = labelled(tmp_path / "pets.npz", ["cat", "dog"], [6, 4])
    data = load_data([both, two_files[0]])
    assert data.classes == ["cat", "dog", "short"]
    assert np.bincount(data.splits["train"].labels).tolist() == [6, 4, 30]


def test_a_run_refuses_data_of_classes_it_does_not_know(tmp_path, two_files):
    both = labelled(tmp_path / "pets.npz", ["cat", "dog"], [6, 4])
    # mapped by name, in the run's order, whatever the file's order
    data = load_data([both], classes=["dog", "horse", "cat"])
    assert data.classes == ["dog", "horse", "cat"]
    assert sorted(set(data.splits["train"].labels.tolist())) == [0, 2]
    with pytest.raises(DatasetFormatError) as e:
        load_data([both, two_files[1]], classes=["cat"])
    text = str(e.value)
    assert "pets.npz" in text and "1 class the run does not know: 'dog'" in text and "the run's classes: 'cat'" in text
    with pytest.raises(DatasetFormatError, match="long.npz: holds drawings of 1 class the run does not know: 'long'"):
        load_data([two_files[1]], classes=["cat", "short"])


def test_resume_refuses_data_of_another_class(tmp_path, two_files):
    short, long = two_files
    hps = HParams(**TINY, conditional=False, class_conditional=True)
    train([short, long], tmp_path / "run", hps, max_steps=3, samples=0)
    ckpt = load_checkpoint(tmp_path / "run" / LATEST)
    assert ckpt["classes"] == ["short", "long"] and ckpt["hparams"]["num_classes"] == 2
    # the same file names, one of them now holding two labelled classes
    other = tmp_path / "other"
    other.mkdir()
    plain(other / "short.npz", seed=1)
    labelled(other / "long.npz", ["long", "wolf"], [10, 10])
    r = invoke("train", other / "short.npz", other / "long.npz", "--out", tmp_path / "run", "--resume",
               "--allow-data-change", "--max-steps", "4")
    assert r.exit_code == 1 and "class the run does not know: 'wolf'" in r.output and "Traceback" not in r.output


def test_checkpoint_checks_the_class_list(tmp_path, two_files):
    hps = HParams(**TINY, conditional=False, class_conditional=True)
    train(list(two_files), tmp_path / "run", hps, max_steps=3, samples=0)
    ckpt = load_checkpoint(tmp_path / "run" / LATEST)
    for classes in (["short"], ["short", "short"], "short,long", ["short", 3]):
        bad = {**ckpt, "classes": classes}
        save_checkpoint(tmp_path / "bad.pt", bad)
        r = invoke("sample", tmp_path / "bad.pt", "-o", tmp_path / "x.png")
        assert r.exit_code == 1 and "damaged checkpoint" in r.output and "class" in r.output, (classes, r.output)


# --- balanced batches -----------------------------------------------------------------------------------

def test_class_shares():
    counts = np.array([900, 100, 0, 400])
    np.testing.assert_allclose(class_shares(counts, "none"), [0.642857, 0.0714286, 0, 0.285714], rtol=1e-5)
    np.testing.assert_allclose(class_shares(counts, "equal"), [1 / 3, 1 / 3, 0, 1 / 3])
    np.testing.assert_allclose(class_shares(counts, "sqrt"), [30 / 60, 10 / 60, 0, 20 / 60])


@pytest.mark.parametrize("balance, want", [("none", [0.9, 0.1]), ("equal", [0.5, 0.5]), ("sqrt", [0.75, 0.25])])
def test_balanced_batches_draw_each_class_its_share(balance, want):
    split = Split([np.ones((3, 3), np.float32)] * 1000, np.array([0] * 900 + [1] * 100))
    batches = Batches(split, 50, 4, class_balance=balance, num_classes=2)
    seen = np.concatenate([batches.random_batch(step).labels for step in range(200)])     # 10,000 draws
    np.testing.assert_allclose(np.bincount(seen) / len(seen), want, atol=0.02)
    # deterministic per (seed, step), and the processes of a step take disjoint slices of one draw
    a, b = batches.random_batch(7, 0, 2), batches.random_batch(7, 1, 2)
    again = Batches(split, 50, 4, class_balance=balance, num_classes=2).random_batch(7, 0, 2)
    np.testing.assert_array_equal(a.labels, again.labels)
    assert len(a.labels) == len(b.labels) == 50


def test_train_reports_the_classes_and_their_shares(tmp_path):
    pets = labelled(tmp_path / "pets.npz", ["cat", "dog"], [30, 10])
    r = invoke("train", pets, "--out", tmp_path / "run", "--max-steps", "1", "--samples", "0",
               *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), []),
               "--set", "class_conditional=true", "--set", "class_balance=equal")
    assert r.exit_code == 0, r.output
    assert ("classes: 2, train drawings (share of the draws): cat 30 (50%), dog 10 (50%); class_balance=equal: "
            "every class equally often; the model reads the class") in r.output
    assert "class-conditional (class embedding 4)" in r.output
    assert "recon by class: cat " in r.output and ", dog " in r.output
    r = invoke("train", pets, "--out", tmp_path / "plain", "--max-steps", "1", "--samples", "0",
               *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), []))
    assert "cat 30 (75%), dog 10 (25%); plain shuffle (class_balance=none)" in r.output
    assert "the model does not read the class" in r.output


# --- training: resume, grids, evaluation -----------------------------------------------------------------

def test_a_class_run_resumes_exactly(tmp_path, two_files):
    """Balanced batches and the class embedding: killed after 5 steps, resumed, bit for bit the same."""
    hps = HParams(**TINY, class_conditional=True, class_balance="sqrt")
    train(list(two_files), tmp_path / "full", hps, max_steps=8, samples=0)

    def crash(step, metrics):
        if step == 4:
            raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        train(list(two_files), tmp_path / "crash", hps, max_steps=8, samples=0, on_step=crash)
    train([], tmp_path / "crash", None, resume=True, max_steps=8, samples=0)
    a, b = load_checkpoint(tmp_path / "full" / LATEST), load_checkpoint(tmp_path / "crash" / LATEST)
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_progress_grids_have_a_row_per_class(tmp_path, two_files):
    from PIL import Image

    hps = HParams(**TINY, class_conditional=True)
    train(list(two_files), tmp_path / "run", hps, max_steps=3, samples=5)
    with Image.open(tmp_path / "run" / "samples" / "step-000003.png") as img:
        width, height = img.size
    # 5 columns of 96-pixel cells, 2 rows (with room for the class names under them)
    assert 5 * 96 <= width < 6 * 96 and 2 * 96 <= height < 3 * 96 + 60
    assert (tmp_path / "run" / "samples" / "recon-000003.png").exists()


def test_evaluate_by_class_splits_the_costs(tmp_path):
    pets = labelled(tmp_path / "pets.npz", ["cat", "dog", "owl"], [10, 10, 0])
    data = load_data([pets])
    torch.manual_seed(0)
    model = SketchRNN(HParams(**TINY, conditional=False))
    batches = Batches(data.splits["valid"], 4, data.target_steps)
    whole = evaluate(model, batches, 0.5, torch.device("cpu"))
    parts = evaluate_by_class(model, batches, data.classes, 0.5, torch.device("cpu"))
    assert list(parts) == ["cat", "dog", "owl"] and [p["n"] for p in parts.values()] == [5, 5, 5]
    mean = sum(p["r_cost"] * p["n"] for p in parts.values()) / sum(p["n"] for p in parts.values())
    assert mean == pytest.approx(whole["r_cost"], rel=1e-5)
    assert parts["cat"]["r_cost"] != pytest.approx(parts["owl"]["r_cost"], rel=1e-3)


def test_evaluate_command_scores_each_class(tmp_path):
    """`evaluate` on data of several classes adds each class's lr, lkl and nll_per_point; their means weighted
    by the drawings (and, for nll_per_point, by the points) are the split's."""
    pets = labelled(tmp_path / "pets.npz", ["cat", "dog"], [16, 16])
    run = tmp_path / "run"
    sets = sum((["--set", f"{k}={v}"] for k, v in {**TINY, "class_conditional": "true"}.items()), [])
    assert invoke("train", pets, "--out", run, *sets, "--max-steps", "3", "--samples", "0", "--quiet").exit_code == 0
    result = invoke("evaluate", run, pets, "--split", "valid", "--json")
    assert result.exit_code == 0, result.output
    valid = json.loads(result.output)["valid"]
    parts = valid["by_class"]
    assert list(parts) == ["cat", "dog"] and [p["n"] for p in parts.values()] == [5, 5]
    assert sum(p["lr"] * p["n"] for p in parts.values()) / 10 == pytest.approx(valid["lr"], rel=1e-5)
    assert sum(p["lkl"] * p["n"] for p in parts.values()) / 10 == pytest.approx(valid["lkl"], rel=1e-5)
    assert parts["cat"]["nll_per_point"] != pytest.approx(parts["dog"]["nll_per_point"], rel=1e-3)
    points = {c: sum(len(d) for d, label in zip(load_dataset(pets).splits["valid"], load_dataset(pets).labels["valid"])
                     if label == i) for i, c in enumerate(["cat", "dog"])}
    mean = sum(parts[c]["nll_per_point"] * points[c] for c in points) / sum(points.values())
    assert mean == pytest.approx(valid["nll_per_point"], rel=1e-5)
    text = invoke("evaluate", run, pets, "--split", "valid").output
    assert "\n    cat: lr " in text and "\n    dog: lr " in text
    one = labelled(tmp_path / "cats.npz", ["cat"], [16])
    assert "by_class" not in json.loads(invoke("evaluate", run, one, "--json").output)["valid"]


# --- acceptance: two very different real datasets -------------------------------------------------------

@pytest.fixture(scope="module")
def sheep_and_kanji(tmp_path_factory):
    """300 train drawings each of aaron_sheep (about 125 points a drawing) and KanjiVG (about 31)."""
    folder = tmp_path_factory.mktemp("real")
    out = []
    for name, source in (("sheep", "aaron_sheep.npz"), ("kanji", "kanji.rdp200.npz")):
        ds = load_dataset(shared_data("sketchrnn_npz", source))
        save_dataset(folder / f"{name}.npz", {"train": ds.splits["train"][:300], "valid": ds.splits["valid"][:40],
                                              "test": ds.splits["test"][:40]})
        out.append(folder / f"{name}.npz")
    return out


def _points(npz):
    return np.array([len(d) for d in load_dataset(npz).splits["test"]])


def test_sample_class_draws_like_each_class_and_an_unconditional_model_cannot(sheep_and_kanji, tmp_path):
    sets = ["conditional=false", "dec_rnn_size=32", "num_mixture=5", "batch_size=20", "save_every=400",
            "use_recurrent_dropout=false", "pad_to_batch=true", "max_seq_len=150", "class_embedding_size=8"]
    flags = sum((["--set", s] for s in sets), [])
    data = {name: np.array([len(d) for d in load_dataset(p).splits["train"] if len(d) <= 150])
            for name, p in zip(("sheep", "kanji"), sheep_and_kanji)}
    for name, extra in (("cond", ["--set", "class_conditional=true"]), ("plain", [])):
        r = invoke("train", *sheep_and_kanji, "--out", tmp_path / name, "--max-steps", "400", "--samples", "0",
                   *flags, *extra)
        assert r.exit_code == 0, r.output
    means = {}
    for klass in ("sheep", "kanji"):
        r = invoke("sample", tmp_path / "cond", "-o", tmp_path / f"{klass}.npz", "-n", "30", "--class", klass,
                   "-t", "0.5", "--seed", "1")
        assert r.exit_code == 0, r.output
        assert load_dataset(tmp_path / f"{klass}.npz").classes == [klass]
        means[klass] = _points(tmp_path / f"{klass}.npz").mean()
    # measured: sheep 121 and kanji 29 points a drawing (the data: 98 and 31)
    assert means["sheep"] > 2.5 * means["kanji"], means
    for klass, m in means.items():
        assert 0.6 * data[klass].mean() < m < 1.6 * data[klass].mean(), (klass, m, data[klass].mean())
    # the unconditional model of the same size is not asked for a class, and one distribution cannot be both
    r = invoke("sample", tmp_path / "plain", "-o", tmp_path / "p.npz", "--class", "kanji")
    assert r.exit_code == 2 and "does not read the class" in r.output
    assert invoke("sample", tmp_path / "plain", "-o", tmp_path / "p.npz", "-n", "30", "-t", "0.5",
                  "--seed", "1").exit_code == 0
    m = _points(tmp_path / "p.npz").mean()
    assert not all(0.6 * data[k].mean() < m < 1.6 * data[k].mean() for k in data), m


# --- the commands ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def class_runs(tmp_path_factory):
    """A decoder-only class-conditional run of the browser kind and a class-conditional VAE, both on cat/dog."""
    folder = tmp_path_factory.mktemp("classes")
    pets = labelled(folder / "pets.npz", ["cat", "dog"], [20, 20])
    dec = HParams(conditional=False, class_conditional=True, dec_rnn_size=16, num_mixture=20, batch_size=10,
                  save_every=10, use_recurrent_dropout=False, class_embedding_size=4)
    vae = HParams(**{**TINY, "save_every": 10}, class_conditional=True)
    train([pets], folder / "dec", dec, max_steps=10, samples=0)
    train([pets], folder / "vae", vae, max_steps=10, samples=0)
    return pets, folder / "dec", folder / "vae"


def test_sample_class_grid_and_npz(class_runs, tmp_path):
    pets, dec, _ = class_runs
    r = invoke("sample", dec, "-o", tmp_path / "grid.svg", "-n", "3", "--class", "dog", "--class", "cat")
    assert r.exit_code == 0, r.output
    assert "6 drawings in 2 rows (dog, cat)" in r.output
    svg = (tmp_path / "grid.svg").read_text()
    assert svg.index(">dog<") < svg.index(">cat<")
    r = invoke("sample", dec, "-o", tmp_path / "all.npz", "-n", "2")           # every class by default
    assert r.exit_code == 0 and "4 drawings in 2 rows (cat, dog)" in r.output
    ds = load_dataset(tmp_path / "all.npz")
    assert ds.classes == ["cat", "dog"] and ds.labels["test"].tolist() == [0, 0, 1, 1]
    # the same drawings as the library draws
    run = load_run(dec)
    want = sample(run, 2, 0.4, classes=[0, 1])
    for got, w in zip(ds.splits["test"], want):
        np.testing.assert_allclose(np.asarray(got, np.float32), np.round(w), atol=1)
    r = invoke("sample", dec, "-o", tmp_path / "x.png", "--class", "horse")
    assert r.exit_code == 2 and "'horse': the run has no such class (its classes: 'cat', 'dog')" in r.output


def test_complete_and_reconstruct_with_a_class(class_runs, tmp_path):
    pets, dec, vae = class_runs
    r = invoke("complete", dec, "--prefix", f"{pets}:test:1", "--keep", "4", "-o", tmp_path / "c.npz", "-n", "3",
               "--class", "cat", "--class", "dog", "--greedy")
    assert r.exit_code == 0, r.output
    assert "6 completions of pets.npz:test:1[:4] (4 points) as cat, dog" in r.output
    ds = load_dataset(tmp_path / "c.npz")
    assert ds.classes == ["cat", "dog"] and ds.labels["test"].tolist() == [0, 0, 0, 1, 1, 1]
    run = load_run(dec)
    prefix = np.asarray(load_dataset(pets).splits["test"][1][:4], np.float32)
    cat, dog = complete(run, prefix, 1, greedy=True, label=0)[0], complete(run, prefix, 1, greedy=True, label=1)[0]
    assert not (len(cat) == len(dog) and np.allclose(cat, dog))     # the class changes the completion
    r = invoke("complete", dec, "--prefix", f"{pets}:test:1", "-o", tmp_path / "c.png")
    assert r.exit_code == 2 and "add --class NAME (its classes: cat, dog)" in r.output
    # --reconstruct uses the drawing's own class (dog: test drawings 5-9 of pets.npz) unless told
    r = invoke("sample", vae, "--reconstruct", "test:7", "-o", tmp_path / "r.npz", "-n", "2")
    assert r.exit_code == 0, r.output
    assert load_dataset(tmp_path / "r.npz").classes == ["dog"]


def test_interpolate_morphs_the_class_with_z(class_runs, tmp_path):
    pets, _, vae = class_runs
    run = load_run(vae)
    a, b = (np.asarray(load_dataset(pets).splits["test"][i], np.float32) for i in (1, 7))
    morph = interpolate(run, a, b, steps=3, greedy=True, classes=(0, 1))
    # the ends are the plain decodings of A's code as a cat and B's as a dog
    z = encode(run, [a, b])
    first = decode(run, z[:1], None, greedy=True, c=class_vectors(run, [0]))[0]
    last = decode(run, z[1:], None, greedy=True, c=class_vectors(run, [1]))[0]
    np.testing.assert_allclose(morph[0], first, atol=1e-4)
    np.testing.assert_allclose(morph[-1], last, atol=1e-4)
    r = invoke("interpolate", vae, "test:1", "test:7", "-o", tmp_path / "m.svg", "--steps", "3", "--show-inputs")
    assert r.exit_code == 0, r.output
    assert "(cat)" in r.output and "(dog)" in r.output
    r = invoke("interpolate", vae, "test:1", "test:7", "-o", tmp_path / "m.svg", "--class", "dog")
    assert r.exit_code == 2 and "--class goes twice" in r.output
    # a drawing of a class the run does not know is refused, unless a class is chosen
    owl = plain(tmp_path / "owl.npz")
    r = invoke("interpolate", vae, f"{owl}:test:0", "test:7", "-o", tmp_path / "m.svg")
    assert r.exit_code == 2 and "is a drawing of class 'owl', which the run does not know (its classes: cat, dog)" \
        in r.output
    r = invoke("interpolate", vae, f"{owl}:test:0", "test:7", "-o", tmp_path / "m.svg", "--class", "cat",
               "--class", "dog", "--steps", "2")
    assert r.exit_code == 0, r.output


# --- export -------------------------------------------------------------------------------------------

def test_folding_a_class_into_the_bias_gives_the_same_decoder(class_runs):
    _, dec, vae = class_runs
    run = load_run(dec)
    for k in range(2):
        hps, state = fold_class(run.model.state_dict(), run.hps, k)
        assert not hps.class_conditional and state["decoder.rnn.cell.weight_ih"].shape == (64, 5)
        plain_model = SketchRNN(hps).eval()
        plain_model.load_state_dict(state)
        s = torch.randn(7, 3, 5)
        want, _ = run.model.decoder(s, None, c=run.model.decoder.class_vectors(torch.full((3,), k)))
        got, _ = plain_model.decoder(s, None)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ModelFormatError, match="it is conditional"):
        fold_class(load_run(vae).model.state_dict(), load_run(vae).hps, 0)


def test_export_class_and_the_page_menu(class_runs, tmp_path):
    _, dec, vae = class_runs
    r = invoke("export", dec, "-o", tmp_path / "m.gen.json")
    assert r.exit_code == 1 and "class-conditional" in r.output and "--class NAME" in r.output
    r = invoke("export", dec, "--class", "dog", "-o", tmp_path / "dog.gen.json")
    assert r.exit_code == 0, r.output
    info, shapes, _ = json.loads((tmp_path / "dog.gen.json").read_text())
    assert info["name"] == "dec: dog" and shapes[2] == [5, 64]
    r = invoke("export", dec, "--class", "owl", "-o", tmp_path / "owl.gen.json")
    assert r.exit_code == 2 and "no such class" in r.output
    r = invoke("export", vae, "--class", "dog", "-o", tmp_path / "v.gen.json")
    assert r.exit_code == 1 and "it is conditional" in r.output
    r = invoke("export", dec, "--html", tmp_path / "page")
    assert r.exit_code == 0, r.output
    assert "menu of 2 classes" in r.output
    html = (tmp_path / "page" / "index.html").read_text()
    config = json.loads(html.split("window.SKETCH_CONFIG = ")[1].split(";</script>")[0])
    assert config["classes"] == [{"name": "cat", "model": "model-0.gen.json"},
                                 {"name": "dog", "model": "model-1.gen.json"}]
    assert json.loads((tmp_path / "page" / "model-1.gen.json").read_text())[2] == \
        json.loads((tmp_path / "dog.gen.json").read_text())[2]
    assert 'id="class"' in html


# --- the browser: export --class through the real @magenta/sketch ------------------------------------------

def test_export_class_draws_what_sample_greedy_class_draws_in_magenta_sketch(magenta_sketch, sheep_and_kanji,
                                                                            tmp_path):
    """Each class's exported decoder, run by @magenta/sketch in Node (and by the page's own sampler): its greedy
    drawing is `sample --greedy --class` of the same run, point for point over the first 20 points (or to
    where the drawing ends, which Node then shows as the end-of-sketch state)."""
    sets = ["conditional=false", "dec_rnn_size=32", "num_mixture=20", "batch_size=20", "save_every=150",
            "use_recurrent_dropout=false", "pad_to_batch=true", "max_seq_len=150", "class_embedding_size=8"]
    r = invoke("train", *sheep_and_kanji, "--out", tmp_path / "run", "--max-steps", "150", "--samples", "0",
               "--set", "class_conditional=true", *sum((["--set", s] for s in sets), []))
    assert r.exit_code == 0, r.output
    scale = load_run(tmp_path / "run").scale_factor
    (tmp_path / "in.json").write_text(json.dumps({"strokes": [[3.0, 2.0, 1, 0, 0]], "greedy_steps": 20}))
    lengths = []
    for klass in ("sheep", "kanji"):
        model = tmp_path / f"{klass}.gen.json"
        assert invoke("export", tmp_path / "run", "--class", klass, "-o", model).exit_code == 0
        r = invoke("sample", tmp_path / "run", "--greedy", "--class", klass, "-n", "1", "-o", tmp_path / f"{klass}.npz")
        assert r.exit_code == 0, r.output
        ours = np.asarray(load_dataset(tmp_path / f"{klass}.npz").splits["test"][0], np.float64)   # int16 pixels
        proc = subprocess.run(["node", str(REPO / "tests" / "js" / "sketch_parity.js"), str(magenta_sketch),
                               str(LITE_JS), str(model), str(tmp_path / "in.json")], check=False,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        js = json.loads(proc.stdout)
        k = min(20, len(ours))
        lengths.append(len(ours))
        for runtime in ("magenta", "lite"):
            theirs = np.array(js[runtime]["greedy"])
            np.testing.assert_allclose(theirs[:k, :2], ours[:k, :2], atol=0.51 + 0.005 * scale,
                                       err_msg=f"{klass} {runtime}")
            np.testing.assert_array_equal(theirs[:k - 1, 3], ours[:k - 1, 2], err_msg=f"{klass} {runtime}")
            if k < 20:
                assert theirs[k, 4] == 1, (klass, runtime, theirs[k])         # Node ends where sample ended
    assert max(lengths) >= 20, lengths       # at least one class's drawing is compared over all 20 points


def test_ddp_two_cpu_processes_with_classes(tmp_path, two_files):
    """torchrun, 2 processes on the CPU: a class-conditional VAE with balanced batches; the replicas stay equal
    (checked inside train) and the valid costs by class are summed over both processes' shards."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    logs = tmp_path / "logs"
    sets = [f"{k}={v}" for k, v in TINY.items()] + ["class_conditional=true", "class_balance=sqrt", "save_every=2"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--log-dir", str(logs),
           "--redirects", "3", "-m", "sketchprep", "train", *two_files, "--out", str(tmp_path / "ddp"), "--max-steps",
           "4", "--threads", "1", "--quiet", *sum((["--set", s] for s in sets), [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    workers = "".join(f"\n--- {p.relative_to(logs)} ---\n{p.read_text(errors='replace')[-4000:]}"
                      for p in sorted(logs.rglob("*.log")))
    assert proc.returncode == 0, proc.stderr[-3000:] + workers
    ckpt = load_checkpoint(tmp_path / "ddp" / LATEST)
    assert ckpt["world_size"] == 2 and ckpt["step"] == 4 and ckpt["classes"] == ["short", "long"]
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    valid = [r for r in rows if r["split"] == "valid"]
    assert [r["by_class"]["short"]["n"] + r["by_class"]["long"]["n"] for r in valid] == [16, 16]
