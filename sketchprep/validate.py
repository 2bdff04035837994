"""Check any `.npz` against the data contract (DESIGN.md; layout in `sketchprep.strokes`).

Works on the raw arrays of the file (`dataset.read_npz`, which never executes a pickle), so it can
report layout problems that `load_dataset` would refuse outright. Findings are grouped: one per
kind of problem and split, carrying every sketch index concerned. Errors break the reference
loader or the contract; warnings are legal but probably not what you want.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from .dataset import (CONTRACT_KEYS, SPLITS, LayoutProblem, bad_sketches, extra_key_problem, numeric_sketch,
                      read_meta, read_npz, sketch_items, times_problem)
from .errors import DatasetFormatError, UnsafeFileError, shown
from .limits import BATCH, ROWS
from .stats import CLAMP, pack_sketches

ERROR, WARNING = "error", "warning"
INT16_MIN, INT16_MAX = int(np.iinfo(np.int16).min), int(np.iinfo(np.int16).max)
SHOWN_INDICES = 5  # indices quoted in a finding's text (all of them are in `indices`)


@dataclass
class Finding:
    """One kind of problem in one split (or in the whole file when split is None).

    indices: every sketch concerned, ascending (empty for split- or file-level problems).
    """

    level: str
    code: str
    split: str | None
    what: str
    fix: str
    indices: list[int] = field(default_factory=list)

    @property
    def index(self) -> int | None:
        return self.indices[0] if self.indices else None

    def to_dict(self) -> dict:
        return {"level": self.level, "code": self.code, "split": self.split, "index": self.index,
                "count": len(self.indices), "indices": self.indices, "what": self.what, "fix": self.fix}

    def line(self) -> str:
        """`level  split[index]  code  what; fix: ...` (one line)."""
        where = self.split or "file"
        if self.index is not None:
            where += f"[{self.index}]"
        return shown(f"{self.level:<7}  {where:<12}  {self.code:<16}  {self.what}. Fix: {self.fix}")


@dataclass
class ValidationReport:
    """Everything `validate` found in one file; `ok` is True when there is no error."""

    path: str
    findings: list[Finding]
    counts: dict[str, int]
    max_len: int
    batch_size: int

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def verdict(self) -> str:
        sizes = ", ".join(f"{k} {v}" for k, v in self.counts.items()) or "no splits read"
        state = "OK" if self.ok else "FAILED"
        return (f"{shown(self.path)}: {state}: {len(self.errors)} error(s), {len(self.warnings)} warning(s) "
                f"({sizes}; --max-len {self.max_len}, --batch-size {self.batch_size})")

    def to_dict(self) -> dict:
        return {"path": self.path, "ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings),
                "counts": self.counts, "max_len": self.max_len, "batch_size": self.batch_size,
                "findings": [f.to_dict() for f in self.findings]}


def validate_file(path: str | os.PathLike, max_len: int = 250, batch_size: int = 100) -> ValidationReport:
    """Validate the `.npz` at `path`. A file that cannot be read, or whose pickles ask for anything but
    numpy arrays, gives an error finding (its code is never run)."""
    _check_options(max_len, batch_size)
    path = str(path)
    try:
        arrays = read_npz(path, keys=CONTRACT_KEYS)
    except UnsafeFileError as e:
        finding = Finding(ERROR, "unsafe_pickle", _split_of(e.element), f"{e.message}",
                          "do not open this file with np.load(allow_pickle=True): it asks to run code; "
                          "rebuild it from its source drawings")
        return ValidationReport(path, [finding], {}, max_len, batch_size)
    except DatasetFormatError as e:
        finding = Finding(ERROR, "unreadable", _split_of(e.element), e.message,
                          "write it with np.savez_compressed (sketchprep convert does)")
        return ValidationReport(path, [finding], {}, max_len, batch_size)
    return validate_arrays(arrays, max_len, batch_size, path)


def _split_of(element: str | None) -> str | None:
    if not element:
        return None
    return element[:-4] if element.endswith(".npy") else element


def _check_options(max_len: int, batch_size: int) -> None:
    ROWS.parse(max_len, "--max-len")       # the command line's bounds, for callers from Python too
    BATCH.parse(batch_size, "--batch-size")


def validate_arrays(arrays: dict[str, np.ndarray], max_len: int = 250, batch_size: int = 100,
                    path: str = "<arrays>") -> ValidationReport:
    """Validate the arrays of an `.npz` (key -> array, as `read_npz` returns them)."""
    _check_options(max_len, batch_size)
    findings: list[Finding] = []
    counts: dict[str, int] = {}
    keys: dict[str, dict[bytes, int]] = {}  # split -> content key -> first index, for leakage
    sketches: dict[str, list] = {}
    for split in SPLITS:
        if split not in arrays:
            findings.append(Finding(ERROR, "missing_key", split, f"missing key {split!r} (keys: {sorted(arrays)})",
                                    "save train, valid and test (np.savez_compressed(path, train=..., valid=..., "
                                    "test=...)); sketchprep convert always writes all three"))
            continue
        items = _sketch_items(arrays[split], split, findings)
        if items is None:
            continue
        counts[split] = len(items)
        sketches[split] = items
        good = _check_sketches(items, split, max_len, findings)
        _check_size(len(items), split, batch_size, findings)
        keys[split] = _check_duplicates(items, good, split, findings)
    _check_leakage(keys, findings)
    _check_extra_keys(arrays, counts, findings)
    _check_times(arrays, sketches, findings)
    order = {ERROR: 0, WARNING: 1}
    split_order = {s: i for i, s in enumerate((None,) + SPLITS)}
    findings.sort(key=lambda f: (order[f.level], split_order.get(f.split, 9)))
    return ValidationReport(path, findings, counts, max_len, batch_size)


def _indices_text(indices) -> str:
    shown = ", ".join(str(i) for i in indices[:SHOWN_INDICES])
    return shown + (", ..." if len(indices) > SHOWN_INDICES else "")


_SINGULAR = {"are": "is", "have": "has", "hold": "holds", "do": "does", "store": "stores", "repeat": "repeats"}


def _add(findings: list[Finding], level: str, code: str, split: str, indices: np.ndarray, what: str, fix: str,
         total: int | None = None, examples: str | None = None) -> None:
    """Append a finding about these sketches (nothing when there are none). `what` is prefixed with the
    count ("all N" when that is every one of `total`) and followed by `examples` or the first indices."""
    indices = [int(i) for i in np.asarray(indices).ravel()]
    if not indices:
        return
    n = len(indices)
    if total is not None and n == total and n > 1:
        text = f"all {n} sketches {what}"
    else:
        if n == 1:
            verb, _, rest = what.partition(" ")
            what = f"{_SINGULAR.get(verb, verb)} {rest}"
        text = f"{n} sketch{'es' if n != 1 else ''} {what} ({examples or _indices_text(indices)})"
    findings.append(Finding(level, code, split, text, fix, indices))


def _layout_finding(problem: LayoutProblem, split: str | None) -> Finding:
    """A layout problem (the words `load_dataset` refuses a file with) as an error finding."""
    return Finding(ERROR, problem.code, split, problem.what, problem.fix, list(problem.indices))


def _sketch_items(arr: np.ndarray, split: str, findings: list[Finding]) -> list | None:
    """The split's sketches as a list, or None (with an error finding) when it is not a 1-D array of sketches."""
    items, problem = sketch_items(arr, split)
    if problem:
        findings.append(_layout_finding(problem, split))
        return None
    if arr.dtype != object:
        findings.append(Finding(WARNING, "not_object_array", split,
                                f"stored as one {arr.dtype} array of shape {arr.shape} (every sketch has the same length); "
                                f"the reference loader reads it, but it is not the contract's layout",
                                "store a 1-D object array built with np.empty(N, dtype=object), never from a list"))
    return items


