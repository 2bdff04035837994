"""Training speed of sketchrnn at the reference defaults, against a plain PyTorch port run in the same process.

    python benchmarks/train_speed.py [--data aaron_sheep.npz] [--steps 3] [--threads 2] [--cells lstm,layer_norm,hyper]
                                     [--impls fused,loop,compile] [--device cpu|cuda]

Every configuration trains the reference default model (batch 100, enc 256, dec 512, z 128, M = 20,
conditional) for `--warmup` + `--steps` steps on the same batches of aaron_sheep (lengths up to 250:
every batch is padded to the dataset's longest sketch + 1) and reports the median time of a full step
(batch to device, forward, backward, per-element clipping, Adam). torch.set_flush_denormal(True) is on
for everything, the baseline included.

The baseline is "a plain PyTorch port of the reference, the straightforward way": a bidirectional
nn.LSTM encoder over the whole padded batch (it reads the padding: not faithful, but the usual port),
nn.LSTM decoder on [S, z] (no recurrent dropout: nn.LSTM cannot drop the candidate only), the mixture
density in probability space as the reference computes it, clip_grad_value_ and Adam. It is timed at
the start and at the end of the run; the ratio column divides each configuration's time by the
baseline's median (below 1 is faster). Rows with recurrent dropout do work the baseline does not do.

Sampling: drawings per second of `sketchrnn.sample.decode` with all drawings in one batch, against
decoding one drawing at a time (the reference's sample() loop, batch 1), both running the full
N_max + 1 steps per drawing as the reference does (the default model is untrained, so where a
drawing would end means nothing).
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sketchrnn.data import Batches, load_data  # noqa: E402
from sketchrnn.model import HParams, SketchRNN, count_parameters  # noqa: E402
from sketchrnn.sample import Run, decode  # noqa: E402

DEFAULT_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sketchrnn_npz",
                            "aaron_sheep.npz")


class PlainPort(nn.Module):
    """The straightforward PyTorch port of the reference model (the baseline)."""

    def __init__(self, hps: HParams):
        super().__init__()
        self.hps = hps
        self.enc = nn.LSTM(5, hps.enc_rnn_size, bidirectional=True)
        self.mu = nn.Linear(2 * hps.enc_rnn_size, hps.z_size)
        self.presig = nn.Linear(2 * hps.enc_rnn_size, hps.z_size)
        self.init = nn.Linear(hps.z_size, 2 * hps.dec_rnn_size)
        self.dec = nn.LSTM(5 + hps.z_size, hps.dec_rnn_size)
        self.out = nn.Linear(hps.dec_rnn_size, 3 + 6 * hps.num_mixture)

    def forward(self, x: torch.Tensor, kl_weight: float) -> torch.Tensor:
        x = x.transpose(0, 1)                                   # (T+1, B, 5)
        target, dec_in = x[1:], x[:-1]
        _, (h, _) = self.enc(target)                            # the whole padded batch
        h = torch.cat([h[0], h[1]], 1)
        mu, presig = self.mu(h), self.presig(h)
        z = mu + torch.exp(presig / 2) * torch.randn_like(mu)
        c0, h0 = torch.tanh(self.init(z)).chunk(2, 1)
        t, b = dec_in.shape[:2]
        y, _ = self.dec(torch.cat([dec_in, z[None].expand(t, b, z.shape[1])], 2), (h0[None].contiguous(),
                                                                                  c0[None].contiguous()))
        o = self.out(y)
        m = self.hps.num_mixture
        pen_logits = o[..., :3]
        pi, mu1, mu2, s1, s2, rho = o[..., 3:].split(m, -1)
        pi, s1, s2, rho = torch.softmax(pi, -1), torch.exp(s1), torch.exp(s2), torch.tanh(rho)
        x1, x2 = target[..., :1], target[..., 1:2]
        n1, n2 = (x1 - mu1) / s1, (x2 - mu2) / s2
        zz = n1 ** 2 + n2 ** 2 - 2 * rho * n1 * n2
        neg_rho = 1 - rho ** 2
        dens = torch.exp(-zz / (2 * neg_rho)) / (2 * math.pi * s1 * s2 * torch.sqrt(neg_rho))
        ls = -torch.log((pi * dens).sum(-1) + 1e-6) * (1 - target[..., 4])
        lp = -(target[..., 2:] * torch.log_softmax(pen_logits, -1)).sum(-1)
        r = (ls + lp).mean()
        kl = -0.5 * torch.mean(1 + presig - mu ** 2 - torch.exp(presig))
        return r + kl_weight * torch.clamp_min(kl, self.hps.kl_tolerance)


def time_steps(step_fn, batches, warmup: int, device) -> list[float]:
    times = []
    for i, batch in enumerate(batches):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        step_fn(batch, i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def baseline_step(model, opt, device):
    def step(batch, i):
        x = torch.from_numpy(batch.strokes5).to(device)
        cost = model(x, 0.01)
        opt.zero_grad(set_to_none=True)
        cost.backward()
        nn.utils.clip_grad_value_(model.parameters(), 1.0)
        opt.step()
    return step


def ours_step(model, opt, device):
    def step(batch, i):
        x = torch.from_numpy(batch.strokes5).to(device)
        gen = torch.Generator(device=device).manual_seed(i)
        losses = model(x, torch.from_numpy(batch.lengths), batch.norm_steps, 0.01, gen)
        opt.zero_grad(set_to_none=True)
        losses.cost.backward()
        nn.utils.clip_grad_value_(model.parameters(), 1.0)
        opt.step()
    return step


def configs(cells, impls, precisions):
    """(cell, recurrent dropout, impl, pad_to_batch, precision) to measure."""
    out = []
    for cell in cells:
        for rd in (False, True):
            for impl in impls:
                if impl == "fused" and (cell != "lstm" or rd):
                    continue                     # the fused kernel only runs the plain lstm without dropout
                out.append((cell, rd, impl, False, "fp32"))
            if cell == "lstm" and not rd and "fused" in impls:
                out.append((cell, rd, "fused", True, "fp32"))   # + pad each batch to its own longest sketch
    # bfloat16 matrix products (hparam precision=bf16), for the reference's lstm with and without dropout
    for precision in precisions:
        if precision != "fp32" and "lstm" in cells:
            out += [("lstm", False, "fused", False, precision), ("lstm", False, "fused", True, precision),
                    ("lstm", True, "loop", False, precision)]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--steps", type=int, default=3, help="measured steps per configuration")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (compile runs here)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cells", default="lstm,layer_norm,hyper")
    ap.add_argument("--impls", default="fused,loop,compile")
    ap.add_argument("--precisions", default="fp32,bf16", help="bf16 rows are measured for lstm only")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sample", type=int, default=100, help="drawings for the sampling rate (0: skip)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    device = torch.device(args.device)

    data = load_data([args.data])
    hps = HParams()
    loader = Batches(data.splits["train"], hps.batch_size, data.target_steps, False, hps.random_scale_factor,
                     hps.augment_stroke_prob, seed=0)
    batches = [loader.random_batch(i) for i in range(args.warmup + args.steps)]
    lengths = np.concatenate([b.lengths for b in batches])
    print(f"data: {args.data}: N_max {data.max_len}, batches of {hps.batch_size} padded to {data.target_steps} "
          f"steps (lengths in these batches: mean {lengths.mean():.0f}, max {lengths.max()})")
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, flush-denormal on; "
          f"median of {args.steps} steps after {args.warmup} warm-up")

    def run_baseline():
        torch.manual_seed(0)
        model = PlainPort(hps).to(device).train()
        return time_steps(baseline_step(model, torch.optim.Adam(model.parameters()), device), batches,
                          args.warmup, device), count_parameters(model)

    base_times, base_params = run_baseline()
    rows = []
    for cell, rd, impl, pad, precision in configs(args.cells.split(","), args.impls.split(","),
                                                  args.precisions.split(",")):
        h = hps.replace(enc_model=cell, dec_model=cell, use_recurrent_dropout=rd, pad_to_batch=pad, precision=precision)
        torch.manual_seed(0)
        model = SketchRNN(h).to(device).train()
        model.set_rnn_impl(impl)
        run_batches = batches
        if pad:
            loader_b = Batches(data.splits["train"], hps.batch_size, data.target_steps, True,
                               hps.random_scale_factor, hps.augment_stroke_prob, seed=0)
            run_batches = [loader_b.random_batch(i) for i in range(args.warmup + args.steps)]
        t0 = time.perf_counter()
        try:
            times = time_steps(ours_step(model, torch.optim.Adam(model.parameters()), device), run_batches,
                               args.warmup, device)
        except Exception as e:  # e.g. torch.compile without a working compiler
            print(f"  {cell} rd={rd} {impl}: failed: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
            continue
        total = time.perf_counter() - t0
        rows.append((cell, rd, impl, pad, precision, statistics.median(times), total - sum(times)))
        print(f"  measured {cell:10s} recurrent_dropout={str(rd):5s} {impl:7s}{' pad_to_batch' if pad else ''} "
              f"{precision}: {statistics.median(times) * 1000:.0f} ms/step", flush=True)
    base_times += run_baseline()[0]
    base = statistics.median(base_times)

    print()
    print(f"{'model':40s} {'impl':8s} {'ms/step':>8s} {'sketches/s':>10s} {'vs plain port':>13s}")
    print(f"{'plain nn.LSTM port (baseline)':40s} {'nn.LSTM':8s} {base * 1000:8.0f} {hps.batch_size / base:10.1f} "
          f"{'1.00':>13s}   ({base_params:,} params; runs {', '.join(f'{t * 1000:.0f}' for t in base_times)} ms)")
    for cell, rd, impl, pad, precision, t, warm in rows:
        name = f"{cell}, {'recurrent dropout' if rd else 'no rec. dropout'}" + (", pad to batch" if pad else "") \
            + (f", {precision}" if precision != "fp32" else "")
        extra = f"   (first steps +{warm:.0f} s: compiling)" if impl == "compile" and warm > 5 else ""
        print(f"{name:40s} {impl:8s} {t * 1000:8.0f} {hps.batch_size / t:10.1f} {t / base:13.2f}{extra}")

    if args.sample:
        torch.manual_seed(0)
        model = SketchRNN(hps).to(device).eval()
        run = Run(model, hps, data.scale_factor, data.max_len, [args.data], 0, "benchmark")
        steps = data.target_steps
        t0 = time.perf_counter()
        decode(run, None, args.sample, temperature=0.5, seed=0, max_steps=steps, stop_early=False)
        batched = time.perf_counter() - t0
        one_n = 3
        t0 = time.perf_counter()
        for i in range(one_n):
            decode(run, None, 1, temperature=0.5, seed=i, max_steps=steps, stop_early=False)
        single = (time.perf_counter() - t0) / one_n
        print()
        print(f"sampling (default lstm model, {steps} steps per drawing): {args.sample} drawings in one batch: "
              f"{args.sample / batched:.1f} drawings/s; one at a time: {1 / single:.2f} drawings/s "
              f"(batched is {single * args.sample / batched:.0f}x faster)")


if __name__ == "__main__":
    main()
