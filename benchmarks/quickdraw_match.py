"""How close `sketchprep convert` comes to Google's own simplification of raw Quick, Draw! drawings.

../shared/data has raw drawings (`quickdraw_raw_ndjson`) and Google's simplified ndjson
(`quickdraw_simplified_ndjson`); 1,112 drawings are in both (same key_id). Google made the simplified
ones by aligning to 0, scaling the larger extent to 255, resampling every stroke at 1 px and running RDP at
epsilon 2.0 (the exact code is not published). This script converts the raw drawings and compares each
with Google's version. Figures (all measured in this run):

- identical: every point of every stroke equal to Google's;
- same #points: as many points as Google's drawing. Google writes a dot as two equal points; the stroke-3
  format keeps a dot as one row and drops a point that rounds onto its predecessor (strokes.py), so
  Google's repeated points are counted once (the raw count is printed below the table);
- polyline distance, per stroke the larger of (the farthest of our points from Google's polyline) and
  (the farthest of Google's points from ours); per drawing the largest over its strokes (strokes are
  paired in order: Google keeps the stroke count, checked here): median, share within 1 px and 2 px.

Rows: what `sketchprep convert` ships (`convert.collect`, the code the command runs) with
`--distance line` and `--distance segment`, and plain runs of the `rdp` package through Google's four
steps (align, scale (x - min) * (255 / extent), resample, `rdp.rdp(stroke, 2.0)`, round), once with
samples every 1 px from each stroke's start plus its end point (what Google did), once with samples spread
evenly along the stroke (`np.linspace` with ceil(length) + 1 points: the plain run the issue quotes).
The `rdp` package is pure Python (~90 s per run here); --baseline-every K runs it on every K-th pair.

--study adds the tuning table: a reference pipeline written out below (per stroke, numpy + our RDP
kernel), changed one step at a time, so every claim in the README about what Google did is measured.

    python benchmarks/quickdraw_match.py            # ~4 min (the rdp package is slow)
    python benchmarks/quickdraw_match.py --baseline-every 10 --study
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sketchprep.convert import ConvertOptions, collect  # noqa: E402
from sketchprep.limits import KEEP_ALL_LENGTHS  # noqa: E402
from sketchprep.simplify import _resample_stroke, rdp_mask  # noqa: E402
from sketchprep.sources import ndjson as ndjson_source  # noqa: E402
from sketchprep.strokes import stroke3_to_polylines  # noqa: E402

SHARED = Path(os.environ.get("SKETCHPREP_SHARED_DATA", REPO.parent / "shared" / "data"))
Drawing = list  # list of (k, 2) float64 arrays, one per stroke


@dataclass
class Pairs:
    """The raw drawings that have a simplified twin, and that twin, in the same order."""

    ids: list[str]
    raw: list[Drawing]      # source units (device pixels)
    google: list[Drawing]   # Google's simplified drawing, integer coordinates in 0..255
    raw_dir: Path


def _read_dir(folder: Path) -> dict[str, Drawing]:
    """key_id -> drawing, through the same ndjson reader `convert` uses."""
    out: dict[str, Drawing] = {}
    for i, path in enumerate(sorted(folder.glob("*.ndjson"))):
        with open(path, "rb") as f:
            batch = ndjson_source.parse_lines(f.read(), str(path), 1, i)
        for d, key in enumerate(batch.ids):
            out[str(key)] = [s.copy() for s in batch.flat.drawing(d)]
    return out


def load_pairs(data: Path = SHARED) -> Pairs:
    raw_dir = data / "quickdraw_raw_ndjson"
    raw = _read_dir(raw_dir)
    google = _read_dir(data / "quickdraw_simplified_ndjson")
    ids = [k for k in raw if k in google]
    return Pairs(ids, [raw[k] for k in ids], [google[k] for k in ids], raw_dir)


# ---------------------------------------------------------------------------------------------------
# The metric


def farthest_from_polyline(points: np.ndarray, polyline: np.ndarray) -> float:
    """Largest distance from any of points (n, 2) to the polyline (m, 2) (a point when m == 1)."""
    a = polyline[:-1] if len(polyline) > 1 else polyline
    d = (polyline[1:] if len(polyline) > 1 else polyline) - a
    l2 = (d * d).sum(axis=1)
    rel = points[:, None, :] - a[None]                                   # (n, m-1, 2)
    t = np.clip((rel * d[None]).sum(axis=2) / np.where(l2 > 0, l2, 1.0)[None], 0.0, 1.0)
    e = rel - t[..., None] * d[None]
    return float(np.sqrt((e * e).sum(axis=2)).min(axis=1).max())


def polyline_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric distance between two strokes: max of the farthest point of each from the other."""
    if len(a) == len(b) and np.array_equal(a, b):
        return 0.0
    return max(farthest_from_polyline(a, b), farthest_from_polyline(b, a))