def _check_sketches(items: list, split: str, max_len: int, findings: list[Finding]) -> np.ndarray:
    """Every per-sketch check, on all sketches of the split at once. Returns the indices of well-formed ones."""
    shaped = np.array([numeric_sketch(s) for s in items], dtype=bool)
    problem = bad_sketches(items, split)
    if problem:
        findings.append(_layout_finding(problem, split))
    good = np.flatnonzero(shaped)
    sketches = [items[i] for i in good]
    rows, offsets = pack_sketches(sketches)
    lengths = np.diff(offsets)
    owner = np.repeat(good, lengths)  # the split index of each row

    def sketches_with(row_mask: np.ndarray) -> np.ndarray:
        return np.unique(owner[row_mask])

    _add(findings, ERROR, "empty", split, good[lengths == 0], "are empty (0 rows)",
         "drop empty sketches; a sketch needs at least one point")
    finite = np.isfinite(rows).all(axis=1)
    _add(findings, ERROR, "non_finite", split, sketches_with(~finite), "hold NaN or infinite values",
         "drop these sketches or convert them again from the source drawings")
    pen = rows[:, 2]
    _add(findings, ERROR, "bad_pen", split, sketches_with(finite & (pen != 0) & (pen != 1)),
         "have pen values other than 0 and 1",
         "the third column must be 1 where the pen lifts after the point, else 0")
    _add(findings, ERROR, "too_long", split, good[lengths > max_len], f"are longer than --max-len {max_len} rows"
         + (f" (longest: {int(lengths.max())})" if len(lengths) else ""),
         "convert again with a larger --epsilon or with --fit, or drop them (or raise --max-len if you mean it)")
    out_of_range = finite & ((rows < INT16_MIN) | (rows > INT16_MAX)).any(axis=1)
    _add(findings, ERROR, "int16_overflow", split, sketches_with(out_of_range),
         f"have values outside the int16 range {INT16_MIN}..{INT16_MAX}",
         "scale the drawings down (convert --size 255) so offsets fit in int16")
    large = finite & (np.abs(rows[:, :2]) > CLAMP).any(axis=1) & ~out_of_range
    _add(findings, WARNING, "large_offset", split, sketches_with(large),
         f"have an offset beyond +-{CLAMP:g}, where the reference loader clamps (the drawing changes)",
         "scale the drawings down (convert --size) or split these long jumps")
    nonempty = lengths > 0
    last_rows = offsets[1:][nonempty] - 1
    not_lifted = rows[last_rows, 2] != 1
    _add(findings, WARNING, "last_not_pen_up", split, good[nonempty][not_lifted],
         "do not end with p = 1 (the last stroke is never closed)", "set p = 1 on the last row of every sketch")
    is_float = np.array([s.dtype.kind == "f" for s in sketches], dtype=bool)
    if is_float.any():
        with np.errstate(invalid="ignore"):  # inf rows are already reported as non-finite
            fractional = sketches_with(finite & (np.mod(rows[:, :2], 1) != 0).any(axis=1))
        dtypes = sorted({str(s.dtype) for s in sketches if s.dtype.kind == "f"})
        _add(findings, WARNING, "float_offsets", split, good[is_float],
             f"store float offsets ({'/'.join(dtypes)}; {len(fractional)} with fractional values), not int16",
             "the reference loader accepts floats, but the contract is int16: convert again to round them",
             total=len(items))
    other_ints = np.array([s.dtype.kind in "iu" and s.dtype != np.int16 for s in sketches], dtype=bool)
    if other_ints.any():
        dtypes = sorted({str(s.dtype) for s in sketches if s.dtype.kind in "iu" and s.dtype != np.int16})
        _add(findings, WARNING, "not_int16", split, good[other_ints], f"are stored as {'/'.join(dtypes)}, not int16",
             "cast to int16 after checking the range (convert writes int16)", total=len(items))
    return good


