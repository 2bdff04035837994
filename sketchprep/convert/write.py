"""Write: each output's split made and checked, then the sketch-rnn `.npz` file(s) written.

One OUT.npz, or with `--by-word` one DIR/<word>.npz per class, all together or none. The file format is
`sketchprep.formats.npz`.
"""
from __future__ import annotations

import os

import numpy as np

from .. import __version__
from ..errors import TooFewDrawingsError
from ..formats.npz import SPLITS
from .collect import BAD_INPUT_REASONS, Collected, ConvertReport
from .options import ConvertOptions
from .splits import SplitResult, make_splits


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
    from ..dataset import save_dataset
    from ..outputs import atomic_folder

    where = collected.files[0] if len(collected.files) == 1 else None
    if collected.kept.n == 0:
        raise TooFewDrawingsError(nothing_kept_message(collected.report, len(collected.files)), path=where)
    if by_word is None:
        result = make_splits(collected.kept, opts, where)
        meta = build_meta(collected, result, opts, command)
        save_dataset(out, result.splits, ids=result.ids, labels=result.labels, meta=meta, times=result.times)
        return [(out, result, meta)]
    planned = _split_by_word(collected, opts, where, command)
    outputs = []
    with atomic_folder(by_word) as tmp:
        for name, result, meta in planned:
            save_dataset(tmp / name, result.splits, ids=result.ids, labels=None, meta=meta, times=result.times)
            outputs.append((os.path.join(by_word, name), result, meta))
    return outputs


def _split_by_word(collected: Collected, opts: ConvertOptions, where: str | None,
                   command: str | None) -> list[tuple[str, SplitResult, dict]]:
    """(file name, split, meta) of every word's file; raises `TooFewDrawingsError` for the word with the
    fewest drawings when any word has too few for the split."""
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
        planned.append((names[word], result, meta))
    if too_few:  # the fix that works for the word with the fewest drawings works for the others
        _, word, error = min(too_few)
        if len(too_few) > 1:
            others = ", ".join(repr(w) for _, w, _ in sorted(too_few)[1:6]) + ", ..." * (len(too_few) > 6)
            error.message = f"{len(too_few)} words have too few drawings for the split ({others} too); " \
                            f"{error.message}"
            error.args = (error.message,)
        raise error
    return planned


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
