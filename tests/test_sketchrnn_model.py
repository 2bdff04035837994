"""sketchrnn.model: hparams, schedules, parameter count, cells, loss (REFERENCE B.1-B.6)."""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sketchprep.errors import OptionError  # noqa: E402
from sketchrnn.data import pad_batch  # noqa: E402
from sketchrnn.model import (HParams, LayerNormLSTMCell, LSTMCell, MixtureParams, SketchRNN,  # noqa: E402
                             count_parameters, kl_weight_at, lr_at, mixture_params, offset_loss, pen_loss)

torch.set_num_threads(1)

TINY = dict(enc_rnn_size=8, dec_rnn_size=12, z_size=4, num_mixture=3, hyper_num_units=6, hyper_embedding_size=3)


# --- hparams ---------------------------------------------------------------------------------------

def test_defaults_are_the_reference_table():
    h = HParams()
    assert h.data_set == ["aaron_sheep.npz"]
    assert (h.num_steps, h.save_every, h.max_seq_len) == (10_000_000, 500, 250)
    assert (h.dec_rnn_size, h.dec_model, h.enc_rnn_size, h.enc_model, h.z_size) == (512, "lstm", 256, "lstm", 128)
    assert (h.kl_weight, h.kl_weight_start, h.kl_tolerance, h.kl_decay_rate) == (0.5, 0.01, 0.2, 0.99995)
    assert (h.batch_size, h.grad_clip, h.num_mixture) == (100, 1.0, 20)
    assert (h.learning_rate, h.decay_rate, h.min_learning_rate) == (0.001, 0.9999, 0.00001)
    assert (h.use_recurrent_dropout, h.recurrent_dropout_prob) == (True, 0.90)
    assert (h.use_input_dropout, h.input_dropout_prob, h.use_output_dropout, h.output_dropout_prob) == \
        (False, 0.90, False, 0.90)
    assert (h.random_scale_factor, h.augment_stroke_prob, h.conditional, h.is_training) == (0.15, 0.10, True, True)


def test_set_values_are_typed_by_the_field():
    h = HParams().with_overrides(["dec_model=layer_norm", "z_size=64", "kl_weight=1", "use_recurrent_dropout=0",
                                  "conditional=false", "data_set=[a.npz,b.npz]", "num_steps=1e5"])
    assert (h.dec_model, h.z_size, h.kl_weight, h.use_recurrent_dropout, h.conditional) == \
        ("layer_norm", 64, 1.0, False, False)
    assert h.data_set == ["a.npz", "b.npz"] and h.num_steps == 100000 and isinstance(h.kl_weight, float)


@pytest.mark.parametrize("text, message", [
    ("z_size=big", "--set z_size=big: z_size must be an integer"),
    ("z_size=1.5", "--set z_size=1.5: z_size must be an integer"),
    ("conditional=maybe", "--set conditional=maybe: conditional must be true or false"),
    ("zsize=3", "--set 'zsize=3': unknown hparam 'zsize'"),
    ("z_size", "--set 'z_size': expected key=value"),
    ("dec_model=gru", "hparam dec_model must be one of lstm, layer_norm, hyper, got 'gru'"),
    ("recurrent_dropout_prob=0", "hparam recurrent_dropout_prob must be a number > 0 and <= 1, not 0.0"),
    ("batch_size=0", "hparam batch_size must be a whole number from 1 to 100000, not 0"),
    # both ends, and NaN and infinity, which pass any one-sided check
    ("learning_rate=nan", "hparam learning_rate must be a number > 0 and <= 10, not nan"),
    ("kl_weight=inf", "hparam kl_weight must be a number from 0 to 1000, not inf"),
    ("kl_tolerance=1e400", "hparam kl_tolerance must be a number from 0 to 1000, not inf"),
    ("dec_rnn_size=100000", "hparam dec_rnn_size must be a whole number from 1 to 16384, not 100000"),
    ("seed=-1", "hparam seed must be a whole number from 0 to 4294967295, not -1"),
    ("num_steps=1e23", "hparam num_steps must be a whole number from 1 to 1000000000, not 99999999999999991611392"),
    ("z_size=" + "9" * 5000, "--set z_size=999999999999999999999999... (5000 characters): z_size must be an integer"),
    ("__import__('os')=1", "unknown hparam"),
])
def test_bad_overrides_are_option_errors(text, message):
    with pytest.raises(OptionError) as e:
        HParams().with_overrides([text])
    assert message in str(e.value)


