"""The packed kept sketches (`Kept`) and the content hash each carries (`sketch_hashes`).

The hash decides both which of two equal sketches is a duplicate (`dedupe`) and where a sketch falls
in the seeded order of the splits (`splits.shuffle_order`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..strokes import _offsets, _ranges

TAKE_BLOCK = 8192      # sketches gathered at a time when reordering kept sketches


@dataclass
class Kept:
    """Sketches that passed every per-drawing step, packed: rows (R, 3) int16 with row_offsets (N+1,),
    plus per-sketch ids, labels, stream order and content hashes, and with `convert --keep-time` the
    (R,) float64 time of every row (NaN for sketches without times; None when no sketch has any)."""

    rows: np.ndarray
    row_offsets: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    order: np.ndarray
    hashes: np.ndarray
    times: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.row_offsets) - 1

    def sketch(self, i: int) -> np.ndarray:
        return self.rows[self.row_offsets[i]:self.row_offsets[i + 1]]

    # What workers send back is a third smaller with labels as codes and ASCII ids as bytes (measured:
    # on 2 cores, simplified Quick, Draw! collects 1.6x instead of 1.4x faster with 2 workers than with 1).
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        classes, codes = np.unique(self.labels, return_inverse=True)
        state["labels"] = (classes, codes.astype(np.int32))
        try:
            state["ids"] = self.ids.astype(bytes)
        except UnicodeEncodeError:
            pass
        return state

    def __setstate__(self, state: dict) -> None:
        classes, codes = state["labels"]
        state["labels"] = classes[codes]
        if state["ids"].dtype.kind == "S":
            state["ids"] = state["ids"].astype(str)
        self.__dict__.update(state)

    def take(self, idx: np.ndarray) -> "Kept":
        """The sketches at `idx`, in that order (a copy)."""
        idx = np.asarray(idx, dtype=np.int64)
        lengths = self.row_offsets[idx + 1] - self.row_offsets[idx]
        new_offsets = _offsets(lengths)
        rows = np.empty((int(new_offsets[-1]), 3), dtype=self.rows.dtype)
        times = None if self.times is None else np.empty(int(new_offsets[-1]))
        for a in range(0, len(idx), TAKE_BLOCK):  # blocks bound the int64 row indices to a few MB
            b = min(a + TAKE_BLOCK, len(idx))
            taken = _ranges(self.row_offsets[idx[a:b]], lengths[a:b])
            rows[new_offsets[a]:new_offsets[b]] = self.rows[taken]
            if times is not None:
                times[new_offsets[a]:new_offsets[b]] = self.times[taken]
        return Kept(rows, new_offsets, self.ids[idx], self.labels[idx], self.order[idx], self.hashes[idx], times)

    @staticmethod
    def empty() -> "Kept":
        return Kept(np.zeros((0, 3), np.int16), np.zeros(1, np.int64), np.zeros(0, "<U1"), np.zeros(0, "<U1"),
                    np.zeros(0, np.int64), np.zeros(0, np.uint64))

    @staticmethod
    def concat(parts: list["Kept"]) -> "Kept":
        parts = [p for p in parts if p.n] or [Kept.empty()]
        lengths = np.concatenate([np.diff(p.row_offsets) for p in parts])
        timed = any(p.times is not None for p in parts)
        return Kept(
            np.concatenate([p.rows for p in parts]),
            _offsets(lengths),
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.order for p in parts]),
            np.concatenate([p.hashes for p in parts]),
            np.concatenate([p.times if p.times is not None else np.full(len(p.rows), np.nan) for p in parts])
            if timed else None,
        )


_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


def priorities(hashes: np.ndarray, seed: int) -> np.ndarray:
    """(N,) uint64 seeded priority of each sketch, from its content hash: the order of the splits.

    A bijection of the hash (xor with a constant, then mix64), so equal priorities mean equal hashes."""
    seed_mix = mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) ^ GOLDEN)[0]
    return mix64(np.asarray(hashes, dtype=np.uint64) ^ seed_mix)


_POSITION_KEYS = np.zeros(0, np.uint64)


def _position_keys(n: int) -> np.ndarray:
    """Random-looking 64-bit keys for row positions 0..n-1 (cached)."""
    global _POSITION_KEYS
    if len(_POSITION_KEYS) < n:
        with np.errstate(over="ignore"):
            _POSITION_KEYS = mix64(np.arange(max(n, 1024), dtype=np.uint64) * GOLDEN)
    return _POSITION_KEYS


def sketch_hashes(rows: np.ndarray, row_offsets: np.ndarray) -> np.ndarray:
    """(N,) uint64 content hash of each int16 stroke-3 sketch (equal sketches, equal hashes)."""
    n = len(row_offsets) - 1
    if n == 0:
        return np.zeros(0, np.uint64)
    lengths = np.diff(row_offsets)
    r = np.ascontiguousarray(rows, dtype=np.int16)
    # the three int16 columns of a row as one 64-bit word (the fourth 16 bits are 0)
    v = np.zeros((len(r), 4), dtype="<i2")
    v[:, :3] = r
    v = v.view("<u8").ravel().astype(np.uint64)
    pos = np.arange(len(rows), dtype=np.int64) - np.repeat(row_offsets[:-1], lengths)
    with np.errstate(over="ignore"):
        x = mix64(v ^ _position_keys(int(lengths.max()))[pos])
        h = np.add.reduceat(x, row_offsets[:-1]) if len(rows) else np.zeros(n, np.uint64)
        return mix64(h ^ (lengths.astype(np.uint64) * GOLDEN))
