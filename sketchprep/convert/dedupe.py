"""Dedupe: exact duplicate sketches (after quantisation) removed, the one earliest in the input stream kept."""
from __future__ import annotations

import numpy as np

from ..strokes import _offsets, _ranges
from .kept import TAKE_BLOCK, Kept, priorities


def ordered_unique(hashes: np.ndarray, order: np.ndarray, starts: np.ndarray, lengths: np.ndarray, rows,
                   seed: int = 0) -> np.ndarray:
    """Indices of the sketches that are not an exact duplicate of one earlier in the input stream, in
    seeded priority order (`kept.priorities`, then stream order): the order the splits are taken in.

    Sketch i is rows[starts[i]:starts[i] + lengths[i]] (`rows`: an (R, 3) array, or a map of a spill's
    rows file: only the rows of sketches with equal hashes are read). One sort does both jobs: equal
    sketches have equal priorities, so they end up next to each other, the earliest first. Each is
    compared row by row with the first of its group (vectorised); a group where some member differs from
    it (a 64-bit hash collision) is resolved by comparing every member with each kept one.
    """
    n = len(hashes)
    pr = priorities(hashes, seed)
    idx = np.lexsort((order, pr))
    if n < 2:
        return idx
    p = pr[idx]
    same_as_prev = np.zeros(n, dtype=bool)
    same_as_prev[1:] = p[1:] == p[:-1]
    if not same_as_prev.any():
        return idx
    group_start = np.maximum.accumulate(np.where(same_as_prev, 0, np.arange(n)))
    cand_pos = np.flatnonzero(same_as_prev)    # later members of a group, by position in idx
    first_pos = group_start[cand_pos]          # the earliest member of the same group
    cand, first = idx[cand_pos], idx[first_pos]
    same = lengths[cand] == lengths[first]
    pairs = np.flatnonzero(same)
    for a in range(0, len(pairs), TAKE_BLOCK):  # compare row by row, a block of pairs at a time
        block = pairs[a:a + TAKE_BLOCK]
        nb = lengths[cand[block]]
        differs = (rows[_ranges(starts[cand[block]], nb)] != rows[_ranges(starts[first[block]], nb)]).any(axis=1)
        same[block] = ~np.logical_or.reduceat(differs, _offsets(nb)[:-1])
    keep = np.ones(n, dtype=bool)
    keep[cand_pos[same]] = False
    group_starts = np.flatnonzero(~same_as_prev)
    for g in np.unique(first_pos[~same]):  # hash collisions: compare each member with every kept one
        k = np.searchsorted(group_starts, g, side="right")
        reps: list[np.ndarray] = []
        for pos in range(g, group_starts[k] if k < len(group_starts) else n):
            m = idx[pos]
            s = np.asarray(rows[starts[m]:starts[m] + lengths[m]])
            if any(np.array_equal(r, s) for r in reps):
                keep[pos] = False
            else:
                reps.append(s)
    return idx[keep]


def unique(kept: Kept, seed: int = 0) -> np.ndarray:
    """Indices (ascending) of the sketches that are not an exact duplicate of one earlier in the input
    stream (see `ordered_unique`, which gives them in seeded order)."""
    return np.sort(ordered_unique(kept.hashes, kept.order, kept.row_offsets[:-1], np.diff(kept.row_offsets),
                                  kept.rows, seed))


def dedupe(kept: Kept) -> tuple[Kept, int]:
    """Remove exact duplicate sketches, keeping the one earliest in the input stream; returns the
    remaining sketches and how many were removed."""
    keep = unique(kept)
    return (kept.take(keep), kept.n - len(keep)) if len(keep) < kept.n else (kept, 0)