def test_preset_dicts_reject_unknown_keys():
    with pytest.raises(OptionError, match="p.json: unknown hparam 'enc_size'"):
        HParams.from_dict({"enc_size": 3}, source="p.json")


# --- schedules (REFERENCE B.5 table) ---------------------------------------------------------------

@pytest.mark.parametrize("step, lr, klw", [
    (0, 0.001, 0.0100), (1000, 0.000906, 0.0339), (10_000, 0.000374, 0.2028),
    (20_000, 0.000144, 0.3197), (50_000, 0.0000167, 0.4598), (100_000, 0.0000100, 0.4967),
])
def test_schedule_table(step, lr, klw):
    h = HParams()
    assert lr_at(h, step) == pytest.approx(lr, rel=5e-3)
    assert round(kl_weight_at(h, step), 4) == pytest.approx(klw, abs=1e-4)


def test_schedule_matches_the_magenta_1735_log():
    h = HParams()
    assert round(lr_at(h, 23020), 6) == 0.000109 and round(kl_weight_at(h, 23020), 4) == 0.3450


# --- parameter count -------------------------------------------------------------------------------

def test_parameter_count_of_the_default_model():
    """REFERENCE B.6: 2,186,107 trainable parameters in TF. The reference LSTMCell has ONE gate bias
    (the forget bias 1.0 is a constant added in-graph); PyTorch's nn.LSTM has two (bias_ih and
    bias_hh), i.e. 4H more per layer and direction. This port keeps the single bias as a parameter and
    hands the fused kernel a zero buffer as its second bias, so it matches exactly; an nn.LSTM-based
    port would count 4 * (256 + 256 + 512) = 4,096 more."""
    model = SketchRNN(HParams())
    assert count_parameters(model) == 2_186_107
    assert count_parameters(model, trainable_only=False) == 2_186_107
    nn_lstm_extra = sum(torch.nn.LSTM(i, h).bias_hh_l0.numel() for i, h in ((5, 256), (5, 256), (133, 512)))
    assert nn_lstm_extra == 4096
    enc = sum(p.numel() for p in model.encoder.fw.parameters())
    assert enc == 5 * 1024 + 256 * 1024 + 1024       # W_xh, W_hh, bias of one direction


# --- cells compute the reference's formulas --------------------------------------------------------

def _sig(x):
    return 1 / (1 + np.exp(-x))


def test_lstm_cell_is_the_reference_cell():
    """Reference LSTMCell: [x, h] W + b split (i, j, f, o); c' = c sig(f + 1) + sig(i) tanh(j);
    h' = tanh(c') sig(o). Here the gates are stored in PyTorch's order (i, f, g=j, o)."""
    torch.manual_seed(0)
    cell = LSTMCell(3, 4)
    with torch.no_grad():
        cell.bias.normal_()
    x, h, c = np.random.default_rng(0).normal(size=(3, 2, 4))[:, :, :].astype(np.float64)[[0, 1, 2]]
    x = x[:, :3]
    w_ih, w_hh, b = (t.detach().double().numpy() for t in (cell.weight_ih, cell.weight_hh, cell.bias))
    gates = x @ w_ih.T + h @ w_hh.T + b
    i, f, j, o = np.split(gates, 4, axis=1)
    c_ref = c * _sig(f + 1.0) + _sig(i) * np.tanh(j)
    h_ref = np.tanh(c_ref) * _sig(o)
    tx, th, tc = (torch.tensor(v, dtype=torch.float32) for v in (x, h, c))
    for run in ("fused", "loop"):
        if run == "fused":
            out, (h1, c1) = cell.fused(tx[None], (th, tc))
        else:
            from sketchrnn.model import _lstm_step
            h1, c1 = _lstm_step(cell.input_projection(tx), th, tc, cell.weight_hh.t(), None)
        np.testing.assert_allclose(h1.detach().numpy(), h_ref, atol=1e-5)
        np.testing.assert_allclose(c1.detach().numpy(), c_ref, atol=1e-5)


