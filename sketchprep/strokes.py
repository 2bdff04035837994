"""The drawing formats: the single source of truth for everything else in sketchprep and sketchrnn.

Polylines
    A drawing is a list of strokes; a stroke is a `(k, 2)` float array of absolute points `(x, y)`,
    x to the right, y down (SVG and Quick, Draw! convention), drawn in list order.

stroke-3 (what sketch-rnn `.npz` files store)
    An `(n, 3)` array with one row per point: `[dx, dy, p]`.
    - `(dx, dy)` is the offset from the previous point. The first row is the offset of the first point
      from the origin `(0, 0)` of the normalised box (the reference's `lines_to_strokes`), so the
      absolute drawing is recovered exactly by a cumulative sum.
    - `p = 1` means the pen lifts after this point (it is the last point of its stroke); `p = 0`
      means the pen keeps drawing to the next point. Every stroke ends with `p = 1`, so the last row
      has `p = 1`. A single-point stroke (a dot) is a single row with `p = 1`.
    - `convert` writes `int16` offsets: absolute coordinates are rounded to integers first and then
      differenced, so offsets never drift; a point that rounds onto its predecessor within a stroke
      is dropped. Readers also accept float stroke-3 (some published sets are float64).

stroke-5 (what the model sees; REFERENCE A.4)
    `[dx, dy, p1, p2, p3]` with a one-hot pen state: p1 = pen down, p2 = pen up after this point,
    p3 = end of sketch. `p2` is stroke-3's `p`, `p1 = 1 - p2`, and rows from the sketch's length on
    are `[0, 0, 0, 0, 1]`. The start token is `S0 = [0, 0, 1, 0, 0]`.

The `.npz` layout (what `convert` writes and `validate` checks)
    `np.savez_compressed` with keys `train`, `valid`, `test`: each a 1-D `dtype=object` array of
    `(n_i, 3)` int16 stroke-3 arrays. Optional keys, readable without pickle: `meta` (0-d unicode
    array holding JSON), `train_ids`/`valid_ids`/`test_ids` (unicode arrays of source ids: an ndjson
    `key_id` or a file path), for several classes `train_labels`/`valid_labels`/`test_labels`
    (int arrays indexing `meta["classes"]`) and, with `convert --keep-time`, `train_times`/`valid_times`/
    `test_times` (float64, the time in ms of every row of the split's sketches, one sketch after another;
    NaN for a sketch without times). See `sketchprep.dataset`.

Flat batches
    The converter works on many drawings at once (`FlatDrawings`): all points in one `(P, 2)` array,
    stroke boundaries as offsets into it and drawing boundaries as offsets into the strokes. No
    stroke and no drawing in a batch is empty.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

START_TOKEN = np.array([0, 0, 1, 0, 0], dtype=np.float32)
INT16_MAX = np.iinfo(np.int16).max


@dataclass
class FlatDrawings:
    """Many drawings as flat arrays.

    points: (P, 2) float64 absolute coordinates.
    stroke_offsets: (S+1,) int64; stroke s is `points[stroke_offsets[s]:stroke_offsets[s+1]]`.
    drawing_offsets: (D+1,) int64; drawing d is strokes `drawing_offsets[d]:drawing_offsets[d+1]`.
    times: optional (P,) float64, each point's time in ms (Quick, Draw! raw `t`, `convert --keep-time`);
        NaN for the points of a drawing without times. Every step that keeps, drops or makes points
        carries it along.
    """

    points: np.ndarray
    stroke_offsets: np.ndarray
    drawing_offsets: np.ndarray
    times: np.ndarray | None = None

    @property
    def n_drawings(self) -> int:
        return len(self.drawing_offsets) - 1

    @property
    def n_strokes(self) -> int:
        return len(self.stroke_offsets) - 1

    def point_offsets(self) -> np.ndarray:
        """(D+1,) offsets of each drawing's first point in `points`."""
        return self.stroke_offsets[self.drawing_offsets]

    def drawing(self, d: int) -> list[np.ndarray]:
        """Drawing d as a list of (k, 2) arrays (views into `points`)."""
        so = self.stroke_offsets
        return [self.points[so[s]:so[s + 1]] for s in range(self.drawing_offsets[d], self.drawing_offsets[d + 1])]

    def select(self, drawings: np.ndarray) -> "FlatDrawings":
        """A new batch holding the drawings at the given indices, in the given order."""
        drawings = np.asarray(drawings, dtype=np.int64)
        do, so = self.drawing_offsets, self.stroke_offsets
        n_strokes = do[drawings + 1] - do[drawings]
        stroke_idx = _ranges(do[drawings], n_strokes)
        n_points = so[stroke_idx + 1] - so[stroke_idx]
        point_idx = _ranges(so[stroke_idx], n_points)
        return FlatDrawings(
            self.points[point_idx],
            _offsets(n_points),
            _offsets(n_strokes),
            None if self.times is None else self.times[point_idx],
        )


