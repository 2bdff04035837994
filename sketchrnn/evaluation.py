"""The costs of a whole split, as `train` computes them at each evaluation (its valid and test costs).

Every sketch of the split counts once (the reference skips the last, smaller batch, F.6), without
dropout, at the KL weight given (fix F.3: the reference's eval model keeps 0.01), with z drawn from a
generator seeded from the run's seed, so two evaluations of the same weights give the same numbers.
`evaluate_by_class` gives the recon cost and KL of each class's drawings apart.

With `nll_unit` it also sums the exact negative log-likelihood of the drawings' points (`point_nll`):
unlike the paper's Lr, which divides by the longest sketch and counts the pen state of padding rows,
it is a density of the points themselves, which `evaluate_run` turns into nats per point in a fixed
unit of length, so models trained at different sizes compare on the same data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .box import DEFAULT_BOX
from .data import Batches
from .devices import Dist, to_device
from .model import SketchRNN, bivariate_normal_log_density, mixture_params


def step_seed(seed: int, step: int, rank: int, stream: int) -> int:
    """A 64-bit seed for one random stream of one step of one process."""
    return int(np.random.SeedSequence([seed, step, rank, stream]).generate_state(1, np.uint64)[0])


@torch.no_grad()
def evaluate(model: SketchRNN, batches: Batches, kl_weight: float, device: torch.device, dist: Dist = Dist(),
             seed: int = 0, classes: list[str] | None = None, nll_unit: float | None = None) -> dict:
    """Mean cost, recon cost and KL over every sketch of a split (no dropout, z sampled with a fixed seed).

    `classes` (the names of the split's label indices) adds "by_class": class name -> {"r_cost", "kl", "n"}
    over that class's sketches (from the same pass: a sketch's costs do not depend on its batch mates), for
    the classes with a sketch in the split. With `nll_unit` (see `point_nll`) it adds "nll" (the summed
    `point_nll` of every drawing) and "points" (their points), computed with the same z as the costs."""
    nll = nll_unit is not None
    was_training = model.training
    model.eval()
    sums = [0.0] * 8
    k = len(classes) if classes else 0
    per_class = np.zeros((5, k))                          # r_cost, kl summed, sketches counted, nll, points
    gen = torch.Generator(device=device).manual_seed(step_seed(seed, 0, dist.rank, 99))
    # a twin generator draws the same z for point_nll without moving the costs' stream
    twin = torch.Generator(device=device).manual_seed(step_seed(seed, 0, dist.rank, 99)) if nll else None
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
        if nll:
            each = sketch_nll(model, x, lengths, nll_unit, twin, torch.from_numpy(batch.labels)).numpy()
            sums[6] += float(each.sum())
            sums[7] += float(lengths.sum())
            if k:
                np.add.at(per_class[3], batch.labels, each)
                np.add.at(per_class[4], batch.labels, lengths.numpy().astype(np.float64))
    sums = dist.all_sum(sums, device)
    model.train(was_training)
    n = max(sums[5], 1.0)
    out = {"cost": sums[0] / n, "r_cost": sums[1] / n, "kl": sums[2] / n, "offset": sums[3] / n,
           "pen": sums[4] / n, "n": int(sums[5])}
    if k:
        per_class = np.array(dist.all_sum(per_class.ravel().tolist(), device)).reshape(5, k)
        out["by_class"] = {name: {"r_cost": per_class[0, i] / per_class[2, i], "kl": per_class[1, i] / per_class[2, i],
                                  "n": int(per_class[2, i]),
                                  **({"nll": per_class[3, i], "points": int(per_class[4, i])} if nll else {})}
                           for i, name in enumerate(classes) if per_class[2, i] > 0}
    if nll:
        out.update(nll=sums[6], points=int(sums[7]))
    return out


def evaluate_by_class(model: SketchRNN, batches: Batches, classes: list[str], kl_weight: float,
                      device: torch.device, dist: Dist = Dist(), seed: int = 0) -> dict[str, dict]:
    """The recon cost and KL of each class's sketches of the split apart: class name -> {"r_cost", "kl", "n"}
    (`evaluate` with `classes`); their means weighted by "n" are the whole split's."""
    return evaluate(model, batches, kl_weight, device, dist, seed, classes)["by_class"]