def test_layer_norm_cell_is_the_reference_cell():
    """Reference LayerNormLSTMCell: no bias; layer norm of each gate block (eps 1e-3 inside rsqrt);
    forget bias 1.0; h' = tanh(LN(c')) sig(o)."""
    torch.manual_seed(1)
    cell = LayerNormLSTMCell(3, 4)
    with torch.no_grad():
        for p in (cell.ln_gamma, cell.ln_beta, cell.ln_c_gamma, cell.ln_c_beta):
            p.normal_()
    rng = np.random.default_rng(1)
    x, h, c = rng.normal(size=(2, 3)), rng.normal(size=(2, 4)), rng.normal(size=(2, 4))
    p = {k: v.detach().double().numpy() for k, v in cell.named_parameters()}

    def ln(v, g, b):
        mean = v.mean(-1, keepdims=True)
        return (v - mean) / np.sqrt(((v - mean) ** 2).mean(-1, keepdims=True) + 1e-3) * g + b

    raw = x @ p["weight_ih"].T + h @ p["weight_hh"].T
    blocks = ln(raw.reshape(2, 4, 4), p["ln_gamma"].reshape(4, 4), p["ln_beta"].reshape(4, 4))
    i, f, j, o = blocks[:, 0], blocks[:, 1], blocks[:, 2], blocks[:, 3]
    c_ref = c * _sig(f + 1.0) + _sig(i) * np.tanh(j)
    h_ref = np.tanh(ln(c_ref, p["ln_c_gamma"], p["ln_c_beta"])) * _sig(o)
    from sketchrnn.model import _ln_lstm_step
    t = lambda v: torch.tensor(v, dtype=torch.float32)  # noqa: E731
    h1, c1 = _ln_lstm_step(cell.input_projection(t(x)), t(h), t(c), *cell.step_params(), None)
    np.testing.assert_allclose(h1.detach().numpy(), h_ref, atol=1e-5)
    np.testing.assert_allclose(c1.detach().numpy(), c_ref, atol=1e-5)


def test_lstm_init_follows_the_reference():
    torch.manual_seed(0)
    cell = LSTMCell(133, 64)
    for block in cell.weight_hh.detach().chunk(4, 0):              # orthogonal per gate block
        np.testing.assert_allclose((block @ block.T).numpy(), np.eye(64), atol=1e-5)
    limit = math.sqrt(6 / (133 + 256))                                # Glorot-uniform W_xh
    assert cell.weight_ih.abs().max() <= limit and cell.weight_ih.abs().max() > 0.9 * limit
    assert cell.bias.abs().max() == 0


# --- the loss ----------------------------------------------------------------------------------------

def _random_params(rng, n, m):
    out = np.concatenate([rng.normal(size=(n, 3)), rng.normal(size=(n, m)), rng.normal(size=(n, 2 * m)),
                          rng.normal(scale=0.7, size=(n, 2 * m)), rng.normal(size=(n, m))], 1)
    return torch.tensor(out, dtype=torch.float64)


def test_mixture_nll_matches_a_brute_force_density():
    """-log(sum_k pi_k N_k(x, y) + 1e-6) with N_k from the covariance matrix, in float64 numpy."""
    rng = np.random.default_rng(3)
    n, m = 50, 4
    raw = _random_params(rng, n, m)
    xy = rng.normal(size=(n, 2))
    got = offset_loss(mixture_params(raw), torch.tensor(xy[:, 0]), torch.tensor(xy[:, 1])).numpy()
    r = raw.numpy()
    pi = np.exp(r[:, 3:3 + m]) / np.exp(r[:, 3:3 + m]).sum(1, keepdims=True)
    mux, muy = r[:, 3 + m:3 + 2 * m], r[:, 3 + 2 * m:3 + 3 * m]
    sx, sy, rho = np.exp(r[:, 3 + 3 * m:3 + 4 * m]), np.exp(r[:, 3 + 4 * m:3 + 5 * m]), np.tanh(r[:, 3 + 5 * m:])
    want = np.empty(n)
    for i in range(n):
        total = 0.0
        for k in range(m):
            cov = np.array([[sx[i, k] ** 2, rho[i, k] * sx[i, k] * sy[i, k]],
                            [rho[i, k] * sx[i, k] * sy[i, k], sy[i, k] ** 2]])
            d = xy[i] - [mux[i, k], muy[i, k]]
            dens = math.exp(-0.5 * d @ np.linalg.solve(cov, d)) / (2 * math.pi * math.sqrt(np.linalg.det(cov)))
            total += pi[i, k] * dens
        want[i] = -math.log(total + 1e-6)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


