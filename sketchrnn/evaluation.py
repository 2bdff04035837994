"""The costs of a whole split, as `train` computes them at each evaluation (its valid and test costs).

Every sketch of the split counts once (the reference skips the last, smaller batch, F.6), without
dropout, at the KL weight given (fix F.3: the reference's eval model keeps 0.01), with z drawn from a
generator seeded from the run's seed, so two evaluations of the same weights give the same numbers.
"""
from __future__ import annotations

import numpy as np
import torch

from .data import Batches
from .devices import Dist, to_device
from .model import SketchRNN


def step_seed(seed: int, step: int, rank: int, stream: int) -> int:
    """A 64-bit seed for one random stream of one step of one process."""
    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, np.uint64)[0])


@torch.no_grad()
def evaluate(model: SketchRNN, batches: Batches, kl_weight: float, device: torch.device, dist: Dist = Dist(),
             seed: int = 0) -> dict:
    """Mean cost, recon cost and KL over every sketch of a split (no dropout, z sampled with a fixed seed)."""
    was_training = model.training
    model.eval()
    sums = [0.0] * 6
    gen = torch.Generator(device=device).manual_seed(step_seed(seed, 0, dist.rank, 99))
    for batch in batches.eval_batches(dist.rank, dist.world):
        x, lengths = to_device(batch, device)
        losses = model(x, lengths, batch.norm_steps, kl_weight, gen)
        n = len(batch.lengths)
        for i, v in enumerate((losses.cost, losses.r_cost, losses.kl, losses.offset, losses.pen)):
            sums[i] += float(v) * n
        sums[5] += n
    sums = dist.all_sum(sums, device)
    model.train(was_training)
    n = max(sums[5], 1.0)
    return {"cost": sums[0] / n, "r_cost": sums[1] / n, "kl": sums[2] / n, "offset": sums[3] / n,
            "pen": sums[4] / n, "n": int(sums[5])}
