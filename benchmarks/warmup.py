"""What the first steps of a fresh Adam do to a trained model, with and without the learning-rate warm-up.

    python benchmarks/warmup.py RUN DATA.npz [--steps 30] [--lr 1e-4] [--warmup 50] [--batch 100]

RUN is a run folder (an imported model: `sketchprep import MODEL.gen.json --out RUN`). One fixed batch: the
first `--batch` train drawings of DATA in a seeded order, scaled from DATA's box to the run's and divided by
its scale factor, as `train --init` reads them (no augmentation, no dropout: the model's own hparams). For
each schedule the model starts from RUN's weights with a fresh torch Adam, takes `--steps` steps on that
batch (gradients clipped per element at grad_clip, as training does) and prints the batch's
reconstruction cost before each step:

  constant   the learning rate from the first step (what `--resume` of an imported model did before)
  warm-up    lr x (t + 1) / warmup for t < warmup (`train --init`, `warmup_steps`)
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))


def main() -> None:
    import torch

    from sketchrnn.box import dataset_box
    from sketchrnn.checkpoint import load_run
    from sketchrnn.data import Batches, load_data

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("data")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--batch", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    run = load_run(args.run)
    hps = run.hps
    data = load_data([args.data], hps.max_seq_len, scale_factor=run.scale_factor,
                     resize=run.box / (dataset_box(args.data) or run.box))
    split = data.splits["train"]
    picks = np.random.default_rng(0).permutation(len(split))[:args.batch]
    batch = Batches(split, args.batch, data.target_steps)._make(picks, None)
    x, lengths = torch.from_numpy(batch.strokes5), torch.from_numpy(batch.lengths)
    start = {k: v.clone() for k, v in run.model.state_dict().items()}
    print(f"{args.run} (box {run.box:.0f}, scale factor {run.scale_factor:.4g}) on {args.batch} drawings of "
          f"{args.data}; lr {args.lr:g}")
    costs = {}
    for name in ("constant", "warm-up"):
        model = run.model
        model.load_state_dict(start)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
        row = []
        for t in range(args.steps + 1):
            gen = torch.Generator().manual_seed(t)
            losses = model(x, lengths, batch.norm_steps, 0.0, gen)
            row.append(float(losses.r_cost.detach()))
            if t == args.steps:
                break
            for group in opt.param_groups:
                group["lr"] = args.lr * (min(1.0, (t + 1) / args.warmup) if name == "warm-up" else 1.0)
            opt.zero_grad(set_to_none=True)
            losses.cost.backward()
            torch.nn.utils.clip_grad_value_(model.parameters(), hps.grad_clip)
            opt.step()
        costs[name] = row
        print(f"{name:9} " + " ".join(f"{c:.3f}" for c in row), flush=True)
    print("| steps done | " + " | ".join(costs) + " |")
    print("|---:|" + "---:|" * len(costs))
    for t in sorted({0, 1, 2, 5, 10, 20, args.steps}):
        if t <= args.steps:
            print(f"| {t} | " + " | ".join(f"{costs[n][t]:.3f}" for n in costs) + " |")


if __name__ == "__main__":
    main()
