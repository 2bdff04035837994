"""ndjson: Google's Quick, Draw! layout, one `SPLIT.ndjson` per split in the folder OUT.

Each line is `{"word": ..., "key_id": ..., "drawing": [[xs, ys], ...]}` with the absolute coordinates of
every stroke (integers for integer data), as Google's simplified files have them; a drawing with times
(`convert --keep-time`) has `[xs, ys, ts]` strokes, as Google's raw files have. The drawings keep their
order within each split. `convert OUT/SPLIT.ndjson ... --epsilon 0 --size 0` reads them back unchanged
(the drawings are already aligned to 0, as `convert` leaves them).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import orjson

from ..dataset import SketchDataset
from ..outputs import atomic_folder
from .common import SplitArrays, absolute_points, all_splits, stroke_offsets
from .export import ExportOptions, ExportSummary


def _number_lists(values: np.ndarray, row_offsets: np.ndarray) -> tuple[list, np.ndarray]:
    """`values` as a list of Python numbers, ints for every drawing whose values are all whole numbers (as
    Google's files have them) and floats for the others, and that per-drawing choice."""
    whole = values == np.rint(values)
    lengths = np.diff(row_offsets)
    per_drawing = np.ones(len(lengths), dtype=bool)
    if (lengths > 0).any():
        per_drawing[lengths > 0] = np.logical_and.reduceat(whole, row_offsets[:-1][lengths > 0])
    if per_drawing.all():
        return values.astype(np.int64).tolist(), per_drawing
    floats = values.tolist()
    ints = np.where(whole, values, 0).astype(np.int64).tolist()
    return [i if w else f for i, f, w in zip(ints, floats, np.repeat(per_drawing, lengths))], per_drawing


def lines(part: SplitArrays) -> bytes:
    """The ndjson lines of a block of drawings."""
    xy = absolute_points(part.rows, part.row_offsets)
    xs, _ = _number_lists(xy[:, 0], part.row_offsets)
    ys, _ = _number_lists(xy[:, 1], part.row_offsets)
    timed = np.zeros(part.n, dtype=bool)
    if part.times is not None:
        ts, _ = _number_lists(np.nan_to_num(part.times, nan=0.0), part.row_offsets)
        nonempty = np.diff(part.row_offsets) > 0
        timed[nonempty] = ~np.isnan(part.times[part.row_offsets[:-1][nonempty]])
    so = stroke_offsets(part.rows, part.row_offsets).tolist()
    first_stroke = np.searchsorted(so, part.row_offsets).tolist()
    words, ids = part.words.tolist(), part.ids.tolist()
    dumps = orjson.dumps
    out = []
    for d in range(part.n):
        strokes = range(first_stroke[d], first_stroke[d + 1])
        if timed[d]:
            drawing = [[xs[so[s]:so[s + 1]], ys[so[s]:so[s + 1]], ts[so[s]:so[s + 1]]] for s in strokes]
        else:
            drawing = [[xs[so[s]:so[s + 1]], ys[so[s]:so[s + 1]]] for s in strokes]
        out.append(dumps({"word": words[d], "key_id": ids[d], "drawing": drawing}))
    return b"\n".join(out) + b"\n" if out else b""


def write(ds: SketchDataset, out: str, opts: ExportOptions, progress: Callable[[int], None]) -> ExportSummary:
    parts = all_splits(ds)
    with atomic_folder(out) as tmp:
        for part in parts:
            with open(tmp / f"{part.name}.ndjson", "wb") as f:
                for start, stop, block in part.blocks():
                    f.write(lines(block))
                    progress(stop - start)
    return ExportSummary(out, "ndjson", {p.name: p.n for p in parts})
