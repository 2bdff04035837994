"""What every export writer reads from a dataset: its drawings split by split, as flat arrays.

`SplitView` is one split of the loaded dataset (its sketches as loaded, each drawing's id, class index and
word, the times when the dataset has them); `SplitArrays` is a block of its drawings the way the writers
want them, without a Python object per point: the stroke-3 rows of its sketches one after another (`rows`,
`row_offsets`), from which `absolute_points` and `stroke_offsets` follow. Writers go block by block
(`SplitView.blocks`), so that what they build at a time stays small.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import numpy as np

from ..dataset import SketchDataset
from ..strokes import _offsets
from .npz import SPLITS

BLOCK = 16384  # drawings a writer builds at a time (a row group, a chunk of lines)
BLOCK_BYTES = 64 * 2**20  # at most this much output built at a time, where a drawing's output is large


def block_size(bytes_per_drawing: int) -> int:
    """Drawings per block when each makes `bytes_per_drawing` bytes of output (padded arrays, images): at most
    BLOCK, at least 1, and no more than BLOCK_BYTES' worth."""
    return int(min(BLOCK, max(1, BLOCK_BYTES // max(1, bytes_per_drawing))))


@dataclass
class SplitArrays:
    """Drawings of one split (a block of them, or all) as flat arrays.

    rows: (R, 3) stroke-3 rows of every sketch, one after another (int16 as stored, or float for float data);
    row_offsets: (N+1,) int64; ids: (N,) unicode; labels: (N,) int64 class index into `classes`;
    times: (R,) float64 or None.
    """

    name: str
    rows: np.ndarray
    row_offsets: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    classes: list[str]
    times: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.row_offsets) - 1

    @property
    def words(self) -> np.ndarray:
        """(N,) the class name of every drawing."""
        return np.asarray(self.classes, dtype=str)[self.labels] if self.n else np.zeros(0, "<U1")

    def absolute(self) -> np.ndarray:
        """(R, 2) float64 absolute point of every row (the cumulative sum of each sketch's offsets)."""
        return absolute_points(self.rows, self.row_offsets)

    def block(self, start: int, stop: int) -> "SplitArrays":
        """Drawings start..stop-1 (their rows are views)."""
        a, b = int(self.row_offsets[start]), int(self.row_offsets[stop])
        return SplitArrays(self.name, self.rows[a:b], self.row_offsets[start:stop + 1] - a, self.ids[start:stop],
                           self.labels[start:stop], self.classes, None if self.times is None else self.times[a:b])


def absolute_points(rows: np.ndarray, row_offsets: np.ndarray) -> np.ndarray:
    """(R, 2) float64 absolute points of stroke-3 rows, each sketch summed from its own origin (exactly as
    `np.cumsum` of the sketch alone)."""
    if rows.dtype.kind not in "iu":  # float sums would round differently across sketches: one at a time
        parts = [np.cumsum(rows[a:b, :2], axis=0, dtype=np.float64) for a, b in zip(row_offsets[:-1], row_offsets[1:])]
        return np.concatenate(parts) if parts else np.zeros((0, 2))
    xy = np.cumsum(rows[:, :2], axis=0, dtype=np.int64)  # exact: subtracting what earlier sketches added is too
    lengths = np.diff(row_offsets)
    starts = row_offsets[:-1][lengths > 0]
    if len(starts) > 1:
        before = np.zeros((len(lengths), 2), dtype=np.int64)
        before[lengths > 0] = np.vstack([[0, 0], xy[starts[1:] - 1]])
        xy -= np.repeat(before, lengths, axis=0)
    return xy.astype(np.float64)


def stroke_offsets(rows: np.ndarray, row_offsets: np.ndarray) -> np.ndarray:
    """(S+1,) offsets of every stroke in `rows`: a stroke ends at a row with p = 1 or at its sketch's end."""
    ends = rows[:, 2] > 0.5
    nonempty = row_offsets[1:][np.diff(row_offsets) > 0]
    ends[nonempty - 1] = True
    return np.concatenate([[0], np.flatnonzero(ends) + 1]).astype(np.int64)


def class_names(ds: SketchDataset) -> list[str]:
    """The dataset's class names; a file without them has one class, named after the file (as `train` does)."""
    if ds.classes:
        return ds.classes
    return [os.path.splitext(os.path.basename(ds.path or "drawings"))[0] or "drawings"]


@dataclass
class SplitView:
    """One split of a loaded dataset, its drawings packed into `SplitArrays` a block at a time (`block`,
    `blocks`), so that a writer never holds a second copy of the whole split.

    ids: (N,) unicode (`<split>-<index>` where the file has none); labels: (N,) int64 (0 without labels);
    row_offsets: (N+1,) int64 where each sketch's rows start in the split; times: (R,) float64 or None.
    """

    name: str
    sketches: list
    row_offsets: np.ndarray
    ids: np.ndarray
    labels: np.ndarray
    classes: list[str]
    times: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.sketches)

    @property
    def words(self) -> np.ndarray:
        return np.asarray(self.classes, dtype=str)[self.labels] if self.n else np.zeros(0, "<U1")

    def block(self, start: int, stop: int) -> SplitArrays:
        """Drawings start..stop-1, packed (int rows keep their dtype; any float makes them float64)."""
        sketches = [np.asarray(s) for s in self.sketches[start:stop]]
        if sketches:
            kinds = {s.dtype for s in sketches}
            dtype = np.result_type(*kinds) if all(k.kind in "iu" for k in kinds) else np.float64
            rows = np.concatenate(sketches).astype(dtype, copy=False).reshape(-1, 3)
        else:
            rows = np.zeros((0, 3), np.int16)
        a, b = int(self.row_offsets[start]), int(self.row_offsets[stop])
        return SplitArrays(self.name, rows, self.row_offsets[start:stop + 1] - a, self.ids[start:stop],
                           self.labels[start:stop], self.classes, None if self.times is None else self.times[a:b])

    def blocks(self, size: int = BLOCK):
        """(start, stop, block) for every block of `size` drawings, in order."""
        for start in range(0, self.n, size):
            stop = min(self.n, start + size)
            yield start, stop, self.block(start, stop)


def split_view(ds: SketchDataset, split: str) -> SplitView:
    sketches = ds.splits.get(split, [])
    lengths = np.fromiter((len(s) for s in sketches), dtype=np.int64, count=len(sketches))
    ids = ds.ids.get(split)
    if ids is None:
        ids = np.array([f"{split}-{i}" for i in range(len(sketches))], dtype=str)
    labels = ds.labels.get(split)
    labels = np.zeros(len(sketches), np.int64) if labels is None else np.asarray(labels, dtype=np.int64)
    ids = np.asarray(ids, dtype=str) if len(ids) else np.zeros(0, "<U1")
    return SplitView(split, sketches, _offsets(lengths), ids, labels, class_names(ds), ds.times.get(split))


def all_splits(ds: SketchDataset) -> list[SplitView]:
    return [split_view(ds, s) for s in SPLITS]


@dataclass
class StreamedArray:
    """An array written to an `.npz` block by block (`write_members`), never held whole: its shape and dtype,
    and an iterator of blocks that fill it along the first axis, in order."""

    shape: tuple[int, ...]
    dtype: np.dtype
    blocks: object


def write_members(f, members) -> None:
    """An `.npz` (what `np.savez_compressed` writes, as `npz.write_npz` does) from (key, array or
    `StreamedArray`) pairs made one at a time, so that a writer holds one block of drawings at once."""
    import zipfile

    from .npz import ZLIB_COMPRESSLEVEL

    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=ZLIB_COMPRESSLEVEL) as zf:
        for key, value in members:
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                if not isinstance(value, StreamedArray):
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)
                    continue
                dtype = np.dtype(value.dtype)
                np.lib.format.write_array_header_1_0(member, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                             "fortran_order": False, "shape": tuple(value.shape)})
                written = 0
                for block in value.blocks:
                    block = np.ascontiguousarray(block, dtype=dtype)
                    member.write(block.tobytes())
                    written += len(block)
                if written != value.shape[0]:
                    raise ValueError(f"{key}: {written} rows written for the {value.shape[0]} declared")


