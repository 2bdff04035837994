"""Loss curves of a training run, drawn from its metrics.jsonl (`sketchprep plot RUN`).

Top: reconstruction cost (train, averaged per logged interval; valid, at every evaluation), with the
best valid cost marked. Bottom: KL (train and valid, before the kl_tolerance floor) and the annealed
KL weight on its own axis. Needs matplotlib (the `plot` extra). Reads JSON only: no torch.
"""
from __future__ import annotations

import io
import json
import math
import os
from dataclasses import dataclass

from .dataset import atomic_output
from .errors import InputError, OptionError, SketchprepError
from .files import METRICS_BYTES, open_regular

METRICS = "metrics.jsonl"
FORMATS = ("png", "svg", "pdf")


@dataclass
class CurvesResult:
    path: str
    train_points: int
    valid_points: int
    best_step: int | None
    best_cost: float | None


def read_metrics(run: str | os.PathLike) -> list[dict]:
    """The rows of a run folder's metrics.jsonl (or of that file itself)."""
    path = os.path.join(run, METRICS) if os.path.isdir(run) else str(run)
    rows = []
    try:
        with io.TextIOWrapper(open_regular(path, "a metrics.jsonl", METRICS_BYTES), encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError:
                    if not line.endswith("\n"):
                        break    # the last line of a run that is writing it right now
                    raise InputError("not a JSON line (is this a `train` metrics.jsonl?)", path=path, line=n) from None
                problem = _row_problem(row)
                if problem:
                    raise InputError(f"{problem} (is this a `train` metrics.jsonl?)", path=path, line=n)
                rows.append(row)
    except FileNotFoundError:
        raise InputError(f"no {METRICS} here: give a `sketchprep train --out` folder", path=str(run)) from None
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", path=path) from None
    return rows


DRAWN = ("cost", "r_cost", "kl")   # what the curves draw from a train or valid row


def _number(value) -> bool:   # NaN and infinity too: a diverged evaluation is drawn as a gap, not refused
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _row_problem(row) -> str | None:
    """What makes a metrics row unusable (None when nothing): every field the curves read, typed."""
    if not isinstance(row, dict) or not isinstance(row.get("split"), str) or "step" not in row:
        return "a row without split and step"
    step = row["step"]
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        return f"step {step!r:.40} is not a whole number >= 0"
    if row["split"] in ("train", "valid") and any(k in row for k in DRAWN):
        for key in DRAWN + (("kl_weight",) if "kl_weight" in row else ()):
            if not _number(row.get(key)):
                return (f"a {row['split']} row without '{key}'" if key not in row else
                        f"{key} {row[key]!r:.40} is not a number")
    return None


def plot_curves(run: str | os.PathLike, output: str | os.PathLike, title: str | None = None) -> CurvesResult:
    """Draw a run's loss curves into `output` (.png, .svg or .pdf: matplotlib's format from the extension)."""
    fmt = os.path.splitext(str(output))[1].lstrip(".").lower()
    if fmt not in FORMATS:
        raise OptionError(f"-o {output}: the picture must end in {', '.join('.' + f for f in FORMATS)}")
    rows = read_metrics(run)
    train = [r for r in rows if r["split"] == "train" and "r_cost" in r]   # every field checked by read_metrics
    valid = [r for r in rows if r["split"] == "valid" and "r_cost" in r]
    if not train and not valid:
        raise InputError("no train or valid rows yet: the run has not logged a step", path=str(run))
    try:
        import matplotlib
    except ImportError:
        raise SketchprepError("drawing curves needs matplotlib: pip install 'sketchprep[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True, height_ratios=[3, 2])
    top.plot([r["step"] for r in train], [r["r_cost"] for r in train], lw=0.8, color="#9bb7d4", label="train recon")
    top.plot([r["step"] for r in valid], [r["r_cost"] for r in valid], "o-", ms=3, lw=1.4, color="#1f4e8c",
             label="valid recon")
    finite = [r for r in valid if math.isfinite(r["cost"])]
    best = min(finite, key=lambda r: r["cost"]) if finite else None
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
    weight.plot([r["step"] for r in train], [r.get("kl_weight", 0.0) for r in train], lw=1, color="#555", ls="--",
                label="KL weight")
    weight.set_ylabel("KL weight")
    lines = bottom.get_legend_handles_labels()[0] + weight.get_legend_handles_labels()[0]
    bottom.legend(lines, [ln.get_label() for ln in lines], loc="upper right", fontsize=8)
    if title:
        top.set_title(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    try:
        fig.savefig(buf, dpi=100, format=fmt)
    finally:
        plt.close(fig)
    with atomic_output(output) as f:
        f.write(buf.getvalue())
    return CurvesResult(str(output), len(train), len(valid), best["step"] if best else None,
                        best["cost"] if best else None)
