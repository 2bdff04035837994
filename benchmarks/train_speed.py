"""Training speed of sketchrnn at the reference defaults, against a plain PyTorch port run in the same process.

    python benchmarks/train_speed.py [--data aaron_sheep.npz] [--steps 3] [--threads 2] [--cells lstm,layer_norm,hyper]
                                     [--impls fused,loop,compile] [--device cpu|cuda]

Every configuration trains the reference default model (batch 100, enc 256, dec 512, z 128, M = 20,
conditional) for `--warmup` + `--steps` steps on the same batches of aaron_sheep (lengths up to 250:
every batch is padded to the dataset's longest sketch + 1) and reports the median time of a full step
(batch to device, forward, backward, per-element clipping, Adam). torch.set_flush_denormal(True) is on
for everything, the baseline included. The configurations are interleaved: step i of every configuration
runs right after the baseline's step i, and a row's ratio is the median of its per-step ratios, which
cancels most of the drift of a shared machine. With 1 thread on a CPU the time is the process's CPU time
(`--clock auto`), which leaves out the time other processes hold the cores; `--clock wall` for elapsed time.

The baseline is "a plain PyTorch port of the reference, the straightforward way": a bidirectional
nn.LSTM encoder over the whole padded batch (it reads the padding: not faithful, but the usual port),
nn.LSTM decoder on [S, z] (no recurrent dropout: nn.LSTM cannot drop the candidate only), the mixture
density in probability space as the reference computes it, clip_grad_value_ and Adam. It is timed in
every round; the ratio column is a configuration's time over the baseline's (below 1 is faster). Rows with recurrent dropout do work the baseline does not do.

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

from sketchrnn.data import Batches, load_data
from sketchrnn.model import HParams, SketchRNN, count_parameters
from sketchrnn.sample import Run, decode

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


CLOCK = time.perf_counter


def time_steps(step_fn, batches, warmup: int, device) -> list[float]:
    times = []
    for i, batch in enumerate(batches):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = CLOCK()
        step_fn(batch, i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(CLOCK() - t0)
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
                if impl == "fast" and cell == "hyper":
                    continue                     # the whole-sequence path covers lstm and layer_norm
                out.append((cell, rd, impl, False, "fp32"))
            if cell == "lstm" and not rd and "fused" in impls:
                out.append((cell, rd, "fused", True, "fp32"))   # + pad each batch to its own longest sketch
    # bfloat16 matrix products (hparam precision=bf16), for the reference's lstm with and without dropout
    for precision in precisions:
        if precision != "fp32" and "lstm" in cells:
            out += [("lstm", False, "fused", False, precision), ("lstm", False, "fused", True, precision)]
            out += [("lstm", True, impl, False, precision) for impl in ("fast", "loop") if impl in impls]
            if "fast" in impls:
                out.append(("lstm", True, "fast", True, precision))
    return out


def auto_impl(cell: str, rd: bool) -> str:
    """What `--rnn-impl auto` runs for this configuration (to mark the rows users get)."""
    model = SketchRNN(HParams(enc_model=cell, dec_model=cell, use_recurrent_dropout=rd, enc_rnn_size=4,
                              dec_rnn_size=4, z_size=2, num_mixture=1, hyper_num_units=4,
                              hyper_embedding_size=2)).train()
    model.set_rnn_impl("auto")
    return model.decoder.rnn.resolved_impl()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--steps", type=int, default=3, help="measured steps per configuration")
    ap.add_argument("--warmup", type=int, default=1, help="untimed steps first (compile runs here)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: what `sketchprep train` uses)")
    ap.add_argument("--cells", default="lstm,layer_norm,hyper")
    ap.add_argument("--impls", default="fused,fast,loop", help="any of fused,fast,loop,compile")
    ap.add_argument("--precisions", default="fp32,bf16", help="bf16 rows are measured for lstm only")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--sample", type=int, default=100, help="drawings for the sampling rate (0: skip)")
    ap.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                    help="cpu: the process's CPU time per step (with 1 thread on a CPU, what a step costs without "
                         "the time other processes hold the cores; auto picks it there), wall: elapsed time")
    args = ap.parse_args(argv)
    global CLOCK
    use_cpu = args.clock == "cpu" or (args.clock == "auto" and args.threads == 1 and args.device == "cpu")
    CLOCK = time.process_time if use_cpu else time.perf_counter
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    device = torch.device(args.device)

    data = load_data([args.data])
    hps = HParams()
    n_steps = args.warmup + args.steps

    def make_batches(pad: bool):
        loader = Batches(data.splits["train"], hps.batch_size, data.target_steps, pad, hps.random_scale_factor,
                         hps.augment_stroke_prob, seed=0)
        return [loader.random_batch(i) for i in range(n_steps)]

    batches = {False: make_batches(False), True: make_batches(True)}
    lengths = np.concatenate([b.lengths for b in batches[False]])
    print(f"data: {args.data}: N_max {data.max_len}, batches of {hps.batch_size} padded to {data.target_steps} "
          f"steps (lengths in these batches: mean {lengths.mean():.0f}, max {lengths.max()})")
    print(f"device: {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, flush-denormal on; "
          f"{'CPU' if use_cpu else 'wall-clock'} time, median of {args.steps} steps after {args.warmup} warm-up; every configuration's step i runs right "
          f"after the baseline's step i (interleaved), and its ratio is the median of those per-step ratios")

    torch.manual_seed(0)
    base_model = PlainPort(hps).to(device).train()
    base_params = count_parameters(base_model)
    runs = [("baseline", baseline_step(base_model, torch.optim.Adam(base_model.parameters()), device), False)]
    specs = configs(args.cells.split(","), args.impls.split(","), args.precisions.split(","))
    for cell, rd, impl, pad, precision in specs:
        h = hps.replace(enc_model=cell, dec_model=cell, use_recurrent_dropout=rd, pad_to_batch=pad, precision=precision)
        torch.manual_seed(0)
        model = SketchRNN(h).to(device).train()
        model.set_rnn_impl(impl)
        runs.append(((cell, rd, impl, pad, precision), ours_step(model, torch.optim.Adam(model.parameters()), device),
                     pad))
    times = {key: [] for key, _, _ in runs}
    failed = {}
    for i in range(n_steps):
        for key, step, pad in runs:
            if key in failed:
                continue
            try:
                t = time_steps(lambda batch, _i, step=step, i=i: step(batch, i), [batches[pad][i]], 0, device)[0]
            except Exception as e:  # noqa: BLE001 (e.g. torch.compile without a working compiler: report, go on)
                failed[key] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
                print(f"  {key}: failed: {failed[key]}", flush=True)
                continue
            times[key].append(t)
        print(f"  step {i + 1}/{n_steps}: baseline {times['baseline'][-1] * 1000:.0f} ms, "
              + ", ".join(f"{k[0]}{'+rd' if k[1] else ''} {k[2]}{' pad' if k[3] else ''} {k[4]} {v[-1] * 1000:.0f}"
                          for k, v in times.items() if k != "baseline" and len(v) == i + 1), flush=True)
    base_times = times["baseline"][args.warmup:]
    base = statistics.median(base_times)

    print()
    print(f"{'model':56s} {'impl':12s} {'ms/step':>8s} {'sketches/s':>10s} {'vs plain port':>13s}")
    print(f"{'plain nn.LSTM port (baseline)':56s} {'nn.LSTM':12s} {base * 1000:8.0f} {hps.batch_size / base:10.1f} "
          f"{'1.00':>13s}   ({base_params:,} params; steps {', '.join(f'{t * 1000:.0f}' for t in base_times)} ms)")
    autos = {}
    for key, _, _ in runs[1:]:
        if key in failed:
            continue
        cell, rd, impl, pad, precision = key
        measured = times[key][args.warmup:]
        t = statistics.median(measured)
        ratio = statistics.median(m / b for m, b in zip(measured, base_times))
        if (cell, rd) not in autos:
            autos[cell, rd] = auto_impl(cell, rd)
        name = f"{cell}, {'recurrent dropout' if rd else 'no rec. dropout'}" + (", pad_to_batch" if pad else "") \
            + (f", precision={precision}" if precision != "fp32" else "")
        label = impl + (" (auto)" if autos[cell, rd] == impl else "")
        print(f"{name:56s} {label:12s} {t * 1000:8.0f} {hps.batch_size / t:10.1f} {ratio:13.2f}")

    if args.sample:
        torch.manual_seed(0)
        model = SketchRNN(hps).to(device).eval()
        run = Run(model, hps, data.scale_factor, data.max_len, [args.data], 0, "benchmark")
        steps = data.target_steps
        t0 = CLOCK()
        decode(run, None, args.sample, temperature=0.5, seed=0, max_steps=steps, stop_early=False)
        batched = CLOCK() - t0
        one_n = 3
        t0 = CLOCK()
        for i in range(one_n):
            decode(run, None, 1, temperature=0.5, seed=i, max_steps=steps, stop_early=False)
        single = (CLOCK() - t0) / one_n
        print()
        print(f"sampling (default lstm model, {steps} steps per drawing): {args.sample} drawings in one batch: "
              f"{args.sample / batched:.1f} drawings/s; one at a time: {1 / single:.2f} drawings/s "
              f"(batched is {single * args.sample / batched:.0f}x faster)")


if __name__ == "__main__":
    main()