def drop_repeats(stroke: np.ndarray) -> np.ndarray:
    """A stroke without points equal to their predecessor (the stroke-3 rule for computed strokes)."""
    if len(stroke) < 2:
        return stroke
    keep = np.ones(len(stroke), dtype=bool)
    keep[1:] = (stroke[1:] != stroke[:-1]).any(axis=1)
    return stroke[keep]


@dataclass
class Figures:
    identical: float
    same_points: float
    median: float
    within_1: float
    within_2: float
    distances: np.ndarray     # (N,) per drawing
    identical_mask: np.ndarray


def compare(ours: list[Drawing], google: list[Drawing]) -> Figures:
    """The figures of the module docstring for drawings paired by position."""
    dist = np.zeros(len(ours))
    same = np.zeros(len(ours), dtype=bool)
    ident = np.zeros(len(ours), dtype=bool)
    for i, (o, g) in enumerate(zip(ours, google)):
        if len(o) != len(g):
            raise ValueError(f"drawing {i}: {len(o)} strokes, Google has {len(g)}")
        g = [drop_repeats(s) for s in g]
        dist[i] = max(polyline_distance(a, b) for a, b in zip(o, g))
        same[i] = sum(map(len, o)) == sum(map(len, g))
        ident[i] = all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(o, g))
    return Figures(float(ident.mean()), float(same.mean()), float(np.median(dist)), float((dist <= 1).mean()),
                   float((dist <= 2).mean()), dist, ident)


# ---------------------------------------------------------------------------------------------------
# What ships, and the plain `rdp` runs


def run_sketchprep(pairs: Pairs, distance: str) -> list[Drawing]:
    """`sketchprep convert`'s per-drawing steps on the raw folder (defaults but --distance), as polylines."""
    opts = ConvertOptions(distance=distance, max_len=KEEP_ALL_LENGTHS)
    kept = collect([str(pairs.raw_dir)], opts).kept
    by_id = {str(k): i for i, k in enumerate(kept.ids)}
    return [stroke3_to_polylines(kept.sketch(by_id[k])) for k in pairs.ids]


def _resample_even(s: np.ndarray) -> np.ndarray:
    """ceil(length) + 1 samples spread evenly along the stroke (spacing just under 1 px)."""
    seg = np.sqrt(((s[1:] - s[:-1]) ** 2).sum(axis=1))
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    if len(s) < 2 or cum[-1] == 0:
        return s[:1]
    t = np.linspace(0.0, cum[-1], int(math.ceil(cum[-1])) + 1)
    return np.stack([np.interp(t, cum, s[:, 0]), np.interp(t, cum, s[:, 1])], axis=1)


def _align_scale(drawing: Drawing, divide: bool = False) -> Drawing:
    allp = np.concatenate(drawing)
    lo = allp.min(axis=0)
    extent = float((allp.max(axis=0) - lo).max()) or 1.0
    if divide:
        return [(s - lo) * 255.0 / extent for s in drawing]
    return [(s - lo) * (255.0 / extent) for s in drawing]


def run_plain_rdp(raw: list[Drawing], resample: str) -> list[Drawing]:
    """Google's four steps with the `rdp` package; resample: "steps" (1 px from the start) or "even"."""
    import rdp

    out = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdp 0.8 calls np.cross on 2-vectors (deprecated in NumPy 2)
        for drawing in raw:
            strokes = []
            for s in _align_scale(drawing):
                if len(s) > 1:
                    s = _resample_stroke(s, 1.0) if resample == "steps" else _resample_even(s)
                s = rdp.rdp(s, 2.0) if len(s) > 2 else s
                strokes.append(drop_repeats(np.rint(s)))
            out.append(strokes)
    return out


# ---------------------------------------------------------------------------------------------------
# --study: a reference pipeline, one step changed at a time