NLL_UNIT_BOX = DEFAULT_BOX    # nll_per_point measures lengths in pixels of a drawing box of this size
# the offset density's floor, per pixel^2 of that box: 1/15 of a uniform guess over the whole box
# (1 / 255^2 = 1.5e-5), so one point that a model deems impossible counts as a poor guess, not as
# thousands of nats that decide the mean (measured on Google's flamingo model: single points at 1e5 nats)
NLL_FLOOR = 1e-6


@torch.no_grad()
def point_nll(model: SketchRNN, strokes5: torch.Tensor, lengths: torch.Tensor, unit: float = 0.0,
              generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> float:
    """The negative log-likelihood, in nats, of a batch of drawings, summed (`sketch_nll`)."""
    return float(sketch_nll(model, strokes5, lengths, unit, generator, labels).sum())


@torch.no_grad()
def sketch_nll(model: SketchRNN, strokes5: torch.Tensor, lengths: torch.Tensor, unit: float = 0.0,
               generator: torch.Generator | None = None, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The negative log-likelihood, in nats, of each drawing of a batch: (B,) float64.

    strokes5: (B, T+1, 5) as `SketchRNN.forward` takes it (S0 first, at least one end row after each
    drawing); lengths: (B,) points per drawing. unit: log of the model units in one unit of length of
    the result (`unit_log_jacobian`; 0: model units). A drawing of n points counts the offset density
    of its n points, per unit of length squared and floored at NLL_FLOOR (as the paper's loss floors
    its density at 1e-6, but in the result's units, so the floor is the same for every model), and
    the pen states of its n points and of the end row.
    A conditional model adds each drawing's whole KL term (summed over z, not its mean) to the
    reconstruction term for z ~ q(z|x) drawn from `generator`, as `forward` draws it: the ELBO, an
    upper bound of the NLL. labels: (B,) class indices, for a class-conditional model (the likelihood
    given each drawing's class)."""
    hps = model.hps
    c = model.decoder.class_vectors(labels.to(strokes5.device)) if hps.class_conditional else None
    xs = strokes5.transpose(0, 1)                                        # (T+1, B, 5)
    target = xs[1:]                                                      # (T, B, 5)
    z, kl_per_sketch = None, 0.0
    low = torch.autocast(strokes5.device.type, dtype=torch.bfloat16, enabled=hps.precision == "bf16")
    if hps.conditional:
        with low:
            mu, presig = model.encoder(target, lengths, generator)
        mu, presig = mu.float(), presig.float()
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + torch.exp(presig / 2.0) * eps
        kl_per_sketch = (-0.5 * (1.0 + presig - mu * mu - torch.exp(presig))).sum(-1).double()
    with low:
        out, _ = model.decoder(xs[:-1], z, c=c)
    p = mixture_params(out.float())
    rows = torch.arange(target.shape[0], device=target.device)[:, None]  # (T, 1)
    n = lengths.to(target.device)[None, :]                                # (1, B)
    log_mix = torch.logsumexp(p.log_pi + bivariate_normal_log_density(target[..., 0], target[..., 1], p), -1)
    log_mix = torch.logaddexp(log_mix + 2.0 * unit, torch.full_like(log_mix, math.log(NLL_FLOOR)))
    log_pen = (target[..., 2:] * F.log_softmax(p.pen_logits, -1)).sum(-1)
    nll = -(log_mix * (rows < n)).double().sum(0) - (log_pen * (rows <= n)).double().sum(0)
    return (nll + kl_per_sketch).cpu()


def unit_log_jacobian(run_box: float, scale_factor: float) -> float:
    """log of model units per NLL unit: a length u in NLL units (pixels of a NLL_UNIT_BOX box) is
    u * run_box / NLL_UNIT_BOX data units of the run, divided by its scale factor for the model."""
    return math.log(run_box / (NLL_UNIT_BOX * scale_factor))


@dataclass
class SplitScore:
    """One split's scores (`evaluate_run`)."""

    lr: float                   # the paper's Lr: training's recon cost (offset + pen), model units
    lkl: float | None           # the KL term (before its floor); None for a decoder-only model
    nll_per_point: float        # nats per point, lengths in pixels of a 255 box (see evaluate_run)
    n: int                      # drawings counted
    points: int                 # their points
    dropped: int                # drawings longer than the model's max_seq_len, not counted
    by_class: dict[str, dict] | None = None   # data of several classes: class name -> {lr, lkl, nll_per_point, n}

    def to_dict(self) -> dict:
        return {"lr": self.lr, "lkl": self.lkl, "nll_per_point": self.nll_per_point, "n": self.n,
                "points": self.points, "dropped": self.dropped,
                **({"by_class": self.by_class} if self.by_class is not None else {})}


def evaluate_run(run, data_paths: list[str], splits: list[str] | None = None, batch_size: int | None = None,
                 boxes: list[float] | None = None) -> dict[str, SplitScore]:
    """A run's scores on `.npz` files, per split, as training computes its valid and test costs.

    run: a `sketchrnn.checkpoint.Run`. Each file's drawings are scaled from its box (`boxes`, default
    `sketchrnn.box.dataset_box` of each file) to the run's box, divided by the run's scale factor and
    evaluated in batches of `batch_size` (default the run's) at the final KL weight. `nll_per_point` is
    `point_nll` per point with lengths measured in pixels of a 255 box (the drawings scaled from their
    box to 255: for a data set made by `convert` at its default size, its own pixels), so the same
    drawings stored at any size score the same, and two runs of any box and scale factor compare.
    splits: the splits to score (default every non-empty one)."""
    from .box import check_box, dataset_box
    from .data import load_data
    from .model import kl_weight_at

    hps = run.hps
    if boxes is None:
        boxes = []
        for p in data_paths:
            found = dataset_box(p)
            boxes.append(found if found is not None else DEFAULT_BOX)
    boxes = [check_box(b) for b in boxes]
    data = load_data([str(p) for p in data_paths], hps.max_seq_len, scale_factor=run.scale_factor,
                     classes=list(run.classes) if hps.class_conditional else None,
                     resize=[run.box / b for b in boxes], need_train=False)
    batch_size = batch_size or hps.batch_size
    dev = run.device
    log_k = unit_log_jacobian(run.box, run.scale_factor)
    wanted = splits or [s for s, sp in data.splits.items() if len(sp)]
    out = {}
    for name in wanted:
        split = data.splits[name]
        if len(split) == 0:
            if splits:
                from sketchprep.errors import OptionError

                raise OptionError(f"--split {name}: {', '.join(map(str, data_paths))} hold no {name} drawing of at "
                                  f"most max_seq_len={hps.max_seq_len} points")
            continue
        batches = Batches(split, batch_size, data.target_steps, hps.pad_to_batch)
        classes = list(data.classes) if len(data.classes) > 1 else None
        v = evaluate(run.model, batches, kl_weight_at(hps, max(run.step - 1, 0)), dev, seed=hps.seed,
                     classes=classes, nll_unit=log_k)
        nll = v["nll"] / max(v["points"], 1)
        by_class = None if classes is None or len(v["by_class"]) < 2 else {   # classes with a drawing here
            c: {"lr": m["r_cost"], "lkl": m["kl"] if hps.conditional else None,
                "nll_per_point": m["nll"] / max(m["points"], 1), "n": m["n"]} for c, m in v["by_class"].items()}
        out[name] = SplitScore(v["r_cost"], v["kl"] if hps.conditional else None, nll, v["n"], v["points"],
                               data.dropped.get(name, 0), by_class)
    return out
