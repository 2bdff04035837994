"""Dedupe: exact duplicate sketches (after quantisation) removed, the one earliest in the input stream kept."""
from __future__ import annotations

import numpy as np

from ..strokes import _offsets, _ranges
from .kept import TAKE_BLOCK, Kept


def unique(kept: Kept) -> np.ndarray:
    """Indices (ascending) of the sketches that are not an exact duplicate of one earlier in the input
    stream.

    Sketches with equal content hashes are compared row by row with the earliest of their hash group
    (vectorised); a group where some member differs from it (a 64-bit hash collision) is resolved by
    comparing every member with each kept one.
    """
    everything = np.arange(kept.n)
    if kept.n < 2:
        return everything
    idx = np.lexsort((kept.order, kept.hashes))
    h = kept.hashes[idx]
    same_as_prev = np.zeros(len(idx), dtype=bool)
    same_as_prev[1:] = h[1:] == h[:-1]
    if not same_as_prev.any():
        return everything
    group_start = np.maximum.accumulate(np.where(same_as_prev, 0, np.arange(len(idx))))
    cand = idx[same_as_prev]                   # later members of a hash group
    group = group_start[same_as_prev]
    first = idx[group]                         # the earliest member of the same group
    lengths = np.diff(kept.row_offsets)
    same = lengths[cand] == lengths[first]
    pairs = np.flatnonzero(same)
    for a in range(0, len(pairs), TAKE_BLOCK):  # compare row by row, a block of pairs at a time
        block = pairs[a:a + TAKE_BLOCK]
        n = lengths[cand[block]]
        rows_a = _ranges(kept.row_offsets[cand[block]], n)
        rows_b = rows_a - np.repeat(kept.row_offsets[cand[block]] - kept.row_offsets[first[block]], n)
        r = kept.rows
        differs = (r[rows_a, 0] != r[rows_b, 0]) | (r[rows_a, 1] != r[rows_b, 1]) | (r[rows_a, 2] != r[rows_b, 2])
        same[block] = ~np.logical_or.reduceat(differs, _offsets(n)[:-1])
    mask = np.ones(kept.n, dtype=bool)
    mask[cand[same]] = False
    starts = np.flatnonzero(~same_as_prev)
    for g in np.unique(group[~same]):  # hash collisions: compare each member with every kept one
        k = np.searchsorted(starts, g, side="right")
        reps: list[np.ndarray] = []
        for m in idx[g:starts[k] if k < len(starts) else len(idx)]:
            s = kept.sketch(m)
            if any(np.array_equal(r, s) for r in reps):
                mask[m] = False
            else:
                reps.append(s)
    return np.flatnonzero(mask)


def dedupe(kept: Kept) -> tuple[Kept, int]:
    """Remove exact duplicate sketches, keeping the one earliest in the input stream; returns the
    remaining sketches and how many were removed."""
    keep = unique(kept)
    return (kept.take(keep), kept.n - len(keep)) if len(keep) < kept.n else (kept, 0)