def _offsets(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c), vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    ends = np.cumsum(counts)
    idx = np.ones(total, dtype=np.int64)
    nonempty = counts > 0
    first = (ends - counts)[nonempty]
    s = np.asarray(starts, dtype=np.int64)[nonempty]
    c = counts[nonempty]
    idx[first[0]] = s[0]
    # at each run start, jump from the previous run's last value to this run's start
    idx[first[1:]] = s[1:] - (s[:-1] + c[:-1] - 1)
    return np.cumsum(idx)


def flatten(drawings: list[list[np.ndarray]]) -> FlatDrawings:
    """Pack drawings (lists of (k, 2) arrays, none empty) into a `FlatDrawings`."""
    strokes = [np.asarray(s, dtype=np.float64).reshape(-1, 2) for d in drawings for s in d]
    if any(len(s) == 0 for s in strokes) or any(len(d) == 0 for d in drawings):
        raise ValueError("flatten: empty strokes and empty drawings are not allowed")
    points = np.concatenate(strokes) if strokes else np.zeros((0, 2))
    return FlatDrawings(
        points,
        _offsets(np.array([len(s) for s in strokes], dtype=np.int64)),
        _offsets(np.array([len(d) for d in drawings], dtype=np.int64)),
    )


def concat_flat(parts: list[FlatDrawings]) -> FlatDrawings:
    """The drawings of several batches, one after the other."""
    parts = [p for p in parts if p.n_drawings] or parts[:1]
    if len(parts) == 1:
        return parts[0]
    timed = any(p.times is not None for p in parts)
    return FlatDrawings(
        np.concatenate([p.points for p in parts]),
        _offsets(np.concatenate([np.diff(p.stroke_offsets) for p in parts])),
        _offsets(np.concatenate([np.diff(p.drawing_offsets) for p in parts])),
        np.concatenate([point_times(p) for p in parts]) if timed else None,
    )


def point_times(flat: FlatDrawings) -> np.ndarray:
    """(P,) float64 times of a batch's points: its own, or NaN when it has none."""
    return flat.times if flat.times is not None else np.full(len(flat.points), np.nan)


def interleave(mask: np.ndarray, chosen: FlatDrawings, others: FlatDrawings) -> FlatDrawings:
    """One batch whose drawing d comes from `chosen` where mask[d], else from `others` (each in order)."""
    n_chosen = int(mask.sum())
    perm = np.empty(len(mask), dtype=np.int64)
    perm[mask] = np.arange(n_chosen)
    perm[~mask] = n_chosen + np.arange(len(mask) - n_chosen)
    return concat_flat([chosen, others]).select(perm)


def point_to_drawing(flat: FlatDrawings) -> np.ndarray:
    """(P,) index of the drawing each point belongs to."""
    counts = np.diff(flat.point_offsets())
    return np.repeat(np.arange(flat.n_drawings), counts)


def normalization(flat: FlatDrawings, size: float) -> np.ndarray:
    """(D, 4) float64 per drawing `[min_x, min_y, numerator, denominator]`: `normalize_flat` maps a point
    p to `(p - min) * numerator / denominator` (numerator = size, denominator = the larger extent;
    both 1 for `size=0` and for a drawing with zero extent or one too small to invert, which is only
    aligned)."""
    out = np.ones((flat.n_drawings, 4))
    if flat.n_drawings == 0:
        return out
    starts = flat.point_offsets()[:-1]
    lo = np.minimum.reduceat(flat.points, starts, axis=0)
    hi = np.maximum.reduceat(flat.points, starts, axis=0)
    extent = (hi - lo).max(axis=1)
    out[:, :2] = lo
    if size > 0:
        with np.errstate(divide="ignore", over="ignore"):
            usable = (extent > 0) & np.isfinite(size / extent)
        out[usable, 2], out[usable, 3] = size, extent[usable]
    return out


