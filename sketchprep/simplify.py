"""Ramer-Douglas-Peucker simplification and resampling, on single strokes or on flat batches.

Two distance definitions (`distance=`):
- "line": each point's distance to the infinite line through the chord's end points. The original
  Douglas-Peucker, and exactly what the `rdp` package (linked from the sketch-rnn README) keeps.
  A stroke that doubles back past a chord's end can lose points farther than epsilon.
- "segment": each point's distance to the chord segment. Every dropped point stays within epsilon
  of the result (what `simplification`, shapely and geo compute).
Both keep the first and last point of every stroke, never add points, and break exact ties for the
farthest point in favour of the first one.

The kernel is a small C extension (`_rdp.c`) because no maintained compiled library offers
line-distance RDP or a batch call over flat arrays; without a compiler the package falls back to a
vectorised numpy kernel that keeps the same points, only slower.
"""
from __future__ import annotations

import numpy as np

from .strokes import FlatDrawings, _offsets

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
    return FlatDrawings(flat.points[keep], _offsets(kept), flat.drawing_offsets)


def resample_flat(flat: FlatDrawings, spacing: float = 1.0) -> FlatDrawings:
    """Resample every stroke at (at most) `spacing` units of arc length.

    Each stroke keeps its first and last point; between them, points are placed every `spacing`
    units along the polyline (linear interpolation), so corners may be cut by at most spacing / 2.
    A stroke shorter than `spacing` keeps its end points only (a zero-length stroke: one point).
    """
    pts, so = flat.points, flat.stroke_offsets
    n_strokes = flat.n_strokes
    if n_strokes == 0 or len(pts) < 2:
        return flat
    seg = np.zeros(len(pts))
    if len(pts) > 1:
        seg[1:] = np.sqrt(((pts[1:] - pts[:-1]) ** 2).sum(axis=1))
    seg[so[:-1]] = 0.0
    cum = np.cumsum(seg)
    base = cum[so[:-1]]
    length = cum[so[1:] - 1] - base
    # samples at 0, spacing, 2*spacing, ... < length, then the end point
    n_inner = np.where(length > 0, np.ceil(length / spacing - 1e-9).astype(np.int64), 0)
    n_out = np.where(length > 0, n_inner + 1, 1)
    out_so = _offsets(n_out)
    owner = np.repeat(np.arange(n_strokes), n_out)
    k = np.arange(out_so[-1]) - out_so[owner]
    s = np.minimum(k * spacing, length[owner])
    # global arc-length coordinate: offset each stroke so the whole array is monotonic for np.interp
    shift = np.zeros(n_strokes)
    if n_strokes > 1:
        shift[1:] = np.cumsum(length[:-1] + 1.0)
    point_owner = np.repeat(np.arange(n_strokes), np.diff(so))
    gx = cum - base[point_owner] + shift[point_owner]
    target = s + shift[owner]
    x = _interp_monotone(target, gx, pts[:, 0])
    y = _interp_monotone(target, gx, pts[:, 1])
    out = np.stack([x, y], axis=1)
    return FlatDrawings(out, out_so, flat.drawing_offsets)


def _interp_monotone(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp that, on repeated xp (zero-length segments), takes the last point reaching x."""
    j = np.searchsorted(xp, x, side="right")
    j = np.clip(j, 1, len(xp) - 1)
    i = j - 1
    span = xp[j] - xp[i]
    t = np.where(span > 0, (x - xp[i]) / np.where(span > 0, span, 1.0), 0.0)
    t = np.clip(t, 0.0, 1.0)
    return fp[i] + t * (fp[j] - fp[i])
