"""The conversion pipeline: inputs -> kept stroke-3 sketches -> dedupe -> seeded split.

source -> polylines -> normalise -> resample (Quick, Draw! raw) -> RDP -> quantise -> stroke-3 ->
length filter (or `fit`) -> dedupe -> order by a seeded hash -> split -> write.

Work happens on chunks of drawings (flat arrays, see `sketchprep.strokes.FlatDrawings`), optionally
in worker processes; only the kept sketches stay in memory, in one compact int16 array.

The order of the output does not depend on the order of the inputs or on how they were chunked or
sharded: each kept sketch gets a priority from a seeded hash of its content, and the splits are
taken in priority order. Of two identical sketches (after quantisation), the one seen first in the
input stream is kept, so no drawing can appear in two splits.
"""
from __future__ import annotations

import glob
import math
import os
import sys
import zlib
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, asdict
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from . import __version__
from .errors import InputError, OptionError, TooFewDrawingsError
from .limits import Limits
from .simplify import DISTANCES, resample_simplify_flat, resampled_counts, simplify_flat
from .sources import KIND_RAW, KIND_SIMPLIFIED, Problem, SourceBatch
from .sources import ndjson as ndjson_source
from .sources import quickdraw_bin as bin_source
from .sources import svg as svg_source
from .strokes import FlatDrawings, Stroke3Batch, _offsets, _ranges, flat_to_stroke3, interleave, normalize_flat

SPLITS = ("train", "valid", "test")
# Google's simplified Quick, Draw! data: already aligned, scaled to this size and RDP'd at this epsilon
QUICKDRAW_SIZE = 255.0
QUICKDRAW_EPSILON = 2.0
FIT_TRIES = 8          # --fit: epsilon grows by half the original each try, up to 5x
TAKE_BLOCK = 8192      # sketches gathered at a time when reordering kept sketches
MAX_PROBLEMS_KEPT = 100  # examples of bad input named in the report (all are counted)

# Drop reasons that mean "this input is broken" (fatal with --strict); the others are dataset policy.
BAD_INPUT_REASONS = ("malformed_json", "bad_drawing", "empty_drawing", "non_finite", "absurd_coordinate",
                     "offset_overflow", "unreadable_file", "no_geometry", "unsafe_xml", "bad_word",
                     "line_too_long", "too_many_points", "too_large")


@dataclass
class ConvertOptions:
    """What `sketchprep convert` does; every field is a CLI option of the same name."""

    epsilon: float = 2.0            # RDP tolerance in output units (pixels of the --size box)
    distance: str = "line"          # RDP distance: "line" (original DP, as the rdp package) or "segment"
    max_len: int = 250              # longest sketch kept, in stroke-3 rows
    fit: bool = False               # re-simplify too-long sketches with a growing epsilon instead of dropping
    size: float = 255.0             # larger extent of every drawing after normalising; 0 keeps source units
    split: tuple[float, float, float] = (0.9, 0.05, 0.05)  # fractions (all <= 1) or counts
    multiple: int = 100             # every split size is a multiple of this
    seed: int = 0                   # shuffle seed
    words: frozenset[str] | None = None  # keep only these Quick, Draw! words
    recognized_only: bool = False   # keep only drawings the game recognised
    strict: bool = False            # the first bad input is an error and nothing is written
    workers: int = 1                # worker processes
    resample_spacing: float = 1.0   # Quick, Draw! raw: resampling step in output units (Google: 1 px); SVG: curve step
    include_fills: bool = False     # SVG: also keep the outlines of fill-only shapes
    limits: Limits = field(default_factory=Limits)  # resource bounds of the readers (--limit NAME=VALUE)

    def __post_init__(self):
        if self.epsilon < 0:
            raise OptionError("--epsilon must be >= 0")
        if self.distance not in DISTANCES:
            raise OptionError(f"--distance must be one of {', '.join(DISTANCES)}")
        if self.max_len < 1:
            raise OptionError("--max-len must be >= 1")
        if self.size < 0:
            raise OptionError("--size must be >= 0")
        if self.multiple < 1:
            raise OptionError("--multiple must be >= 1")
        if len(self.split) != 3 or any(p < 0 for p in self.split) or sum(self.split) <= 0:
            raise OptionError("--split needs three non-negative parts, e.g. 0.9/0.05/0.05 or 70000/2500/2500")
        if not all(p <= 1 for p in self.split):  # counts: checked before any input is read
            counts = [int(p) for p in self.split]
            if any(c != p for c, p in zip(counts, self.split)):
                raise OptionError(f"--split counts must be whole numbers, got {_split_text(self.split)}")
            if any(c % self.multiple for c in counts):
                raise OptionError(f"--split counts {_split_text(self.split)} must be multiples of --multiple "
                                  f"{self.multiple}: round them, or add --multiple 1")

    def to_json(self) -> dict:
        """The options that decide the output (not how it is computed: workers, strict), as JSON."""
        d = asdict(self)
        d["words"] = sorted(self.words) if self.words else None
        del d["workers"], d["strict"]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ConvertOptions":
        d = dict(d)
        d["split"] = tuple(d["split"])
        d["words"] = frozenset(d["words"]) if d.get("words") else None
        d["limits"] = Limits.from_json(d.get("limits"))
        return cls(**d)


def parse_split(text: str) -> tuple[float, float, float]:
    """'0.9/0.05/0.05' or '70000/2500/2500' -> three numbers."""
    parts = text.replace(",", "/").split("/")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise OptionError(f"--split {text!r}: expected three numbers like 0.9/0.05/0.05 or 70000/2500/2500") from None
    if len(values) != 3 or any(v < 0 or not math.isfinite(v) for v in values):
        raise OptionError(f"--split {text!r}: expected three non-negative numbers like 0.9/0.05/0.05")
    return values  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------------
