"""Write: each output's split made and checked, then the sketch-rnn `.npz` file(s) written.

One OUT.npz, or with `--by-word` one DIR/<word>.npz per class, all together or none. The file format is
`sketchprep.formats.npz`. The sketches come from a `Spill` (what `collect(..., spill=...)` fills; an
in-memory `Kept` is spilled here first), so memory holds keys, not sketches:

- OUT.npz: the packed rows and the keys (about 50 bytes a sketch) of every kept sketch are read back,
  deduplicated and put in seeded order by one sort (`dedupe.ordered_unique`) and cut into splits; then
  the file is written as a stream of pieces (`sketchprep.formats.npz`): this process gathers each piece's
  rows, `opts.workers` processes pickle and deflate them, and this process joins them in order.
- `--by-word`: one task per word, `opts.workers` of them side by side; each reads its word's keys and
  rows, deduplicates, splits and writes its file (memory holds the words being written).

The bytes written do not depend on the number of workers: every piece is cut at a fixed place.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import TooFewDrawingsError
from ..formats import npz as npz_format
from ..formats.common import MAX_STEM_BYTES, clean_stem  # noqa: F401  (MAX_STEM_BYTES: re-exported)
from ..formats.npz import (SPLITS, ZipStream, array_raw_pieces, deflate, object_array_head, object_array_tail,
                           pickled_packed)
from ..strokes import _offsets, _ranges
from .collect import BAD_INPUT_REASONS, Collected, ConvertReport
from .dedupe import ordered_unique
from .options import ConvertOptions
from .pool import ordered_map, workers_share_memory
from .spill import Keys, Spill, SpillReader
from .splits import SplitSummary, plan_split


def build_meta(collected: Collected, result: SplitSummary, opts: ConvertOptions, command: str | None) -> dict:
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
                  command: str | None = None) -> list[tuple[str, SplitSummary, dict]]:
    """Dedupe, split and write OUT (or one DIR/<word>.npz per class); returns (path, split summary, meta)
    per file. `collected.kept` is a `Spill` (or a `Kept`, spilled here, beside the output).

    A run that kept no drawing, or too few for the split (of any word), raises `TooFewDrawingsError` and
    leaves OUT (or DIR) as it was: OUT is written to a temporary file and renamed, and the `--by-word`
    files are written all together or not at all (`sketchprep.outputs.atomic_folder`).
    """
    where = collected.files[0] if len(collected.files) == 1 else None
    if collected.kept.n == 0:
        raise TooFewDrawingsError(nothing_kept_message(collected.report, len(collected.files)), path=where)
    with _spilled(collected.kept, out if by_word is None else by_word, by_word is not None) as reader:
        if by_word is None:
            return [_write_one(reader, collected, opts, out, where, command)]
        return _write_by_word(reader, collected, opts, by_word, where, command)


@contextlib.contextmanager
def _spilled(kept, near, by_label: bool):
    if isinstance(kept, Spill):
        yield kept.reader()
        return
    with Spill(near, by_label=by_label, on_disk=by_label) as spill:
        spill.add(kept)
        yield spill.reader()


def _write_one(reader: SpillReader, collected: Collected, opts: ConvertOptions, out: str, where: str | None,
               command: str | None) -> tuple[str, SplitSummary, dict]:
    from ..outputs import atomic_output

    keys, rows, times = reader.load()
    order = ordered_unique(keys.hashes, keys.order, keys.row_starts, keys.lengths, rows, opts.seed)
    names = sorted(reader.classes[c] for c in np.unique(keys.labels[order]))
    multi = len(names) > 1
    parts, summary = plan_split(order, keys.n, names if multi else names[:1], opts, where)
    meta = build_meta(collected, summary, opts, command)
    label_of = None
    if multi:  # the spill's class codes -> indices into the sorted class names
        rank = {name: i for i, name in enumerate(names)}
        label_of = np.array([rank.get(c, -1) for c in reader.classes], dtype=np.int32)
    with atomic_output(out) as f:
        write_file(f, keys, rows, reader.id_width, parts, label_of, meta, opts.workers, times)
    return out, summary, meta


def write_file(f, keys: Keys, rows: np.ndarray, id_width: int, parts: list[np.ndarray], label_of: np.ndarray | None,
               meta: dict, workers: int = 1, times: np.ndarray | None = None) -> None:
    """Write the `.npz` of the splits `parts` (indices into `keys`, in order; sketch i is
    rows[keys.row_starts[i]:][:keys.lengths[i]]) to the seekable file `f`: what `save_dataset` writes for the
    same sketches, ids (`<U{id_width}`), labels (`label_of[class code]`; None: no labels), times (the (R,)
    time of every row of `rows`; None: no `<split>_times`) and meta, byte for byte, with the pieces made in
    `workers` processes."""
    zf = ZipStream(f)
    current = None
    shared = None
    if workers_share_memory(workers):  # the workers read the rows where they are (forked: shared, not copied)
        shared = id(rows)
        _SHARED[shared] = rows
    tasks = _piece_tasks(keys, rows, shared, id_width, parts, label_of, meta, times)
    results = ordered_map(_make_piece, tasks, workers=workers)
    try:  # closed here, not when the generator is collected: a worker pool must stop with the run
        for member, piece in results:
            if member != current:
                if current is not None:
                    zf.end()
                zf.begin(member)
                current = member
            zf.write(piece)
    finally:
        results.close()
        _SHARED.pop(shared, None)
    zf.end()
    zf.close()


_SHARED: dict[int, np.ndarray] = {}  # rows that forked workers read in place (copy on write: never copied)


def _piece_tasks(keys: Keys, rows: np.ndarray, shared: int | None, id_width: int, parts: list[np.ndarray],
                 label_of: np.ndarray | None, meta: dict, times: np.ndarray | None = None):
    """(member, kind, payload) of every piece, in the order of the file (see `formats.npz.dataset_arrays`).
    A piece of sketches names its rows by `shared` (the key of `rows` in `_SHARED`) or carries them."""
    for name, idx in zip(SPLITS, parts):
        member, n = f"{name}.npy", len(idx)
        yield member, "raw", object_array_head(n)
        step = npz_format.SKETCHES_PER_PIECE  # where save_dataset cuts too: the same file
        for a in range(0, n, step):
            sel = idx[a:a + step]
            starts, lengths = keys.row_starts[sel], keys.lengths[sel]
            if shared is None:
                yield member, "sketches", (rows[_ranges(starts, lengths)], _offsets(lengths)[:-1], lengths, a, n)
            else:
                yield member, "sketches", (shared, starts, lengths, a, n)
        yield member, "raw", object_array_tail(n)
    for name, idx in zip(SPLITS, parts):
        dtype = np.dtype(f"<U{id_width}") if len(idx) else np.dtype("<U1")
        for raw in array_raw_pieces(dtype, (len(idx),), lambda a, b, i=idx, d=dtype: keys.ids[i[a:b]].astype(d)):
            yield f"{name}_ids.npy", "raw", raw
    if label_of is not None:
        for name, idx in zip(SPLITS, parts):
            for raw in array_raw_pieces(np.int32, (len(idx),), lambda a, b, i=idx: label_of[keys.labels[i[a:b]]]):
                yield f"{name}_labels.npy", "raw", raw
    if times is not None:
        for name, idx in zip(SPLITS, parts):
            total, items = _split_rows(keys, idx, times)
            for raw in array_raw_pieces(np.float64, (total,), items):
                yield f"{name}_times.npy", "raw", raw
    text = np.array(json.dumps(meta, sort_keys=True))
    for raw in array_raw_pieces(text.dtype, (), lambda a, b: text.reshape(-1)[a:b]):
        yield "meta.npy", "raw", raw


def _split_rows(keys: Keys, idx: np.ndarray, per_row: np.ndarray):
    """(R, items): the number of rows of the sketches `idx`, one after another, and a function giving the
    entries of `per_row` (one per row of the spilled rows) for their rows a to b of that sequence."""
    starts, lengths = keys.row_starts[idx], keys.lengths[idx]
    offsets = _offsets(lengths)

    def items(a: int, b: int) -> np.ndarray:
        i = int(np.searchsorted(offsets, a, side="right")) - 1  # the sketches that hold rows a to b
        j = int(np.searchsorted(offsets, b, side="left"))
        at = _ranges(starts[i:j], lengths[i:j])
        return per_row[at[a - offsets[i]:b - offsets[i]]]

    return int(offsets[-1]), items


def _make_piece(task: tuple) -> tuple[str, tuple]:
    member, kind, payload = task
    if kind == "sketches":
        rows, starts, lengths, first, total = payload
        payload = pickled_packed(_SHARED[rows] if isinstance(rows, int) else rows, starts, lengths, first, total)
    return member, deflate(payload)


def _write_by_word(reader: SpillReader, collected: Collected, opts: ConvertOptions, by_word: str, where: str | None,
                   command: str | None) -> list[tuple[str, SplitSummary, dict]]:
    """Every word's file, written side by side in `opts.workers` processes; when any word has too few drawings
    for the split, `TooFewDrawingsError` for the one with the fewest, and nothing is written."""
    from ..outputs import atomic_folder

    words = sorted(reader.classes)
    names = word_filenames(words)
    renamed = {w: names[w] for w in words if names[w] != f"{w}.npz"}
    report = Collected(None, collected.report, collected.files)  # what meta needs, without the sketches
    code = {w: i for i, w in enumerate(reader.classes)}
    outputs, too_few = [], []
    with atomic_folder(by_word) as tmp:
        tasks = ((_reader_of(reader, code[w]), code[w], w, names[w], str(tmp), opts, report, command, renamed, where)
                 for w in words)
        results = ordered_map(_write_word, tasks, workers=opts.workers)
        try:
            for name, word, before, summary, meta, error in results:
                if error is not None:
                    too_few.append((before, word, error))
                else:
                    outputs.append((os.path.join(by_word, name), summary, meta))
        finally:
            results.close()
        if too_few:  # the fix that works for the word with the fewest drawings works for the others
            _, word, (message, path) = min(too_few)
            if len(too_few) > 1:
                others = ", ".join(repr(w) for _, w, _ in sorted(too_few)[1:6]) + ", ..." * (len(too_few) > 6)
                message = f"{len(too_few)} words have too few drawings for the split ({others} too); {message}"
            raise TooFewDrawingsError(message, path=path)
    return outputs


def _reader_of(reader: SpillReader, label: int) -> SpillReader:
    """What one class's task needs of `reader`: only the runs that hold its sketches."""
    return SpillReader(reader.rows, reader.keys, tuple(r for r in reader.runs if r[0] in (label, -1)),
                       reader.classes, reader.id_width, reader.times)


