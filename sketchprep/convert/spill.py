"""Spill: the kept sketches of a run, packed as they come, so that memory holds only what the stage at hand
needs.

`collect` hands every chunk's kept sketches to a `Spill` instead of keeping them as objects: their stroke-3
rows go to one store, their keys (length, content hash, stream order, class, id: 24 bytes plus the id) to
another, with `--keep-time` their times (8 bytes a row) to a third, each chunk as a run (with `by_label`,
one run per class of the chunk). A store is a temporary file (`on_disk`; unnamed where the system allows
it, beside the output: see `sketchprep.outputs.scratch_file`, so a killed run leaves nothing behind), or a
growing buffer in memory (for one OUT.npz, which holds every row at the end anyway: it grows in place,
never to twice its size, and costs no disk). What else stays in memory is one small record per run.

Then each output reads back only what it needs (`SpillReader.load`): for one OUT.npz every key and row
(the packed rows are what the file holds; reading them at random from the file instead maps all of it
into memory anyway, and costs a system call a sketch), for a `--by-word` file the keys and rows of its
class alone, in the worker that writes it.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from ..strokes import _offsets, _ranges
from .kept import Kept

@dataclass
class Keys:
    """The keys of some spilled sketches, in spill order: lengths (rows), content hashes, stream order,
    class codes (into `Spill.classes`), ids, and where each sketch's rows start in the rows file."""

    lengths: np.ndarray    # (N,) int64
    hashes: np.ndarray     # (N,) uint64
    order: np.ndarray      # (N,) int64
    labels: np.ndarray     # (N,) int32
    ids: np.ndarray        # (N,) str or ASCII bytes
    row_starts: np.ndarray  # (N,) int64

    @property
    def n(self) -> int:
        return len(self.lengths)

    def take(self, idx: np.ndarray) -> "Keys":
        return Keys(self.lengths[idx], self.hashes[idx], self.order[idx], self.labels[idx], self.ids[idx],
                    self.row_starts[idx])


@dataclass(frozen=True)
class SpillReader:
    """What a process needs to read a spill (picklable; a store on disk is named by a path that works in
    processes forked from the one that made the spill, a store in memory is the buffer itself)."""

    rows: str | bytearray
    keys: str | bytearray
    runs: tuple          # (class code or -1 for several, count, keys offset, ids dtype, first row, rows)
    classes: tuple       # class names by code
    id_width: int        # characters of the longest id (the width of the ids arrays written)
    times: str | bytearray | None = None  # --keep-time: float64 per row (NaN for sketches without); None: none

    def load(self, label: int | None = None) -> tuple[Keys, np.ndarray, np.ndarray | None]:
        """The keys, the packed (R, 3) int16 rows and (with `--keep-time`) the (R,) float64 times of every
        sketch (label None), or of those of one class, in spill order; `Keys.row_starts` index the rows
        returned. Times are None when no sketch spilled had any."""
        runs = [r for r in self.runs if label is None or r[0] in (label, -1)]
        whole = label is None and isinstance(self.rows, bytearray)
        timed = self.times is not None
        if whole:  # all of them, in memory: no copy
            rows = np.frombuffer(self.rows, "<i2").reshape(-1, 3)
            times = np.frombuffer(self.times, "<f8") if timed else None
        else:
            total = sum(r[5] for r in runs)
            rows = np.empty((total, 3), dtype="<i2")
            times = np.empty(total, dtype="<f8") if timed else None
        parts = []
        with _opened(self.keys) as keys_src, _opened(self.rows) as rows_src, _opened(self.times) as times_src:
            at = 0
            for code, count, offset, id_dtype, first_row, run_rows in runs:
                id_dtype = np.dtype(id_dtype)
                blob = _read(keys_src, offset, count * (4 + 8 + 8 + 4 + id_dtype.itemsize))
                lengths = np.frombuffer(blob, "<i4", count, 0).astype(np.int64)
                start = first_row if whole else at
                keys = Keys(lengths, np.frombuffer(blob, "<u8", count, 4 * count),
                            np.frombuffer(blob, "<i8", count, 12 * count), np.frombuffer(blob, "<i4", count, 20 * count),
                            np.frombuffer(blob, id_dtype, count, 24 * count), start + _offsets(lengths)[:-1])
                if not whole:
                    _read_into(rows_src, memoryview(rows[at:at + run_rows]).cast("B"), first_row * 6)
                    if timed:
                        _read_into(times_src, memoryview(times[at:at + run_rows]).cast("B"), first_row * 8)
                    if label is not None and code == -1:  # a run of several classes: keep this one's sketches
                        keys = keys.take(np.flatnonzero(keys.labels == label))
                        mine = _ranges(keys.row_starts, keys.lengths)
                        kept_rows = len(mine)
                        rows[at:at + kept_rows] = rows[mine]
                        if timed:
                            times[at:at + kept_rows] = times[mine]
                        keys.row_starts = at + _offsets(keys.lengths)[:-1]
                        run_rows = kept_rows
                parts.append(keys)
                at += run_rows
        if whole:
            return _concat_keys(parts), rows, times
        return _concat_keys(parts), rows[:at], None if times is None else times[:at]


