"""sketchrnn.rnn: the whole-sequence lstm / layer_norm (`rnn_impl="fast"`) computes what the step-by-step
loop (`rnn_impl="loop"`, the reference path) computes: same costs and gradients to float32 rounding with
the same seed, recurrent dropout included, and it is what `auto` runs at the reference defaults."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sketchrnn import rnn
from sketchrnn.data import Batches, Split
from sketchrnn.model import HParams, Recurrent, SketchRNN

torch.set_num_threads(1)

SMALL = {"enc_rnn_size": 16, "dec_rnn_size": 24, "z_size": 8, "num_mixture": 3, "batch_size": 8}


def batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    sketches = []
    for _ in range(n):
        s = rng.integers(-20, 20, size=(rng.integers(5, 30), 3)).astype(np.float32)
        s[:, 2] = rng.random(len(s)) < 0.2
        s[-1, 2] = 1
        sketches.append(s)
    b = Batches(Split(sketches, np.zeros(n, np.int64)), n, 31).random_batch(0)
    return torch.from_numpy(b.strokes5), torch.from_numpy(b.lengths), b.norm_steps


def run(model, impl, x, lengths, steps, seed=3):
    model.set_rnn_impl(impl)
    model.zero_grad()
    losses = model(x, lengths, steps, 0.5, torch.Generator().manual_seed(seed))
    losses.cost.backward()
    return losses, {name: p.grad.clone() for name, p in model.named_parameters()}


def assert_same(model, x, lengths, steps, rtol, atol):
    loop, loop_grads = run(model, "loop", x, lengths, steps)
    fast, fast_grads = run(model, "fast", x, lengths, steps)
    for field in ("cost", "r_cost", "kl", "offset", "pen"):
        torch.testing.assert_close(getattr(fast, field), getattr(loop, field), rtol=rtol, atol=atol)
    assert fast_grads.keys() == loop_grads.keys()
    for name, g in loop_grads.items():
        scale = g.abs().max().item()
        torch.testing.assert_close(fast_grads[name], g, rtol=rtol, atol=atol * max(scale, 1e-3), msg=name)
    return loop, fast


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
@pytest.mark.parametrize("dropout", [True, False])
def test_fast_equals_the_loop_float32(cell, dropout):
    x, lengths, steps = batch()
    torch.manual_seed(0)
    model = SketchRNN(HParams(enc_model=cell, dec_model=cell, **SMALL, use_recurrent_dropout=dropout,
                              recurrent_dropout_prob=0.7)).train()
    _, fast = assert_same(model, x, lengths, steps, rtol=2e-6, atol=1e-5)
    if dropout:       # the masks really were drawn (and drawn alike): another seed gives another cost
        other, _ = run(model, "fast", x, lengths, steps, seed=4)
        assert other.cost.item() != fast.cost.item()


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_fast_equals_the_loop_unconditional_and_in_eval(cell):
    x, lengths, steps = batch(seed=1)
    torch.manual_seed(0)
    model = SketchRNN(HParams(enc_model=cell, dec_model=cell, **SMALL, conditional=False)).train()
    assert_same(model, x, lengths, steps, rtol=2e-6, atol=1e-5)
    model = SketchRNN(HParams(enc_model=cell, dec_model=cell, **SMALL)).eval()
    assert_same(model, x, lengths, steps, rtol=2e-6, atol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_fast_bf16_is_close_to_float32(cell):
    """precision=bf16: the recurrent products in bfloat16, the rest in float32 (the loop runs all of the
    cell in bfloat16 under autocast). Both are compared with float32: costs within bfloat16 rounding, and
    all gradients together (one vector; a single small gradient can be ill-conditioned, e.g. a layer norm
    over a nearly constant gate block) at least as close as the loop's."""
    x, lengths, steps = batch(seed=2)
    torch.manual_seed(0)
    hps = HParams(enc_model=cell, dec_model=cell, **SMALL, recurrent_dropout_prob=0.7)
    model = SketchRNN(hps.replace(precision="bf16")).train()
    loop, loop_grads = run(model, "loop", x, lengths, steps)
    fast, fast_grads = run(model, "fast", x, lengths, steps)
    model.hps = hps
    fp32, fp32_grads = run(model, "fast", x, lengths, steps)
    assert fast.cost.item() == pytest.approx(fp32.cost.item(), rel=1e-3)
    assert fast.cost.item() == pytest.approx(loop.cost.item(), rel=1e-3)
    assert fast.cost.item() != fp32.cost.item()       # it did run in bfloat16

    def error(grads):
        flat = torch.cat([g.flatten() for g in grads.values()])
        ref = torch.cat([g.flatten() for g in fp32_grads.values()])
        return ((flat - ref).norm() / ref.norm()).item()

    assert error(fast_grads) < 0.05
    assert error(fast_grads) <= 1.2 * error(loop_grads)


