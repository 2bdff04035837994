"""Splits: the deduplicated sketches in a seeded order, cut into train/valid/test of checked sizes."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import TooFewDrawingsError
from ..formats.npz import SPLITS
from .dedupe import ordered_unique
from .kept import Kept, priorities
from .options import ConvertOptions, format_split


def shuffle_order(kept: Kept, seed: int, among: np.ndarray | None = None) -> np.ndarray:
    """Indices of the kept sketches (or of those listed in `among`) in seeded priority order, a hash of
    each sketch's content: independent of the input order and of how the work was divided."""
    idx = np.arange(kept.n) if among is None else np.asarray(among, dtype=np.int64)
    return idx[np.lexsort((kept.order[idx], priorities(kept.hashes[idx], seed)))]


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
           f"--split {format_split(split)} with --multiple {multiple}"
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
class SplitSummary:
    """What a split of a file holds and what it dropped (all a summary or `meta` needs, no sketches)."""

    classes: list[str]
    counts: dict[str, int]
    duplicates: int
    rounding: int       # dropped to make sizes multiples (fractions)
    not_selected: int   # beyond the requested counts
    notes: list[str] = field(default_factory=list)  # splits that rounding moved far from what was asked


@dataclass
class SplitResult(SplitSummary):
    """A split made in memory (`make_splits`): the summary plus each split's sketches, ids, labels and times."""

    splits: dict[str, list[np.ndarray]] = field(default_factory=dict)
    ids: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] | None = None
    times: dict[str, np.ndarray] | None = None  # --keep-time: per split, (R,) float64, one per row of its sketches


def plan_split(order: np.ndarray, before: int, classes: list[str], opts: ConvertOptions, path: str | None = None,
               what: str = "") -> tuple[list[np.ndarray], SplitSummary]:
    """Cut `order` (the deduplicated sketches in seeded order, out of `before` kept) into train/valid/test:
    returns each split's part of `order` and the summary. Raises `TooFewDrawingsError` (naming `path`; `what`
    describes the drawings) when a split asked for would be empty."""
    check_split(len(order), opts.split, opts.multiple, path, what)
    sizes = split_sizes(len(order), opts.split, opts.multiple)
    bounds = np.cumsum([0, *sizes])
    parts = [order[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    unused = len(order) - sum(sizes)
    fractions = all(p <= 1 for p in opts.split)
    return parts, SplitSummary(classes, {name: int(size) for name, size in zip(SPLITS, sizes)}, before - len(order),
                               unused if fractions else 0, 0 if fractions else unused,
                               share_notes(sizes, opts.split, len(order)))


def make_splits(kept: Kept, opts: ConvertOptions, path: str | None = None, what: str = "") -> SplitResult:
    """Dedupe, order by the seeded hash and cut into train/valid/test, in memory.

    Raises `TooFewDrawingsError` (naming `path`, `what` describes the drawings) when nothing was kept or
    a split asked for would be empty."""
    if kept.n == 0:
        raise TooFewDrawingsError(f"no drawings{what} were kept", path=path)
    order = ordered_unique(kept.hashes, kept.order, kept.row_offsets[:-1], np.diff(kept.row_offsets), kept.rows,
                           opts.seed)  # indices into `kept`: no deduplicated copy is made
    class_names = np.unique(kept.labels[order])
    class_of = np.searchsorted(class_names, kept.labels)  # valid for every drawing that can be selected
    classes = class_names.tolist()
    multi = len(classes) > 1
    parts, summary = plan_split(order, kept.n, classes if multi else classes[:1], opts, path, what)
    splits, ids, labels, times = {}, {}, {}, {}
    for name, idx in zip(SPLITS, parts):
        part = kept.take(idx)  # one copy of the split's rows; each sketch is a view into it
        splits[name] = np.split(part.rows, part.row_offsets[1:-1]) if len(idx) else []
        ids[name] = part.ids
        if part.times is not None:
            times[name] = part.times
        if multi:
            labels[name] = class_of[idx].astype(np.int32)
    return SplitResult(**vars(summary), splits=splits, ids=ids, labels=labels if multi else None,
                       times=times if kept.times is not None else None)
