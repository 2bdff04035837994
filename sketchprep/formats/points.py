"""points: every drawing as absolute `(x, y, pen)` points, ragged, or resampled to a fixed count.

`pen` is stroke-3's `p`: 1 where the pen lifts after the point (the last point of each stroke), else 0.
Ragged (the default): per split `<split>` is a `(P, 3)` float32 array of all its drawings' points one after
another and `<split>_offsets` `(N + 1,)` int64 where each drawing starts, so drawing i is
`points[offsets[i]:offsets[i + 1]]` (`np.split(points, offsets[1:-1])` gives them all); with times,
`<split>_times` `(P,)` float64 beside it.

`--resample n`: every drawing becomes exactly n points along its strokes, `<split>` a `(N, n, 3)` float32
array (and `<split>_times` `(N, n)`). Each stroke gets one point plus a share of the other n - strokes
points in proportion to its length (largest remainders, ties to the earlier stroke), spread evenly along its
arc length from its first point to its last, with their times interpolated along it; a drawing with more
strokes than n is left out (counted). Keys `<split>_ids`, `<split>_labels` and `meta` as in every export.
"""
from __future__ import annotations

import json
from typing import Callable

import numpy as np

from .. import __version__
from ..dataset import SketchDataset
from ..outputs import atomic_output
from ..simplify import stroke_arcs
from ..strokes import _offsets, _ranges
from .common import (SplitArrays, SplitView, StreamedArray, absolute_points, all_splits, block_size, stroke_offsets,
                     write_members)
from .export import ExportOptions, ExportSummary


def ragged(part: SplitArrays) -> np.ndarray:
    """(R, 3) float32 absolute `(x, y, pen)` of every row."""
    out = np.empty((len(part.rows), 3), dtype=np.float32)
    out[:, :2] = absolute_points(part.rows, part.row_offsets)
    out[:, 2] = part.rows[:, 2]
    return out


def allocate(length: np.ndarray, owner: np.ndarray, n_drawings: int, n: int) -> np.ndarray:
    """(S,) points per stroke: one each, plus the drawing's other points by share of its length (largest
    remainders; a drawing of zero length shares them equally). Every drawing must have at most n strokes."""
    per_drawing = np.bincount(owner, minlength=n_drawings)
    extra = n - per_drawing  # points to share, per drawing
    total = np.bincount(owner, weights=length, minlength=n_drawings)
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = np.where(total[owner] > 0, length / total[owner], 1.0 / per_drawing[owner])
    share = extra[owner] * weight
    base = np.floor(share).astype(np.int64)
    left = extra - np.bincount(owner, weights=base, minlength=n_drawings).astype(np.int64)
    order = np.lexsort((np.arange(len(owner)), -(share - base), owner))
    first = np.searchsorted(owner[order], np.arange(n_drawings))
    rank = np.arange(len(owner)) - first[owner[order]]
    bonus = np.zeros(len(owner), dtype=np.int64)
    bonus[order] = rank < left[owner[order]]
    return 1 + base + bonus


def resampled(part: SplitArrays, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(kept drawing indices, (K, n, 3) float32 points, (K, n) float64 times or None)."""
    strokes_per = strokes_per_drawing(part)
    keep = np.flatnonzero((strokes_per <= n) & (strokes_per > 0))
    sub = part if len(keep) == part.n else _take(part, keep)
    xy = absolute_points(sub.rows, sub.row_offsets)
    so = stroke_offsets(sub.rows, sub.row_offsets)
    owner = np.repeat(np.arange(sub.n), np.diff(np.searchsorted(so, sub.row_offsets)))
    arcs = stroke_arcs(xy, so)
    counts = allocate(arcs.length, owner, sub.n, n)
    stroke = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(int(counts.sum())) - np.repeat(_offsets(counts)[:-1], counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        pos = np.where(counts[stroke] > 1, arcs.length[stroke] * k / (counts[stroke] - 1), 0.0)
    j, nxt, frac = arcs.locate(stroke, pos)
    out = np.empty((len(stroke), 3), dtype=np.float32)
    out[:, :2] = xy[j] + frac[:, None] * (xy[nxt] - xy[j])
    last = k == counts[stroke] - 1
    out[:, 2] = last
    times = None
    if sub.times is not None:
        t = sub.times
        times = t[j] + frac * (t[nxt] - t[j])
        ends = last & (counts[stroke] > 1)
        times[ends] = t[so[1:][stroke[ends]] - 1]  # a stroke's last point: its own time
        times = times.reshape(sub.n, n)
    return keep, out.reshape(sub.n, n, 3), times


def _take(part: SplitArrays, idx: np.ndarray) -> SplitArrays:
    lengths = np.diff(part.row_offsets)[idx]
    rows = _ranges(part.row_offsets[idx], lengths)
    return SplitArrays(part.name, part.rows[rows], _offsets(lengths), part.ids[idx], part.labels[idx], part.classes,
                       None if part.times is None else part.times[rows])


def strokes_per_drawing(part: SplitArrays) -> np.ndarray:
    """(N,) number of strokes of every drawing of a block."""
    return np.diff(np.searchsorted(stroke_offsets(part.rows, part.row_offsets), part.row_offsets))


def write(ds: SketchDataset, out: str, opts: ExportOptions, progress: Callable[[int], None]) -> ExportSummary:
    parts = all_splits(ds)
    dropped: dict[str, int] = {}
    counts: dict[str, int] = {}
    meta = {"tool": "sketchprep", "version": __version__, "source": ds.path, "classes": parts[0].classes,
            "format": "absolute (x, y, pen) float32; pen=1: the pen lifts after this point",
            "resample": opts.resample, "times": bool(ds.times), "dataset_meta": ds.meta}
    n = opts.resample

    def ragged_blocks(p: SplitView):
        for start, stop, block in p.blocks():
            yield ragged(block)
            progress(stop - start)

    def resampled_blocks(p: SplitView, column: int, count: bool):
        for start, stop, block in p.blocks(block_size(n * 3 * 8)):
            result = resampled(block, n)[column]
            yield result
            if count:
                progress(stop - start)

    def members():
        for p in parts:
            if n is None:
                keep = np.arange(p.n)
                yield p.name, StreamedArray((int(p.row_offsets[-1]), 3), np.float32, ragged_blocks(p))
                yield f"{p.name}_offsets", p.row_offsets.astype(np.int64)
                if p.times is not None:
                    yield f"{p.name}_times", p.times
            else:
                per = np.concatenate([strokes_per_drawing(b) for _, _, b in p.blocks()]) if p.n else np.zeros(0, int)
                keep = np.flatnonzero((per <= n) & (per > 0))
                yield p.name, StreamedArray((len(keep), n, 3), np.float32, resampled_blocks(p, 1, True))
                if p.times is not None:
                    yield f"{p.name}_times", StreamedArray((len(keep), n), np.float64, resampled_blocks(p, 2, False))
                if p.n - len(keep):
                    dropped[f"{p.name}: more strokes than --resample {n} (or none)"] = p.n - len(keep)
            counts[p.name] = len(keep)
            yield f"{p.name}_ids", p.ids[keep] if len(keep) else np.zeros(0, "<U1")
            yield f"{p.name}_labels", p.labels[keep]
        meta["dropped"] = dropped
        yield "meta", np.array(json.dumps(meta, sort_keys=True))

    with atomic_output(out) as f:
        write_members(f, members())
    return ExportSummary(out, "points", counts, dropped)
