"""Per-chunk processing: every per-drawing step, on one unit of work at a time (in a worker process).

bounds (`--limit`) -> normalise -> resample (Quick, Draw! raw) -> RDP -> quantise -> stroke-3 -> length
filter (or `--fit`), on flat arrays for the whole chunk (`sketchprep.strokes.FlatDrawings`).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from ..simplify import resample_simplify_flat, resampled_counts, simplify_flat
from ..sources import KIND_RAW, KIND_SIMPLIFIED, Problem, SourceBatch
from ..sources import ndjson as ndjson_source
from ..strokes import FlatDrawings, Stroke3Batch, _offsets, _ranges, flat_to_stroke3, interleave, normalize_flat
from .inputs import read_task
from .kept import Kept, sketch_hashes
from .options import ConvertOptions

# Google's simplified Quick, Draw! data: already aligned, scaled to this size and RDP'd at this epsilon
QUICKDRAW_SIZE = 255.0
QUICKDRAW_EPSILON = 2.0
FIT_TRIES = 8          # --fit: epsilon grows by half the original each try, up to 5x


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
                                                         opts.recognized_only, opts.limits.line_bytes,
                                                         opts.keep_time), opts)
        if first is None:  # lines numbered from 1 within the chunk: `collect` shifts them, in order
            result.relative_to, result.lines = index, ndjson_source.count_lines(blob)
        return result
    return process_batch(read_task(task, opts), opts)


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
    s3 = flat_to_stroke3(_simplify(flat, kinds, opts.epsilon, opts, passthrough),
                         keep_repeats=passthrough | _as_they_are(flat, opts))
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
    kept_rows = _ranges(s3.row_offsets[keep], kept_lengths)
    rows = s3.rows[kept_rows]
    row_offsets = _offsets(kept_lengths)
    ids = np.asarray(batch.ids, dtype=str)[keep] if n else np.zeros(0, "<U1")
    labels = np.asarray(batch.labels, dtype=str)[keep] if n else np.zeros(0, "<U1")
    times = None if s3.times is None else s3.times[kept_rows]
    kept = Kept(rows, row_offsets, ids, labels, batch.order[keep], sketch_hashes(rows, row_offsets), times)
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
            and not ((batch.kinds == KIND_RAW).any() and _resamples(opts))):
        return batch  # nothing to compute: no drawing can be over (the usual case for simplified data)
    counts = per_stroke.astype(np.float64)
    raw = (batch.kinds == KIND_RAW) & _resamples(opts)
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


def _resamples(opts: ConvertOptions) -> bool:
    """Whether raw Quick, Draw! drawings may be resampled: `--epsilon 0` keeps the points as they are
    (but `--fit` re-simplifies, and so resamples, the drawings that are too long)."""
    return opts.epsilon > 0 or opts.fit


def _unmoved(opts: ConvertOptions) -> bool:
    """`--size 0 --epsilon 0`: drawings are taken as they are, in their source's coordinates (not even
    aligned): each sketch's first row is its first point's offset from the source's origin."""
    return opts.size == 0 and opts.epsilon == 0


def _as_they_are(flat: FlatDrawings, opts: ConvertOptions) -> np.ndarray:
    """(D,) bool: drawings kept point for point, repeated points included: at `--size 0 --epsilon 0`
    (see `_unmoved`), those whose coordinates are all integers already, such as the ndjson and SVG that
    `sketchprep export` writes, so that they read back unchanged."""
    if not _unmoved(opts) or not flat.n_drawings:
        return np.zeros(flat.n_drawings, dtype=bool)
    whole = (flat.points == np.rint(flat.points)).all(axis=1)
    return np.logical_and.reduceat(whole, flat.point_offsets()[:-1])


def _replace(flat: FlatDrawings, mask: np.ndarray, sub: FlatDrawings) -> FlatDrawings:
    """`flat` with the drawings where `mask` is True replaced, in order, by those of `sub`."""
    if mask.all():
        return sub
    return interleave(mask, sub, flat.select(np.flatnonzero(~mask)))


def _simplify(flat: FlatDrawings, kinds: np.ndarray, epsilon: float, opts: ConvertOptions,
              untouched: np.ndarray | None = None) -> FlatDrawings:
    """Normalise every drawing to --size (but Google's simplified ones, already in its 255 box, and all
    of them at --size 0 --epsilon 0), resample raw Quick, Draw! drawings at --resample-spacing (not at
    epsilon 0), and RDP at `epsilon`; the `untouched` drawings (already what the options ask for) pass as
    they are."""
    if flat.n_drawings == 0:
        return flat
    raw = (kinds == KIND_RAW) & (epsilon > 0)  # --epsilon 0: raw points as they are, not resampled
    google_frame = (kinds == KIND_SIMPLIFIED) & (opts.size == QUICKDRAW_SIZE)
    other = ~raw & ~google_frame
    if untouched is not None:
        google_frame &= ~untouched
    size = None if _unmoved(opts) else opts.size

    def normalized(sub: FlatDrawings) -> FlatDrawings:
        return sub if size is None else normalize_flat(sub, size)

    out = flat
    for mask, step in ((raw, lambda sub: resample_simplify_flat(sub, opts.resample_spacing, epsilon, opts.distance,
                                                                size=size)),
                       (other, lambda sub: _rdp(normalized(sub), epsilon, opts.distance)),
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
    times = None if s3.times is None else np.split(s3.times, s3.row_offsets[1:-1])
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
                if times is not None:
                    times[d] = out.times[out.row_offsets[j]:out.row_offsets[j + 1]]
                fitted += 1
            else:
                still.append(d)
        todo = np.array(still, dtype=np.int64)
    lengths = np.array([len(s) for s in sketches], dtype=np.int64)
    rows = np.concatenate(sketches) if sketches else np.zeros((0, 3), np.int16)
    joined = None if times is None else (np.concatenate(times) if times else np.zeros(0))
    return Stroke3Batch(rows, _offsets(lengths), overflow, joined), fitted