def _check_size(n: int, split: str, batch_size: int, findings: list[Finding]) -> None:
    if n < batch_size:
        findings.append(Finding(ERROR, "split_too_small", split,
                                f"{n} sketches, fewer than --batch-size {batch_size}: the reference forms no batch "
                                "from it", "put at least one batch of sketches in every split (convert --split)"))
    elif n % batch_size:
        effect = ("the reference README asks for multiples (training draws random batches, so none is lost)"
                  if split == "train" else f"the reference never evaluates the last {n % batch_size}")
        findings.append(Finding(WARNING, "not_multiple", split,
                                f"{n} sketches is not a multiple of --batch-size {batch_size}: {effect}",
                                f"use split sizes that are multiples of {batch_size} (convert --multiple {batch_size})"))


def _content_keys(items: list, good: np.ndarray) -> list[bytes]:
    """A byte string per well-formed sketch that is equal exactly when the sketches' values are equal
    (float64 values, so int16 and float copies of a drawing match; -0.0 counts as 0)."""
    rows, offsets = pack_sketches([items[i] for i in good])
    rows = rows + 0.0  # -0.0 + 0.0 == +0.0
    return [rows[a:b].tobytes() for a, b in zip(offsets[:-1], offsets[1:])]


def _check_duplicates(items: list, good: np.ndarray, split: str, findings: list[Finding]) -> dict[bytes, int]:
    """Warn about sketches repeating an earlier one of the same split; returns content key -> first index."""
    first: dict[bytes, int] = {}
    repeats: list[tuple[int, int]] = []  # (repeat, the earlier sketch it equals)
    for i, key in zip(good, _content_keys(items, good)):
        if key in first:
            repeats.append((int(i), first[key]))
        else:
            first[key] = int(i)
    if repeats:
        examples = ", ".join(f"{r} = {e}" for r, e in repeats[:3]) + (", ..." if len(repeats) > 3 else "")
        _add(findings, WARNING, "duplicate", split, np.array([r for r, _ in repeats]),
             f"repeat an earlier sketch of {split}", "drop the repeats (sketchprep convert removes duplicates)",
             examples=examples)
    return first


