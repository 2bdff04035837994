"""stroke5: per split the padded float32 `(N, N_max + 1, 5)` array that sketch-rnn's batching builds.

Row 0 of every drawing is the start token `[0, 0, 1, 0, 0]`, rows 1..n its n stroke-3 rows as stroke-5
(`[dx, dy, 1 - p, p, 0]`, offsets clamped to +-1000 as the reference loader does), every later row
`[0, 0, 0, 0, 1]` (see `sketchprep.strokes`). N_max is `--max-len` (a drawing longer than it is left out,
counted) or by default the longest drawing + 1, which is what `sketchrnn.data` pads to (every drawing keeps
an end-of-sketch row) and what labml's `StrokesDataset` builds. `--normalize` divides the offsets by the
train split's scale factor (the standard deviation of its dx and dy pooled), as training does.

Keys: `<split>` (the array), `<split>_lengths` (int64 rows of each drawing), `<split>_labels` (int64 class
index), `<split>_ids`, and `meta` (JSON: N_max, the scale factor, the class names, what was left out).
No key needs a pickle.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np

from .. import __version__
from ..dataset import SketchDataset
from ..errors import OptionError
from ..outputs import atomic_output
from ..strokes import START_TOKEN, _ranges
from .common import SplitArrays, SplitView, StreamedArray, all_splits, block_size, write_members
from .export import MAX_STEPS, ExportOptions, ExportSummary

CLAMP = 1000.0  # the reference loader's `limit`


def kept(part: SplitView, max_len: int | None) -> np.ndarray:
    """Indices of the drawings that fit: non-empty, at most `max_len` rows (as training keeps them)."""
    lengths = np.diff(part.row_offsets)
    fits = lengths > 0
    if max_len is not None:
        fits &= lengths <= max_len
    return np.flatnonzero(fits)


def scale_factor(train: SplitView, keep: np.ndarray) -> float:
    """What training divides offsets by: the population standard deviation of the train split's dx and dy
    values pooled, after clamping, from float32 (sketchrnn.data.normalizing_scale_factor)."""
    rows = clamped(train.block(0, train.n), keep)
    return float(np.std(rows[:, :2].astype(np.float64))) if len(rows) else 1.0


def clamped(part: SplitArrays, keep: np.ndarray) -> np.ndarray:
    """The kept drawings' rows, clamped to +-CLAMP, as float32."""
    lengths = np.diff(part.row_offsets)[keep]
    rows = part.rows[_ranges(part.row_offsets[keep], lengths)]
    return np.clip(rows, -CLAMP, CLAMP).astype(np.float32)


def padded(part: SplitArrays, keep: np.ndarray, n_max: int, scale: float | None) -> np.ndarray:
    """(len(keep), n_max + 1, 5) float32 stroke-5 of the kept drawings."""
    lengths = np.diff(part.row_offsets)[keep]
    rows = clamped(part, keep)
    if scale is not None:
        rows[:, :2] /= np.float32(scale)
    out = np.zeros((len(keep), n_max + 1, 5), dtype=np.float32)
    out[:, 0] = START_TOKEN
    if len(keep):
        drawing = np.repeat(np.arange(len(keep)), lengths)
        step = 1 + np.arange(len(rows)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        out[drawing, step, 0:2] = rows[:, 0:2]
        out[drawing, step, 3] = rows[:, 2]
        out[drawing, step, 2] = 1.0 - rows[:, 2]
        out[np.arange(n_max + 1)[None, :] > lengths[:, None], 4] = 1.0
    return out


def write(ds: SketchDataset, out: str, opts: ExportOptions, progress: Callable[[int], None]) -> ExportSummary:
    parts = all_splits(ds)
    keeps = {p.name: kept(p, opts.max_len) for p in parts}
    longest = max((int(np.diff(p.row_offsets)[keeps[p.name]].max()) for p in parts if len(keeps[p.name])), default=0)
    if opts.max_len is None and longest + 1 > MAX_STEPS:
        raise OptionError(f"the longest drawing has {longest:,} rows, and padding every drawing to it would make "
                          f"arrays of {longest + 2:,} steps: give --max-len (at most {MAX_STEPS:,}) to leave the "
                          "longer ones out")
    n_max = opts.max_len if opts.max_len is not None else longest + 1
    scale = None
    if opts.normalize:
        train = parts[0]
        if not len(keeps["train"]):
            raise OptionError("--normalize computes the scale factor from the train split, which has no drawing "
                              f"to export{' of at most --max-len rows' if opts.max_len else ''}")
        scale = scale_factor(train, keeps["train"])
        if not (np.isfinite(scale) and scale > 0):
            raise OptionError(f"--normalize: the train offsets have no spread (scale factor {scale}); leave it out")
    dropped = {}
    for p in parts:
        lengths = np.diff(p.row_offsets)
        too_long, empty = int((lengths > n_max).sum()), int((lengths == 0).sum())
        if too_long:
            dropped[f"{p.name}: longer than --max-len {n_max}"] = too_long
        if empty:
            dropped[f"{p.name}: empty"] = empty
    meta = {"tool": "sketchprep", "version": __version__, "format": "stroke-5 [dx, dy, p1, p2, p3] float32, "
            "row 0 the start token [0, 0, 1, 0, 0], rows from the drawing's length + 1 on [0, 0, 0, 0, 1]",
            "source": ds.path, "n_max": n_max, "normalized": scale is not None,
            "scale_factor": scale if scale is not None else 1.0, "clamp": CLAMP, "classes": parts[0].classes,
            "dropped": dropped, "dataset_meta": ds.meta}

    def blocks(p: SplitView):
        keep = keeps[p.name]
        for start, stop, block in p.blocks(block_size((n_max + 1) * 5 * 4)):
            yield padded(block, keep[(keep >= start) & (keep < stop)] - start, n_max, scale)
            progress(stop - start)

    def members():
        for p in parts:
            keep = keeps[p.name]
            yield p.name, StreamedArray((len(keep), n_max + 1, 5), np.float32, blocks(p))
            yield f"{p.name}_lengths", np.diff(p.row_offsets)[keep]
            yield f"{p.name}_labels", p.labels[keep]
            yield f"{p.name}_ids", p.ids[keep] if len(keep) else np.zeros(0, "<U1")
        yield "meta", np.array(json.dumps(meta, sort_keys=True))

    with atomic_output(out) as f:
        write_members(f, members())
    summary = ExportSummary(out, "stroke5", {p.name: len(keeps[p.name]) for p in parts}, dropped)
    summary.notes.append(f"N_max {n_max}: arrays of shape (N, {n_max + 1}, 5)"
                         + (f"; offsets divided by the scale factor {scale:.6g}" if scale is not None else ""))
    return summary