# Inputs


SVG_SUFFIXES = (".svg",)
SVG_FILES_PER_TASK = 32  # SVG files read per unit of work (about 0.1 s of parsing)


def expand_inputs(inputs: Iterable[str]) -> list[str]:
    """Files, directories (searched recursively, sorted) and globs -> the list of input files."""
    files: list[str] = []
    for item in inputs:
        if item == "-":
            files.append(item)
            continue
        p = Path(item)
        if p.is_dir():
            found = sorted(str(f) for f in p.rglob("*") if f.is_file() and _is_drawing_file(str(f)))
            if not found:
                raise InputError("directory holds no .ndjson, .ndjson.gz, .bin or .svg files", path=item)
            files += found
        elif p.is_file():
            if not _is_drawing_file(item):
                raise InputError("not a drawing file (expected .ndjson, .ndjson.gz, .bin or .svg)", path=item)
            files.append(item)
        elif any(c in item for c in "*?["):
            found = sorted(f for f in glob.glob(item, recursive=True) if _is_drawing_file(f))
            if not found:
                raise InputError("pattern matches no drawing files", path=item)
            files += found
        else:
            raise InputError("no such file or directory", path=item)
    return files


def _is_drawing_file(path: str) -> bool:
    return ndjson_source.is_ndjson(path) or bin_source.is_bin(path) or path.lower().endswith(SVG_SUFFIXES)


def _tasks(files: list[str], opts: ConvertOptions, absolute_lines: bool = False) -> Iterator[tuple]:
    """Units of work: ("ndjson_range", path, input_index, start, end, first_line or None),
    ("ndjson", path, input_index, first_line, blob of lines, bytes),
    ("bin", path, input_index, first_record, data, truncated, bytes), ("svg", [(input_index, path), ...], bytes)
    and ("problem", path, input_index, reason, message[, line]) for a file that cannot be read (on)."""
    svg_files: list[tuple[int, str]] = []
    line_counts: dict[int, int] = {}
    for index, path in enumerate(files):
        if bin_source.is_bin(path):
            try:
                with open(path, "rb") as stream:
                    done = 0
                    for first, data, nbytes, truncated in bin_source.iter_record_chunks(
                            stream, max_points=opts.limits.points_per_drawing):
                        yield ("bin", path, index, first, data, truncated, nbytes - done)
                        done = nbytes
            except bin_source.RecordTooLarge as e:
                yield ("problem", path, index, "too_many_points", str(e), e.record)
            except OSError as e:
                yield ("problem", path, index, "unreadable_file", f"cannot read: {e.strerror or e}")
        elif ndjson_source.is_ndjson(path) and path != "-" and not path.endswith(".gz"):
            # a plain file: workers read their own chunk (the main process only finds the line boundaries);
            # line numbers follow from the line counts that come back with the results, in order
            try:
                with open(path, "rb") as f:
                    why = ndjson_source.sniff(f.read(ndjson_source.SNIFF_BYTES))
                if why:
                    yield ("problem", path, index, "unreadable_file", why)
                    continue
                for start, end in ndjson_source.byte_ranges(path):
                    first = None
                    if absolute_lines:  # shards must number lines they never process
                        blob = ndjson_source.read_range(path, start, end, opts.limits.line_bytes)
                        first, line_counts[index] = line_counts.get(index, 1), \
                            line_counts.get(index, 1) + ndjson_source.count_lines(blob)
                    yield ("ndjson_range", path, index, start, end, first)
            except OSError as e:
                yield ("problem", path, index, "unreadable_file", f"cannot read: {e.strerror or e}")
        elif ndjson_source.is_ndjson(path):
            try:
                stream = ndjson_source.open_lines(path)
            except OSError as e:
                yield ("problem", path, index, "unreadable_file", f"cannot open: {e.strerror or e}")
                continue
            try:
                for first, blob, nbytes in ndjson_source.iter_line_chunks(stream, max_line=opts.limits.line_bytes,
                                                                          max_ratio=opts.limits.gzip_ratio):
                    yield ("ndjson", path, index, first, blob, nbytes)
            except ndjson_source.NotJsonLines as e:
                yield ("problem", path, index, "unreadable_file", str(e))
            except ndjson_source.GzipBomb as e:
                yield ("problem", path, index, "too_large", str(e))
            except (OSError, EOFError, zlib.error) as e:  # e.g. a truncated or corrupt .gz: the lines before count
                yield ("problem", path, index, "unreadable_file", f"cannot read to the end (the lines before were "
                                                                  f"read): {e}")
            finally:
                if stream is not sys.stdin.buffer:
                    stream.close()
        else:
            svg_files.append((index, path))
            if len(svg_files) >= SVG_FILES_PER_TASK:
                yield _svg_task(svg_files)
                svg_files = []
    if svg_files:
        yield _svg_task(svg_files)


def _svg_task(svg_files: list[tuple[int, str]]) -> tuple:
    return ("svg", list(svg_files), sum(os.path.getsize(p) for _, p in svg_files if os.path.isfile(p)))


def _read_task(task: tuple, opts: ConvertOptions) -> SourceBatch:
    kind = task[0]
    if kind == "ndjson":
        _, path, index, first, blob, _ = task
        return ndjson_source.parse_lines(blob, path, first, index, opts.words, opts.recognized_only,
                                         opts.limits.line_bytes)
    if kind == "bin":
        _, path, index, first, data, truncated, _ = task
        return bin_source.parse_records(data, path, first, index, truncated, opts.words, opts.recognized_only)
    if kind == "svg":
        return svg_source.read_files(task[1], opts.size, opts.include_fills, opts.resample_spacing, opts.limits)
    raise ValueError(f"unknown task kind {kind!r}")


