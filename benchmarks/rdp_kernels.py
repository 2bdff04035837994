"""RDP kernels on real Quick, Draw! strokes: our C kernel (line, segment) and numpy fallback against the
`rdp` package (line distance, pure Python) and `simplification` (segment distance, Rust), same strokes, same
run; plus whether they keep the same points.

Strokes: every stroke of ../shared/data/quickdraw_raw_ndjson after `convert`'s raw steps (align, scale to
255, resample at 1 px), epsilon 2.0. Printed, all measured in this run (median of --repeats runs):
- per call: one Python call per stroke (`sketchprep.simplify.rdp`, `simplify_coords_idx`, `rdp.rdp`);
  the `rdp` package runs on every --rdp-every-th stroke only (it takes ~2 ms per stroke), and the ratio
  against it is taken on that same subset;
- batch: one `rdp_mask` call over all strokes (what `convert` does), C and numpy fallback; and the
  1 px resampler (C and numpy fallback), for scale;
- agreement: line kernel vs `rdp.rdp(..., return_mask=True)` (must be identical), C vs numpy fallback
  (must be identical), segment kernel vs `simplification` (may differ on exact ties: geo keeps the last
  farthest point and rounds its distances differently; both must keep every dropped point within epsilon).

    python benchmarks/rdp_kernels.py
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sketchprep.simplify import (HAVE_C_KERNEL, _rdp_mask_numpy, _resample_numpy, rdp, rdp_mask,  # noqa: E402
                                 resample_flat)
from sketchprep.sources import ndjson as ndjson_source  # noqa: E402
from sketchprep.strokes import FlatDrawings, concat_flat, normalize_flat  # noqa: E402

SHARED = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
EPS = 2.0


def real_strokes(data: Path) -> tuple[FlatDrawings, FlatDrawings]:
    """(normalised raw drawings, the same resampled at 1 px) of every raw Quick, Draw! drawing."""
    parts = []
    for i, path in enumerate(sorted((data / "quickdraw_raw_ndjson").glob("*.ndjson"))):
        with open(path, "rb") as f:
            parts.append(ndjson_source.parse_lines(f.read(), str(path), 1, i).flat)
    flat = normalize_flat(concat_flat(parts), 255.0)
    return flat, resample_flat(flat, 1.0)


def timed(fn, repeats: int) -> float:
    """Median seconds of `repeats` calls of fn()."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def max_error(stroke: np.ndarray, kept: np.ndarray) -> float:
    """Farthest distance from any point of the stroke to the polyline through its kept points."""
    q = stroke[kept]
    if len(q) < 2:
        return float(np.sqrt(((stroke - q[0]) ** 2).sum(axis=1)).max())
    a, d = q[:-1], q[1:] - q[:-1]
    l2 = (d * d).sum(axis=1)
    rel = stroke[:, None, :] - a[None]
    t = np.clip((rel * d[None]).sum(axis=2) / np.where(l2 > 0, l2, 1.0)[None], 0.0, 1.0)
    e = rel - t[..., None] * d[None]
    return float(np.sqrt((e * e).sum(axis=2)).min(axis=1).max())


