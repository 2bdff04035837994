"""The costs of a whole split, as `train` computes them at each evaluation (its valid and test costs).

Every sketch of the split counts once (the reference skips the last, smaller batch, F.6), without
dropout, at the KL weight given (fix F.3: the reference's eval model keeps 0.01), with z drawn from a
generator seeded from the run's seed, so two evaluations of the same weights give the same numbers.
`evaluate_by_class` gives the recon cost and KL of each class's drawings apart.
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
             seed: int = 0, classes: list[str] | None = None) -> dict:
    """Mean cost, recon cost and KL over every sketch of a split (no dropout, z sampled with a fixed seed).

    `classes` (the names of the split's label indices) adds "by_class": class name -> {"r_cost", "kl", "n"}
    over that class's sketches (from the same pass: a sketch's costs do not depend on its batch mates), for
    the classes with a sketch in the split."""
    was_training = model.training
    model.eval()
    sums = [0.0] * 6
    k = len(classes) if classes else 0
    per_class = np.zeros((3, k))                          # r_cost and kl summed, sketches counted
    gen = torch.Generator(device=device).manual_seed(step_seed(seed, 0, dist.rank, 99))
    for batch in batches.eval_batches(dist.rank, dist.world):
        x, lengths = to_device(batch, device)
        losses = model(x, lengths, batch.norm_steps, kl_weight, gen, labels=torch.from_numpy(batch.labels))
        n = len(batch.lengths)
        for i, v in enumerate((losses.cost, losses.r_cost, losses.kl, losses.offset, losses.pen)):
            sums[i] += float(v) * n
        sums[5] += n
        if k:
            for row, values in enumerate((losses.sketch_r_cost, losses.sketch_kl)):
                np.add.at(per_class[row], batch.labels, values.double().cpu().numpy())
            np.add.at(per_class[2], batch.labels, 1.0)
    sums = dist.all_sum(sums, device)
    model.train(was_training)
    n = max(sums[5], 1.0)
    out = {"cost": sums[0] / n, "r_cost": sums[1] / n, "kl": sums[2] / n, "offset": sums[3] / n,
           "pen": sums[4] / n, "n": int(sums[5])}
    if k:
        per_class = np.array(dist.all_sum(per_class.ravel().tolist(), device)).reshape(3, k)
        out["by_class"] = {name: {"r_cost": per_class[0, i] / per_class[2, i], "kl": per_class[1, i] / per_class[2, i],
                                  "n": int(per_class[2, i])} for i, name in enumerate(classes) if per_class[2, i] > 0}
    return out


def evaluate_by_class(model: SketchRNN, batches: Batches, classes: list[str], kl_weight: float,
                      device: torch.device, dist: Dist = Dist(), seed: int = 0) -> dict[str, dict]:
    """The recon cost and KL of each class's sketches of the split apart: class name -> {"r_cost", "kl", "n"}
    (`evaluate` with `classes`); their means weighted by "n" are the whole split's."""
    return evaluate(model, batches, kl_weight, device, dist, seed, classes)["by_class"]
