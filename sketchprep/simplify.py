"""Ramer-Douglas-Peucker simplification and resampling, on single strokes or on flat batches.

Two distance definitions (`distance=`):
- "line": each point's distance to the infinite line through the chord's end points. The original
  Douglas-Peucker, and exactly what the `rdp` package (linked from the sketch-rnn README) keeps.
  A stroke that doubles back past a chord's end can lose points farther than epsilon.
- "segment": each point's distance to the chord segment. Every dropped point stays within epsilon
  of the result (what `simplification`, shapely and geo compute).
Both keep the first and last point of every stroke, never add points, break exact ties for the
farthest point in favour of the first one, and split a chord only at a point strictly farther than
epsilon. "line" is the default of `convert` because it reproduces Google's simplified Quick, Draw!
data (benchmarks/quickdraw_match.py; README "RDP and how close we get to Google's simplified data").

The kernels are a small C extension (`_rdp.c`) because no maintained compiled library offers
line-distance RDP or a batch call over flat arrays; without a compiler the package falls back to
numpy code that gives the same results bit for bit (RDP ~40x, resampling ~15x slower).
"""
from __future__ import annotations

import math

import numpy as np

from .strokes import FlatDrawings, _offsets, normalization, normalize_flat

try:  # pragma: no cover - which branch runs depends on the install
    from . import _rdp as _c_kernel
except ImportError:  # pragma: no cover
    _c_kernel = None

DISTANCES = ("line", "segment")
HAVE_C_KERNEL = _c_kernel is not None