@contextlib.contextmanager
def _opened(src: str | bytearray | None):
    """A store to read: a file descriptor for a path, the buffer itself for memory (None: no store)."""
    if src is None:
        yield None
        return
    if isinstance(src, bytearray):
        yield memoryview(src)
        return
    fd = os.open(src, os.O_RDONLY)
    try:
        yield fd
    finally:
        os.close(fd)


def _read(src, offset: int, size: int):
    if isinstance(src, memoryview):
        return src[offset:offset + size]
    buf = bytearray(size)
    _read_into(src, memoryview(buf), offset)
    return buf


def _read_into(src, buf: memoryview, offset: int) -> None:
    """Fill `buf` from the store at `offset` (from a file: pread into it, no copy)."""
    if isinstance(src, memoryview):
        buf[:] = src[offset:offset + len(buf)]
        return
    while len(buf):
        got = os.preadv(src, [buf], offset) if hasattr(os, "preadv") else _pread_into(src, buf, offset)
        if not got:
            raise EOFError("the spill file is shorter than written")
        buf, offset = buf[got:], offset + got


def _pread_into(fd: int, buf: memoryview, offset: int) -> int:
    data = os.pread(fd, len(buf), offset)
    buf[:len(data)] = data
    return len(data)


def _concat_keys(parts: list[Keys]) -> Keys:
    if not parts:
        z = np.zeros(0, np.int64)
        return Keys(z, z.astype(np.uint64), z, z.astype(np.int32), np.zeros(0, "<U1"), z)
    ids = [p.ids for p in parts]
    if any(i.dtype.kind == "U" for i in ids):
        ids = [i.astype(str) for i in ids]  # 'S' runs are ASCII: decoding them is exact
    return Keys(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("lengths", "hashes", "order", "labels")),
                np.concatenate(ids), np.concatenate([p.row_starts for p in parts]))


class _FileStore:
    def __init__(self, fd: int, path: str):
        self.fd, self.src, self.size = fd, path, 0

    def append(self, data: memoryview) -> None:
        self.size += len(data)
        while len(data):
            data = data[os.write(self.fd, data):]


class _MemoryStore:
    def __init__(self):
        self.src = bytearray()  # grown in place (realloc, which moves big buffers by remapping, not copying)

    @property
    def size(self) -> int:
        return len(self.src)

    def append(self, data: memoryview) -> None:
        self.src += data