# ---------------------------------------------------------------------------------------------------
# Per-chunk processing


@dataclass
class Kept:
    """Sketches that passed every per-drawing step, packed: rows (R, 3) int16 with row_offsets (N+1,),
    plus per-sketch ids, labels, stream order and content hashes."""

    rows: np.ndarray
    row_offsets: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    order: np.ndarray
    hashes: np.ndarray

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
        for a in range(0, len(idx), TAKE_BLOCK):  # blocks bound the int64 row indices to a few MB
            b = min(a + TAKE_BLOCK, len(idx))
            rows[new_offsets[a]:new_offsets[b]] = self.rows[_ranges(self.row_offsets[idx[a:b]], lengths[a:b])]
        return Kept(rows, new_offsets, self.ids[idx], self.labels[idx], self.order[idx], self.hashes[idx])

    @staticmethod
    def empty() -> "Kept":
        return Kept(np.zeros((0, 3), np.int16), np.zeros(1, np.int64), np.zeros(0, "<U1"), np.zeros(0, "<U1"),
                    np.zeros(0, np.int64), np.zeros(0, np.uint64))

    @staticmethod
    def concat(parts: list["Kept"]) -> "Kept":
        parts = [p for p in parts if p.n] or [Kept.empty()]
        lengths = np.concatenate([np.diff(p.row_offsets) for p in parts])
        return Kept(
            np.concatenate([p.rows for p in parts]),
            _offsets(lengths),
            np.concatenate([p.ids for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.order for p in parts]),
            np.concatenate([p.hashes for p in parts]),
        )


@dataclass
class ChunkResult:
    kept: Kept
    dropped: Counter
    problems: list[Problem]
    filtered: Counter
    read: int
    fitted: int = 0
    source_counts: dict = field(default_factory=dict)  # input index -> [read, kept]
    relative_to: int | None = None  # input whose lines this chunk numbered from 1 (see collect)
    lines: int = 0                  # lines in that chunk

    def shift_lines(self, by: int) -> None:
        """Renumber this chunk's lines (order keys and problems) `by` lines further down its input."""
        self.kept.order = self.kept.order + by
        for p in self.problems:
            if p.line is not None:
                p.line += by


def process_task(task: tuple, opts: ConvertOptions) -> ChunkResult:
    """Read one unit of work and run every per-drawing step on it."""
    if task[0] == "problem":  # a whole file that cannot be read as drawings
        _, path, index, reason, message, *line = task
        return ChunkResult(Kept.empty(), Counter({reason: 1}), [Problem(reason, path, (line or [None])[0], message)],
                           Counter(), 1, source_counts={index: [1, 0]})
    if task[0] == "ndjson_range":
        _, path, index, start, end, first = task
        blob = ndjson_source.read_range(path, start, end, opts.limits.line_bytes)
        result = process_batch(ndjson_source.parse_lines(blob, path, first or 1, index, opts.words,
                                                         opts.recognized_only, opts.limits.line_bytes), opts)
        if first is None:  # lines numbered from 1 within the chunk: `collect` shifts them, in order
            result.relative_to, result.lines = index, ndjson_source.count_lines(blob)
        return result
    return process_batch(_read_task(task, opts), opts)


def process_batch(batch: SourceBatch, opts: ConvertOptions) -> ChunkResult:
    """normalise -> resample -> RDP -> quantise -> length filter, for every drawing of the batch."""
    batch = _enforce_limits(batch, opts)
    dropped: Counter = Counter()
    problems = list(batch.problems)
    for p in batch.problems:
        dropped[p.reason] += 1
    flat, kinds = batch.flat, batch.kinds
    n = flat.n_drawings
    passthrough = _passthrough(kinds, opts)
    s3 = flat_to_stroke3(_simplify(flat, kinds, opts.epsilon, opts, passthrough), keep_repeats=passthrough)
    lengths = s3.lengths
    fitted = 0
    too_long = lengths > opts.max_len
    if opts.fit and too_long.any():
        s3, fitted = _fit(flat, kinds, s3, too_long, opts)
        lengths = s3.lengths
        too_long = lengths > opts.max_len
    ok = ~too_long & ~s3.overflow
    n_too_long = int((too_long & ~s3.overflow).sum())
    if n_too_long:
        dropped["too_long"] += n_too_long
    for d in np.flatnonzero(s3.overflow):
        dropped["offset_overflow"] += 1
        problems.append(Problem("offset_overflow", *_where(batch, d), _overflow_message(kinds[d], opts)))
    keep = np.flatnonzero(ok)
    kept_lengths = lengths[keep]
    rows = s3.rows[_ranges(s3.row_offsets[keep], kept_lengths)]
    row_offsets = _offsets(kept_lengths)
    ids = np.asarray(batch.ids, dtype=str)[keep] if n else np.zeros(0, "<U1")
    labels = np.asarray(batch.labels, dtype=str)[keep] if n else np.zeros(0, "<U1")
    kept = Kept(rows, row_offsets, ids, labels, batch.order[keep], sketch_hashes(rows, row_offsets))
    source_counts = _source_counts(batch, keep)
    return ChunkResult(kept, dropped, problems, batch.filtered, batch.read, fitted, source_counts)