def _write_word(task: tuple) -> tuple:
    """One `--by-word` file (in a worker): (file name, word, drawings kept, summary, meta, error)."""
    from ..outputs import atomic_output

    reader, label, word, name, folder, opts, collected, command, renamed, where = task
    keys, rows, times = reader.load(label)
    order = ordered_unique(keys.hashes, keys.order, keys.row_starts, keys.lengths, rows, opts.seed)
    try:
        parts, summary = plan_split(order, keys.n, [word], opts, where, f" of word {word!r}")
    except TooFewDrawingsError as e:
        return name, word, keys.n, None, None, (e.message, e.path)
    meta = build_meta(collected, summary, opts, command)
    meta.update(word=word, file=name)
    if renamed:
        meta["renamed_words"] = renamed
    with atomic_output(Path(folder) / name) as f:
        write_file(f, keys, rows, reader.id_width, parts, None, meta, times=times)
    return name, word, keys.n, summary, meta, None


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
    plain = {w: clean_stem(w) for w in words}
    # words that keep their own name first, so that a hashed name never takes one of theirs
    order = sorted(words, key=lambda w: (plain[w] != w, w))
    for word in order:
        stem = plain[word]
        if not stem or stem != word or stem.casefold() in taken:
            digest = hashlib.sha256(word.encode("utf-8", "surrogatepass")).hexdigest()
            size = 8
            stem = f"{clean_stem(word) or 'unnamed'}-{digest[:size]}"
            while stem.casefold() in taken:
                size += 4
                stem = f"{clean_stem(word) or 'unnamed'}-{digest[:size]}"
        taken.add(stem.casefold())
        out[word] = f"{stem}.npz"
    return out