def rdp_mask(points: np.ndarray, stroke_offsets: np.ndarray, epsilon: float, distance: str = "line") -> np.ndarray:
    """Keep-mask of RDP over many strokes at once.

    points: (P, 2) float; stroke_offsets: (S+1,) int, stroke s = points[offsets[s]:offsets[s+1]].
    Returns (P,) bool. Points outside every stroke are reported as not kept.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, not {distance!r}")
    pts = np.ascontiguousarray(points, dtype=np.float64).reshape(-1, 2)
    offs = np.ascontiguousarray(stroke_offsets, dtype=np.int64)
    if epsilon <= 0:
        keep = np.zeros(len(pts), dtype=bool)
        if len(offs) > 1:
            keep[offs[0]:offs[-1]] = True
        return keep
    if _c_kernel is not None:
        keep = np.zeros(len(pts), dtype=np.uint8)
        _c_kernel.rdp_keep(pts, offs, float(epsilon), distance == "segment", keep)
        return keep.view(bool)
    return _rdp_mask_numpy(pts, offs, float(epsilon), distance == "segment")


def rdp(stroke: np.ndarray, epsilon: float, distance: str = "line") -> np.ndarray:
    """One stroke: (k, 2) points -> the kept (m, 2) points, m <= k."""
    xy = np.asarray(stroke, dtype=np.float64).reshape(-1, 2)
    return xy[rdp_mask(xy, np.array([0, len(xy)]), epsilon, distance)]


def _rdp_mask_numpy(pts: np.ndarray, offs: np.ndarray, eps: float, segment: bool) -> np.ndarray:
    """The same keep-mask as the C kernel, splitting every open interval of every stroke in lockstep."""
    keep = np.zeros(len(pts), dtype=bool)
    if len(offs) < 2:
        return keep
    starts, ends = offs[:-1], offs[1:] - 1
    nonempty = ends >= starts
    keep[starts[nonempty]] = True
    keep[ends[nonempty]] = True
    open_ = ends - starts >= 2
    lo, hi = starts[open_], ends[open_]
    while len(lo):
        counts = hi - lo - 1
        owner = np.repeat(np.arange(len(lo)), counts)
        idx = np.arange(counts.sum()) - np.repeat(_offsets(counts)[:-1], counts) + np.repeat(lo + 1, counts)
        a, b, p = pts[lo[owner]], pts[hi[owner]], pts[idx]
        d = b - a
        l2 = (d * d).sum(axis=1)
        if segment:
            t = np.where(l2 > 0, ((p - a) * d).sum(axis=1) / np.where(l2 > 0, l2, 1.0), 0.0)
            t = np.clip(t, 0.0, 1.0)
            e = p - (a + t[:, None] * d)
            dist = np.sqrt((e * e).sum(axis=1))
        else:
            length = np.sqrt(l2)
            cross = np.abs(d[:, 0] * (a[:, 1] - p[:, 1]) - d[:, 1] * (a[:, 0] - p[:, 0]))
            e = p - a
            dist = np.where(length > 0, cross / np.where(length > 0, length, 1.0), np.sqrt((e * e).sum(axis=1)))
        firsts = _offsets(counts)[:-1]
        dmax = np.maximum.reduceat(dist, firsts)
        # first index reaching the interval's maximum
        is_max = dist == dmax[owner]
        cand = np.where(is_max, np.arange(len(dist)), len(dist))
        arg = np.minimum.reduceat(cand, firsts)
        split = dmax > eps
        k = idx[arg[split]]
        keep[k] = True
        l2_, h2_ = lo[split], hi[split]
        lo = np.concatenate([l2_, k])
        hi = np.concatenate([k, h2_])
        wide = hi - lo >= 2
        lo, hi = lo[wide], hi[wide]
    return keep


def simplify_flat(flat: FlatDrawings, epsilon: float, distance: str = "line") -> FlatDrawings:
    """RDP every stroke of a batch; strokes keep at least their first and last point."""
    keep = rdp_mask(flat.points, flat.stroke_offsets, epsilon, distance)
    kept = np.add.reduceat(keep, flat.stroke_offsets[:-1]) if len(keep) else np.zeros(0, np.int64)
    return FlatDrawings(flat.points[keep], _offsets(kept), flat.drawing_offsets,
                        None if flat.times is None else flat.times[keep])


def resample_flat(flat: FlatDrawings, spacing: float = 1.0) -> FlatDrawings:
    """Resample every stroke at `spacing` units of arc length, as Google did for Quick, Draw!.

    A stroke of arc length L becomes the points at arc length 0, spacing, 2*spacing, ... (every
    k*spacing < L), linearly interpolated along the polyline, plus its last point; its other
    vertices are not kept, so corners may be cut by up to spacing / 2. A stroke of zero length
    becomes its first point.

    Each stroke is computed on its own with the arithmetic of `np.cumsum` + `np.interp` (the
    compiled kernel and the numpy fallback agree bit for bit), so a drawing's samples never depend
    on the other drawings of the batch. That matters: RDP then picks among exactly tied points by
    their last bits, and this is the variant that reproduces Google's simplified data best (see
    benchmarks/quickdraw_match.py --study).

    With `flat.times`, each new point gets a time too (see `resampled_times`).

    flat.points: (P, 2) float64 -> a new FlatDrawings with the same strokes and drawings.
    """
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, not {spacing!r}")
    pts = np.ascontiguousarray(flat.points, dtype=np.float64).reshape(-1, 2)
    offs = np.ascontiguousarray(flat.stroke_offsets, dtype=np.int64)
    if _c_kernel is None:
        out, out_offsets = _resample_numpy(pts, offs, float(spacing))
    else:
        counts = np.zeros(max(len(offs) - 1, 0), dtype=np.int64)
        _c_kernel.resample_counts(pts, offs, float(spacing), counts)
        out_offsets = _offsets(counts)
        out = np.empty((int(out_offsets[-1]), 2), dtype=np.float64)
        _c_kernel.resample_fill(pts, offs, float(spacing), out_offsets, out)
    times = None if flat.times is None else resampled_times(flat, out_offsets, spacing)
    return FlatDrawings(out, out_offsets, flat.drawing_offsets, times)


def resampled_times(flat: FlatDrawings, out_offsets: np.ndarray, spacing: float) -> np.ndarray:
    """(Q,) float64 time of every point `resample_flat` makes from `flat` (whose `times` it reads).

    The sample at arc length s of a stroke gets the time interpolated linearly, along the arc length,
    between the two source points around it (at a run of source points in one place, the first
    one's time); a stroke's first sample is its first point and its last sample is its last point,
    so they get those points' own times. So every time lies between the times of its stroke's source
    points, and times never decrease along a stroke whose source times do not.
    out_offsets: (S+1,) offsets of the resampled strokes (the counts `resample_flat` made).
    """
    t, offs = flat.times, flat.stroke_offsets
    counts = np.diff(out_offsets)
    total = int(out_offsets[-1])
    if total == 0:
        return np.zeros(0)
    arc = stroke_arcs(flat.points, offs)
    stroke = np.repeat(np.arange(len(counts)), counts)
    k = np.arange(total) - np.repeat(out_offsets[:-1], counts)
    j, nxt, frac = arc.locate(stroke, k * float(spacing))
    out = t[j] + frac * (t[nxt] - t[j])
    first = k == 0
    out[first] = t[offs[:-1][stroke[first]]]
    last = (k == counts[stroke] - 1) & (counts[stroke] > 1)
    out[last] = t[offs[1:][stroke[last]] - 1]
    return out


class StrokeArcs:
    """The arc length of every point from its stroke's first point, for many strokes at once.

    cum: (P,) float64; length: (S,) float64 each stroke's arc length.
    """

    def __init__(self, points: np.ndarray, stroke_offsets: np.ndarray):
        self.offsets = stroke_offsets
        n_src = np.diff(stroke_offsets)
        seg = np.zeros(len(points))
        if len(points) > 1:
            seg[1:] = np.hypot(*np.diff(points, axis=0).T)
        seg[stroke_offsets[:-1][n_src > 0]] = 0.0  # no segment into a stroke's first point
        cum = np.cumsum(seg)
        starts = np.minimum(stroke_offsets[:-1], max(len(points) - 1, 0))
        cum -= np.repeat(cum[starts] if len(cum) else np.zeros(len(n_src)), n_src)
        self.cum = cum
        self.length = np.where(n_src > 0, cum[np.maximum(stroke_offsets[1:] - 1, 0)] if len(cum) else 0.0, 0.0)
        # a stroke's arc lengths lie in [base, base + length]: strokes kept apart on one sorted axis
        self._base = np.zeros(len(n_src))
        np.cumsum(self.length[:-1] + 1.0, out=self._base[1:])
        self._axis = cum + np.repeat(self._base, n_src)

    def locate(self, stroke: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where arc length `pos` (clipped to the stroke) of stroke `stroke` falls: on the segment from point
        j to point nxt, a fraction frac in [0, 1] along it (at a run of points in one place, its first
        point). Every array (Q,)."""
        starts, ends = self.offsets[:-1][stroke], self.offsets[1:][stroke] - 1
        pos = np.clip(pos, 0.0, self.length[stroke])
        after = np.searchsorted(self._axis, pos + self._base[stroke], side="left")
        j = np.clip(after - 1, starts, ends)
        nxt = np.minimum(j + 1, ends)
        span = self.cum[nxt] - self.cum[j]
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.clip(np.where(span > 0, (pos - self.cum[j]) / span, 0.0), 0.0, 1.0)
        return j, nxt, frac


def stroke_arcs(points: np.ndarray, stroke_offsets: np.ndarray) -> StrokeArcs:
    return StrokeArcs(np.asarray(points, dtype=np.float64).reshape(-1, 2), np.asarray(stroke_offsets, dtype=np.int64))


def resample_simplify_flat(flat: FlatDrawings, spacing: float, epsilon: float, distance: str = "line",
                           size: float | None = None) -> FlatDrawings:
    """`simplify_flat(resample_flat(normalize_flat(flat, size), spacing), epsilon, distance)` (no
    normalising when `size` is None), computed stroke by stroke in the compiled kernel without holding
    the normalised or resampled batch in memory; the same points, bit for bit, as the separate calls
    (which run instead when the batch has times, so that the new points get theirs)."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, not {distance!r}")
    if not spacing > 0:
        raise ValueError(f"spacing must be > 0, not {spacing!r}")
    if _c_kernel is None or epsilon <= 0 or flat.times is not None:
        prepared = resample_flat(normalize_flat(flat, size) if size is not None else flat, spacing)
        return simplify_flat(prepared, epsilon, distance) if epsilon > 0 else prepared
    pts = np.ascontiguousarray(flat.points, dtype=np.float64).reshape(-1, 2)
    offs = np.ascontiguousarray(flat.stroke_offsets, dtype=np.int64)
    transform = b""
    if size is not None:
        per_drawing = normalization(flat, size)
        transform = np.ascontiguousarray(np.repeat(per_drawing, np.diff(flat.drawing_offsets), axis=0))
    points, counts = _c_kernel.resample_simplify(pts, offs, float(spacing), float(epsilon), distance == "segment",
                                                 transform)
    return FlatDrawings(np.frombuffer(points, dtype=np.float64).reshape(-1, 2),
                        _offsets(np.frombuffer(counts, dtype=np.int64)), flat.drawing_offsets)


def stroke_lengths(flat: FlatDrawings) -> tuple[np.ndarray, np.ndarray]:
    """(S,) float64 arc length and (S, 4) bounding box `[min x, min y, max x, max y]` of every stroke."""
    pts = np.ascontiguousarray(flat.points, dtype=np.float64).reshape(-1, 2)
    offs = np.ascontiguousarray(flat.stroke_offsets, dtype=np.int64)
    n = max(len(offs) - 1, 0)
    if _c_kernel is not None:
        lengths, boxes = np.zeros(n), np.zeros((n, 4))
        _c_kernel.stroke_lengths(pts, offs, lengths, boxes)
        return lengths, boxes
    if not n or not len(pts):
        return np.zeros(n), np.zeros((n, 4))
    seg = np.zeros(len(pts))
    seg[1:] = np.hypot(*np.diff(pts, axis=0).T)  # seg[i]: from point i - 1 to point i
    seg[offs[:-1][offs[:-1] < len(pts)]] = 0.0   # no segment into the first point of a stroke
    starts = np.minimum(offs[:-1], len(pts) - 1)  # (strokes are never empty)
    boxes = np.hstack([np.minimum.reduceat(pts, starts), np.maximum.reduceat(pts, starts)])
    return np.add.reduceat(seg, starts), boxes


def resampled_counts(flat: FlatDrawings, spacing: float, size: float | None = None) -> np.ndarray:
    """(S,) float64 upper bound of the points `resample_flat(normalize_flat(flat, size), spacing)` makes
    per stroke (no normalising when `size` is None), from arc lengths alone: nothing is resampled. One
    pass over the points (the drawings' extents come from the strokes' boxes). The bound is at most 2
    above the true count, for any finite coordinates: tiny, huge or degenerate extents included."""
    lengths, boxes = stroke_lengths(flat)
    per_stroke = np.diff(flat.stroke_offsets).astype(np.float64)
    # The resampler measures the normalised points, whose rounding (about one ulp of the coordinates per
    # point) can make its arc length a hair longer than the scaled one: allow for it, so that a length just
    # below a multiple of the spacing still bounds one just above it.
    reach = np.abs(boxes).max(axis=1) if len(boxes) else np.zeros(0)
    if size and flat.n_drawings:  # the scale of strokes.normalization
        starts = flat.drawing_offsets[:-1]
        extent = (np.maximum.reduceat(boxes[:, 2:], starts) - np.minimum.reduceat(boxes[:, :2], starts)).max(axis=1)
        with np.errstate(all="ignore"):
            usable = (extent > 0) & np.isfinite(size / extent)
            scale = np.where(usable, size / np.where(usable, extent, 1.0), 1.0)
        per_drawing = np.diff(flat.drawing_offsets)
        lengths = lengths * np.repeat(scale, per_drawing)
        reach = np.repeat(extent * scale, per_drawing)  # normalised points lie in [0, size] (or [0, extent])
    with np.errstate(all="ignore"):
        return np.floor((lengths + 1e-12 * per_stroke * reach) / spacing) + 2


def _resample_numpy(pts: np.ndarray, offs: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """The C resampler's result, one stroke at a time (a vectorised cumulative sum over the whole batch
    would round differently from stroke to stroke)."""
    parts = []
    for a, b in zip(offs[:-1], offs[1:]):
        s = pts[a:b]
        parts.append(_resample_stroke(s, spacing) if len(s) > 1 else s)
    counts = np.array([len(q) for q in parts], dtype=np.int64)
    out = np.concatenate(parts) if parts else np.zeros((0, 2))
    return out, _offsets(counts)


def _resample_stroke(s: np.ndarray, spacing: float) -> np.ndarray:
    seg = np.sqrt(((s[1:] - s[:-1]) ** 2).sum(axis=1))
    cum = np.zeros(len(s))
    np.cumsum(seg, out=cum[1:])
    length = cum[-1]
    if not length > 0:
        return s[:1]
    k = int(math.ceil(length / spacing))
    while k > 0 and (k - 1) * spacing >= length:
        k -= 1
    while k * spacing < length:
        k += 1
    t = np.arange(k, dtype=np.float64) * spacing
    out = np.empty((k + 1, 2))
    out[:k, 0] = np.interp(t, cum, s[:, 0])
    out[:k, 1] = np.interp(t, cum, s[:, 1])
    out[k] = s[-1]
    return out