def _overflow_message(kind: int, opts: ConvertOptions) -> str:
    """What can make an offset fit in int16 for this drawing."""
    if opts.size == 0:
        return "an offset does not fit in int16 at --size 0 (source units); give a --size, e.g. 255, to scale drawings"
    if kind == KIND_SIMPLIFIED and opts.size == QUICKDRAW_SIZE:
        return ("an offset does not fit in int16: this simplified [x, y] drawing is not in Google's 0-255 box, "
                "where --size 255 takes it as it is (a broken record?); any other --size rescales it")
    return "an offset does not fit in int16 (use a smaller --size)"


def _enforce_limits(batch: SourceBatch, opts: ConvertOptions) -> SourceBatch:
    """Drop (and report as `too_many_points`) the drawings that would have more points than the limits
    allow once resampled: raw drawings' counts come from their arc length in the --size frame, before
    any point is made; other drawings' from the points they have."""
    flat, limits = batch.flat, opts.limits
    if not flat.n_drawings:
        return batch
    per_stroke = np.diff(flat.stroke_offsets)
    if (per_stroke.max() <= limits.points_per_stroke and len(flat.points) <= limits.points_per_drawing
            and not (batch.kinds == KIND_RAW).any()):
        return batch  # nothing to compute: no drawing can be over (the usual case for simplified data)
    counts = per_stroke.astype(np.float64)
    raw = batch.kinds == KIND_RAW
    if raw.any():
        raw_strokes = np.repeat(raw, np.diff(flat.drawing_offsets))
        counts[raw_strokes] = resampled_counts(flat if raw.all() else flat.select(np.flatnonzero(raw)),
                                               opts.resample_spacing, opts.size)
    starts = flat.drawing_offsets[:-1]
    longest = np.maximum.reduceat(counts, starts)
    total = np.add.reduceat(counts, starts)
    over = ~((longest <= limits.points_per_stroke) & (total <= limits.points_per_drawing))  # NaN is over
    if not over.any():
        return batch
    problems = list(batch.problems)
    for d in np.flatnonzero(over):
        made = "would have" if raw[d] else "has"
        if not longest[d] <= limits.points_per_stroke:
            what = (f"a stroke {made} {longest[d]:,.0f} points after resampling, over the bound of "
                    f"{limits.points_per_stroke:,} (raise it with --limit points-per-stroke=N)")
        else:
            what = (f"the drawing {made} {total[d]:,.0f} points after resampling, over the bound of "
                    f"{limits.points_per_drawing:,} (raise it with --limit points-per-drawing=N)")
        problems.append(Problem("too_many_points", *_where(batch, d), what))
    problems.sort(key=lambda p: p.line if p.line is not None else 0)
    kept = ndjson_source.select(batch, np.flatnonzero(~over))
    kept.problems = problems
    return kept


def _where(batch: SourceBatch, d: int) -> tuple[str, int | None]:
    index, position = int(batch.order[d] >> 32), int(batch.order[d] & 0xFFFFFFFF)
    return batch.paths.get(index, batch.ids[d]), position or None  # SVG files are position 0: no line


def _source_counts(batch: SourceBatch, keep: np.ndarray) -> dict:
    # order keys carry the input index; the task's path is the same for the whole batch of ndjson lines,
    # but SVG batches span files, so count by input index and let the caller map it back.
    idx = (batch.order >> 32).astype(np.int64)
    counts: dict = {}
    read_idx, read_n = np.unique(idx, return_counts=True) if len(idx) else ([], [])
    for i, c in zip(read_idx, read_n):
        counts.setdefault(int(i), [0, 0])[0] += int(c)
    if len(keep):
        k_idx, k_n = np.unique(idx[keep], return_counts=True)
        for i, c in zip(k_idx, k_n):
            counts.setdefault(int(i), [0, 0])[1] += int(c)
    return counts


def _passthrough(kinds: np.ndarray, opts: ConvertOptions) -> np.ndarray:
    """Drawings that already are what the options ask for (Google's simplified data at the defaults)."""
    return (kinds == KIND_SIMPLIFIED) & (opts.size == QUICKDRAW_SIZE) & (opts.epsilon <= QUICKDRAW_EPSILON)


def _replace(flat: FlatDrawings, mask: np.ndarray, sub: FlatDrawings) -> FlatDrawings:
    """`flat` with the drawings where `mask` is True replaced, in order, by those of `sub`."""
    if mask.all():
        return sub
    return interleave(mask, sub, flat.select(np.flatnonzero(~mask)))


def _simplify(flat: FlatDrawings, kinds: np.ndarray, epsilon: float, opts: ConvertOptions,
              untouched: np.ndarray | None = None) -> FlatDrawings:
    """Normalise every drawing to --size (but Google's simplified ones, already in its 255 box), resample
    raw Quick, Draw! drawings at --resample-spacing, and RDP at `epsilon`; the `untouched` drawings
    (already what the options ask for) pass as they are."""
    if flat.n_drawings == 0:
        return flat
    raw = kinds == KIND_RAW
    google_frame = (kinds == KIND_SIMPLIFIED) & (opts.size == QUICKDRAW_SIZE)
    other = ~raw & ~google_frame
    if untouched is not None:
        google_frame &= ~untouched
    out = flat
    for mask, step in ((raw, lambda sub: resample_simplify_flat(sub, opts.resample_spacing, epsilon, opts.distance,
                                                                size=opts.size)),
                       (other, lambda sub: _rdp(normalize_flat(sub, opts.size), epsilon, opts.distance)),
                       (google_frame, lambda sub: _rdp(sub, epsilon, opts.distance))):
        if mask.any():
            out = _replace(out, mask, step(out if mask.all() else out.select(np.flatnonzero(mask))))
    return out


def _rdp(flat: FlatDrawings, epsilon: float, distance: str) -> FlatDrawings:
    return simplify_flat(flat, epsilon, distance) if epsilon > 0 else flat