def geo_rule_rdp(s: np.ndarray, eps: float) -> np.ndarray:
    """Segment-distance RDP indices as geo (simplification's Rust core) computes them: |cross| / l2 * sqrt(l2)
    inside the segment, the distance to the nearer end outside, and the LAST farthest point on ties."""
    keep = np.zeros(len(s), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(s) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b, p = s[i], s[j], s[i + 1:j]
        dx, dy = b - a
        l2 = dx * dx + dy * dy
        to_a = np.hypot(p[:, 0] - a[0], p[:, 1] - a[1])
        if l2 == 0:
            dist = to_a
        else:
            r = ((p[:, 0] - a[0]) * dx + (p[:, 1] - a[1]) * dy) / l2
            inside = np.abs(((a[1] - p[:, 1]) * dx - (a[0] - p[:, 0]) * dy) / l2) * np.sqrt(l2)
            dist = np.where(r <= 0, to_a, np.where(r >= 1, np.hypot(p[:, 0] - b[0], p[:, 1] - b[1]), inside))
        k = i + 1 + int(np.flatnonzero(dist == dist.max())[-1])
        if dist.max() > eps:
            keep[k] = True
            stack += [(i, k), (k, j)]
    return np.flatnonzero(keep)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rdp-every", type=int, default=10, metavar="K", help="run the rdp package on every K-th stroke")
    args = ap.parse_args(argv)
    import rdp as rdp_package
    from simplification.cutil import simplify_coords_idx

    if not HAVE_C_KERNEL:
        print("warning: the C kernel is not built; 'C' rows measure the numpy fallback")
    raw, flat = real_strokes(args.data)
    so = flat.stroke_offsets
    strokes = [flat.points[a:b] for a, b in zip(so[:-1], so[1:])]
    lengths = np.diff(so)
    subset = strokes[::args.rdp_every]
    n, r = len(strokes), args.repeats
    print(f"{n} real strokes ({flat.n_drawings} drawings) after align, scale to 255, resample at 1 px: "
          f"{len(flat.points)} points, median {np.median(lengths):.0f} per stroke (max {lengths.max()}); "
          f"epsilon {EPS}; median of {r} runs")

    # --- per call -------------------------------------------------------------------------------------
    per_call = {}
    per_call["C line, rdp() per stroke"] = timed(lambda: [rdp(s, EPS, "line") for s in strokes], r) / n
    per_call["C segment, rdp() per stroke"] = timed(lambda: [rdp(s, EPS, "segment") for s in strokes], r) / n
    per_call["simplification simplify_coords_idx"] = timed(lambda: [simplify_coords_idx(s, EPS) for s in strokes], r) / n
    sub_ours = timed(lambda: [rdp(s, EPS, "line") for s in subset], r) / len(subset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdp 0.8 calls np.cross on 2-vectors (deprecated in NumPy 2)
        sub_rdp = timed(lambda: [rdp_package.rdp(s, EPS, return_mask=True) for s in subset], max(1, r // 2)) / len(subset)
    print(f"\nper call (us per stroke)                   {'us':>9} {'vs simplification':>18}")
    base = per_call["simplification simplify_coords_idx"]
    for name, sec in per_call.items():
        print(f"  {name:<40} {sec * 1e6:>9.2f} {base / sec:>17.2f}x")
    print(f"  on {len(subset)} strokes (every {args.rdp_every}th): rdp.rdp {sub_rdp * 1e6:.0f} us, our line kernel "
          f"{sub_ours * 1e6:.2f} us: {sub_rdp / sub_ours:,.0f}x faster than the rdp package")

    # --- batch ----------------------------------------------------------------------------------------
    pts, offs = flat.points, so
    print(f"\nbatch, all {n} strokes in one call (us per stroke)")
    batch = {
        "C line, rdp_mask": timed(lambda: rdp_mask(pts, offs, EPS, "line"), r),
        "C segment, rdp_mask": timed(lambda: rdp_mask(pts, offs, EPS, "segment"), r),
        "numpy fallback line": timed(lambda: _rdp_mask_numpy(pts, offs, EPS, False), r),
        "numpy fallback segment": timed(lambda: _rdp_mask_numpy(pts, offs, EPS, True), r),
        "C resample at 1 px (resample_flat)": timed(lambda: resample_flat(raw, 1.0), r),
        "numpy fallback resample at 1 px": timed(lambda: _resample_numpy(raw.points, raw.stroke_offsets, 1.0), r),
    }
    for name, sec in batch.items():
        print(f"  {name:<40} {sec / n * 1e6:>9.2f}")
    print(f"  C batch vs per call: line {per_call['C line, rdp() per stroke'] * n / batch['C line, rdp_mask']:.1f}x, "
          f"C vs numpy fallback: line {batch['numpy fallback line'] / batch['C line, rdp_mask']:.0f}x, "
          f"segment {batch['numpy fallback segment'] / batch['C segment, rdp_mask']:.0f}x, "
          f"resample {batch['numpy fallback resample at 1 px'] / batch['C resample at 1 px (resample_flat)']:.0f}x")

    # --- agreement ------------------------------------------------------------------------------------
    line = rdp_mask(pts, offs, EPS, "line")
    seg = rdp_mask(pts, offs, EPS, "segment")
    masks_line = [line[a:b] for a, b in zip(so[:-1], so[1:])]
    masks_seg = [seg[a:b] for a, b in zip(so[:-1], so[1:])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        same_rdp = sum(np.array_equal(np.asarray(rdp_package.rdp(s, EPS, return_mask=True), bool), m)
                       for s, m in zip(subset, masks_line[::args.rdp_every]))
    same_np_line = np.array_equal(line, _rdp_mask_numpy(pts, offs, EPS, False))
    same_np_seg = np.array_equal(seg, _rdp_mask_numpy(pts, offs, EPS, True))
    same_simpl = same_count = differ_ties = 0
    err_seg = err_simpl = err_line = 0.0
    line_over = 0
    for s, ms, ml in zip(strokes, masks_seg, masks_line):
        idx = np.asarray(simplify_coords_idx(s, EPS), dtype=np.int64)
        mine = np.flatnonzero(ms)
        if np.array_equal(idx, mine):
            same_simpl += 1
        else:
            differ_ties += np.array_equal(idx, geo_rule_rdp(s, EPS))
        same_count += len(idx) == len(mine)
        theirs = np.zeros(len(s), bool)
        theirs[idx] = True
        err_seg = max(err_seg, max_error(s, ms))
        err_simpl = max(err_simpl, max_error(s, theirs))
        e = max_error(s, ml)
        err_line = max(err_line, e)
        line_over += e > EPS + 1e-9
    print("\nagreement")
    print(f"  line kernel == rdp.rdp(return_mask=True): {same_rdp}/{len(subset)} strokes")
    print(f"  C == numpy fallback: line {same_np_line}, segment {same_np_seg} (all {n} strokes)")
    print(f"  segment kernel vs simplification: same points {same_simpl}/{n} ({same_simpl / n:.1%}), "
          f"same count {same_count}/{n}; of the {n - same_simpl} others, {differ_ties} are reproduced by geo's rule (its "
          f"float formula, and the last of tied farthest points where we keep the first): near-ties")
    print(f"  farthest dropped point from the result: segment {err_seg:.3f}, simplification {err_simpl:.3f}, "
          f"line {err_line:.2f} ({line_over} strokes beyond epsilon: a stroke that doubles back)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