def test_fast_without_onednn_gives_the_same(monkeypatch):
    """Where oneDNN is missing, the per-step products fall back to torch.mm: same results."""
    x, lengths, steps = batch(seed=3)
    torch.manual_seed(0)
    model = SketchRNN(HParams(**SMALL, recurrent_dropout_prob=0.7)).train()
    with_onednn, grads = run(model, "fast", x, lengths, steps)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert rnn._Product(torch.ones(4, 2), False, 3).packed is None
    without, grads2 = run(model, "fast", x, lengths, steps)
    torch.testing.assert_close(without.cost, with_onednn.cost, rtol=2e-6, atol=1e-6)
    for name, g in grads.items():
        torch.testing.assert_close(grads2[name], g, rtol=1e-5, atol=1e-6 * max(g.abs().max().item(), 1e-3))


def test_auto_runs_fast_at_the_reference_defaults():
    model = SketchRNN(HParams()).train()        # lstm + lstm, recurrent dropout keep 0.9
    model.set_rnn_impl("auto")
    rnns = [m for m in model.modules() if isinstance(m, Recurrent)]
    assert len(rnns) == 3 and all(m.resolved_impl() == "fast" for m in rnns)
    ln = SketchRNN(HParams(enc_model="layer_norm", dec_model="layer_norm")).train()
    assert all(m.resolved_impl() == "fast" for m in ln.modules() if isinstance(m, Recurrent))
    plain = SketchRNN(HParams(use_recurrent_dropout=False)).train()     # no dropout: PyTorch's fused kernel
    assert all(m.resolved_impl() == "fused" for m in plain.modules() if isinstance(m, Recurrent))
    hyper = SketchRNN(HParams(enc_model="hyper", dec_model="hyper", hyper_num_units=8)).train()
    assert all(m.resolved_impl() == "loop" for m in hyper.modules() if isinstance(m, Recurrent))


def test_kept_buffers_never_overwrite_a_result_still_held():
    """The CPU buffers kept between calls are reused only once nothing references them: outputs held from
    one call (and its gradients) stay as they were through later calls of the same shapes."""
    torch.manual_seed(0)
    cell = Recurrent("lstm", 5, 16, HParams(), True, 0.9).train()
    cell.impl = "fast"
    x1, x2 = torch.randn(12, 4, 5), torch.randn(12, 4, 5)
    state = cell.cell.zero_state(4, x1)
    out1, _ = cell(x1, state, torch.Generator().manual_seed(1))
    kept = out1.detach().clone()
    out1.sum().backward()
    grad = cell.cell.weight_hh.grad.clone()
    for _ in range(3):
        out2, _ = cell(x2, state, torch.Generator().manual_seed(2))
        out2.sum().backward()
    assert torch.equal(out1.detach(), kept)
    assert not torch.equal(out2.detach(), kept)
    cell.zero_grad()
    again, _ = cell(x1, state, torch.Generator().manual_seed(1))
    again.sum().backward()
    torch.testing.assert_close(cell.cell.weight_hh.grad, grad)
    torch.testing.assert_close(again, kept)