def _fit(flat: FlatDrawings, kinds: np.ndarray, s3: Stroke3Batch, too_long: np.ndarray,
         opts: ConvertOptions) -> tuple[Stroke3Batch, int]:
    """Re-simplify too-long drawings with a growing epsilon until they fit (hardmaru's recipe)."""
    sketches = [s3.sketch(d) for d in range(len(too_long))]
    overflow = s3.overflow.copy()
    todo = np.flatnonzero(too_long)
    base = max(opts.epsilon, 0.25)
    fitted = 0
    for k in range(1, FIT_TRIES + 1):
        if not len(todo):
            break
        out = flat_to_stroke3(_simplify(flat.select(todo), kinds[todo], base * (1 + 0.5 * k), opts))
        still = []
        for j, d in enumerate(todo):
            if out.lengths[j] <= opts.max_len and not out.overflow[j]:
                sketches[d] = out.sketch(j)
                fitted += 1
            else:
                still.append(d)
        todo = np.array(still, dtype=np.int64)
    lengths = np.array([len(s) for s in sketches], dtype=np.int64)
    rows = np.concatenate(sketches) if sketches else np.zeros((0, 3), np.int16)
    return Stroke3Batch(rows, _offsets(lengths), overflow), fitted


# ---------------------------------------------------------------------------------------------------
# Hashing, dedupe, split

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wrapping arithmetic)."""
    x = x.astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint64(30)
        x *= _M1
        x ^= x >> np.uint64(27)
        x *= _M2
        x ^= x >> np.uint64(31)
    return x


_POSITION_KEYS = np.zeros(0, np.uint64)


def _position_keys(n: int) -> np.ndarray:
    """Random-looking 64-bit keys for row positions 0..n-1 (cached)."""
    global _POSITION_KEYS
    if len(_POSITION_KEYS) < n:
        with np.errstate(over="ignore"):
            _POSITION_KEYS = _mix64(np.arange(max(n, 1024), dtype=np.uint64) * _GOLDEN)
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
        x = _mix64(v ^ _position_keys(int(lengths.max()))[pos])
        h = np.add.reduceat(x, row_offsets[:-1]) if len(rows) else np.zeros(n, np.uint64)
        return _mix64(h ^ (lengths.astype(np.uint64) * _GOLDEN))


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


def shuffle_order(kept: Kept, seed: int, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the kept sketches (or of those listed in `among`) in seeded priority order, a hash of
    each sketch's content: independent of the input order and of how the work was divided."""
    idx = np.arange(kept.n) if among is None else np.asarray(among, dtype=np.int64)
    seed_mix = _mix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) ^ _GOLDEN)[0]
    priority = _mix64(kept.hashes[idx] ^ seed_mix)
    return idx[np.lexsort((kept.order[idx], priority))]


def _fractions(split: tuple[float, float, float]) -> bool:
    return all(p <= 1 for p in split)


