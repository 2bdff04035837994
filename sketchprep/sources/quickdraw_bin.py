"""Quick, Draw! binary `.bin` files (Google's compact form of the simplified drawings).

Each record (googlecreativelab/quickdraw-dataset, examples/binary_file_parser.py), little-endian:
key_id uint64, country code 2 bytes, recognized int8, timestamp uint32, n_strokes uint16, then per stroke
n_points uint16, n_points uint8 x values, n_points uint8 y values. The coordinates are Google's
simplified ones (aligned, scaled to 255, RDP epsilon 2.0). A file holds one word, named by the file.

Records are numbered from 1 like lines, so a problem is reported as `cat.bin:<record>`.
"""
from __future__ import annotations

import struct
from collections import Counter
from typing import BinaryIO, Iterator

import numpy as np

from ..strokes import FlatDrawings, _offsets, _ranges
from . import KIND_SIMPLIFIED, Problem, SourceBatch

HEADER = struct.Struct("<Q2sbIH")  # key_id, country code, recognized, timestamp, n_strokes
U16 = struct.Struct("<H")
CHUNK_BYTES = 1 << 20


def is_bin(path: str) -> bool:
    return path.endswith(".bin")


def word_from_path(path: str) -> str:
    name = path.replace("\\", "/").rsplit("/", 1)[-1]
    name = name[: -len(".bin")] if name.endswith(".bin") else name
    return name.removeprefix("full_binary_")  # Google's bucket names files full_binary_<word>.bin


class RecordTooLarge(Exception):
    """A record that declares more points than the bound; the file is not read past it."""

    def __init__(self, record: int, max_points: int):
        super().__init__(f"record {record} declares more than {max_points:,} points (raise the bound with --limit "
                         "points-per-drawing=N); the rest of the file is not read")
        self.record = record


def _record_end(buf: bytes, pos: int, max_points: int | None = None) -> int:
    """End offset of the record starting at `pos`; -1 when the buffer ends inside it, -2 when it declares
    more than `max_points` points (known from its stroke headers before its points are read)."""
    end = pos + HEADER.size
    if end > len(buf):
        return -1
    n_strokes = HEADER.unpack_from(buf, pos)[4]
    points = 0
    for _ in range(n_strokes):
        if end + 2 > len(buf):
            return -1
        n = U16.unpack_from(buf, end)[0]
        points += n
        if max_points is not None and points > max_points:
            return -2
        end += 2 + 2 * n
    return end if end <= len(buf) else -1


def iter_record_chunks(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES,
                       max_points: int | None = None) -> Iterator[tuple[int, bytes, int, bool]]:
    """Yield (first record number, bytes of whole records, bytes read so far, truncated).

    `truncated` is True on the last chunk when the file ends inside a record (its bytes are dropped).
    A record declaring more than `max_points` points raises `RecordTooLarge` after the records before
    it were yielded, so no more than one bounded record is ever held.
    """
    first, done, rest = 1, 0, b""
    while True:
        block = stream.read(chunk_bytes)
        buf = rest + block
        pos, count = 0, 0
        while True:
            end = _record_end(buf, pos, max_points)
            if end == -2:
                if count:
                    yield first, buf[:pos], done + len(block), False
                raise RecordTooLarge(first + count, max_points)
            if end < 0:
                break
            pos, count = end, count + 1
        done += len(block)
        if not block:  # end of file
            if count:
                yield first, buf[:pos], done, False
            if pos < len(buf):
                yield first + count, b"", done, True
            return
        if count:
            yield first, buf[:pos], done, False
            first += count
        rest = buf[pos:]


def parse_records(data: bytes, path: str, first: int, input_index: int, truncated: bool = False,
                  words: frozenset[str] | None = None, recognized_only: bool = False) -> SourceBatch:
    """Whole records -> a SourceBatch of simplified drawings."""
    word = word_from_path(path)
    problems: list[Problem] = []
    filtered: Counter = Counter()
    if truncated:
        problems.append(Problem("bad_drawing", path, first, "the file ends inside this record (truncated)"))
    keys, recognized, numbers, n_strokes, x_starts, n_points = [], [], [], [], [], []
    pos, number = 0, first
    while pos < len(data):
        key, _, rec, _, strokes = HEADER.unpack_from(data, pos)
        pos += HEADER.size
        keys.append(key)
        recognized.append(rec)
        numbers.append(number)
        n_strokes.append(strokes)
        for _ in range(strokes):
            n = U16.unpack_from(data, pos)[0]
            x_starts.append(pos + 2)
            n_points.append(n)
            pos += 2 + 2 * n
        number += 1
    read = len(keys) + truncated
    keep = np.ones(len(keys), dtype=bool)
    if words is not None and word not in words:
        filtered["other_word"] = len(keys)
        keep[:] = False
    if recognized_only:
        unrecognized = keep & (np.asarray(recognized, dtype=np.int64) != 1)
        filtered["unrecognized"] = int(unrecognized.sum())
        keep &= ~unrecognized
    n_points = np.asarray(n_points, dtype=np.int64)
    x_starts = np.asarray(x_starts, dtype=np.int64)
    n_strokes = np.asarray(n_strokes, dtype=np.int64)
    stroke_owner = np.repeat(np.arange(len(keys)), n_strokes)
    nonempty = n_points > 0
    strokes_per_drawing = np.bincount(stroke_owner[nonempty], minlength=len(keys))
    for d in np.flatnonzero(keep & (strokes_per_drawing == 0)):
        problems.append(Problem("empty_drawing", path, numbers[d], "empty drawing (no points)"))
        keep[d] = False
    chosen = keep[stroke_owner] & nonempty
    buf = np.frombuffer(data, dtype=np.uint8)
    xi = _ranges(x_starts[chosen], n_points[chosen])
    points = np.empty((len(xi), 2), dtype=np.float64)
    points[:, 0] = buf[xi]
    points[:, 1] = buf[xi + np.repeat(n_points[chosen], n_points[chosen])]
    kept = np.flatnonzero(keep)
    flat = FlatDrawings(points, _offsets(n_points[chosen]), _offsets(strokes_per_drawing[kept]))
    ids = np.array([str(keys[d]) for d in kept], dtype=str) if len(kept) else np.zeros(0, "<U1")
    labels = np.full(len(kept), word) if len(kept) else np.zeros(0, "<U1")
    order = (input_index << 32) | np.asarray(numbers, dtype=np.int64)[kept]
    return SourceBatch(flat, np.full(len(kept), KIND_SIMPLIFIED, dtype=np.uint8), ids, labels, order, problems,
                       +filtered, read, {input_index: path})