class Spill:
    """Kept sketches packed into two stores (three with times) as they come (`add`); see the module docstring.

    near: an output path; files go in its folder (default: the system's temporary folder).
    by_label: one run per class of each chunk, so that one class can be read without the others.
    on_disk: temporary files (default); False keeps the stores in memory.
    """

    def __init__(self, near: str | os.PathLike | None = None, by_label: bool = False, on_disk: bool = True):
        self.by_label, self.on_disk = by_label, on_disk
        self._near = near if near is not None else os.path.join(tempfile.gettempdir(), "sketchprep")
        self._stack = contextlib.ExitStack()
        self.classes: list[str] = []
        self._codes: dict[str, int] = {}
        self._runs: list[tuple] = []
        self.n = 0
        self.n_rows = 0
        self.id_width = 0
        self._rows = self._keys = self._times = None

    def __enter__(self) -> "Spill":
        from ..outputs import scratch_file

        if not self.on_disk:
            self._rows, self._keys = _MemoryStore(), _MemoryStore()
            return self
        try:
            self._rows = _FileStore(*self._stack.enter_context(scratch_file(self._near)))
            self._keys = _FileStore(*self._stack.enter_context(scratch_file(self._near)))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._stack.close()
        self._rows = self._keys = self._times = None

    def add(self, kept: Kept) -> None:
        """Append a chunk's kept sketches (their order in the chunk is kept, within each class)."""
        if not kept.n:
            return
        if kept.times is not None and self._times is None:
            self._start_times()
        labels = kept.labels
        if labels[0] == labels[-1] and (labels == labels[0]).all():  # the usual chunk: one class
            names, inverse = [labels[0]], np.zeros(kept.n, np.int64)
        else:
            names, inverse = np.unique(labels, return_inverse=True)
            inverse = inverse.reshape(-1)
        codes = np.array([self._code(str(c)) for c in names], dtype=np.int32)[inverse]
        width = kept.ids.dtype.itemsize // (4 if kept.ids.dtype.kind == "U" else 1)
        self.id_width = max(self.id_width, width)
        if self.by_label and len(names) > 1:
            by_class = np.argsort(inverse, kind="stable")
            kept, codes = kept.take(by_class), codes[by_class]
            bounds = np.flatnonzero(np.diff(codes)) + 1
            for a, b in zip([0, *bounds.tolist()], [*bounds.tolist(), kept.n]):
                self._write_run(kept, codes, a, b, int(codes[a]))
        else:
            self._write_run(kept, codes, 0, kept.n, int(codes[0]) if len(names) == 1 else -1)

    def _start_times(self) -> None:
        """The times store, from the first sketch with times on: the rows spilled before it get NaN (as
        `Kept.concat` gives them)."""
        if self.on_disk:
            from ..outputs import scratch_file

            self._times = _FileStore(*self._stack.enter_context(scratch_file(self._near)))
        else:
            self._times = _MemoryStore()
        nan = np.full(min(self.n_rows, 2**20), np.nan, dtype="<f8")
        for a in range(0, self.n_rows, len(nan) or 1):
            self._times.append(memoryview(nan[:min(len(nan), self.n_rows - a)]).cast("B"))

    def _code(self, name: str) -> int:
        if name not in self._codes:
            self._codes[name] = len(self.classes)
            self.classes.append(name)
        return self._codes[name]

    def _write_run(self, kept: Kept, codes: np.ndarray, a: int, b: int, code: int) -> None:
        offsets = kept.row_offsets
        rows = np.ascontiguousarray(kept.rows[offsets[a]:offsets[b]], dtype="<i2")
        ids = kept.ids[a:b]
        try:
            ids = ids.astype(np.bytes_) if ids.dtype.kind == "U" else ids  # a quarter of the bytes when ASCII
        except UnicodeEncodeError:
            pass
        lengths = np.diff(offsets[a:b + 1])
        blob = b"".join((lengths.astype("<i4").tobytes(), kept.hashes[a:b].astype("<u8").tobytes(),
                         kept.order[a:b].astype("<i8").tobytes(), codes[a:b].astype("<i4").tobytes(),
                         np.ascontiguousarray(ids).tobytes()))
        self._runs.append((code, b - a, self._keys.size, ids.dtype.str, self.n_rows, len(rows)))
        self._keys.append(memoryview(blob))
        self._rows.append(memoryview(rows).cast("B"))
        if self._times is not None:
            times = (np.full(len(rows), np.nan, dtype="<f8") if kept.times is None else
                     np.ascontiguousarray(kept.times[offsets[a]:offsets[b]], dtype="<f8"))
            self._times.append(memoryview(times).cast("B"))
        self.n += b - a
        self.n_rows += len(rows)

    def reader(self) -> SpillReader:
        return SpillReader(self._rows.src, self._keys.src, tuple(self._runs), tuple(self.classes), self.id_width,
                           None if self._times is None else self._times.src)
