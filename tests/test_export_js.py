"""sketchrnn.magenta_js (the sketch-rnn-js / @magenta/sketch JSON format), `export`, `import` of it, `complete`,
and parity with the real @magenta/sketch in Node."""
import base64
import json
import shutil
import subprocess

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from conftest import REPO, SAMPLE, shared_data

from sketchprep.cli import main
from sketchprep.dataset import load_dataset, save_dataset
from sketchrnn.magenta_js import (
    MAX_WEIGHT,
    Q_MAX,
    ModelFormatError,
    check_exportable,
    dataset_size,
    js_model,
    parse_js_model,
    quantize,
    read_js_model,
)
from sketchrnn.model import HParams, SketchRNN, mixture_params
from sketchrnn.presets import read_preset
from sketchrnn.sample import complete, load_run
from sketchrnn.train import train

torch.set_num_threads(1)
MAGENTA_SKETCH = "@magenta/sketch@0.2.0"   # pinned: the version whose model.ts the format notes were read from
HALF_STEP = MAX_WEIGHT / Q_MAX / 2        # the largest rounding error of a stored weight
LITE_JS = REPO / "sketchrnn" / "web" / "sketchrnn-lite.js"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def sample_npz(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "sample.npz"
    r = invoke("convert", SAMPLE, out, "--multiple", "1")
    assert r.exit_code == 0, r.output
    return out


@pytest.fixture(scope="module")
def browser_run(tmp_path_factory, sample_npz):
    """A small model of the `browser` preset (32 units), trained for 40 steps on the bundled sample."""
    out = tmp_path_factory.mktemp("run") / "sheepish"
    hps = HParams.from_dict({**read_preset("browser"), "dec_rnn_size": 32, "batch_size": 20, "save_every": 40})
    train([str(sample_npz)], out, hps, max_steps=40, samples=0)
    return out


@pytest.fixture(scope="module")
def exported(browser_run, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "model.gen.json"
    r = invoke("export", browser_run, "-o", path, "--name", "sample")
    assert r.exit_code == 0, r.output
    return path, r.output


# --- the format -----------------------------------------------------------------------------------------

def test_quantisation_is_the_runtime_inverse_and_counts_clipped_weights():
    w = np.array([0.0, 1e-5, -3.3, 9.9999, 10.0, 12.5, -40.0, HALF_STEP * 0.99], dtype=np.float32)
    q, clipped, err = quantize(w)
    assert q.dtype == np.dtype("<i2")
    assert clipped == 2                                     # 12.5 and -40 (|w| = 10 itself is representable)
    assert q[4] == Q_MAX and q[5] == Q_MAX and q[6] == -Q_MAX
    back = MAX_WEIGHT * q.astype(np.float64) / Q_MAX        # what the runtime computes
    inside = np.abs(w) <= MAX_WEIGHT
    assert np.abs(back - w)[inside].max() <= HALF_STEP * 1.0001
    assert err == pytest.approx(np.abs(back - w)[inside].max(), rel=1e-3)


def test_round_trip_is_exact_up_to_the_quantisation():
    hps = HParams(conditional=False, dec_rnn_size=24, num_mixture=20, use_recurrent_dropout=False)
    torch.manual_seed(1)
    model = SketchRNN(hps)
    with torch.no_grad():                                   # a trained-looking bias, gates told apart
        model.decoder.rnn.cell.bias.copy_(torch.linspace(-2, 2, 4 * 24))
    obj, stats = js_model(model.state_dict(), hps, 12.5, "t", 99)
    info, shapes, strings = orjson.loads(orjson.dumps(obj))
    assert info == {"mode": 2, "version": 6, "max_seq_len": 99, "name": "t", "scale_factor": 12.5}
    assert shapes == [[24, 123], [123], [5, 96], [24, 96], [96]]
    assert [len(base64.b64decode(s)) // 2 for s in strings] == [24 * 123, 123, 5 * 96, 24 * 96, 96]
    assert stats["clipped"] == 0 and stats["max_error"] <= HALF_STEP * 1.0001
    hps2, state, scale, info2 = parse_js_model([info, shapes, strings])
    assert (hps2.conditional, hps2.dec_model, hps2.dec_rnn_size, hps2.num_mixture, hps2.max_seq_len) == \
        (False, "lstm", 24, 20, 99)
    assert scale == 12.5 and info2 == info
    for key, value in model.state_dict().items():
        assert state[key].shape == value.shape, key
        assert (state[key] - value).abs().max().item() <= HALF_STEP * 1.0001, key


def test_stored_lstm_is_tensorflows_basic_cell():
    """Gate order i, j, f, o of the concatenated [5 + H, 4H] kernel, forget bias 1.0 added at run time:
    the decoder's step equals TF's BasicLSTMCell computed from the stored arrays."""
    hps = HParams(conditional=False, dec_rnn_size=8, num_mixture=20, use_recurrent_dropout=False)
    torch.manual_seed(2)
    model = SketchRNN(hps).eval()
    _hps2, state, _, _ = parse_js_model(js_model(model.state_dict(), hps, 1.0, "t", 10)[0])
    model.load_state_dict(state)                            # both sides use the same (quantised) weights
    obj = js_model(model.state_dict(), hps, 1.0, "t", 10)[0]
    w = [MAX_WEIGHT * np.frombuffer(base64.b64decode(s), "<i2").astype(np.float64) / Q_MAX for s in obj[2]]
    out_k, out_b = w[0].reshape(8, 123), w[1]
    kernel = np.concatenate([w[2].reshape(5, 32), w[3].reshape(8, 32)])
    x = np.array([[0.3, -0.2, 1, 0, 0]])
    h = c = np.zeros((1, 8))
    sig = lambda v: 1 / (1 + np.exp(-v))
    for _ in range(3):
        i, j, f, o = np.split(np.concatenate([x, h], 1) @ kernel + w[4], 4, 1)
        c = c * sig(f + 1.0) + sig(i) * np.tanh(j)
        h = np.tanh(c) * sig(o)
    ours, _ = model.decoder(torch.tensor(np.repeat(x, 3, 0)[:, None], dtype=torch.float32), None)
    np.testing.assert_allclose(ours[-1, 0].detach().numpy(), (h @ out_k + out_b)[0], atol=1e-5)


@pytest.mark.parametrize("changes, words", [
    ({"conditional": True}, "conditional"),
    ({"dec_model": "layer_norm"}, "layer_norm"),
    ({"dec_model": "hyper", "num_mixture": 5}, "num_mixture=5"),
])
def test_models_the_runtime_cannot_run_are_refused_with_the_flags_that_fix_it(changes, words):
    hps = HParams(**{"conditional": False, "num_mixture": 20, **changes})
    with pytest.raises(ModelFormatError) as e:
        check_exportable(hps, "runs/x")
    assert words in str(e.value) and "--preset browser" in str(e.value)
    assert "--set conditional=false --set dec_model=lstm --set num_mixture=20" in str(e.value)


def test_the_browser_preset_is_exportable():
    check_exportable(HParams.from_dict(read_preset("browser")))


def test_a_conditional_run_is_not_exported_but_completes(tmp_path, sample_npz):
    run = tmp_path / "cond"
    train([str(sample_npz)], run, HParams(enc_rnn_size=8, dec_rnn_size=8, z_size=4, num_mixture=20,
                                          batch_size=10, save_every=2), max_steps=2, samples=0)
    out = tmp_path / "m.gen.json"
    r = invoke("export", run, "-o", out)
    assert r.exit_code == 1
    assert "cannot run this model: it is conditional" in r.output and "--preset browser" in r.output
    assert not out.exists() and "Traceback" not in r.output
    # complete decodes with z = the encoder's mu of the prefix
    prefix = np.array([[10, 20, 0], [15, -4, 0], [9, 7, 1]], dtype=np.float32)
    done = complete(load_run(run), prefix, n=4, max_steps=6, seed=1)
    assert len(done) == 4 and all(np.array_equal(d[:3, :2], prefix[:, :2]) for d in done)


def test_the_page_box_is_convert_size_or_the_median_extent(tmp_path, sample_npz):
    assert dataset_size([str(sample_npz)]) == 255.0                  # convert's --size, from the metadata
    square = np.array([[0, 0, 0], [100, 0, 0], [0, 60, 0], [-100, 0, 1]], dtype=np.int16)
    wide = np.array([[0, 0, 0], [300, 0, 1]], dtype=np.int16)
    save_dataset(tmp_path / "plain.npz", {"train": [square, square, wide], "valid": [], "test": []})
    assert dataset_size([str(tmp_path / "plain.npz")]) == 100.0      # no metadata: the median extent
    assert dataset_size([str(tmp_path / "moved.npz")]) == dataset_size([]) == 255.0


@pytest.mark.parametrize("content, words", [
    (b"{not json", "not JSON"),
    (b'{"a": 1}', "not a JSON array [info, shapes, weights]"),
    (b'[{"scale_factor": 1}, [[4, 123]], ["AAAA"]]', "expected 5 weights"),
    (b'[{"scale_factor": -1}, [], [], []]', "not a JSON array"),
])
def test_unreadable_model_files_are_named(tmp_path, content, words):
    path = tmp_path / "bad.gen.json"
    path.write_bytes(content)
    with pytest.raises(ModelFormatError) as e:
        read_js_model(path)
    assert words in str(e.value) and str(path) in str(e.value)


def test_wrong_shapes_and_truncated_weights_are_named():
    hps = HParams(conditional=False, dec_rnn_size=4, num_mixture=20, use_recurrent_dropout=False)
    obj, _ = js_model(SketchRNN(hps).state_dict(), hps, 1.0, "t", 10)
    bad = json.loads(json.dumps(obj))
    bad[1][2] = [5, 15]
    with pytest.raises(ModelFormatError, match="are not those of a 4-unit LSTM decoder"):
        parse_js_model(bad)
    bad = json.loads(json.dumps(obj))
    bad[2][4] = bad[2][4][:8]
    with pytest.raises(ModelFormatError, match="weight 4 holds 3 int16 values"):
        parse_js_model(bad)
    bad = json.loads(json.dumps(obj))
    bad[0]["scale_factor"] = 0
    with pytest.raises(ModelFormatError, match="info.scale_factor must be a number from 0.000001 to 1000000, not 0"):
        parse_js_model(bad)


# --- export, import and complete on a trained run ------------------------------------------------------

def test_export_summary_and_file(exported, browser_run):
    path, output = exported
    info, shapes, _strings = json.loads(path.read_text())
    run = load_run(browser_run)
    assert info["name"] == "sample" and info["scale_factor"] == pytest.approx(run.scale_factor)
    assert info["max_seq_len"] == run.max_len and shapes[0] == [32, 123]
    assert "0 clipped at +-10" in output and "largest rounding error 0.00015" in output


@torch.no_grad()
def _greedy(run, steps=20):
    """(steps, 5) greedy stroke-5 points in data units: the most likely component's mean and the most likely
    pen state, fed back; it goes on past an end-of-sketch state, as the Node script does."""
    dec = run.model.decoder
    x = torch.tensor([[[0, 0, 1, 0, 0]]], dtype=torch.float32)
    state, out = None, []
    for _ in range(steps):
        params, state = dec(x, None, state)
        p = mixture_params(params[0, 0])
        k, pen = int(p.log_pi.argmax()), int(p.pen_logits.argmax())
        x = torch.zeros(1, 1, 5)
        x[0, 0, 0], x[0, 0, 1], x[0, 0, 2 + pen] = p.mu_x[k], p.mu_y[k], 1.0
        out.append(x[0, 0].numpy().copy())
    out = np.array(out)
    out[:, :2] *= run.scale_factor
    return out


def test_import_of_an_export_draws_the_same_greedy_drawing(exported, browser_run, tmp_path):
    path, _ = exported
    r = invoke("import", path, "--out", tmp_path / "imported")
    assert r.exit_code == 0, r.output
    original, imported = load_run(browser_run), load_run(tmp_path / "imported")
    assert imported.scale_factor == pytest.approx(original.scale_factor)
    a, b = _greedy(original), _greedy(imported)
    np.testing.assert_array_equal(a[:, 2:], b[:, 2:])
    np.testing.assert_allclose(a[:, :2], b[:, :2], atol=0.005 * original.scale_factor)
    # and export of the import gives back the same file
    again = tmp_path / "again.gen.json"
    assert invoke("export", tmp_path / "imported", "-o", again, "--name", "sample").exit_code == 0
    assert json.loads(again.read_text())[2] == json.loads(path.read_text())[2]


def test_complete_keeps_the_prefix_in_every_completion(browser_run, sample_npz, tmp_path):
    out = tmp_path / "done.npz"
    r = invoke("complete", browser_run, "--prefix", f"{sample_npz}:test:2", "--keep", "7", "-o", out, "-n", "5",
               "--seed", "3")
    assert r.exit_code == 0, r.output
    prefix = np.asarray(load_dataset(sample_npz).splits["test"][2][:7], dtype=np.float32)
    done = load_dataset(out).splits["test"]
    assert len(done) == 5
    for d in done:
        assert len(d) >= 7
        np.testing.assert_allclose(np.asarray(d[:6]), prefix[:6], atol=0.5)   # stored as int16 pixels
        np.testing.assert_allclose(np.asarray(d[6, :2]), prefix[6, :2], atol=0.5)
    assert "5 completions of sample.npz:test:2[:7] (7 points)" in r.output


def test_complete_continues_from_the_decoder_state_after_the_prefix(browser_run):
    """Greedy completion = greedy decoding fed the prefix: the first added point is the most likely
    next point after the prefix, computed here with one decoder pass over S0 + prefix."""
    run = load_run(browser_run)
    prefix = np.array([[10, 20, 0], [15, -4, 0], [9, 7, 1], [-30, 5, 0]], dtype=np.float32)
    done = complete(run, prefix, n=3, greedy=True, max_steps=5)
    assert all(np.array_equal(d[:4, :2], prefix[:, :2]) for d in done)
    s5 = np.zeros((5, 5), dtype=np.float32)
    s5[0, 2] = 1
    s5[1:, :2] = prefix[:, :2] / run.scale_factor
    s5[1:, 3] = prefix[:, 2]
    s5[1:, 2] = 1 - prefix[:, 2]
    out, _ = run.model.decoder(torch.from_numpy(s5)[:, None], None)
    p = mixture_params(out[-1, 0])
    k = int(p.log_pi.argmax())
    want = np.array([p.mu_x[k].item(), p.mu_y[k].item()]) * run.scale_factor
    for d in done:
        if len(d) > 4:
            np.testing.assert_allclose(d[4, :2], want, rtol=1e-4, atol=1e-4)


def test_complete_reads_an_svg_prefix_as_convert_would(browser_run, tmp_path):
    svg = shared_data("sketchrnn_sample_svg", "aaron_sheep_sample.svg")
    out = tmp_path / "sheep.svg"
    r = invoke("complete", browser_run, "--prefix", svg, "--keep", "12", "-o", out, "-n", "2")
    assert r.exit_code == 0, r.output
    assert out.read_text().startswith("<svg") or "<svg" in out.read_text()[:400]


def test_complete_refuses_a_missing_prefix_file(browser_run, tmp_path):
    r = invoke("complete", browser_run, "--prefix", tmp_path / "none.svg", "-o", tmp_path / "o.png")
    assert r.exit_code == 2 and "no such file" in r.output


# --- parity with @magenta/sketch in Node ---------------------------------------------------------------

@pytest.fixture(scope="module")
def magenta_sketch(tmp_path_factory):
    """@magenta/sketch installed from the npm registry into a cache folder beside pytest's temporary
    folders (kept between runs), or a skip that says why."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("node and npm are needed for the @magenta/sketch parity test (apt-get install nodejs npm)")
    cache = tmp_path_factory.getbasetemp().parent / ("npm-" + MAGENTA_SKETCH.replace("/", "_").replace("@", ""))
    if not (cache / "node_modules" / "@magenta" / "sketch" / "package.json").exists():
        cache.mkdir(parents=True, exist_ok=True)
        try:
            r = subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), MAGENTA_SKETCH],
                               check=False, capture_output=True, text=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip(f"npm install {MAGENTA_SKETCH} took more than 5 minutes (no network?)")
        if r.returncode != 0:
            pytest.skip(f"npm install {MAGENTA_SKETCH} failed (no network?): {r.stderr.strip()[-300:]}")
    return cache


def _torch_pdf(run, strokes):
    """The mixture after S0 + strokes (stroke-5, data units) as getPDF(state, 1, 1) reports it."""
    s5 = np.array([[0, 0, 1, 0, 0]] + strokes, dtype=np.float32)
    s5[1:, :2] /= run.scale_factor
    out, _ = run.model.decoder(torch.from_numpy(s5)[:, None], None)
    p = mixture_params(out[-1, 0].double())
    return {"pi": p.log_pi.exp(), "muX": p.mu_x, "muY": p.mu_y, "sigmaX": p.log_sigma_x.exp(),
            "sigmaY": p.log_sigma_y.exp(), "corr": p.rho, "pen": torch.softmax(p.pen_logits, -1)}


def test_magenta_sketch_in_node_matches_the_pytorch_model(magenta_sketch, exported, browser_run, tmp_path):
    path, _ = exported
    strokes = [[12.0, 30.0, 1, 0, 0], [20.0, -5.0, 1, 0, 0], [4.0, 18.0, 0, 1, 0], [-25.0, 3.0, 1, 0, 0]]
    (tmp_path / "in.json").write_text(json.dumps({"strokes": strokes, "greedy_steps": 20}))
    r = subprocess.run(["node", str(REPO / "tests" / "js" / "sketch_parity.js"), str(magenta_sketch), str(LITE_JS),
                        str(path), str(tmp_path / "in.json")], check=False, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    js = json.loads(r.stdout)
    assert js["backend"] == "cpu"
    original = load_run(browser_run)
    _hps, state, _scale, _ = read_js_model(path)             # the same model with the stored (rounded) weights
    stored = load_run(browser_run)
    stored.model.load_state_dict(state)
    with torch.no_grad():
        want, want_stored = _torch_pdf(original, strokes), _torch_pdf(stored, strokes)
    for runtime in ("magenta", "lite"):
        for key, value in js[runtime]["pdf"].items():
            got = np.array(value)
            # same weights: float32 rounding only; original weights: within what the int16 rounding moves
            np.testing.assert_allclose(got, want_stored[key].numpy(), atol=2e-5, rtol=1e-4, err_msg=f"{runtime} {key}")
            np.testing.assert_allclose(got, want[key].numpy(), atol=5e-3, rtol=5e-3, err_msg=f"{runtime} {key}")
    # greedy decoding from S0: the most likely component's mean and the most likely pen state
    ours = _greedy(original)
    for runtime in ("magenta", "lite"):
        theirs = np.array(js[runtime]["greedy"])
        assert theirs.shape == (20, 5)
        np.testing.assert_array_equal(theirs[:, 2:], ours[:, 2:], err_msg=runtime)
        np.testing.assert_allclose(theirs[:, :2], ours[:, :2], atol=0.005 * original.scale_factor,
                                   err_msg=runtime)