def normalize_flat(flat: FlatDrawings, size: float) -> FlatDrawings:
    """Align each drawing's minimum to 0 and scale it uniformly so its larger extent is `size`.

    `size=0` aligns without scaling (source units). A drawing with zero extent (a single point, or an
    extent so small that size / extent overflows) is only aligned.
    """
    if flat.n_drawings == 0:
        return flat
    t = normalization(flat, size)[point_to_drawing(flat)]
    # (p - lo) * size / extent, not * (size / extent): one rounding less, so a coordinate that should
    # land on .5 does, and rounds as Google's did (measured: 95.5% vs 94.2% of drawings identical)
    points = (flat.points - t[:, :2]) * t[:, 2:3] / t[:, 3:4]
    return FlatDrawings(points, flat.stroke_offsets, flat.drawing_offsets, flat.times)


def normalize(polylines: list[np.ndarray], size: float = 255.0) -> list[np.ndarray]:
    """One drawing: align its minimum to (0, 0) and scale uniformly so the larger extent is `size`."""
    flat = normalize_flat(flatten([polylines]), size)
    return flat.drawing(0)


@dataclass
class Stroke3Batch:
    """Many stroke-3 sketches as one array.

    rows: (R, 3) int16 `[dx, dy, p]`; sketch d is `rows[row_offsets[d]:row_offsets[d+1]]`.
    overflow: (D,) bool, True where an offset did not fit in int16 (those rows hold garbage).
    times: optional (R,) float64, the time of each row's point (see `FlatDrawings.times`).
    """

    rows: np.ndarray
    row_offsets: np.ndarray
    overflow: np.ndarray
    times: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.row_offsets)

    def sketch(self, d: int) -> np.ndarray:
        return self.rows[self.row_offsets[d]:self.row_offsets[d + 1]]


def flat_to_stroke3(flat: FlatDrawings, keep_repeats: np.ndarray | None = None) -> Stroke3Batch:
    """Quantise absolute points to integers, drop a point that rounds onto its predecessor within
    its stroke, and difference into int16 stroke-3 (one sketch per drawing).

    keep_repeats: optional (D,) bool; drawings marked True keep repeated points (a zero-offset row),
    so data that is already integer (Google's simplified drawings, which have two-point dots) passes
    through unchanged.
    """
    pts = flat.points
    integral = pts.dtype.kind in "iu"
    q = pts if integral else np.rint(pts)
    n = len(q)
    so = flat.stroke_offsets
    keep = np.ones(n, dtype=bool)
    if n > 1:
        qx, qy = q[:, 0], q[:, 1]
        np.not_equal(qx[1:], qx[:-1], out=keep[1:])
        keep[1:] |= qy[1:] != qy[:-1]
    if keep_repeats is not None and keep_repeats.any():
        keep[np.repeat(keep_repeats, np.diff(flat.point_offsets()))] = True
    keep[so[:-1]] = True  # the first point of every stroke stays
    all_kept = bool(keep.all())
    kept_per_stroke = np.diff(so) if all_kept else (np.add.reduceat(keep, so[:-1]) if n else np.zeros(0, np.int64))
    new_so = so if all_kept else _offsets(kept_per_stroke)
    qk = q if all_kept else q[keep]
    row_offsets = new_so[flat.drawing_offsets]
    m = len(qk)
    rows = np.zeros((m, 3), dtype=np.int16)
    overflow = np.zeros(flat.n_drawings, dtype=bool)
    if m:
        deltas = np.empty((m, 2), dtype=np.int64)
        deltas[0] = qk[0]
        np.subtract(qk[1:], qk[:-1], out=deltas[1:], casting="unsafe")
        firsts = row_offsets[:-1][row_offsets[:-1] < m]
        deltas[firsts] = qk[firsts]  # first row of every drawing: offset from the origin
        if np.abs(deltas).max() > INT16_MAX:
            too_big = (np.abs(deltas) > INT16_MAX).any(axis=1)
            owner = np.repeat(np.arange(flat.n_drawings), np.diff(row_offsets))
            overflow[np.unique(owner[too_big])] = True
            deltas[too_big] = 0
        rows[:, :2] = deltas
        rows[new_so[1:] - 1, 2] = 1
    times = None if flat.times is None else (flat.times if all_kept else flat.times[keep])
    return Stroke3Batch(rows, row_offsets, overflow, times)