def _rdp_ties(s: np.ndarray, eps: float, ties: str) -> np.ndarray:
    """Line-distance RDP keep-mask with another tie rule: "last" maximum, or the first within 1e-9 of it."""
    keep = np.zeros(len(s), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(s) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b, p = s[i], s[j], s[i + 1:j]
        d = b - a
        length = math.sqrt(d[0] * d[0] + d[1] * d[1])
        if length > 0:
            dist = np.abs(d[0] * (a[1] - p[:, 1]) - d[1] * (a[0] - p[:, 0])) / length
        else:
            dist = np.sqrt(((p - a) ** 2).sum(axis=1))
        m = dist.max()
        cand = np.flatnonzero(dist >= m - 1e-9) if ties == "first_1e-9" else np.flatnonzero(dist == m)
        k = i + 1 + int(cand[-1] if ties == "last" else cand[0])
        if m > eps:
            keep[k] = True
            stack += [(i, k), (k, j)]
    return keep


def _resample_vertices(s: np.ndarray) -> np.ndarray:
    """Every segment cut into ceil(length) equal parts: all original vertices stay."""
    parts = [s[:1]]
    for a, b in zip(s[:-1], s[1:]):
        n = int(math.ceil(math.hypot(*(b - a))))
        if n:
            parts.append(a + (np.arange(1, n + 1) / n)[:, None] * (b - a))
    return np.concatenate(parts)


ROUND = {"rint": np.rint, "half_up": lambda x: np.floor(x + 0.5), "floor": np.floor}


def reference(raw: list[Drawing], divide=True, resample="steps", round_at="end", rounding="rint",
              distance="line", ties="first", split=">") -> list[Drawing]:
    """Google's four steps written out per stroke; the defaults are what `convert` does."""
    out = []
    rnd = ROUND[rounding]
    for drawing in raw:
        strokes = []
        for s in _align_scale(drawing, divide):
            if round_at == "before_resample":
                s = drop_repeats(rnd(s))
            if len(s) > 1:
                s = {"steps": lambda q: _resample_stroke(q, 1.0), "even": _resample_even,
                     "vertices": _resample_vertices, "none": lambda q: q}[resample](s)
            if round_at == "before_rdp":
                s = drop_repeats(rnd(s))
            if ties != "first":
                keep = _rdp_ties(s, 2.0, ties) if len(s) > 2 else np.ones(len(s), bool)
            else:
                eps = 2.0 if split == ">" else np.nextafter(2.0, 0.0)  # d >= 2 splits too
                keep = rdp_mask(s, np.array([0, len(s)]), eps, distance)
            strokes.append(drop_repeats(rnd(s[keep])))
        out.append(strokes)
    return out


STUDY = [
    ("as shipped: (x-min)*255/ext, 1 px steps, line, rint", {}),
    ("scale (x-min)*(255/ext) (two roundings, not one)", {"divide": False}),
    ("resample evenly: ceil(length)+1 samples", {"resample": "even"}),
    ("resample keeping vertices (segments cut at <= 1 px)", {"resample": "vertices"}),
    ("no resampling", {"resample": "none"}),
    ("round to pixels before resampling", {"round_at": "before_resample"}),
    ("round to pixels after resampling, before RDP", {"round_at": "before_rdp"}),
    ("round half up instead of half to even", {"rounding": "half_up"}),
    ("floor instead of round", {"rounding": "floor"}),
    ("segment distance", {"distance": "segment"}),
    ("split when d >= epsilon (not d > epsilon)", {"split": ">="}),
    ("ties: the last farthest point", {"ties": "last"}),
    ("ties: the first within 1e-9 of the farthest", {"ties": "first_1e-9"}),
]


def tie_diagnosis(pairs: Pairs, ours: list[Drawing], divide: bool) -> tuple[int, int, int]:
    """Of the strokes that differ from Google's: how many have all of Google's points among our rounded
    samples, and how many a different choice among exactly tied farthest points (within 1e-9) reproduces."""
    differing = among_samples = tie_fixes = 0
    for raw, mine, theirs in zip(pairs.raw, ours, pairs.google):
        for s, a, g in zip(_align_scale(raw, divide), mine, theirs):
            g = drop_repeats(g)
            if len(a) == len(g) and np.array_equal(a, g):
                continue
            differing += 1
            samples = _resample_stroke(s, 1.0) if len(s) > 1 else s
            wanted = {tuple(p) for p in g}
            among_samples += wanted <= {tuple(p) for p in np.rint(samples)}
            keep = _oracle_ties(samples, wanted)
            got = drop_repeats(np.rint(samples[keep]))
            tie_fixes += len(got) == len(g) and np.array_equal(got, g)
    return differing, among_samples, tie_fixes


def _oracle_ties(s: np.ndarray, wanted: set) -> np.ndarray:
    """RDP that, among points tied (within 1e-9) for farthest, takes one whose rounding Google kept."""
    keep = np.zeros(len(s), dtype=bool)
    keep[[0, -1]] = True
    stack = [(0, len(s) - 1)]
    while stack:
        i, j = stack.pop()
        if j - i < 2:
            continue
        a, b, p = s[i], s[j], s[i + 1:j]
        d = b - a
        length = math.sqrt(d[0] * d[0] + d[1] * d[1])
        dist = (np.abs(d[0] * (a[1] - p[:, 1]) - d[1] * (a[0] - p[:, 0])) / length if length > 0
                else np.sqrt(((p - a) ** 2).sum(axis=1)))
        m = dist.max()
        if m <= 2.0:
            continue
        cand = np.flatnonzero(dist >= m - 1e-9)
        good = [c for c in cand if tuple(np.rint(p[c])) in wanted]
        k = i + 1 + int(good[0] if good else cand[0])
        keep[k] = True
        stack += [(i, k), (k, j)]
    return keep


# ---------------------------------------------------------------------------------------------------


def _row(name: str, f: Figures, seconds: float, n: int) -> str:
    return (f"{name:<58} {f.identical:>9.1%} {f.same_points:>8.1%} {f.median:>7.2f} {f.within_1:>7.1%} "
            f"{f.within_2:>7.1%} {n:>6} {seconds:>7.1f}")


HEADER = f"{'pipeline':<58} {'identical':>9} {'#points':>8} {'median':>7} {'<=1 px':>7} {'<=2 px':>7} {'pairs':>6} {'s':>7}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=SHARED, help="folder holding quickdraw_{raw,simplified}_ndjson")
    ap.add_argument("--baseline-every", type=int, default=1, metavar="K",
                    help="run the slow `rdp` package on every K-th pair only (default: all)")
    ap.add_argument("--study", action="store_true", help="also print the tuning table")
    args = ap.parse_args(argv)

    pairs = load_pairs(args.data)
    n_strokes = sum(map(len, pairs.google))
    dots = sum(1 for d in pairs.google for s in d if len(s) == 2 and np.array_equal(s[0], s[1]))
    same_strokes = all(len(r) == len(g) for r, g in zip(pairs.raw, pairs.google))
    print(f"{len(pairs.ids)} raw drawings with Google's simplified twin (same key_id), {n_strokes} strokes; "
          f"same stroke count in every pair: {same_strokes}; Google's two-point dots: {dots}")
    print(HEADER)
    for distance in ("line", "segment"):
        t = time.perf_counter()
        ours = run_sketchprep(pairs, distance)
        seconds = time.perf_counter() - t
        f = compare(ours, pairs.google)
        print(_row(f"sketchprep convert --distance {distance}", f, seconds, len(ours)), flush=True)
        if distance == "line":
            raw_same = np.mean([sum(map(len, o)) == sum(map(len, g)) for o, g in zip(ours, pairs.google)])
            shipped = f
    sub = slice(None, None, args.baseline_every)
    for resample, name in (("steps", "rdp package, samples every 1 px (+ end point)"),
                           ("even", "rdp package, samples spread evenly (issue's plain run)")):
        t = time.perf_counter()
        plain = run_plain_rdp(pairs.raw[sub], resample)
        seconds = time.perf_counter() - t
        print(_row(name, compare(plain, pairs.google[sub]), seconds, len(plain)), flush=True)
    print(f"(#points with Google's two-point dots counted as two points: {raw_same:.1%} for --distance line)")

    if args.study:
        print("\nStudy: the reference pipeline (what convert does, written out per stroke) with one step changed")
        print(HEADER)
        for name, kw in STUDY:
            t = time.perf_counter()
            out = reference(pairs.raw, **kw)
            f = compare(out, pairs.google)
            print(_row(name, f, time.perf_counter() - t, len(out)), flush=True)
            if not kw and not np.array_equal(f.distances, shipped.distances):
                print("  warning: the reference differs from what convert ships")
        differing, among, fixes = tie_diagnosis(pairs, reference(pairs.raw), True)
        print(f"strokes that differ from Google's (as shipped): {differing}; Google's points all among our "
              f"rounded 1 px samples: {among}; reproduced by another choice among exactly tied farthest points: "
              f"{fixes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