def _check_leakage(keys: dict[str, dict[bytes, int]], findings: list[Finding]) -> None:
    """Warn about drawings that are in two splits (train/valid, train/test, valid/test)."""
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        if a not in keys or b not in keys:
            continue
        shared = sorted((j, keys[a][k]) for k, j in keys[b].items() if k in keys[a])
        if not shared:
            continue
        examples = ", ".join(f"{b} {j} = {a} {i}" for j, i in shared[:3]) + (", ..." if len(shared) > 3 else "")
        _add(findings, WARNING, "leakage", b, np.array([j for j, _ in shared]),
             f"are also in {a}, so scores on {b} are optimistic",
             f"remove them from {b} (sketchprep convert keeps splits disjoint)", examples=examples)


def _check_extra_keys(arrays: dict[str, np.ndarray], counts: dict[str, int], findings: list[Finding]) -> None:
    """The optional keys of the contract: meta (JSON), <split>_ids and <split>_labels (one per sketch, no pickle)."""
    classes = None
    if "meta" in arrays:
        meta, problem = read_meta(arrays["meta"])
        if problem:
            findings.append(_layout_finding(problem, None))
        classes = meta.get("classes")
    for split in SPLITS:
        for suffix in ("ids", "labels"):
            key = f"{split}_{suffix}"
            if key in arrays:
                problem = extra_key_problem(arrays[key], split, suffix, counts.get(split), classes)
                if problem:
                    findings.append(_layout_finding(problem, split))


def _check_times(arrays: dict[str, np.ndarray], sketches: dict[str, list], findings: list[Finding]) -> None:
    """`<split>_times` (convert --keep-time): one float per row of the split's sketches (error otherwise); a
    warning for sketches whose times go back within a stroke (the source's own, passed through) or that
    have times for some rows only."""
    for split in SPLITS:
        key = f"{split}_times"
        if key not in arrays:
            continue
        items = sketches.get(split)
        shaped = items is not None and all(numeric_sketch(s) for s in items)
        rows = sum(len(s) for s in items) if shaped else None
        problem = times_problem(arrays[key], split, rows)
        if problem:
            findings.append(_layout_finding(problem, split))
            continue
        if not shaped:
            continue
        t = arrays[key].astype(np.float64)
        lengths = np.array([len(s) for s in items], dtype=np.int64)
        owner = np.repeat(np.arange(len(items)), lengths)
        if not len(t):
            continue
        pen = np.concatenate([np.asarray(s)[:, 2] for s in items if len(s)])
        nan = np.isnan(t)
        starts = (np.cumsum(lengths) - lengths)[lengths > 0]
        some, every = np.zeros(len(items), dtype=bool), np.zeros(len(items), dtype=bool)
        some[lengths > 0] = np.logical_or.reduceat(nan, starts)
        every[lengths > 0] = np.logical_and.reduceat(nan, starts)
        _add(findings, WARNING, "partial_times", split, np.flatnonzero(some & ~every), "have times for some rows only",
             "give every row of a sketch a time, or none (NaN for all): convert again with --keep-time")
        same_stroke = np.zeros(len(t), dtype=bool)  # row i follows row i - 1 within one stroke
        same_stroke[1:] = (owner[1:] == owner[:-1]) & (pen[:-1] < 0.5)
        with np.errstate(invalid="ignore"):
            back = same_stroke & (np.diff(t, prepend=t[0]) < 0)
        _add(findings, WARNING, "time_goes_back", split, np.unique(owner[back]),
             "have a time earlier than the one before it within a stroke",
             "none needed if the source drawings' own times go back (convert passes them on as they are)")