def polylines_to_stroke3(polylines: list[np.ndarray]) -> np.ndarray:
    """One drawing (list of (k, 2) absolute point arrays, none empty) -> (n, 3) int16 stroke-3."""
    batch = flat_to_stroke3(flatten([polylines]))
    if batch.overflow[0]:
        raise ValueError("an offset does not fit in int16 (|offset| > 32767)")
    return batch.sketch(0).copy()


def stroke3_to_polylines(stroke3: np.ndarray) -> list[np.ndarray]:
    """(n, 3) stroke-3 -> list of (k, 2) absolute point arrays (float64), one per stroke.

    Rows after the last `p = 1` (a malformed ending) form a final stroke of their own.
    """
    s = np.asarray(stroke3, dtype=np.float64)
    if len(s) == 0:
        return []
    xy = np.cumsum(s[:, :2], axis=0)
    ends = np.flatnonzero(s[:, 2] > 0.5) + 1
    if len(ends) == 0 or ends[-1] != len(s):
        ends = np.append(ends, len(s))
    starts = np.concatenate([[0], ends[:-1]])
    return [xy[a:b] for a, b in zip(starts, ends)]


def stroke3_to_stroke5(stroke3: np.ndarray, max_len: int | None = None) -> np.ndarray:
    """(n, 3) stroke-3 -> (max_len, 5) float32 stroke-5 padded with [0, 0, 0, 0, 1] (reference
    `to_big_strokes`). `max_len` defaults to n, which leaves no end-of-sketch row (REFERENCE F.4);
    the trainer pads to at least n + 1."""
    s = np.asarray(stroke3)
    n = len(s)
    if max_len is None:
        max_len = n
    if n > max_len:
        raise ValueError(f"sketch has {n} rows, more than max_len={max_len}")
    out = np.zeros((max_len, 5), dtype=np.float32)
    out[:n, :2] = s[:, :2]
    out[:n, 3] = s[:, 2]
    out[:n, 2] = 1 - out[:n, 3]
    out[n:, 4] = 1
    return out


def stroke5_to_stroke3(stroke5: np.ndarray) -> np.ndarray:
    """(N, 5) stroke-5 -> (n, 3) stroke-3, cut at the first end-of-sketch row (reference
    `to_normal_strokes`; a sketch whose first row is end-of-sketch is returned whole)."""
    s = np.asarray(stroke5)
    end = len(s)
    hits = np.flatnonzero(s[:, 4] > 0)
    if len(hits) and hits[0] > 0:
        end = hits[0]
    out = np.zeros((end, 3), dtype=s.dtype)
    out[:, :2] = s[:end, :2]
    out[:, 2] = s[:end, 3]
    return out


def bounds(stroke3: np.ndarray) -> tuple[float, float, float, float]:
    """(min_x, max_x, min_y, max_y) of a stroke-3 sketch's absolute points (the origin itself is
    not counted, unlike the reference's `get_bounds`)."""
    s = np.asarray(stroke3, dtype=np.float64)
    if len(s) == 0:
        return (0.0, 0.0, 0.0, 0.0)
    xy = np.cumsum(s[:, :2], axis=0)
    return (float(xy[:, 0].min()), float(xy[:, 0].max()), float(xy[:, 1].min()), float(xy[:, 1].max()))


def stroke_count(stroke3: np.ndarray) -> int:
    """Number of strokes (pen lifts; a malformed last stroke without p = 1 counts too)."""
    s = np.asarray(stroke3)
    if len(s) == 0:
        return 0
    lifts = int((s[:, 2] > 0.5).sum())
    return lifts + (0 if s[-1, 2] > 0.5 else 1)
