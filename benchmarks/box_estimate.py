"""Which estimate of a published model's drawing box is right: measured against the likelihood of real drawings.

    python benchmarks/box_estimate.py MODELS_DIR DRAWINGS_DIR [--names cat,owl,flamingo,dog,bus] [--seeds 3]

For each MODELS_DIR/NAME.gen.json with drawings DRAWINGS_DIR/NAME.ndjson (Quick, Draw! simplified: the 255
box), the drawings are converted as `convert` does (all in the test split), and the model is scored with
`sketchrnn.evaluation.evaluate_run` (`evaluate`'s nll_per_point: nats per point, lengths in pixels of the 255
box) with its box set to 255 x {1, 1.5, 2, 2.5, 3, 3.5} (what `import --size` sets). The best of these is what
an estimate must come close to. The estimates, none of which sees the drawings:

  samples T     the median larger extent of 200 of the model's own drawings at temperature T
                (sketchrnn.sample.estimate_box; `import` uses ESTIMATE_TEMPERATURE), one row per seed
  generic       the best of the same grid on other classes' drawings (the bundled sample, 12 classes)
  scale factor  255 x the model's scale factor / the std of the bundled sample's offsets in the 255 box

Prints, per estimate, each model's box and its nll_per_point minus the grid's best (the gap; <= 0.1 passes
the acceptance test in tests/test_pretrained.py), and the worst and mean gap.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

GRID = (1, 1.5, 2, 2.5, 3, 3.5)
TEMPERATURES = (0.25, 0.5, 1.0)


def convert(inputs: list[str], out: str) -> str:
    subprocess.run([sys.executable, "-m", "sketchprep", "convert", *inputs, out, "--split", "0/0/1", "--multiple", "1",
                    "-q"], check=True)
    return out


def main() -> None:
    import torch

    from sketchprep.dataset import load_dataset
    from sketchrnn.checkpoint import Run
    from sketchrnn.evaluation import evaluate_run
    from sketchrnn.magenta_js import read_js_model
    from sketchrnn.model import SketchRNN
    from sketchrnn.sample import estimate_box

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models")
    ap.add_argument("drawings")
    ap.add_argument("--names", default="cat,owl,flamingo,dog,bus")
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp()
    sample_dir = os.path.join(HERE, "..", "sketchprep", "data", "quickdraw_sample")
    generic = convert([sample_dir], os.path.join(tmp, "generic.npz"))
    offsets = np.concatenate([np.asarray(s, np.float64)[:, :2] for s in load_dataset(generic).splits["test"]])
    generic_std = float(np.std(offsets))
    gaps: dict[str, list[tuple[str, float, float]]] = {}
    for name in args.names.split(","):
        hps, state, scale, _ = read_js_model(os.path.join(args.models, f"{name}.gen.json"))
        model = SketchRNN(hps)
        model.load_state_dict(state)
        run = Run(model.eval(), hps, scale, hps.max_seq_len, [], 0, name)
        data = convert([os.path.join(args.drawings, f"{name}.ndjson")], os.path.join(tmp, f"{name}.npz"))

        def nll(box: float, on: str = data) -> float:
            return evaluate_run(dataclasses.replace(run, box=box), [on], ["test"])["test"].nll_per_point

        grid = {f: nll(255.0 * f) for f in GRID}
        best = min(grid.values())
        print(f"{name}: scale factor {scale:.4g}; nll_per_point at 255 x "
              + ", ".join(f"{f}: {v:.3f}" for f, v in grid.items()), flush=True)

        def add(label: str, box: float) -> None:
            gaps.setdefault(label, []).append((name, box, nll(box) - best))

        for t in TEMPERATURES:
            for seed in range(args.seeds):
                add(f"samples T={t}", estimate_box(run, temperature=t, seed=seed))
        on_generic = {f: nll(255.0 * f, generic) for f in GRID}
        add("generic", 255.0 * min(on_generic, key=on_generic.get))
        add("scale factor", 255.0 * scale / generic_std)
    print(f"\n(std of the bundled sample's offsets in the 255 box: {generic_std:.2f})")
    print("| estimate | worst gap | mean gap | boxes (gap) |")
    print("|---|---:|---:|---|")
    for label, rows in gaps.items():
        cells = ", ".join(f"{n} {b:.0f} ({g:+.3f})" for n, b, g in rows)
        print(f"| {label} | {max(g for *_, g in rows):+.3f} | {np.mean([g for *_, g in rows]):+.3f} | {cells} |")


if __name__ == "__main__":
    main()