def test_loss_stays_finite_where_probability_space_overflows():
    """REFERENCE F.11 / magenta#1735 / Pytorch-Sketch-RNN#6: tiny sigma, saturated rho, a target exactly
    on the mean. The loss and its gradients stay finite; the floor is the reference's -log(1e-6)."""
    m = 2
    raw = torch.zeros(3, 3 + 6 * m, dtype=torch.float32)
    raw[:, 3 + 3 * m:3 + 5 * m] = -100.0       # log sigma
    raw[:, 3 + 5 * m:] = 50.0                  # rho_raw: tanh = 1.0 in float32
    raw[1, 3 + m:3 + 3 * m] = 5.0              # row 1: mean far from the target
    raw.requires_grad_(True)
    x = torch.tensor([0.0, 0.0, 1e-3])
    loss = offset_loss(mixture_params(raw), x, torch.zeros(3))
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(raw.grad).all()
    assert loss[1].item() == pytest.approx(-math.log(1e-6), rel=1e-4)


def test_pen_loss_is_softmax_cross_entropy():
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    target = torch.tensor([[0.0, 1.0, 0.0]])
    assert pen_loss(logits, target).item() == pytest.approx(-math.log(math.exp(2) / sum(map(math.exp, (1, 2, .5)))))


def _batch(lengths, seed=0):
    rng = np.random.default_rng(seed)
    sketches = []
    for n in lengths:
        s = np.zeros((n, 3), np.float32)
        s[:, :2] = rng.normal(size=(n, 2))
        s[:, 2] = rng.random(n) < 0.3
        s[-1, 2] = 1
        sketches.append(s)
    x, lens = pad_batch(sketches, max(lengths) + 1)
    return torch.from_numpy(x), torch.from_numpy(lens)


@pytest.mark.parametrize("cell", ["lstm", "layer_norm", "hyper"])
def test_encoder_never_reads_padding(cell):
    torch.manual_seed(0)
    model = SketchRNN(HParams(enc_model=cell, dec_model=cell, **TINY)).eval()
    x, lens = _batch([4, 9, 6])
    mu, presig = model.encode(x, lens)
    junk = x.clone()
    for b, n in enumerate(lens.tolist()):
        junk[b, n + 1:, :] = torch.randn_like(junk[b, n + 1:, :]) * 5      # garbage after each sketch
    mu2, _ = model.encode(torch.cat([junk, torch.zeros(3, 7, 5)], 1), lens)  # and more of it
    torch.testing.assert_close(mu, mu2)
    alone, _ = model.encode(x[:1, :lens[0] + 1], lens[:1])
    torch.testing.assert_close(alone[0], mu[0])
    for impl in ("loop", "fast", "fused"):
        model.set_rnn_impl(impl)
        torch.testing.assert_close(model.encode(x, lens)[0], mu, atol=1e-6, rtol=1e-5)


def test_masks_offset_loss_on_padding_and_pen_loss_only_in_inference_mode():
    """L_s is zero on steps whose target is end-of-sketch; L_p is not masked in training (the
    padding trains p3) but is with is_training=False (reference inference-mode eval)."""
    torch.manual_seed(0)
    x, lens = _batch([3, 7])
    hps = HParams(**TINY, use_recurrent_dropout=False)
    model = SketchRNN(hps).eval()
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731  (evaluation samples z too, as the reference)
    base = model(x, lens, 8, 0.5, g())
    far = x.clone()
    far[0, 4:, :2] = 100.0                        # offsets of padding rows (never real data) change
    assert model(far, lens, 8, 0.5, g()).offset.item() == pytest.approx(base.offset.item(), rel=1e-6)
    masked = SketchRNN(hps.replace(is_training=False))
    masked.load_state_dict(model.state_dict())
    masked.eval()
    other = masked(x, lens, 8, 0.5, g())
    assert other.offset.item() == pytest.approx(base.offset.item(), rel=1e-6)
    assert other.pen.item() < base.pen.item()


def test_loss_normalisation_and_kl_floor():
    torch.manual_seed(0)
    x, lens = _batch([3, 7])
    model = SketchRNN(HParams(**TINY)).eval()
    a = model(x, lens, 8, 0.5, torch.Generator().manual_seed(0))
    b = model(x, lens, 16, 0.5, torch.Generator().manual_seed(0))
    assert b.r_cost.item() == pytest.approx(a.r_cost.item() / 2, rel=1e-6)   # sum / (B * norm_steps)
    assert a.kl.item() < 0.2                                                   # fresh model: KL under the floor
    assert a.cost.item() == pytest.approx(a.r_cost.item() + 0.5 * 0.2, rel=1e-6)


