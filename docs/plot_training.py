"""Plot a training run's metrics.jsonl (the README's loss curve).

    python docs/plot_training.py RUN_DIR OUT.png [--title TEXT]

Top: reconstruction cost (train, averaged per logged interval; valid, every evaluation). Bottom: KL
(train and valid, before the kl_tolerance floor) with the annealed KL weight. Needs matplotlib.
"""
from __future__ import annotations

import argparse
import json
import os


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--title", default=None)
    args = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(os.path.join(args.run, "metrics.jsonl")) if line.strip()]
    train = [r for r in rows if r["split"] == "train"]
    valid = [r for r in rows if r["split"] == "valid"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True, height_ratios=[3, 2])
    top.plot([r["step"] for r in train], [r["r_cost"] for r in train], lw=0.8, color="#9bb7d4", label="train recon")
    top.plot([r["step"] for r in valid], [r["r_cost"] for r in valid], "o-", ms=3, lw=1.4, color="#1f4e8c",
             label="valid recon")
    best = min(valid, key=lambda r: r["cost"]) if valid else None
    if best:
        top.axvline(best["step"], color="#999", lw=0.8, ls=":")
        top.annotate(f"best valid cost {best['cost']:.3f}\n(recon {best['r_cost']:.3f}) at step {best['step']}",
                     (best["step"], best["r_cost"]), textcoords="offset points", xytext=(-150, 30), fontsize=8)
    top.set_ylabel("reconstruction cost")
    top.legend(loc="upper right", fontsize=8)
    top.grid(alpha=0.3)
    bottom.plot([r["step"] for r in train], [r["kl"] for r in train], lw=0.8, color="#e0a98c", label="train KL")
    bottom.plot([r["step"] for r in valid], [r["kl"] for r in valid], "o-", ms=3, lw=1.4, color="#b3541e",
                label="valid KL")
    bottom.set_ylabel("KL")
    bottom.set_xlabel("step")
    bottom.grid(alpha=0.3)
    weight = bottom.twinx()
    weight.plot([r["step"] for r in train], [r["kl_weight"] for r in train], lw=1, color="#555", ls="--",
                label="KL weight")
    weight.set_ylabel("KL weight")
    lines = bottom.get_legend_handles_labels()[0] + weight.get_legend_handles_labels()[0]
    bottom.legend(lines, [ln.get_label() for ln in lines], loc="upper right", fontsize=8)
    if args.title:
        top.set_title(args.title, fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}: {len(train)} train and {len(valid)} valid points")


if __name__ == "__main__":
    main()