def split_sizes(n: int, split: tuple[float, float, float], multiple: int) -> tuple[int, int, int]:
    """Sizes of train/valid/test out of `n` drawings: each a multiple of `multiple`, rounded down, never raised.

    Fractions (every part <= 1; they are shares of their sum): valid and test each get their share of
    the n drawings rounded down to a multiple; train, when asked for, gets every drawing left, rounded
    down to a multiple (with multiple 1: all of them). Counts: valid and test get exactly theirs, train
    what is left up to its count, rounded down. A part may come out empty; `check_split` says so.
    """
    if _fractions(split):
        total = sum(split)
        valid, test = (int(n * p / total) // multiple * multiple for p in split[1:])
        train = (n - valid - test) // multiple * multiple if split[0] > 0 else 0
        return train, valid, test
    counts = [int(p) for p in split]
    n_valid, n_test = counts[1], counts[2]
    if n_valid + n_test > n:
        return 0, min(n_valid, n), min(n_test, max(0, n - n_valid))
    return min(counts[0], (n - n_valid - n_test) // multiple * multiple), n_valid, n_test


def _split_works(n: int, split: tuple[float, float, float], multiple: int) -> bool:
    sizes = split_sizes(n, split, multiple)
    fits = _fractions(split) or int(split[1]) + int(split[2]) <= n
    return fits and all(s > 0 for s, p in zip(sizes, split) if p > 0)


# --multiple values suggested when the asked one is too coarse for the data
NICE_MULTIPLES = (1000, 500, 250, 200, 100, 50, 25, 20, 10, 5, 2, 1)


def _split_text(split) -> str:
    return "/".join(f"{p:g}" for p in split)


def _sizes_text(sizes) -> str:
    return ", ".join(f"{name} {s}" for name, s in zip(SPLITS, sizes))


def check_split(n: int, split: tuple[float, float, float], multiple: int, path: str | None = None,
                what: str = "") -> None:
    """Raise `TooFewDrawingsError` when `n` drawings cannot give every split asked to be non-empty at least
    one `multiple`; the message says what the split needs and the option that fixes it."""
    if _split_works(n, split, multiple):
        return
    fractions = _fractions(split)
    head = f"{n} drawing{'s' * (n != 1)}{what} kept (after removing duplicates); " \
           f"--split {_split_text(split)} with --multiple {multiple}"
    if fractions:
        names = [name for name, p, s in zip(SPLITS, split, split_sizes(n, split, multiple)) if p > 0 and s == 0]
        total = sum(split)
        start = max(math.ceil(multiple * total / p) for p in split if p > 0)
        need = next((k for k in range(start, start + 3 * multiple + 3) if _split_works(k, split, multiple)), None)
        needs = f"would leave {', '.join(names[:-1]) + ' and ' * (len(names) > 1) + names[-1]} empty: each split " \
                f"asked for needs at least {multiple} drawing{'s' * (multiple > 1)}" + \
                (f", {need} in all at these fractions" if need and need > n else "")
        shares = split
    else:
        counts = [int(p) for p in split]
        if counts[1] + counts[2] > n:
            needs = f"asks for {counts[1]} valid + {counts[2]} test drawings"
        else:
            needs = f"leaves {n - counts[1] - counts[2]} for train, fewer than one multiple of {multiple}"
        shares = tuple(c / sum(counts) for c in counts)
    options = []
    for m in [k for k in NICE_MULTIPLES if k < multiple or (not fractions and k == multiple)]:
        if _split_works(n, shares, m):  # the largest round multiple that works
            s = split_sizes(n, shares, m)
            keeps = f"keeps {'all ' * (sum(s) == n)}{sum(s)}"
            options.append(f"--multiple {m} ({keeps}: {_sizes_text(s)})" if fractions else
                           f"--split {'/'.join(str(x) for x in s)} --multiple {m} ({keeps})")
            break
    if fractions and options and "keeps all" not in options[0] and _split_works(n, split, 1):
        s = split_sizes(n, split, 1)
        options.append(f"--multiple 1 (keeps all {sum(s)}: {_sizes_text(s)})")
    if options:
        fix = "Use " + " or ".join(options)
    else:
        asked = [i for i, p in enumerate(split) if p > 0]
        if len(asked) > 1 and n >= len(asked):
            counts = [1 if i in asked else 0 for i in range(3)]
            counts[asked[0]] = n - sum(counts) + 1
            fix = f"Use --split {'/'.join(str(c) for c in counts)} --multiple 1, or give more drawings"
        else:
            fix = "Use --split 1/0/0 --multiple 1 (all in train), or give more drawings"
    raise TooFewDrawingsError(f"{head} {needs}. {fix}", path=path)


def share_notes(sizes, split: tuple[float, float, float], n: int) -> list[str]:
    """Where rounding moved a split far from what was asked: 'valid: asked 5%, written 2.6% (100 of 3900)'."""
    notes = []
    if _fractions(split):
        total = sum(split)
        for name, size, p in zip(SPLITS, sizes, split):
            asked, written = p / total, size / n if n else 0.0
            if p > 0 and abs(written - asked) > 0.25 * asked:
                notes.append(f"{name}: asked {asked:.1%}, written {written:.1%} ({size} of {n})")
    elif sizes[0] < int(split[0]):
        notes.append(f"train: asked {int(split[0])}, written {sizes[0]} (all that was left after valid and test)")
    return notes


@dataclass
class SplitResult:
    splits: dict[str, list[np.ndarray]]
    ids: dict[str, np.ndarray]
    labels: dict[str, np.ndarray] | None
    classes: list[str]
    counts: dict[str, int]
    duplicates: int
    rounding: int       # dropped to make sizes multiples (fractions)
    not_selected: int   # beyond the requested counts
    notes: list[str] = field(default_factory=list)  # splits that rounding moved far from what was asked


def make_splits(kept: Kept, opts: ConvertOptions, path: str | None = None, what: str = "") -> SplitResult:
    """Dedupe, order by the seeded hash and cut into train/valid/test.

    Raises `TooFewDrawingsError` (naming `path`, `what` describes the drawings) when nothing was kept or
    a split asked for would be empty."""
    if kept.n == 0:
        raise TooFewDrawingsError(f"no drawings{what} were kept", path=path)
    keep = unique(kept)
    duplicates = kept.n - len(keep)
    check_split(len(keep), opts.split, opts.multiple, path, what)
    order = shuffle_order(kept, opts.seed, keep)  # indices into `kept`: no deduplicated copy is made
    sizes = split_sizes(len(keep), opts.split, opts.multiple)
    class_names = np.unique(kept.labels[keep])
    class_of = np.searchsorted(class_names, kept.labels)  # valid for every drawing that can be selected
    classes = class_names.tolist()
    multi = len(classes) > 1
    splits, ids, labels, counts = {}, {}, {}, {}
    start = 0
    for name, size in zip(SPLITS, sizes):
        idx = order[start:start + size]
        start += size
        part = kept.take(idx)  # one copy of the split's rows; each sketch is a view into it
        splits[name] = np.split(part.rows, part.row_offsets[1:-1]) if size else []
        ids[name] = part.ids
        if multi:
            labels[name] = class_of[idx].astype(np.int32)
        counts[name] = int(size)
    unused = len(keep) - sum(sizes)
    fractions = all(p <= 1 for p in opts.split)
    return SplitResult(splits, ids, labels if multi else None, classes if multi else classes[:1], counts, duplicates,
                       unused if fractions else 0, 0 if fractions else unused,
                       share_notes(sizes, opts.split, len(keep)))


# ---------------------------------------------------------------------------------------------------
# The whole run


@dataclass
class ConvertReport:
    """What a run read, kept and dropped (by reason), for the summary and the `meta` key."""

    read: int = 0
    kept_before_split: int = 0
    dropped: Counter = field(default_factory=Counter)
    filtered: Counter = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    fitted: int = 0
    sources: dict = field(default_factory=dict)  # path -> {"read": n, "kept": n}

    @property
    def bad_input(self) -> int:
        return sum(self.dropped[r] for r in BAD_INPUT_REASONS)


@dataclass
class Collected:
    kept: Kept
    report: ConvertReport
    files: list[str]


def collect(inputs: list[str], opts: ConvertOptions, progress: Callable[[int], None] | None = None,
            shard: tuple[int, int] | None = None) -> Collected:
    """Read and process every input; return the kept sketches (not yet deduplicated or split).

    shard=(i, n) processes only the units of work (chunks of lines, groups of files) whose index is
    i modulo n; the n shards of a run together process every unit exactly once.
    """
    files = expand_inputs(inputs)
    report = ConvertReport()
    report.sources = {f: {"read": 0, "kept": 0} for f in files}
    parts: list[Kept] = []
    tasks = _tasks(files, opts, absolute_lines=shard is not None)
    if shard is not None:
        tasks = (t for k, t in enumerate(tasks) if k % shard[1] == shard[0])
    next_line: dict[int, int] = {}
    results = _run(tasks, opts)
    try:  # closed here, not when the generator is collected: a worker pool must stop with the run
        for result in results:
            if result.relative_to is not None:
                first = next_line.get(result.relative_to, 1)
                result.shift_lines(first - 1)
                next_line[result.relative_to] = first + result.lines
            if opts.strict and result.problems:
                raise InputError(result.problems[0].message, path=result.problems[0].path, line=result.problems[0].line)
            parts.append(result.kept)
            report.read += result.read
            report.dropped.update(result.dropped)
            report.filtered.update(result.filtered)
            report.fitted += result.fitted
            for p in result.problems:
                if len(report.problems) < MAX_PROBLEMS_KEPT:
                    report.problems.append(p)
            for i, (r, k) in result.source_counts.items():
                report.sources[files[i]]["read"] += r
                report.sources[files[i]]["kept"] += k
            if progress is not None:
                progress(result.read)
    finally:
        results.close()
    kept = Kept.concat(parts)
    report.kept_before_split = kept.n
    return Collected(kept, report, files)


def _run(tasks: Iterator[tuple], opts: ConvertOptions) -> Iterator[ChunkResult]:
    """process_task over the tasks, in order, in `opts.workers` processes (bounded look-ahead)."""
    if opts.workers <= 1:
        for t in tasks:
            yield process_task(t, opts)
        return
    import multiprocessing

    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    ndjson_source.preload()
    pool = ProcessPoolExecutor(max_workers=opts.workers, mp_context=ctx, initializer=_worker_init,
                               initargs=(os.getpid(),))
    try:
        pending = []
        for t in tasks:
            pending.append(pool.submit(process_task, t, opts))
            if len(pending) >= 2 * opts.workers:
                yield pending.pop(0).result()
        while pending:
            yield pending.pop(0).result()
    except BaseException:  # an error, Ctrl-C, SIGTERM (see outputs.sigterm_raises) or the caller stopping early
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _worker_init(parent: int) -> None:
    """In each worker: die with the parent, leave Ctrl-C to the parent (it stops the pool)."""
    import signal

    from .outputs import die_with_parent

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (outputs.sigterm_raises): just end
    die_with_parent(signal.SIGKILL, parent)  # the kernel kills the worker when the parent dies, even by kill -9


def _stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop a worker pool now: no waiting for the chunks in progress.

    concurrent.futures has no "terminate", so this reaches into the executor: a worker killed while it
    sends a result leaves the executor's thread waiting for the rest of the message on a pipe whose write
    end the parent also holds, and a full task pipe leaves the queue's feeder thread waiting for a reader;
    at exit the interpreter joins both threads and would hang for ever. Closing the parent's write end
    gives the reader end-of-file, and the feeder is not joined.
    """
    processes = list((getattr(pool, "_processes", None) or {}).values())
    call_queue = getattr(pool, "_call_queue", None)
    if call_queue is not None:
        call_queue.cancel_join_thread()
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)  # shutdown() forgets it
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        try:
            p.kill()
        except (OSError, ValueError):
            pass
    for p in processes:
        try:
            p.join(timeout=2)
        except (OSError, ValueError, AssertionError):
            pass
    if writer is not None:
        try:
            writer.close()
        except OSError:
            pass


def build_meta(collected: Collected, result: SplitResult, opts: ConvertOptions, command: str | None) -> dict:
    report = collected.report
    dropped = dict(report.dropped)
    if result.duplicates:
        dropped["duplicate"] = result.duplicates
    if result.rounding:
        dropped["split_rounding"] = result.rounding
    if result.not_selected:
        dropped["not_selected"] = result.not_selected
    return {
        "tool": "sketchprep",
        "version": __version__,
        "command": command,
        "format": "stroke-3 int16 [dx, dy, p]; p=1: pen lifts after this point; first row: offset from the origin",
        "options": opts.to_json(),
        "sources": [{"path": p, **c} for p, c in report.sources.items()],
        "read": report.read,
        "counts": result.counts,
        "dropped": dropped,
        "filtered": dict(report.filtered),
        "fitted": report.fitted,
        "classes": result.classes,
        "split_shares": {"asked": _asked_shares(opts.split), "written": _written_shares(result.counts)},
        "split_notes": result.notes,
    }


def _asked_shares(split) -> dict:
    if all(p <= 1 for p in split):
        return {name: p / sum(split) for name, p in zip(SPLITS, split)}
    return {name: int(p) for name, p in zip(SPLITS, split)}


def _written_shares(counts: dict) -> dict:
    total = sum(counts.values())
    return {name: (c / total if total else 0.0) for name, c in counts.items()}


def write_outputs(collected: Collected, opts: ConvertOptions, out: str | None = None, by_word: str | None = None,
                  command: str | None = None) -> list[tuple[str, SplitResult, dict]]:
    """Dedupe, split and write OUT (or one DIR/<word>.npz per class); returns (path, split, meta) per file.

    Every split is made and checked before anything is written: a run that kept no drawing, or too few
    for the split (of any word), raises `TooFewDrawingsError` and leaves OUT (or DIR) as it was. The
    `--by-word` files are written all together or not at all (`sketchprep.outputs.atomic_folder`).
    """
    from .dataset import save_dataset
    from .outputs import atomic_folder

    where = collected.files[0] if len(collected.files) == 1 else None
    if collected.kept.n == 0:
        raise TooFewDrawingsError(nothing_kept_message(collected.report, len(collected.files)), path=where)
    if by_word is None:
        result = make_splits(collected.kept, opts, where)
        meta = build_meta(collected, result, opts, command)
        save_dataset(out, result.splits, ids=result.ids, labels=result.labels, meta=meta)
        return [(out, result, meta)]
    kept = collected.kept
    words = sorted(set(kept.labels.tolist()))
    names = word_filenames(words)
    renamed = {w: names[w] for w in words if names[w] != f"{w}.npz"}
    planned, too_few = [], []
    for word in words:
        try:
            result = make_splits(kept.take(np.flatnonzero(kept.labels == word)), opts, where, f" of word {word!r}")
        except TooFewDrawingsError as e:
            too_few.append((int((kept.labels == word).sum()), word, e))
            continue
        meta = build_meta(collected, result, opts, command)
        meta.update(word=word, file=names[word])
        if renamed:
            meta["renamed_words"] = renamed
        planned.append((word, result, meta))
    if too_few:  # the fix that works for the word with the fewest drawings works for the others
        _, word, error = min(too_few)
        if len(too_few) > 1:
            others = ", ".join(repr(w) for _, w, _ in sorted(too_few)[1:6]) + ", ..." * (len(too_few) > 6)
            error.message = f"{len(too_few)} words have too few drawings for the split ({others} too); " \
                            f"{error.message}"
            error.args = (error.message,)
        raise error
    outputs = []
    with atomic_folder(by_word) as tmp:
        for word, result, meta in planned:
            save_dataset(tmp / names[word], result.splits, ids=result.ids, labels=None, meta=meta)
            outputs.append((os.path.join(by_word, names[word]), result, meta))
    return outputs


def nothing_kept_message(report: ConvertReport, n_files: int) -> str:
    """Why a run kept no drawing, and what to do about it (one line)."""
    files = f"{n_files} file{'s' * (n_files != 1)}"
    reasons = {**report.dropped, **report.filtered}
    if not report.read and not reasons:
        return f"found no drawings in {files} (empty?); nothing was written. Check the input"
    why = ", ".join(f"{v} {k}" for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]))
    first = f" (first: {report.problems[0]})" if report.problems else ""
    top = max(reasons, key=reasons.get) if reasons else ""
    if top == "too_long":
        fix = "Raise --max-len, or add --fit to simplify long drawings further"
    elif top in ("other_word", "unrecognized"):
        fix = "Check --word and --recognized-only"
    elif top in BAD_INPUT_REASONS:
        fix = ("Check that the input is Quick, Draw! ndjson (UTF-8 text, one JSON drawing per line), "
               "a Quick, Draw! .bin file or SVG line art")
    else:
        fix = "`sketchprep stats INPUT` shows what each drawing turns into"
    if set(reasons) == {"unreadable_file"}:
        return f"could not read {files}{first}; nothing was written. {fix}"
    return f"read {report.read} drawing{'s' * (report.read != 1)} from {files} and kept none: {why}{first}; " \
           f"nothing was written. {fix}"


# Longest file name stem written for a word (bytes of UTF-8): with a suffix and ".npz" this stays far
# below the 255 bytes every common file system allows.
MAX_STEM_BYTES = 120
_RESERVED_STEMS = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def word_filenames(words: list[str]) -> dict[str, str]:
    """A unique, safe, bounded file name (`<stem>.npz`) for every word.

    A word that is already a safe name keeps it (`cat` -> `cat.npz`). Any other word (a slash, a
    backslash, an empty or dot name, a name too long or reserved on Windows) and any word whose name
    differs from an earlier one only in case (they would collide on case-insensitive file systems) gets
    its cleaned name plus 8 hex digits of a hash of the word: `a/b` -> `a_b-c14cddc0.npz` (more digits in
    the unlikely case that another word is literally that name). The names depend only on the words, so
    they stay the same from run to run.
    """
    import hashlib

    taken: set[str] = set()
    out: dict[str, str] = {}
    plain = {w: _clean_stem(w) for w in words}
    # words that keep their own name first, so that a hashed name never takes one of theirs
    order = sorted(words, key=lambda w: (plain[w] != w, w))
    for word in order:
        stem = plain[word]
        if not stem or stem != word or stem.casefold() in taken:
            digest = hashlib.sha256(word.encode("utf-8", "surrogatepass")).hexdigest()
            size = 8
            stem = f"{_clean_stem(word) or 'unnamed'}-{digest[:size]}"
            while stem.casefold() in taken:
                size += 4
                stem = f"{_clean_stem(word) or 'unnamed'}-{digest[:size]}"
        taken.add(stem.casefold())
        out[word] = f"{stem}.npz"
    return out


def _clean_stem(name: str) -> str:
    """`name` with every character but letters, digits and ` -_.()` replaced by `_`, bounded in length."""
    cleaned = "".join(c if c.isalnum() or c in " -_.()" else "_" for c in name).strip(" .")
    while len(cleaned.encode("utf-8", "surrogatepass")) > MAX_STEM_BYTES:
        cleaned = cleaned[:-1]
    cleaned = cleaned.rstrip(" .")
    if cleaned.lower().split(".")[0] in _RESERVED_STEMS:
        cleaned = f"_{cleaned}"
    return cleaned
