"""precision=bf16: bfloat16 matrix products (autocast), the loss in float32; it computes the same losses as
float32 up to bfloat16 rounding, trains, and is refused for unknown values."""
import numpy as np
import pytest
import torch

from sketchprep.errors import OptionError
from sketchrnn.data import Batches, Split
from sketchrnn.model import HParams, SketchRNN


def batch(hps):
    rng = np.random.default_rng(0)
    sketches = []
    for _ in range(8):
        s = rng.integers(-20, 20, size=(rng.integers(5, 30), 3)).astype(np.float32)
        s[:, 2] = rng.random(len(s)) < 0.2
        s[-1, 2] = 1
        sketches.append(s)
    b = Batches(Split(sketches, np.zeros(8, np.int64)), 8, 31).random_batch(0)
    return torch.from_numpy(b.strokes5), torch.from_numpy(b.lengths), b.norm_steps


@pytest.mark.parametrize("cell", ["lstm", "layer_norm"])
def test_bf16_losses_match_fp32_and_train(cell):
    hps = HParams(enc_model=cell, dec_model=cell, enc_rnn_size=16, dec_rnn_size=24, z_size=8, num_mixture=3,
                  batch_size=8, use_recurrent_dropout=False)
    x, lengths, steps = batch(hps)
    torch.manual_seed(0)
    model = SketchRNN(hps)
    fp32 = model(x, lengths, steps, 0.5, torch.Generator().manual_seed(1))
    model.hps = hps.replace(precision="bf16")
    bf16 = model(x, lengths, steps, 0.5, torch.Generator().manual_seed(1))
    assert bf16.cost.dtype == torch.float32
    assert bf16.r_cost.item() == pytest.approx(fp32.r_cost.item(), rel=0.02)
    assert bf16.cost.item() != fp32.cost.item()  # it really ran in another precision
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    first = None
    for i in range(30):
        losses = model(x, lengths, steps, 0.01, torch.Generator().manual_seed(i))
        opt.zero_grad()
        losses.cost.backward()
        opt.step()
        first = first if first is not None else losses.r_cost.item()
    assert losses.r_cost.item() < first - 0.3


def test_unknown_precision_is_refused():
    with pytest.raises(OptionError, match="precision"):
        HParams(precision="fp16")
