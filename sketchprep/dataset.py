"""Reading and writing sketch-rnn `.npz` files (layout: see `sketchprep.strokes`).

Reading never executes a pickle. Object arrays (the ragged `train`/`valid`/`test` lists) are pickles
inside the `.npy` members; they are read with an unpickler that only allows what numpy needs to
rebuild arrays (`_reconstruct`, `ndarray`, `dtype`, `scalar`, `_codecs.encode`). A file that asks for anything else is
refused with `UnsafeFileError` before any of its code could run. Python-2 pickles (the published
datasets) are read with `encoding='latin1'`, exactly like the reference loader.

Writing goes to a temporary file in the output's folder, then `os.replace`: a killed run leaves the
previous file intact and never a partial one.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetFormatError, UnsafeFileError

SPLITS = ("train", "valid", "test")

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 pickles array bytes at protocol 2 (kanji.rdp200.npz); only encodes a str
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays may be unpickled")


def _read_member(zf: zipfile.ZipFile, name: str, path: str) -> np.ndarray:
    with zf.open(name) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise DatasetFormatError(f"unsupported .npy version {version}", path=path, element=name)
        if not dtype.hasobject:
            data = f.read()
            count = int(np.prod(shape)) if shape else 1
            arr = np.frombuffer(data, dtype=dtype, count=count)
            if fortran:
                return arr.reshape(shape[::-1]).transpose().copy()
            return arr.reshape(shape).copy()
        try:
            arr = _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except pickle.UnpicklingError as e:
            raise UnsafeFileError(f"{e}; the file was not loaded", path=path, element=name) from None
        except Exception as e:  # a damaged pickle stream
            raise DatasetFormatError(f"cannot read object array: {e}", path=path, element=name) from None
    if not isinstance(arr, np.ndarray):
        raise DatasetFormatError(f"member holds a {type(arr).__name__}, not an array", path=path, element=name)
    return arr


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an `.npz`, by key, without executing any pickle. Raises `UnsafeFileError` or
    `DatasetFormatError`."""
    path = str(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise DatasetFormatError(f"not a readable .npz (zip) file: {e}", path=path) from None
    with zf:
        out = {}
        for name in zf.namelist():
            key = name[:-4] if name.endswith(".npy") else name
            try:
                out[key] = _read_member(zf, name, path)
            except (ValueError, EOFError, zipfile.BadZipFile) as e:
                raise DatasetFormatError(f"cannot read member: {e}", path=path, element=name) from None
        return out


@dataclass
class SketchDataset:
    """A loaded sketch-rnn dataset.

    splits: split name -> list of (n, 3) arrays (int16 or float, as stored).
    ids: split name -> (N,) unicode array of source ids, when the file has them.
    labels: split name -> (N,) int array of class indices into `classes`, when the file has them.
    meta: the decoded `meta` JSON ({} when absent).
    """

    splits: dict[str, list[np.ndarray]]
    ids: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", []))


def load_dataset(path: str | os.PathLike, require_splits: bool = True) -> SketchDataset:
    """Load a sketch-rnn `.npz` (ours, Google's or hardmaru's) safely.

    Sketches come back as stored (int16 or float arrays). Raises `DatasetFormatError` when a split is
    missing (if `require_splits`) or is not a 1-D array of 2-D arrays with 3 columns.
    """
    arrays = read_npz(path)
    path = str(path)
    splits: dict[str, list[np.ndarray]] = {}
    for name in SPLITS:
        if name not in arrays:
            if require_splits:
                raise DatasetFormatError(f"missing key {name!r} (keys: {sorted(arrays)})", path=path)
            continue
        splits[name] = _as_sketch_list(arrays[name], path, name)
    ids = {s: arrays[f"{s}_ids"] for s in SPLITS if f"{s}_ids" in arrays}
    labels = {s: arrays[f"{s}_labels"] for s in SPLITS if f"{s}_labels" in arrays}
    meta = {}
    if "meta" in arrays:
        try:
            meta = json.loads(str(arrays["meta"][()]))
        except (ValueError, TypeError) as e:
            raise DatasetFormatError(f"meta is not JSON: {e}", path=path, element="meta") from None
    return SketchDataset(splits, ids, labels, meta, path)


def _as_sketch_list(arr: np.ndarray, path: str, name: str) -> list[np.ndarray]:
    if arr.dtype == object:
        if arr.ndim != 1:
            raise DatasetFormatError(f"expected a 1-D array of sketches, got shape {arr.shape}", path=path, element=name)
        items = list(arr)
    elif arr.ndim == 3:  # every sketch the same length: numpy stored a 3-D array
        items = list(arr)
    else:
        raise DatasetFormatError(f"expected an object array of (n, 3) sketches, got {arr.dtype} {arr.shape}",
                                 path=path, element=name)
    for i, s in enumerate(items):
        if not isinstance(s, np.ndarray) or s.ndim != 2 or s.shape[1] != 3:
            what = f"shape {s.shape}" if isinstance(s, np.ndarray) else type(s).__name__
            raise DatasetFormatError(f"sketch {i} is not an (n, 3) array ({what})", path=path, element=name)
    return items


def sketch_array(sketches: list[np.ndarray]) -> np.ndarray:
    """A 1-D object array holding the given sketches (never a ragged-list conversion)."""
    out = np.empty(len(sketches), dtype=object)
    for i, s in enumerate(sketches):
        out[i] = s
    return out


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, mode: str = "wb"):
    """Open a temporary file beside `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the output gets the usual mode
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_dataset(path: str | os.PathLike, splits: dict[str, list[np.ndarray]], ids: dict[str, list[str]] | None = None,
                 labels: dict[str, np.ndarray] | None = None, meta: dict | None = None) -> None:
    """Write a sketch-rnn `.npz` atomically (the layout of `np.savez_compressed`; loadable by the reference
    loader)."""
    arrays: dict[str, np.ndarray] = {}
    for name in SPLITS:
        arrays[name] = sketch_array(splits.get(name, []))
    for name, values in (ids or {}).items():
        arrays[f"{name}_ids"] = np.asarray(values, dtype=str) if len(values) else np.zeros(0, dtype="<U1")
    for name, values in (labels or {}).items():
        arrays[f"{name}_labels"] = np.asarray(values, dtype=np.int32)
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    with atomic_output(path) as f:
        write_npz(f, arrays)


# zlib level 1 writes sketch-rnn files about 4x faster than numpy's default level 6 (measured: 6 vs 26 us
# per sketch), for files about 5% larger; every zip reader, np.load included, reads either.
NPZ_COMPRESSLEVEL = 1


def write_npz(f, arrays: dict[str, np.ndarray]) -> None:
    """What `np.savez_compressed(f, **arrays)` writes (one deflated `<key>.npy` per array), faster and in
    less memory."""
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=NPZ_COMPRESSLEVEL) as zf:
        for key, arr in arrays.items():
            arr = np.asanyarray(arr)
            with zf.open(f"{key}.npy", "w", force_zip64=True) as member:
                if arr.dtype.hasobject:
                    # numpy's own writer pickles with the memo on, which keeps a copy of every sketch's bytes
                    # alive until the end (measured: +150 MB for 300k sketches); the sketches share nothing
                    np.lib.format.write_array_header_1_0(member, np.lib.format.header_data_from_array_1_0(arr))
                    pickler = pickle.Pickler(member, protocol=3)
                    pickler.fast = True
                    pickler.dump(arr)
                else:
                    np.lib.format.write_array(member, arr)

