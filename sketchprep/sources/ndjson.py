"""Quick, Draw! ndjson (raw `[x, y, t]` or simplified `[x, y]` strokes, detected per line).

Reading streams: lines are read in chunks and never the whole file at once. `.ndjson.gz` is read
through gzip and `-` means standard input. `key_id` may be a JSON string or integer; the last line
may lack its newline.
"""
from __future__ import annotations

import gc
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

from ..files import changed_while_read, open_regular
from ..strokes import FlatDrawings, _offsets, _ranges
from . import KIND_RAW, KIND_SIMPLIFIED, Problem, SourceBatch

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


class _GzipOfFile(gzip.GzipFile):
    """A GzipFile that closes the file it decompresses (opened by `files.open_regular`) when it closes."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        super().__init__(fileobj=raw, mode="rb")

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._raw.close()


def open_lines(path: str) -> BinaryIO:
    """A binary stream of the file's lines (`-`: stdin; `.gz`: decompressed); a file must be a regular one
    (`files.open_regular`)."""
    if path == "-":
        return sys.stdin.buffer
    raw = open_regular(path, "an ndjson file")
    return _GzipOfFile(raw) if path.endswith(".gz") else raw


CHUNK_BYTES = 1 << 20
PIECE_BYTES = 1 << 20  # how much is read at a time while finishing or skipping a line
BOM = b"\xef\xbb\xbf"
# What a line over the length bound becomes in a chunk (one line, not JSON): the reader never holds
# the line, and the parser reports it as `line_too_long` with its line number.
TOO_LONG_MARK = b"\x00sketchprep:line_too_long:"


class _LineCap:
    """Passes whole lines through and replaces each line longer than `max_line` bytes by a
    `TOO_LONG_MARK` line, holding at most `max_line` bytes of an unfinished line (the rest of a long
    line is read and dropped piece by piece)."""

    def __init__(self, max_line: int):
        self.max_line = max_line
        self.out: list[bytes] = []
        self.partial: list[bytes] = []
        self.partial_len = 0
        self.skipped = -1  # bytes of the line being skipped so far; -1: not skipping

    def feed(self, piece: bytes) -> None:
        if self.skipped >= 0:
            nl = piece.find(b"\n")
            if nl < 0:
                self.skipped += len(piece)
                return
            self._end_skip(self.skipped + nl)
            piece = piece[nl + 1:]
        last = piece.rfind(b"\n")
        if last < 0:
            self._add_partial(piece)
            return
        head, tail = piece[:last + 1], piece[last + 1:]
        if self.partial_len + len(head) > self.max_line + 1 and self._longest(head) > self.max_line:
            lines = (b"".join(self.partial) + head).split(b"\n")[:-1]
            head = b"".join(self._mark(len(line)) if len(line) > self.max_line else line + b"\n" for line in lines)
            self.partial, self.partial_len = [], 0
        self.out += self.partial
        self.out.append(head)
        self.partial, self.partial_len = [], 0
        if tail:
            self._add_partial(tail)

    def _longest(self, head: bytes) -> int:
        ends = np.flatnonzero(np.frombuffer(head, dtype=np.uint8) == 10)
        lengths = np.diff(ends, prepend=-1) - 1
        lengths[0] += self.partial_len
        return int(lengths.max())

    def _add_partial(self, piece: bytes) -> None:
        self.partial.append(piece)
        self.partial_len += len(piece)
        if self.partial_len > self.max_line:
            self.skipped = self.partial_len
            self.partial, self.partial_len = [], 0

    def _end_skip(self, length: int) -> None:
        self.out.append(self._mark(length))
        self.skipped = -1

    def _mark(self, length: int) -> bytes:
        return TOO_LONG_MARK + str(length).encode() + b"\n"

    def finish(self) -> None:
        if self.skipped >= 0:
            self.out.append(self._mark(self.skipped)[:-1])  # the file's last line had no newline
            self.skipped = -1
        self.out += self.partial
        self.partial, self.partial_len = [], 0

    def take(self) -> bytes:
        blob = b"".join(self.out)
        self.out = []
        return blob


def iter_line_chunks(stream: BinaryIO, chunk_bytes: int = CHUNK_BYTES, max_line: int = 16 * 2**20,
                     max_ratio: int | None = None) -> Iterator[tuple[int, bytes, int]]:
    """Yield (first line number (1-based), whole lines of about `chunk_bytes` as one bytes object,
    bytes read for it).

    One bytes object per chunk is cheap to hand to a worker process (no Python object per line), and
    the chunks depend only on the stream's content, so every run (and every shard) cuts them alike.
    A line longer than `max_line` bytes is never held: it becomes a `TOO_LONG_MARK` line. A UTF-8
    byte order mark at the start of the stream is dropped. With `max_ratio`, a gzip stream that
    decompresses to more than that multiple of the compressed bytes read raises `GzipBomb`.
    """
    first = 1
    cap = _LineCap(max_line)
    start = True
    compressed = getattr(stream, "fileobj", None) if max_ratio else None  # a GzipFile's underlying file
    total = 0
    while True:
        blob = stream.read(chunk_bytes)
        total += len(blob)
        _check_ratio(total, compressed, max_ratio)
        if not blob:
            cap.finish()
            rest = cap.take()
            if rest:
                yield first, rest, 0
            return
        nbytes = len(blob)
        if start:
            why = sniff(blob[:SNIFF_BYTES])
            if why:
                raise NotJsonLines(why)
            blob, start = blob.removeprefix(BOM), False
        cap.feed(blob)
        while not blob.endswith(b"\n"):  # finish the last line, a piece at a time
            blob = stream.readline(PIECE_BYTES)
            if not blob:
                cap.finish()
                break
            nbytes += len(blob)
            total += len(blob)
            _check_ratio(total, compressed, max_ratio)
            cap.feed(blob)
        blob = cap.take()
        if blob:
            yield first, blob, nbytes
            first += count_lines(blob)


def _check_ratio(total: int, compressed: BinaryIO | None, max_ratio: int | None) -> None:
    if compressed is not None and total > GZIP_RATIO_FLOOR and total > max_ratio * max(compressed.tell(), 1):
        raise GzipBomb(f"decompresses to more than {max_ratio} times its size ({total:,} bytes from "
                       f"{compressed.tell():,}: a gzip bomb?); the rest of the file is not read (raise the bound "
                       "with --limit gzip-ratio=N)")


def byte_ranges(path: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[tuple[int, int]]:
    """(start, end) byte ranges of a plain file's whole lines, about `chunk_bytes` each: the same chunks
    as `iter_line_chunks`, found by seeking, so that workers can read them themselves."""
    with open_regular(path, "an ndjson file") as f:
        size = os.fstat(f.fileno()).st_size
        start = 0
        while start < size:
            end = min(size, start + chunk_bytes)
            if end < size:
                f.seek(end - 1)
                if f.read(1) != b"\n":
                    end = _next_line_start(f, chunk_bytes)  # finish the line the boundary falls in
            yield start, end
            start = end


def _next_line_start(f: BinaryIO, chunk_bytes: int) -> int:
    """The offset after the next newline (or the end of the file), read in pieces, not as one line."""
    while True:
        piece = f.read(min(chunk_bytes, PIECE_BYTES))
        if not piece:
            return f.tell()
        nl = piece.find(b"\n")
        if nl >= 0:
            return f.tell() - len(piece) + nl + 1


def read_range(path: str, start: int, end: int, max_line: int = 16 * 2**20) -> bytes:
    """The lines of `byte_ranges`' range [start, end), as `iter_line_chunks` gives them. A file that ends
    before `end` shrank since its ranges were cut: `InputError` (`files.changed_while_read`)."""
    with open_regular(path, "an ndjson file") as f:
        f.seek(start)
        if end - start <= max_line:  # no line in it can be too long: the usual case
            blob = f.read(end - start)
            if len(blob) != end - start:
                raise changed_while_read(path, end, start + len(blob))
            return blob.removeprefix(BOM) if start == 0 else blob
        cap = _LineCap(max_line)
        left, first_piece = end - start, start == 0
        while left > 0:
            piece = f.read(min(left, PIECE_BYTES))
            if not piece:
                raise changed_while_read(path, end, end - left)
            left -= len(piece)
            if first_piece:
                piece, first_piece = piece.removeprefix(BOM), False
            cap.feed(piece)
        cap.finish()
        return cap.take()


SNIFF_BYTES = 4096


GZIP_RATIO_FLOOR = 16 * 2**20  # decompressed bytes before the ratio is checked: small files never trip it


class GzipBomb(Exception):
    """A .gz that decompresses to more than the allowed multiple of its size."""


class NotJsonLines(Exception):
    """A whole file that is not UTF-8 JSON lines (UTF-16, binary data, ...); the message says what it is."""


def sniff(head: bytes) -> str | None:
    """Why a file whose first bytes are `head` is not UTF-8 JSON lines at all (None: it may be)."""
    if head.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")) or _text_in_lanes(head, 4):
        return "file is UTF-32, not UTF-8 JSON lines; convert it to UTF-8 (e.g. iconv -f UTF-32 -t UTF-8)"
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or _text_in_lanes(head, 2):
        return "file is UTF-16, not UTF-8 JSON lines; convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)"
    if head and not head.strip(b"\x00"):
        return "file holds only NUL bytes (a damaged file, or one that was never written)"
    if b"\x00" in head:
        return "file is binary data, not UTF-8 JSON lines (NUL bytes in its first bytes)"
    text = head.removeprefix(BOM)
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(text) - 4:  # not just a character cut at the end of `head`
            return (f"file is not UTF-8 text (byte {e.start} is not UTF-8); JSON lines must be UTF-8: "
                    "convert it (e.g. iconv -f LATIN1 -t UTF-8)")
    return None


def _text_in_lanes(head: bytes, width: int) -> bool:
    """The first two characters look like ASCII text in UTF-16 (width 2) or UTF-32 (width 4) without a byte
    order mark: each is one non-NUL byte and width - 1 NULs, on the same side (little or big endian). NUL
    bytes alone are not text in any encoding."""
    if len(head) < 2 * width:
        return False
    chars = (head[:width], head[width:2 * width])
    zeros = b"\x00" * (width - 1)
    return all(c[1:] == zeros and c[0] for c in chars) or all(c[:-1] == zeros and c[-1] for c in chars)


def count_lines(blob: bytes) -> int:
    return blob.count(b"\n") + (bool(blob) and not blob.endswith(b"\n"))


def split_lines(blob: bytes) -> list[bytes]:
    """The lines of a chunk, as file iteration would give them (without their newline)."""
    lines = blob.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def parse_lines(blob: bytes, path: str, first_line: int, input_index: int,
                words: frozenset[str] | None = None, recognized_only: bool = False,
                max_line: int = 16 * 2**20, keep_time: bool = False) -> SourceBatch:
    """Parse a chunk of ndjson lines into a `SourceBatch` (one drawing per line; blank lines are skipped).

    Chunks in Google's own layout go through a columnar parser (awkward's JSON reader with a schema:
    no Python object per number); any other chunk (another key_id type, a missing field, a malformed
    line, a bad stroke) through the per-line parser, which finds and reports each bad line.
    keep_time: also read raw strokes' `t` into `flat.times` (NaN for drawings without times); a raw
    drawing whose times are not finite numbers, one per point, is then a `bad_drawing`.
    """
    batch = _parse_columnar(blob, path, first_line, input_index, words, recognized_only, keep_time)
    if batch is None:
        batch = _parse_per_line(split_lines(blob), path, first_line, input_index, words, recognized_only, max_line,
                                keep_time)
    return batch


def preload() -> None:
    """Import the columnar reader now: worker processes forked afterwards share it instead of each
    spending ~0.4 s importing it."""
    try:
        import awkward  # noqa: F401
    except ImportError:  # pragma: no cover
        pass


# Google's ndjson layout. awkward's reader needs every listed field in every line, in any order.
_SCHEMA = {
    "type": "object",
    "properties": {
        "key_id": {"type": "string"},
        "word": {"type": "string"},
        "recognized": {"type": "boolean"},
        "drawing": {"type": "array", "items": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}},
    },
    "required": ["key_id", "word", "recognized", "drawing"],
}


def _parse_columnar(blob, path, first_line, input_index, words, recognized_only,
                    keep_time: bool = False) -> SourceBatch | None:
    """The fast path: the whole chunk at once, or None when it is not entirely well-formed."""
    try:
        import awkward as ak
    except ImportError:  # pragma: no cover - awkward is a dependency; the per-line path does the same work
        return None
    try:
        records = ak.from_json(blob, line_delimited=True, schema=_SCHEMA)
    except Exception:  # noqa: BLE001 - any chunk awkward cannot read goes to the per-line parser
        return None
    n = len(records)
    n_lines = count_lines(blob)
    lines = None
    line_index = np.arange(n, dtype=np.int64)
    if n != n_lines:  # blank lines: map records back to their lines
        line_index = _nonblank_lines(blob)
        if len(line_index) != n:
            return None
    drawing = records["drawing"].layout
    d_off = np.asarray(drawing.offsets.data, dtype=np.int64)      # drawing -> strokes
    s_off = np.asarray(drawing.content.offsets.data, dtype=np.int64)  # stroke -> arrays
    a_off = np.asarray(drawing.content.content.offsets.data, dtype=np.int64)  # array -> values
    values = np.asarray(drawing.content.content.content.data, dtype=np.float64)
    d_off, s_off = d_off - d_off[0], s_off[d_off[0]:d_off[-1] + 1]
    _exact_fractions(values, a_off[s_off[d_off]], blob if lines is None else lines, line_index)
    n_arrays = np.diff(s_off)
    if not ((n_arrays == 2) | (n_arrays == 3)).all():
        return None
    x_start = a_off[s_off[:-1]]
    n_points = a_off[s_off[:-1] + 1] - x_start
    y_start = a_off[s_off[:-1] + 1]
    same = a_off[s_off[:-1] + 2] - y_start == n_points
    three = n_arrays == 3
    if three.any():
        t_arr = s_off[:-1][three] + 2
        same[three] &= a_off[t_arr + 1] - a_off[t_arr] == n_points[three]
    if not same.all():
        return None
    keep = np.ones(n, dtype=bool)
    filtered: Counter = Counter()
    word_array = _strings(records["word"])
    if words is not None:
        wanted = np.isin(word_array, list(words))
        filtered["other_word"] = int((~wanted).sum())
        keep &= wanted
    if recognized_only:
        recognized = np.asarray(ak.to_numpy(records["recognized"]), dtype=bool)
        filtered["unrecognized"] = int((keep & ~recognized).sum())
        keep &= recognized
    filtered = +filtered
    # drop empty strokes; a drawing left with no stroke is reported by the per-line path
    stroke_owner = np.repeat(np.arange(n), np.diff(d_off))
    nonempty = n_points > 0
    strokes_per_drawing = np.bincount(stroke_owner[nonempty], minlength=n)
    if (keep & (strokes_per_drawing == 0)).any():
        return None
    chosen = keep[stroke_owner] & nonempty
    xi = _ranges(x_start[chosen], n_points[chosen])
    points = np.empty((len(xi), 2), dtype=np.float64)
    points[:, 0] = values[xi]
    points[:, 1] = values[xi + np.repeat(y_start[chosen] - x_start[chosen], n_points[chosen])]
    if len(points) and np.abs(points).max() > MAX_ABS_COORDINATE:
        return None
    raw = np.zeros(n, dtype=bool)
    raw[stroke_owner[three]] = True
    times = None
    if keep_time and three[chosen].any():
        timed = three[chosen]
        times = np.full(len(points), np.nan)
        timed_points = np.repeat(timed, n_points[chosen])
        times[timed_points] = values[_ranges(a_off[s_off[:-1] + 2][chosen][timed], n_points[chosen][timed])]
        if not np.isfinite(times[timed_points]).all():
            return None  # the per-line path reports the drawing
    kept = np.flatnonzero(keep)
    linenos = first_line + line_index[kept]
    ids = _strings(records["key_id"])[kept]
    labels = word_array[kept]
    flat = FlatDrawings(points, _offsets(n_points[chosen]), _offsets(strokes_per_drawing[kept]))
    if times is not None:
        flat.times = _whole_drawings(times, flat)
    kinds = np.where(raw[kept], KIND_RAW, KIND_SIMPLIFIED).astype(np.uint8)
    return SourceBatch(flat, kinds, ids, labels, (input_index << 32) | linenos, [], filtered, n,
                       {input_index: path})


def _whole_drawings(times: np.ndarray, flat: FlatDrawings) -> np.ndarray:
    """`times` with every point of a drawing that has a point without a time set to NaN: a drawing has
    times for all its points or for none."""
    starts = flat.point_offsets()[:-1]
    if not len(times) or not np.isnan(times).any():
        return times
    partial = np.logical_or.reduceat(np.isnan(times), starts)
    times[np.repeat(partial, np.diff(flat.point_offsets()))] = np.nan
    return times


_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[list(b" \t\n\r\x0b\x0c")] = True  # what bytes.strip() strips


def _nonblank_lines(blob: bytes) -> np.ndarray:
    """Indices of the lines of `blob` that are not only whitespace (vectorised: a chunk of blank lines
    costs milliseconds, not a Python call per line)."""
    arr = np.frombuffer(blob, dtype=np.uint8)
    newline = arr == 10
    line_of = np.cumsum(newline) - newline  # a newline belongs to the line it ends
    return np.unique(line_of[~_WHITESPACE[arr]])


def _strings(column) -> np.ndarray:
    """An awkward string column as a numpy unicode array, without a Python string per row when it is
    plain ASCII (key_ids and words always are); other text goes through Python."""
    import awkward as ak

    layout = column.layout
    offsets = np.asarray(layout.offsets.data, dtype=np.int64)
    chars = np.asarray(layout.content.data)[offsets[0]:offsets[-1]]
    lengths = np.diff(offsets)
    if len(lengths) == 0 or lengths.max() == 0:
        return np.full(len(lengths), "", dtype="<U1")
    if lengths.min() == 0 or chars.min() == 0 or chars.max() >= 128:  # "" and NUL would not survive S dtype
        return np.asarray(ak.to_list(column), dtype=str)
    width = int(lengths.max())
    padded = np.zeros((len(lengths), width), dtype=np.uint8)
    padded[np.repeat(np.arange(len(lengths)), lengths), _ranges(np.zeros(len(lengths), np.int64), lengths)] = chars
    return padded.view(f"S{width}").ravel().astype(f"U{width}")


def _exact_fractions(values: np.ndarray, value_offsets: np.ndarray, lines: bytes | list[bytes],
                     line_index: np.ndarray) -> None:
    """Re-read, with orjson, the numbers of every drawing that has a fraction.

    awkward's reader rounds some decimal fractions 1 ulp away from the nearest double (orjson and
    Python do not), which could flip a later rounding or RDP tie; integers it reads exactly. So the
    values of drawings with a fractional number are replaced in place by orjson's, and every chunk
    reads exactly as the per-line path reads it. value_offsets: (D+1,) start of each drawing's values.
    """
    fractional = values != np.floor(values)
    if not fractional.any():
        return
    owner = np.searchsorted(value_offsets, np.flatnonzero(fractional), side="right") - 1
    if isinstance(lines, bytes):
        lines = split_lines(lines)
    for d in np.unique(owner):
        rec = _loads(lines[line_index[d]])
        exact = [v for stroke in rec["drawing"] for array in stroke for v in array]
        values[value_offsets[d]:value_offsets[d + 1]] = exact


def _parse_per_line(lines: list[bytes], path: str, first_line: int, input_index: int,
                    words: frozenset[str] | None = None, recognized_only: bool = False,
                    max_line: int = 16 * 2**20, keep_time: bool = False) -> SourceBatch:
    """Parse ndjson lines one by one (orjson), reporting each bad line.

    The loop only does what valid lines need; a line that trips it is diagnosed afterwards by
    `_diagnose` for a precise message.
    """
    xs: list = []
    ys: list = []
    ts: list = []  # with keep_time: every point's t (None for a stroke without times)
    stroke_lens: list[int] = []
    n_strokes: list[int] = []
    raw_lines: list[int] = []  # (repeated) indices of lines with [x, y, t] strokes
    ids: list = []
    labels: list = []
    indices: list[int] = []  # of the lines that gave a drawing
    problems: list[Problem] = []
    filtered: Counter = Counter()
    read = 0
    fallback_label = class_name_from_path(path)
    loads, json_error = _loads, _JSONError
    add_len, add_count, add_index = stroke_lens.append, n_strokes.append, indices.append
    gc_was_enabled = gc.isenabled()
    gc.disable()  # no reference cycles are made here; the collector would rescan the growing lists
    try:
        for i, line in enumerate(lines):
            try:
                rec = loads(line)
            except json_error as e:
                if line.startswith(TOO_LONG_MARK):
                    read += 1
                    problems.append(_too_long(line, path, first_line + i, max_line))
                elif line.strip():
                    read += 1
                    problems.append(Problem("malformed_json", path, first_line + i, f"not valid JSON ({e})"))
                continue
            read += 1
            mark = len(stroke_lens)
            try:
                word = rec.get("word")
                if word is not None and word.__class__ is not str:
                    problems.append(Problem("bad_word", path, first_line + i, f"'word' is a JSON "
                                            f"{_JSON_TYPES.get(type(word), type(word).__name__)}, not a string"))
                    continue
                if words is not None and word not in words:
                    filtered["other_word"] += 1
                    continue
                if recognized_only and rec.get("recognized") is not True:
                    filtered["unrecognized"] += 1
                    continue
                drawing = rec["drawing"]
                if drawing.__class__ is not list:
                    raise TypeError
                for s in drawing:
                    sx, sy = s[0], s[1]
                    n = len(sx)
                    timed = False
                    if n != len(sy) or len(s) != 2:
                        if n != len(sy) or len(s) != 3:
                            raise TypeError
                        raw_lines.append(i)
                        timed = True
                    if n:
                        xs += sx
                        ys += sy
                        add_len(n)
                        if keep_time:
                            if timed and (s[2].__class__ is not list or len(s[2]) != n):
                                raise TypeError
                            ts += s[2] if timed else [None] * n
            except (TypeError, KeyError, IndexError, AttributeError, ValueError):
                if len(stroke_lens) > mark:
                    start = len(xs) - sum(stroke_lens[mark:])
                    del xs[start:], ys[start:], ts[start:], stroke_lens[mark:]
                problems.append(Problem("bad_drawing", path, first_line + i, _diagnose(rec)))
                continue
            count = len(stroke_lens) - mark
            if not count:
                problems.append(Problem("empty_drawing", path, first_line + i, "empty drawing (no points)"))
                continue
            add_count(count)
            key = rec.get("key_id")
            if key.__class__ is not str:  # an integer key_id is usual; other JSON values name the line
                key = str(key) if key.__class__ is int else f"{path}:{first_line + i}"
            ids.append(key)
            labels.append(word if word is not None else fallback_label)
            add_index(i)
    finally:
        if gc_was_enabled:
            gc.enable()

    linenos = first_line + np.asarray(indices, dtype=np.int64)
    order = (input_index << 32) | linenos
    points, keep = _to_points(xs, ys, stroke_lens, n_strokes, path, problems, linenos)
    so = _offsets(np.asarray(stroke_lens, dtype=np.int64))
    do = _offsets(np.asarray(n_strokes, dtype=np.int64))
    flat = FlatDrawings(points, so, do)
    if keep_time and raw_lines:
        flat.times, keep = _to_times(ts, flat, path, problems, linenos, keep)
    problems.sort(key=lambda p: p.line)
    kinds = np.full(len(indices), KIND_SIMPLIFIED, dtype=np.uint8)
    if raw_lines:
        kinds[np.isin(indices, raw_lines)] = KIND_RAW
    batch = SourceBatch(flat, kinds, np.array(ids, dtype=str) if ids else np.zeros(0, "<U1"),
                        np.array(labels, dtype=str) if labels else np.zeros(0, "<U1"), order, problems, filtered,
                        read, {input_index: path})
    if keep is not None:
        batch = select(batch, np.flatnonzero(keep))
    return batch


_JSON_TYPES = {int: "number", float: "number", bool: "boolean", list: "array", dict: "object"}


def _too_long(line: bytes, path: str, lineno: int, max_line: int) -> Problem:
    length = line[len(TOO_LONG_MARK):].decode("ascii", "replace")
    length = f"{int(length):,}" if length.isdigit() else length
    return Problem("line_too_long", path, lineno, f"line is {length} bytes long, over the bound of {max_line:,} "
                                                  f"(raise it with --limit line-bytes=N)")


def _diagnose(rec) -> str:
    """Why a parsed line is not a drawing (called only for lines the fast path rejected)."""
    if not isinstance(rec, dict):
        return f"expected a JSON object, got {type(rec).__name__}"
    drawing = rec.get("drawing")
    if not isinstance(drawing, list):
        return "no 'drawing' list"
    for k, s in enumerate(drawing):
        if not isinstance(s, list) or len(s) not in (2, 3):
            return f"stroke {k} is not [[x...], [y...]] or [[x...], [y...], [t...]]"
        if not isinstance(s[0], list) or not isinstance(s[1], list) or len(s[0]) != len(s[1]):
            return f"stroke {k}: x and y are not lists of equal length"
        if len(s) == 3 and (not isinstance(s[2], list) or len(s[2]) != len(s[0])):
            return f"stroke {k}: t is not a list as long as x and y"
    return "not a Quick, Draw! drawing"


def _to_points(xs, ys, stroke_lens, n_strokes, path, problems, linenos):
    """Convert the flat coordinate lists; find drawings with non-numeric, non-finite or absurd values.

    Returns the (P, 2) points and, when some drawing is bad, a (D,) keep mask (else None).
    """
    try:
        ax, ay = np.array(xs), np.array(ys)
    except (ValueError, TypeError, OverflowError):  # nested lists
        ax = ay = np.array([None])
    if len(xs) == 0 or (ax.dtype.kind in "iuf" and ay.dtype.kind in "iuf" and ax.ndim == 1 and ay.ndim == 1):
        points = np.empty((len(xs), 2), dtype=np.float64)
        points[:, 0] = ax
        points[:, 1] = ay
        # one bound check covers NaN (comparisons with it are False), infinities and absurd values
        if not len(xs) or max(ax.max(), -ax.min(), ay.max(), -ay.min()) <= MAX_ABS_COORDINATE:
            return points, None
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
        if numeric is not None and not numeric[pts].all():
            problems.append(Problem("bad_drawing", path, int(linenos[d]), "a coordinate is not a number"))
        elif not finite[pts].all():
            problems.append(Problem("non_finite", path, int(linenos[d]), "a coordinate is NaN or infinite"))
        else:
            problems.append(Problem("absurd_coordinate", path, int(linenos[d]),
                                    f"a coordinate exceeds {MAX_ABS_COORDINATE:g} in absolute value"))
        keep[d] = False
    return points, keep


def _to_times(ts: list, flat: FlatDrawings, path: str, problems: list[Problem], linenos: np.ndarray,
              keep: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """The (P,) times of the per-line path (NaN for points of strokes without times) and the keep mask with
    every drawing whose times are not finite numbers dropped (and reported)."""
    times = np.full(len(ts), np.nan)
    bad = np.zeros(len(ts), dtype=bool)
    for i, v in enumerate(ts):
        if v is None:
            continue
        if v.__class__ in (int, float):
            try:
                times[i] = v
            except OverflowError:  # an integer too large for a float
                bad[i] = True
        else:
            bad[i] = True
    with np.errstate(invalid="ignore"):
        bad |= np.array([v is not None for v in ts], dtype=bool) & ~np.isfinite(times)
    if bad.any():
        keep = np.ones(flat.n_drawings, dtype=bool) if keep is None else keep
        owner = np.repeat(np.arange(flat.n_drawings), np.diff(flat.point_offsets()))
        for d in np.unique(owner[bad]):
            if keep[d]:
                problems.append(Problem("bad_drawing", path, int(linenos[d]), "a time t is not a finite number"))
                keep[d] = False
    return _whole_drawings(times, flat), keep


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
        np.asarray(batch.ids, dtype=str)[keep],
        np.asarray(batch.labels, dtype=str)[keep],
        batch.order[keep],
        batch.problems,
        batch.filtered,
        batch.read,
        batch.paths,
    )
