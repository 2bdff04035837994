"""Quick, Draw! ndjson (raw `[x, y, t]` or simplified `[x, y]` strokes, detected per line).

Reading streams: lines are read in chunks and never the whole file at once. `.ndjson.gz` is read
through gzip and `-` means standard input. `key_id` may be a JSON string or integer; the last line
may lack its newline.
"""
from __future__ import annotations

import gzip
import math
import os
import sys
from collections import Counter
from typing import BinaryIO, Iterator

import numpy as np

try:
    import orjson

    _loads = orjson.loads
    _JSONError = orjson.JSONDecodeError
except ImportError:  # pragma: no cover - orjson is a dependency; json is 3x slower but equivalent
    import json

    _loads = json.loads
    _JSONError = ValueError

from ..strokes import FlatDrawings, _offsets
from . import KIND_RAW, KIND_SIMPLIFIED, Problem, SourceBatch, order_key

# Device pixels of real drawings are in the thousands; far beyond this is a broken record.
MAX_ABS_COORDINATE = 1e6


def is_ndjson(path: str) -> bool:
    return path == "-" or path.endswith((".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz"))


def class_name_from_path(path: str) -> str:
    """'data/cat.ndjson.gz' -> 'cat' (the label of lines without a 'word')."""
    name = os.path.basename(path)
    for suffix in (".gz", ".ndjson", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name or "stdin"


def open_lines(path: str) -> BinaryIO:
    """A binary stream of the file's lines (`-`: stdin; `.gz`: decompressed)."""
    if path == "-":
        return sys.stdin.buffer
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


def iter_line_chunks(stream: BinaryIO, chunk_lines: int = 2000) -> Iterator[tuple[int, list[bytes], int]]:
    """Yield (first line number (1-based), lines, bytes read so far)."""
    lines: list[bytes] = []
    first = 1
    n = 0
    nbytes = 0
    for line in stream:
        n += 1
        nbytes += len(line)
        lines.append(line)
        if len(lines) >= chunk_lines:
            yield first, lines, nbytes
            first = n + 1
            lines = []
    if lines:
        yield first, lines, nbytes


def parse_lines(lines: list[bytes], path: str, first_line: int, input_index: int,
                words: frozenset[str] | None = None, recognized_only: bool = False) -> SourceBatch:
    """Parse ndjson lines into a `SourceBatch` (one drawing per line; blank lines are skipped)."""
    xs: list = []
    ys: list = []
    stroke_lens: list[int] = []
    n_strokes: list[int] = []
    kinds: list[int] = []
    ids: list[str] = []
    labels: list[str | None] = []
    order: list[int] = []
    problems: list[Problem] = []
    filtered: Counter = Counter()
    read = 0
    fallback_label = class_name_from_path(path)

    def bad(reason: str, lineno: int, message: str) -> None:
        problems.append(Problem(reason, path, lineno, message))

    for i, line in enumerate(lines):
        lineno = first_line + i
        if not line.strip():
            continue
        read += 1
        try:
            rec = _loads(line)
        except _JSONError as e:
            bad("malformed_json", lineno, f"not valid JSON ({e})")
            continue
        if not isinstance(rec, dict):
            bad("bad_drawing", lineno, f"expected a JSON object, got {type(rec).__name__}")
            continue
        word = rec.get("word")
        if words is not None and word not in words:
            filtered["other_word"] += 1
            continue
        if recognized_only and rec.get("recognized") is not True:
            filtered["unrecognized"] += 1
            continue
        drawing = rec.get("drawing")
        if not isinstance(drawing, list):
            bad("bad_drawing", lineno, "no 'drawing' list")
            continue
        mark = (len(xs), len(stroke_lens))
        kind = KIND_SIMPLIFIED
        count = 0
        error = None
        for s in drawing:
            if not isinstance(s, list) or len(s) not in (2, 3):
                error = "a stroke is not [[x...], [y...]] or [[x...], [y...], [t...]]"
                break
            sx, sy = s[0], s[1]
            if not isinstance(sx, list) or not isinstance(sy, list) or len(sx) != len(sy):
                error = "a stroke's x and y are not lists of equal length"
                break
            if len(s) == 3:
                kind = KIND_RAW
            if not sx:
                continue  # an empty stroke draws nothing
            xs += sx
            ys += sy
            stroke_lens.append(len(sx))
            count += 1
        if error is None and count == 0:
            error = "empty drawing (no points)"
            reason = "empty_drawing"
        else:
            reason = "bad_drawing"
        if error is not None:
            del xs[mark[0]:], ys[mark[0]:], stroke_lens[mark[1]:]
            bad(reason, lineno, error)
            continue
        key = rec.get("key_id")
        ids.append(str(key) if key is not None else f"{path}:{lineno}")
        labels.append(word if isinstance(word, str) else fallback_label)
        n_strokes.append(count)
        kinds.append(kind)
        order.append(order_key(input_index, lineno))

    points, keep = _to_points(xs, ys, stroke_lens, n_strokes, path, first_line, problems, order, input_index)
    problems.sort(key=lambda p: p.line)
    so = _offsets(np.asarray(stroke_lens, dtype=np.int64))
    do = _offsets(np.asarray(n_strokes, dtype=np.int64))
    flat = FlatDrawings(points, so, do)
    batch = SourceBatch(flat, np.asarray(kinds, dtype=np.uint8), ids, labels, np.asarray(order, dtype=np.int64),
                        problems, filtered, read, {input_index: path})
    if keep is not None:
        batch = select(batch, np.flatnonzero(keep))
    return batch


def _to_points(xs, ys, stroke_lens, n_strokes, path, first_line, problems, order, input_index):
    """Convert the flat coordinate lists; find drawings with non-numeric, non-finite or absurd values."""
    try:
        ax, ay = np.array(xs), np.array(ys)
    except (ValueError, TypeError, OverflowError):  # nested lists
        ax = ay = np.array([None])
    if len(xs) == 0 or (ax.dtype.kind in "iuf" and ay.dtype.kind in "iuf" and ax.ndim == 1 and ay.ndim == 1):
        points = np.empty((len(xs), 2), dtype=np.float64)
        points[:, 0] = ax
        points[:, 1] = ay
        numeric = None
    else:  # strings, nulls, nested lists or integers too large for int64 somewhere in the chunk
        points, numeric = _to_points_slow(xs, ys)
    n_draw = len(n_strokes)
    if n_draw == 0:
        return points.reshape(-1, 2), None
    stroke_off = _offsets(np.asarray(stroke_lens, dtype=np.int64))
    point_off = stroke_off[_offsets(np.asarray(n_strokes, dtype=np.int64))]
    finite = np.isfinite(points).all(axis=1)
    sane = np.abs(np.where(finite[:, None], points, 0)).max(axis=1) <= MAX_ABS_COORDINATE
    ok_point = finite & sane if numeric is None else finite & sane & numeric
    if ok_point.all():
        return points, None
    owner = np.repeat(np.arange(n_draw), np.diff(point_off))
    keep = np.ones(n_draw, dtype=bool)
    for d in np.unique(owner[~ok_point]):
        pts = slice(point_off[d], point_off[d + 1])
        lineno = int(order[d] - (input_index << 32))
        if numeric is not None and not numeric[pts].all():
            problems.append(Problem("bad_drawing", path, lineno, "a coordinate is not a number"))
        elif not finite[pts].all():
            problems.append(Problem("non_finite", path, lineno, "a coordinate is NaN or infinite"))
        else:
            problems.append(Problem("absurd_coordinate", path, lineno,
                                    f"a coordinate exceeds {MAX_ABS_COORDINATE:g} in absolute value"))
        keep[d] = False
    return points, keep


def _to_points_slow(xs, ys):
    n = len(xs)
    points = np.zeros((n, 2), dtype=np.float64)
    numeric = np.ones(n, dtype=bool)
    for i, (x, y) in enumerate(zip(xs, ys)):
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool) \
                and not isinstance(y, bool):
            try:
                points[i] = (float(x), float(y))
            except OverflowError:  # an integer too large for a float
                points[i] = (math.inf, math.inf)
        else:
            numeric[i] = False
    return points, numeric


def select(batch: SourceBatch, keep: np.ndarray) -> SourceBatch:
    """The batch restricted to the drawings at the given (ascending) indices."""
    return SourceBatch(
        batch.flat.select(keep),
        batch.kinds[keep],
        [batch.ids[i] for i in keep],
        [batch.labels[i] for i in keep],
        batch.order[keep],
        batch.problems,
        batch.filtered,
        batch.read,
        batch.paths,
    )