def test_pad_to_batch_drops_only_the_pen_loss_of_the_extra_padding():
    torch.manual_seed(0)
    x, lens = _batch([3, 5])
    longer = torch.cat([x, x[:, -1:].expand(2, 6, 5)], 1)                    # 6 more end-of-sketch rows
    model = SketchRNN(HParams(**TINY)).eval()
    short = model(x, lens, 12, 0.5, torch.Generator().manual_seed(0))
    full = model(longer, lens, 12, 0.5, torch.Generator().manual_seed(0))
    assert short.offset.item() == pytest.approx(full.offset.item(), rel=1e-6)
    assert short.pen.item() < full.pen.item()


def test_recurrent_dropout_only_in_training():
    torch.manual_seed(0)
    x, lens = _batch([5, 8])
    model = SketchRNN(HParams(**TINY, recurrent_dropout_prob=0.5))
    plain = SketchRNN(HParams(**TINY, use_recurrent_dropout=False))
    plain.load_state_dict(model.state_dict())
    model.eval(), plain.eval()
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    assert model(x, lens, 9, 0.5, g()).cost.item() == plain(x, lens, 9, 0.5, g()).cost.item()
    model.train(), plain.train()
    assert model(x, lens, 9, 0.5, g()).cost.item() != plain(x, lens, 9, 0.5, g()).cost.item()
    assert model(x, lens, 9, 0.5, g()).cost.item() == model(x, lens, 9, 0.5, g()).cost.item()


@pytest.mark.parametrize("cell", ["lstm", "layer_norm", "hyper"])
def test_implementations_agree_with_dropout_in_training(cell):
    torch.manual_seed(0)
    x, lens = _batch([4, 9, 6], seed=1)
    hps = HParams(enc_model=cell, dec_model=cell, **TINY, use_input_dropout=True, use_output_dropout=True)
    model = SketchRNN(hps).train()
    results = {}
    for impl in ("loop", "fast", "fused"):
        model.set_rnn_impl(impl)
        model.zero_grad()
        loss = model(x, lens, 10, 0.5, torch.Generator().manual_seed(4))
        loss.cost.backward()
        results[impl] = (loss.cost.detach(), [p.grad.clone() for p in model.parameters()])
    for impl in ("fast", "fused"):
        torch.testing.assert_close(results[impl][0], results["loop"][0])
        for a, b in zip(results[impl][1], results["loop"][1]):
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_unconditional_model_has_no_encoder_and_no_kl():
    model = SketchRNN(HParams(**TINY, conditional=False)).eval()
    assert model.encoder is None and not hasattr(model.decoder, "init_state")
    x, lens = _batch([4, 6])
    loss = model(x, lens, 7, 0.5)
    assert loss.kl.item() == 0.0 and loss.cost.item() == pytest.approx(loss.r_cost.item())
    assert model.decoder.rnn.cell.input_size == 5


def test_initial_state_layout_follows_each_cell():
    """h0 = tanh(W z + b) is split as the reference's state: [c, h] (lstm), [h, c] (layer_norm),
    [h | h_hyper, c | c_hyper] (hyper) (REFERENCE F.17)."""
    for cell, sizes in (("lstm", 2 * 12), ("layer_norm", 2 * 12), ("hyper", 2 * (12 + 6))):
        model = SketchRNN(HParams(enc_model="lstm", dec_model=cell, **TINY))
        assert model.decoder.init_state.out_features == sizes
    flat = torch.arange(24.0)[None]
    h, c = LSTMCell(5, 12).split_state(flat)
    assert c[0, 0] == 0 and h[0, 0] == 12
    h, c = LayerNormLSTMCell(5, 12).split_state(flat)
    assert h[0, 0] == 0 and c[0, 0] == 12


def test_mixture_params_layout():
    m = 2
    out = torch.arange(3 + 6 * m, dtype=torch.float32)[None]
    p = mixture_params(out)
    assert isinstance(p, MixtureParams)
    assert p.pen_logits.tolist() == [[0, 1, 2]]
    assert p.mu_x.tolist() == [[5, 6]] and p.mu_y.tolist() == [[7, 8]]
    assert p.log_sigma_x.tolist() == [[9, 10]] and p.log_sigma_y.tolist() == [[11, 12]]
    torch.testing.assert_close(p.log_pi.exp().sum(-1), torch.ones(1))
