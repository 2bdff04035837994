"""One model for several classes: the valid reconstruction cost of each class, class-conditional against
unconditional, with and without balanced batches, after the same steps.

    python benchmarks/class_conditional.py --out bench/classes [--steps 2000] [--only cond_none,uncond_none]
                                           [--vae] [--threads 1]

The data: three real datasets of very different drawings and unequal size, one class per file (as `train`
names the classes of files without labels): 6,000 Omniglot characters, 1,500 of aaron_sheep's sheep and
300 KanjiVG kanji (train drawings drawn at random with seed 0; the first 300 valid and test drawings of
each), written to OUT/data/{omniglot,sheep,kanji}.npz.

The runs: a decoder-only model (dec 128 lstm, M 20, batch 50, no recurrent dropout, batches padded to their
own longest sketch, seed 0), unconditional or class-conditional (a 32-d class embedding), with the
reference's plain shuffle (class_balance=none: each class as often as it has drawings) or class_balance=equal
(or sqrt); every run takes the same number of steps. Each run goes to OUT/NAME (a run already holding
`--steps` steps is not trained again, so runs can be split over several processes with --only). Then each
run's latest.pt is evaluated on every class's valid drawings apart (`sketchrnn.evaluation.evaluate_by_class`)
and a table of recon costs is printed (lower is better; the whole valid split is the mean of the classes,
which all have 300 drawings), then the costs by class of every evaluation of each run, from its
metrics.jsonl.

--vae: the same with a conditional VAE (enc 64, z 32) instead, and a third variant in which the encoder reads
the class as well (its class embedding concatenated to the encoder's final states before mu and sigma, the
usual conditional-VAE encoder q(z | x, c)), defined in this script only: the question is whether it
measures better than the decoder alone reading the class.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sketchprep.dataset import load_dataset, save_dataset
from sketchrnn import model as model_module
from sketchrnn.checkpoint import LATEST, load_checkpoint, load_run
from sketchrnn.data import Batches, load_data
from sketchrnn.evaluation import evaluate_by_class
from sketchrnn.model import HParams
from sketchrnn.train import train

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "sketchrnn_npz")
SOURCES = [("sheep", "aaron_sheep.npz", 1500), ("kanji", "kanji.rdp200.npz", 300), ("omniglot", "omniglot.npz", 6000)]
ORDER = ["omniglot", "sheep", "kanji"]          # the files in train's order: the class list
DECODER = dict(conditional=False, dec_rnn_size=128, num_mixture=20, batch_size=50, use_recurrent_dropout=False,
               pad_to_batch=True, save_every=500)
VAE = dict(conditional=True, enc_rnn_size=64, z_size=32, dec_rnn_size=128, num_mixture=20, batch_size=50,
           use_recurrent_dropout=False, pad_to_batch=True, save_every=500)
RUNS = {"uncond_none": {}, "cond_none": {"class_conditional": True},
        "uncond_equal": {"class_balance": "equal"}, "cond_equal": {"class_conditional": True, "class_balance": "equal"},
        "uncond_sqrt": {"class_balance": "sqrt"}, "cond_sqrt": {"class_conditional": True, "class_balance": "sqrt"}}
VAE_RUNS = {"vae_uncond": {}, "vae_cond": {"class_conditional": True},
            "vae_cond_enc": {"class_conditional": True, "encoder_reads_class": True}}


def make_data(folder: str, data_dir: str) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, source, n in SOURCES:
        path = os.path.join(folder, f"{name}.npz")
        ds = load_dataset(os.path.join(data_dir, source))
        train_split = ds.splits["train"]
        pick = rng.choice(len(train_split), n, replace=False)   # drawn in this order whether or not written
        if not os.path.exists(path):
            save_dataset(path, {"train": [train_split[i] for i in pick], "valid": ds.splits["valid"][:300],
                                "test": ds.splits["test"][:300]})
    return [os.path.join(folder, f"{name}.npz") for name in ORDER]


def encoder_reads_class() -> None:
    """Patch SketchRNN so that a class-conditional VAE's encoder also reads the class (this script only)."""
    base_init, base_forward = model_module.SketchRNN.__init__, model_module.SketchRNN.forward

    def __init__(self, hps):
        base_init(self, hps)
        if hps.conditional and hps.class_conditional:
            enc = self.encoder
            width = 2 * hps.enc_rnn_size + hps.class_embedding_size
            enc.mu = model_module._gaussian_linear(width, hps.z_size)
            enc.presig = model_module._gaussian_linear(width, hps.z_size)
            fw_last = enc.fw.last_output

            def forward(x, lengths, generator=None, _enc=enc):
                lengths = lengths.cpu()
                x = x[:int(lengths.max())]
                h = torch.cat([fw_last(x, lengths, generator),
                               _enc.bw.last_output(model_module.reverse_within_lengths(x, lengths), lengths,
                                                   generator), self._c], 1)
                return _enc.mu(h), _enc.presig(h)

            enc.forward = forward

    def forward(self, strokes5, lengths, norm_steps, kl_weight, generator=None, eps=None, labels=None):
        if self.hps.class_conditional and labels is not None:
            self._c = self.decoder.class_vectors(labels.to(strokes5.device))
        return base_forward(self, strokes5, lengths, norm_steps, kl_weight, generator, eps, labels)

    model_module.SketchRNN.__init__, model_module.SketchRNN.forward = __init__, forward


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-dir", default=SHARED)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--only", default=None, help="comma-separated run names (default: every run)")
    ap.add_argument("--vae", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="the runs' seed (folders NAME_sN for a seed other than 0)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    files = make_data(os.path.join(args.out, "data"), args.data_dir)
    runs, base = (VAE_RUNS, VAE) if args.vae else (RUNS, DECODER)
    names = args.only.split(",") if args.only else list(runs)
    if any(runs[n].get("encoder_reads_class") for n in names):
        if len(names) > 1:
            sys.exit("run vae_cond_enc alone (--only vae_cond_enc): it patches the model class")
        encoder_reads_class()
    folders = {name: os.path.join(args.out, name + (f"_s{args.seed}" if args.seed else "")) for name in names}
    for name in names:
        folder = folders[name]
        latest = os.path.join(folder, LATEST)
        if os.path.exists(latest) and load_checkpoint(latest)["step"] >= args.steps:
            continue
        hps = HParams(**base, **{k: v for k, v in runs[name].items() if k != "encoder_reads_class"}, seed=args.seed)
        t0 = time.process_time()
        train(files, folder, hps, max_steps=args.steps, samples=0)
        print(f"{name}: {args.steps} steps in {time.process_time() - t0:.0f} s of CPU time", file=sys.stderr)
    table = {}
    for name in names:
        run = load_run(folders[name], checkpoint="latest")
        data = load_data(files, run.hps.max_seq_len, run.scale_factor, classes=run.classes or None)
        batches = Batches(data.splits["valid"], 50, data.target_steps, True)
        kl_w = model_module.kl_weight_at(run.hps, run.step - 1)
        table[name] = (run.step, evaluate_by_class(run.model, batches, data.classes, kl_w, torch.device("cpu"),
                                                   seed=run.hps.seed))
    counts = {name: len(load_dataset(f).splits["train"]) for name, f in zip(ORDER, files)}
    print("| class (train drawings) | " + " | ".join(f"{n} (step {s})" for n, (s, _) in table.items()) + " |")
    print("|---|" + "---:|" * len(table))
    for klass in ORDER:
        print(f"| {klass} ({counts[klass]:,}) | "
              + " | ".join(f"{per[klass]['r_cost']:.4f}" + (f" (kl {per[klass]['kl']:.3f})" if args.vae else "")
                           for _, per in table.values()) + " |")
    print("| mean of the classes | " + " | ".join(
        f"{np.mean([p['r_cost'] for p in per.values()]):.4f}" for _, per in table.values()) + " |")
    # every evaluation of each run (train logs the valid costs by class in metrics.jsonl)
    print("\n| run | step | " + " | ".join(ORDER) + " | mean |\n|---|---:|" + "---:|" * (len(ORDER) + 1))
    for name in names:
        with open(os.path.join(folders[name], "metrics.jsonl")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        for row in rows:
            if row["split"] == "valid" and "by_class" in row:
                costs = [row["by_class"][k]["r_cost"] for k in ORDER]
                print(f"| {name} | {row['step']} | " + " | ".join(f"{c:.4f}" for c in costs)
                      + f" | {np.mean(costs):.4f} |")


if __name__ == "__main__":
    main()