def dataset_box(ds: SketchDataset) -> float:
    """The side of the box `convert` scaled the drawings to (its --size), or 0 when unknown or 0."""
    options = ds.meta.get("options") if isinstance(ds.meta.get("options"), dict) else {}
    size = options.get("size")
    return float(size) if isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0 else 0.0


# ---------------------------------------------------------------------------------------------------
# File names


MAX_STEM_BYTES = 120  # bytes of UTF-8 in a name written for an id or a word (far below NAME_MAX with a suffix)
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}


def clean_stem(name: str) -> str:
    """`name` with every character but letters, digits and ` -_.()` replaced by `_`, bounded in length, and
    never a name Windows reserves."""
    cleaned = "".join(c if c.isalnum() or c in " -_.()" else "_" for c in name).strip(" .")
    while len(cleaned.encode("utf-8", "surrogatepass")) > MAX_STEM_BYTES:
        cleaned = cleaned[:-1]
    cleaned = cleaned.rstrip(" .")
    if cleaned.lower().split(".")[0] in _RESERVED:
        cleaned = f"_{cleaned}"
    return cleaned


def file_stems(names: list[str]) -> list[str]:
    """A distinct, safe file name stem for every name, in order: the name itself when it is safe and not taken
    (case-insensitively), else its cleaned form plus 8 hex digits of a hash of the name (and of its position,
    when a name repeats). Depends only on the names, so every export names files alike."""
    out: list[str] = []
    taken: set[str] = set()
    for position, name in enumerate(names):
        stem = clean_stem(name)
        if not stem or stem != name or stem.casefold() in taken:
            digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
            stem = f"{clean_stem(name) or 'unnamed'}-{digest[:8]}"
            if stem.casefold() in taken:
                extra = hashlib.sha256(f"{position}:{name}".encode("utf-8", "surrogatepass")).hexdigest()
                stem = f"{stem}-{extra[:8]}"
        taken.add(stem.casefold())
        out.append(stem)
    return out


def drawing_stems(part: "SplitView | SplitArrays") -> list[str]:
    """A file name stem for every drawing of a split (from its id), distinct within its word's folder."""
    names = [""] * part.n
    for label in np.unique(part.labels):
        members = np.flatnonzero(part.labels == label)
        for i, stem in zip(members, file_stems([str(part.ids[i]) for i in members])):
            names[i] = stem
    return names
