"""Reading and writing sketch-rnn `.npz` files (layout: see `sketchprep.strokes`).

Reading never executes a pickle. Object arrays (the ragged `train`/`valid`/`test` lists) are pickles
inside the `.npy` members; they are read with an unpickler that only allows what numpy needs to
rebuild arrays (`_reconstruct`, `ndarray`, `dtype`, `scalar`, `_codecs.encode`). A file that asks for anything else is
refused with `UnsafeFileError` before any of its code could run. Python-2 pickles (the published
datasets) are read with `encoding='latin1'`, exactly like the reference loader.

Reading is also bounded: only the format's keys are decompressed, each member's size is checked in the
zip directory and its `.npy` header before it is read, and every array a pickle builds must hold exactly
the elements its state declares before numpy allocates it (see `read_npz` and `docs/limits.md`).

Writing is `sketchprep.formats.npz` (`save_dataset`, `write_npz` and `sketch_array` are imported here too).
"""
from __future__ import annotations

import json
import os
import pickle
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

from .errors import DatasetFormatError, OptionError, UnsafeFileError
from .files import NotRegularFileError, open_regular
from .formats.npz import SPLITS, save_dataset, sketch_array, write_npz  # noqa: F401 (the writer, importable here)
from .outputs import atomic_output  # noqa: F401 (importable here)

try:
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _np_scalar

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how Python 3 pickles array bytes at protocol 2 (kanji.rdp200.npz); only encodes a str
}

# The keys of the data contract. Nothing else in a file is ever decompressed (an unknown key costs nothing).
CONTRACT_KEYS = (*SPLITS, *(f"{s}_ids" for s in SPLITS), *(f"{s}_labels" for s in SPLITS),
                 *(f"{s}_times" for s in SPLITS), "meta")

# Bounds on what a member may cost before any of it is read (from the zip directory and the .npy header).
MAX_MEMBER_MB_ENV = "SKETCHPREP_NPZ_MAX_MB"          # largest uncompressed member, MiB
MAX_MEMBER_MB = 4096
MAX_RATIO_ENV = "SKETCHPREP_NPZ_MAX_RATIO"           # largest uncompressed/compressed ratio ...
MAX_RATIO = 100                                      # ... for members over RATIO_FLOOR (sketch data: about 3)
RATIO_FLOOR = 64 * 2**20
MAX_ARRAYS_ENV = "SKETCHPREP_NPZ_MAX_ARRAYS_PER_MB"  # arrays an object array's pickle may build, per MiB ...
MAX_ARRAYS_PER_MB = 65_536                           # ... of its member as stored (real sketches: 3,000-15,000)
ARRAYS_FLOOR = 100_000                               # any member may build this many
_HEADER_LIMIT = 10_000                               # numpy's own default bound on a .npy header


def _env_bound(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise OptionError(f"{name}={text!r}: expected a number") from None
    if not value > 0:
        raise OptionError(f"{name}={text!r}: expected a number > 0")
    return value


_METHODS = {zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}


def _check_member_size(info: zipfile.ZipInfo, path: str) -> None:
    """Refuse a member whose declared uncompressed size is over the bounds (zipfile never inflates a deflated
    member past it), or that is compressed in a way numpy never writes (zipfile inflates bzip2 and lzma
    a whole read at a time, unbounded)."""
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
        raise DatasetFormatError(f"member is compressed with {method}; .npz files are stored or deflated. "
                                 "Write it with np.savez_compressed", path=path, element=info.filename)
    limit_mb = _env_bound(MAX_MEMBER_MB_ENV, MAX_MEMBER_MB)
    if info.file_size > limit_mb * 2**20:
        raise DatasetFormatError(f"member is {info.file_size / 2**20:,.0f} MiB uncompressed, over the "
                                 f"{limit_mb:g} MiB bound. If the file is trusted, raise the bound: "
                                 f"{MAX_MEMBER_MB_ENV}={int(info.file_size / 2**20) + 1}",
                                 path=path, element=info.filename)
    ratio = info.file_size / max(info.compress_size, 1)
    max_ratio = _env_bound(MAX_RATIO_ENV, MAX_RATIO)
    if info.file_size > RATIO_FLOOR and ratio > max_ratio:
        raise DatasetFormatError(f"member inflates {ratio:,.0f}-fold ({info.compress_size:,} to {info.file_size:,} "
                                 f"bytes), over the {max_ratio:g}-fold bound for members over "
                                 f"{RATIO_FLOOR // 2**20} MiB (sketch data compresses about 3-fold). If the file is "
                                 f"trusted, raise the bound: {MAX_RATIO_ENV}={int(ratio) + 1}",
                                 path=path, element=info.filename)


def check_zip_bounds(f, path: str) -> None:
    """Refuse a zip file (`.npz`, a torch checkpoint; `f` opened by `files.open_regular`) any of whose members
    is over the member bounds, from its directory alone; a file that is not a zip passes (its reader
    reports it). `f` is left at its start."""
    try:
        if not zipfile.is_zipfile(f):
            return
        with zipfile.ZipFile(f) as zf:  # a file object passed in stays open
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return
    finally:
        f.seek(0)
    for info in infos:
        _check_member_size(info, path)


def _count(shape) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _check_dtype(dtype, what: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise _BadArray(f"{what} has no numpy dtype")
    if dtype.fields is not None or dtype.subdtype is not None:
        raise _BadArray(f"{what} has a structured or sub-array dtype {dtype}; sketch data uses plain dtypes")
    if dtype.hasobject and dtype != np.dtype(object):
        raise _BadArray(f"{what} has dtype {dtype}")
    return dtype


class _BadArray(ValueError):
    """An array whose description is inconsistent or over a bound (reported as a format error)."""


class _ArrayBuilder:
    """Stands in for an ndarray while a pickle is read: numpy's `__setstate__` allocates what the state
    declares (shape x dtype) before checking it against the data, so the state is checked here first:
    the data must hold exactly the declared elements (a list item or an element's bytes cost at least
    one byte of the pickle, so nothing larger than the member itself can be allocated)."""

    __slots__ = ("array",)

    def __init__(self):
        self.array = None

    def __setstate__(self, state):
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _BadArray("array state is not a 4- or 5-tuple")
        if len(state) == 5:
            state = state[1:]
        shape, dtype, fortran, data = state
        if not isinstance(shape, tuple) or not all(isinstance(d, int) and 0 <= d for d in shape) or len(shape) > 32:
            raise _BadArray(f"array shape {shape!r} is not a tuple of sizes")
        dtype = _check_dtype(dtype, "array")
        count = _count(shape)
        if dtype.hasobject:
            if not isinstance(data, list) or len(data) != count:
                got = f"{len(data)} items" if isinstance(data, list) else type(data).__name__
                raise _BadArray(f"object array declares {count:,} elements but holds {got}")
            data = [_unwrap(x) for x in data]
        else:
            if not isinstance(data, (bytes, str)) or len(data) != count * dtype.itemsize:
                got = f"{len(data):,} bytes" if isinstance(data, (bytes, str)) else type(data).__name__
                raise _BadArray(f"array declares {count:,} x {dtype.itemsize} bytes but holds {got}")
        arr = np.ndarray.__new__(np.ndarray, (0,), np.dtype("b"))
        arr.__setstate__((shape, dtype, bool(fortran), data))
        self.array = arr


def _unwrap(x):
    if isinstance(x, _ArrayBuilder):
        if x.array is None:
            raise _BadArray("an array in the pickle has no data")
        return x.array
    return x


class _NdarrayName:
    """What `numpy.ndarray` means inside a pickle: only an argument of `_reconstruct`. Calling the real
    class from a pickle (REDUCE, NEWOBJ) would allocate whatever shape the pickle names."""

    def __call__(self, *args, **kwargs):
        raise _Refused("refusing to call numpy.ndarray directly: only numpy's own array pickles are read")


_NDARRAY = _NdarrayName()


def _reconstruct(subtype, shape, dtype_code):
    """numpy's `_reconstruct`, which pickles call to make an empty array before filling it in."""
    if subtype is not _NDARRAY:
        raise _Refused(f"refusing to build a {getattr(subtype, '__name__', subtype)!r}: "
                       "only plain numpy arrays may be unpickled")
    if not isinstance(shape, tuple) or _count(shape) != 0:
        raise _BadArray(f"array template of shape {shape!r} (numpy writes (0,))")
    return _ArrayBuilder()


def _encode(obj, encoding="utf-8", errors="strict"):
    if not isinstance(obj, str) or str(encoding).replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise _Refused(f"refusing to call _codecs.encode with {encoding!r}: only latin1 is used by numpy")
    return obj.encode("latin1", errors)


class _Refused(pickle.UnpicklingError):
    """A pickle that asks for something other than numpy arrays (never a damaged one)."""


class _TooManyArrays(pickle.UnpicklingError):
    """A pickle that builds more arrays than its member's budget (`_array_budget`)."""


def _scalar(dtype, *args):
    """numpy's `scalar`: a scalar from its dtype and bytes (checked: a dtype cannot ask for more bytes than given)."""
    dtype = _check_dtype(dtype, "a scalar")
    if not dtype.hasobject and not (len(args) == 1 and isinstance(args[0], (bytes, str))
                                    and len(args[0]) == dtype.itemsize):
        raise _BadArray(f"a {dtype} scalar without its {dtype.itemsize} bytes")
    return _np_scalar(dtype, *args)


def _refuse_buffers(self):
    raise _Refused("refusing protocol-5 buffers: numpy's .npy pickles never use them")


class _NumpyOnlyUnpickler(pickle._Unpickler):
    """The pure-Python unpickler (2-3x slower on the published files): its memo is a dict, where the C
    unpickler grows a list to the largest index a pickle names (13 bytes asking for index 2**27 cost 2 GB)."""

    dispatch = dict(pickle._Unpickler.dispatch)  # noqa: RUF012  (the class-level opcode table pickle looks up)
    for _op in (pickle.BYTEARRAY8, pickle.NEXT_BUFFER, pickle.READONLY_BUFFER):
        dispatch[_op[0]] = _refuse_buffers  # BYTEARRAY8 allocates the length it names before reading
    del _op

    def __init__(self, file, *, max_arrays: int, **kwargs):
        super().__init__(file, **kwargs)
        self.arrays_left = max_arrays

    def _reconstruct(self, subtype, shape, dtype_code):
        self.arrays_left -= 1  # counted here, once per array, whatever nests it (object arrays inside others)
        if self.arrays_left < 0:
            raise _TooManyArrays()
        return _reconstruct(subtype, shape, dtype_code)

    def find_class(self, module, name):
        if (module, name) not in _ALLOWED_GLOBALS:
            raise _Refused(f"refusing to load {module}.{name}: only numpy arrays may be unpickled")
        return {"_reconstruct": self._reconstruct, "encode": _encode, "scalar": _scalar, "ndarray": _NDARRAY,
                "dtype": np.dtype}[name]

    def persistent_load(self, pid):
        raise _Refused("refusing a persistent id: only numpy arrays may be unpickled")


def _read_header(f, name: str, path: str):
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(f, max_header_size=_HEADER_LIMIT)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(f, max_header_size=_HEADER_LIMIT)
    raise DatasetFormatError(f"unsupported .npy version {version}", path=path, element=name)


def _array_budget(info: zipfile.ZipInfo, path: str) -> int:
    """How many arrays an object member's pickle may build. Each costs about 1 KB and 25 us while it is read
    (the safe unpickler is pure Python), whatever its size: a million one-point sketches compress to a few
    MB, so the count is bounded by the member's stored size, with a floor that any real file is far under."""
    per_mb = _env_bound(MAX_ARRAYS_ENV, MAX_ARRAYS_PER_MB)
    return max(ARRAYS_FLOOR, int(per_mb * info.compress_size / 2**20))


def _too_many_arrays(count: int, info: zipfile.ZipInfo, path: str, declared: bool) -> DatasetFormatError:
    per_mb = count * 2**20 / max(info.compress_size, 1)
    how = "declares" if declared else "builds more than"
    return DatasetFormatError(
        f"the pickle {how} {count:,} arrays in {info.compress_size:,} bytes ({per_mb:,.0f} per MiB; at most "
        f"{_env_bound(MAX_ARRAYS_ENV, MAX_ARRAYS_PER_MB):,g} per MiB, or {ARRAYS_FLOOR:,} in any member): a flood "
        f"of tiny sketches costs far more memory and time than its size suggests. If the file is trusted, raise "
        f"the bound: {MAX_ARRAYS_ENV}={int(per_mb) + 1}", path=path, element=info.filename)


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str) -> np.ndarray:
    """One member, with every size checked before it is allocated."""
    name = info.filename
    _check_member_size(info, path)
    with zf.open(info) as f:
        try:
            shape, fortran, dtype = _read_header(f, name, path)
        except DatasetFormatError:
            raise
        except (ValueError, EOFError, zipfile.BadZipFile, OSError, zlib.error):
            raise
        except Exception as e:  # noqa: BLE001  (numpy parses the header text with ast: SyntaxError, TokenError, ...)
            text = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
            raise DatasetFormatError(f"damaged .npy header ({text})", path=path, element=name) from None
        data_bytes = info.file_size - f.tell()
        try:
            dtype = _check_dtype(dtype, "the .npy header")
        except _BadArray as e:
            raise DatasetFormatError(str(e), path=path, element=name) from None
        count = _count(shape)
        if not dtype.hasobject:
            if count * dtype.itemsize != data_bytes:
                raise DatasetFormatError(f"the header declares {shape} x {dtype} ({count * dtype.itemsize:,} bytes) "
                                         f"but the member holds {data_bytes:,} bytes", path=path, element=name)
            arr = np.frombuffer(f.read(data_bytes), dtype=dtype, count=count)
            if fortran:
                return arr.reshape(shape[::-1]).transpose().copy()
            return arr.reshape(shape).copy()
        if count > data_bytes:  # every pickled element costs at least one byte
            raise DatasetFormatError(f"the header declares {count:,} objects but the member holds only "
                                     f"{data_bytes:,} bytes", path=path, element=name)
        budget = _array_budget(info, path)
        if count > budget:
            raise _too_many_arrays(count, info, path, declared=True)
        try:  # the budget's arrays, and the object array holding them
            arr = _unwrap(_NumpyOnlyUnpickler(f, encoding="latin1", max_arrays=budget + 1).load())
        except _TooManyArrays:
            raise _too_many_arrays(budget, info, path, declared=False) from None
        except _Refused as e:
            raise UnsafeFileError(f"{e}; the file was not loaded", path=path, element=name) from None
        except RecursionError:
            raise DatasetFormatError("cannot read object array: nested too deeply", path=path, element=name) from None
        except MemoryError:
            raise DatasetFormatError("cannot read object array: it asks for more memory than there is",
                                     path=path, element=name) from None
        except Exception as e:  # noqa: BLE001  (a damaged pickle stream: any error the unpickler or numpy raises)
            raise DatasetFormatError(f"cannot read object array: {e}", path=path, element=name) from None
    if not isinstance(arr, np.ndarray):
        raise DatasetFormatError(f"member holds a {type(arr).__name__}, not an array", path=path, element=name)
    if arr.shape != tuple(shape):
        raise DatasetFormatError(f"the pickle holds shape {arr.shape} but the header declares {tuple(shape)}",
                                 path=path, element=name)
    return arr


def npz_keys(path: str | os.PathLike) -> list[str]:
    """The keys of an `.npz` (its member names without `.npy`), read from the zip directory only."""
    with _open_zip(str(path)) as zf:
        return [_key(n) for n in zf.namelist()]


def _key(name: str) -> str:
    return name.removesuffix(".npy")


class _ZipOfFile(zipfile.ZipFile):
    """A ZipFile that closes the file it was given (opened by `files.open_regular`) when it closes."""

    def __init__(self, f):
        self._owned = f
        super().__init__(f)

    def close(self):
        try:
            super().close()
        finally:
            self._owned.close()


def _open_zip(path: str) -> zipfile.ZipFile:
    f = None
    try:
        f = open_regular(path, "an .npz file")
        return _ZipOfFile(f)
    except IsADirectoryError:
        raise DatasetFormatError("is a folder, not an .npz file", path=path) from None
    except FileNotFoundError:
        raise DatasetFormatError("no such file", path=path) from None
    except PermissionError:
        raise DatasetFormatError("permission denied. Check the file's permissions", path=path) from None
    except NotRegularFileError as e:
        raise DatasetFormatError(f"{e.strerror}. Give an .npz file", path=path) from None
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        if f is not None:
            f.close()
        raise DatasetFormatError(f"not a readable .npz (zip) file: {e}", path=path) from None


def read_npz(path: str | os.PathLike, keys=None) -> dict[str, np.ndarray]:
    """The arrays of an `.npz`, by key, without executing any pickle (`keys`: read only these; the others
    are never decompressed). Every member's size is checked against the bounds (`SKETCHPREP_NPZ_MAX_MB`,
    `SKETCHPREP_NPZ_MAX_RATIO`) and its `.npy` header before anything is allocated. Raises
    `UnsafeFileError` or `DatasetFormatError`."""
    path = str(path)
    wanted = None if keys is None else set(keys)
    with _open_zip(path) as zf:
        out = {}
        members = {_key(info.filename): info for info in zf.infolist()}  # a repeated name: the last one, as zipfile
        for key, info in members.items():
            if wanted is not None and key not in wanted:
                continue
            try:
                out[key] = _read_member(zf, info, path)
            except (ValueError, EOFError, zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError,
                    zlib.error, OverflowError) as e:
                raise DatasetFormatError(f"cannot read member: {e}", path=path, element=info.filename) from None
        return out


@dataclass
class SketchDataset:
    """A loaded sketch-rnn dataset.

    splits: split name -> list of (n, 3) arrays (int or float, as stored).
    ids: split name -> (N,) unicode array of source ids, when the file has them.
    labels: split name -> (N,) int array of class indices into `classes`, when the file has them.
    meta: the decoded `meta` JSON object ({} when absent).
    times: split name -> (R,) float64 time (ms) of every row of the split's sketches, one sketch after
        another (`convert --keep-time`; NaN for sketches without times), when the file has them.
    """

    splits: dict[str, list[np.ndarray]]
    ids: dict[str, np.ndarray] = field(default_factory=dict)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    path: str | None = None
    times: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", []))

    def sketch_times(self, split: str) -> list[np.ndarray] | None:
        """The split's times cut per sketch ((n_i,) float64 views), or None when the file has none."""
        if split not in self.times:
            return None
        lengths = np.fromiter((len(s) for s in self.splits[split]), dtype=np.int64, count=len(self.splits[split]))
        return np.split(self.times[split], np.cumsum(lengths)[:-1]) if len(lengths) else []


# ---------------------------------------------------------------------------------------------------
# The layout checks. `load_dataset` refuses a file on the first problem; `validate` reports every one
# as an error finding, with the same words.


@dataclass
class LayoutProblem:
    """One way a file breaks the layout. `what` and `fix` are the words every command uses for it."""

    code: str
    key: str | None
    what: str
    fix: str
    indices: list[int] = field(default_factory=list)

    def error(self, path: str) -> DatasetFormatError:
        element = None if self.key is None or self.what.startswith(self.key) else self.key
        return DatasetFormatError(f"{self.what}. {self.fix[0].upper()}{self.fix[1:]}", path=path, element=element)


FIX_SKETCHES = "store each split as a 1-D object array of (n, 3) int16 arrays [dx, dy, p]"
FIX_META = "store meta as np.array(json.dumps({...})) (a 0-d unicode array holding a JSON object)"


def numeric_sketch(s) -> bool:
    """An (n, 3) array of integers or floats (bool, complex, strings and objects are not sketch data)."""
    return isinstance(s, np.ndarray) and s.ndim == 2 and s.shape[1] == 3 and s.dtype.kind in "iuf"


def sketch_items(arr: np.ndarray, key: str) -> tuple[list | None, LayoutProblem | None]:
    """A split's sketches as a list, or the problem that makes it no array of sketches at all."""
    if arr.dtype == object:
        if arr.ndim != 1:
            return None, LayoutProblem("not_1d", key, f"the array has shape {arr.shape}, not (N,)",
                                       "store each split as a 1-D object array: out = np.empty(N, dtype=object); "
                                       "out[i] = sketch_i")
        return list(arr), None
    if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype.kind in "iuf":
        return list(arr), None
    return None, LayoutProblem("not_sketch_array", key, "expected a 1-D object array of (n, 3) sketches, got "
                               f"{arr.dtype} of shape {arr.shape}", FIX_SKETCHES)


def bad_sketches(items: list, key: str) -> LayoutProblem | None:
    """The sketches that are not (n, 3) numeric arrays, as one problem (None when all are)."""
    bad = [i for i, s in enumerate(items) if not numeric_sketch(s)]
    if not bad:
        return None
    first = items[bad[0]]
    example = (f"#{bad[0]} is {first.dtype} {first.shape}" if isinstance(first, np.ndarray)
               else f"#{bad[0]} is a {type(first).__name__}")
    count = f"{len(bad)} sketches are not (n, 3) numeric arrays" if len(bad) > 1 else \
        "1 sketch is not an (n, 3) numeric array"
    return LayoutProblem("bad_sketch", key, f"{count}; {example}",
                         "every sketch must be an (n, 3) array of [dx, dy, p] rows", bad)


def non_finite_sketches(items: list, key: str) -> LayoutProblem | None:
    """The float sketches holding NaN or inf, as one problem (None when there are none): no command can
    draw, measure or train on them. `validate` reports them with the same words."""
    floats = [i for i, s in enumerate(items) if s.dtype.kind == "f"]
    if not floats or np.isfinite(np.concatenate([items[i].ravel() for i in floats])).all():
        return None
    bad = [i for i in floats if not np.isfinite(items[i]).all()]
    shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
    count = f"{len(bad)} sketches hold" if len(bad) > 1 else "1 sketch holds"
    return LayoutProblem("non_finite", key, f"{count} NaN or infinite values ({shown})",
                         "drop these sketches or convert them again from the source drawings", bad)


def read_meta(arr: np.ndarray) -> tuple[dict, LayoutProblem | None]:
    """The `meta` JSON object and its class list, or the problem with them."""
    try:
        if arr.dtype.kind != "U" or arr.ndim != 0:
            raise ValueError(f"a {arr.dtype} array of shape {arr.shape}, not a 0-d unicode array")
        meta = json.loads(str(arr[()]))
        if not isinstance(meta, dict):
            raise ValueError(f"the JSON is a {type(meta).__name__}, not an object")
        classes = meta.get("classes")
        if classes is not None and not (isinstance(classes, list) and all(isinstance(c, str) for c in classes)):
            raise ValueError("meta.classes is not a list of strings")
        if "options" in meta:
            check_meta_options(meta["options"])
    except (ValueError, TypeError, RecursionError, OptionError) as e:
        return {}, LayoutProblem("bad_meta", "meta", f"meta: {e}", FIX_META)
    return meta, None


def check_meta_options(options) -> None:
    """meta.options, the convert options a dataset was made with: an object whose fields that are read back
    (to normalise a drawing as the dataset's were: `complete --prefix`, `export --html`) are within the
    bounds the options have on the command line. Other fields are left alone (a newer sketchprep may add
    some); `limits` is never read back: a file cannot raise the tool's own bounds."""
    from .limits import EPSILON, RESAMPLE_SPACING, ROWS, SIZE
    from .simplify import DISTANCES

    if not isinstance(options, dict):
        raise ValueError(f"meta.options is a {type(options).__name__}, not an object")
    for key, bound in (("epsilon", EPSILON), ("size", SIZE), ("max_len", ROWS), ("resample_spacing", RESAMPLE_SPACING)):
        if key in options:
            value = options[key]
            bound.parse(value if isinstance(value, (int, float)) else repr(value), f"meta.options.{key}")
    if "distance" in options and options["distance"] not in DISTANCES:
        raise ValueError(f"meta.options.distance must be one of {', '.join(DISTANCES)}, "
                         f"not {options['distance']!r:.40}")
    if "include_fills" in options and not isinstance(options["include_fills"], bool):
        raise ValueError("meta.options.include_fills must be true or false")


def extra_key_problem(arr: np.ndarray, split: str, suffix: str, count: int | None,
                      classes: list | None) -> LayoutProblem | None:
    """What is wrong with `<split>_ids` / `<split>_labels` (None when nothing)."""
    key = f"{split}_{suffix}"
    problem = None
    if arr.dtype == object:
        problem = "is an object array (loading it needs a pickle)"
    elif arr.ndim != 1:
        problem = f"has shape {arr.shape}, not (N,)"
    elif count is not None and len(arr) != count:
        problem = f"has {len(arr)} entries for {count} sketches"
    elif suffix == "ids" and arr.dtype.kind not in "US":
        problem = f"is {arr.dtype}, not strings"
    elif suffix == "labels" and arr.dtype.kind not in "iu":
        problem = f"is {arr.dtype}, not integers"
    elif suffix == "labels" and classes is not None and len(arr) and (int(arr.min()) < 0 or int(arr.max()) >= len(classes)):
        problem = f"holds class indices outside 0..{len(classes) - 1} (meta lists {len(classes)} classes)"
    if problem is None:
        return None
    return LayoutProblem(f"bad_{suffix}", key, f"{key} {problem}",
                         f"write one {'unicode id' if suffix == 'ids' else 'int class index'} per sketch of {split}, "
                         f"in the same order (or drop {key})")


def times_problem(arr: np.ndarray, split: str, rows: int | None) -> LayoutProblem | None:
    """What is wrong with `<split>_times` (None when nothing): one float per row of the split's sketches,
    each finite or NaN."""
    key = f"{split}_times"
    problem = None
    if arr.dtype.kind != "f":
        problem = f"is {arr.dtype}, not floats"
    elif arr.ndim != 1:
        problem = f"has shape {arr.shape}, not (R,)"
    elif rows is not None and len(arr) != rows:
        problem = f"has {len(arr)} entries for the {rows} rows of the {split} sketches"
    elif np.isinf(arr).any():
        problem = "holds infinite values"
    if problem is None:
        return None
    return LayoutProblem("bad_times", key, f"{key} {problem}",
                         f"write one time (ms, NaN for none) per row of the {split} sketches, one sketch after "
                         f"another (or drop {key})")


def load_dataset(path: str | os.PathLike, require_splits: bool = True) -> SketchDataset:
    """Load a sketch-rnn `.npz` (ours, Google's or hardmaru's) safely: the one loader every command uses.

    Only the contract's keys are read (see `read_npz` for the bounds). Sketches come back as stored (int
    or float (n, 3) arrays). Raises `DatasetFormatError` with the words `validate` uses when a split is
    missing (if `require_splits`), a split is not a 1-D array of (n, 3) numeric arrays, `meta` is not a
    JSON object (or its `classes` not a list of strings), or `<split>_ids` / `<split>_labels` /
    `<split>_times` do not match their split; `UnsafeFileError` for a pickle that asks for anything but numpy arrays.
    """
    path = str(path)
    arrays = read_npz(path, keys=CONTRACT_KEYS)
    splits: dict[str, list[np.ndarray]] = {}
    for name in SPLITS:
        if name not in arrays:
            if require_splits:
                raise DatasetFormatError(f"missing key {name!r} (keys: {sorted(npz_keys(path))}). Save train, valid "
                                         "and test (sketchprep convert always writes all three)", path=path)
            continue
        items, problem = sketch_items(arrays[name], name)
        problem = problem or bad_sketches(items, name) or non_finite_sketches(items, name)
        if problem:
            raise problem.error(path)
        splits[name] = items
    meta, classes = {}, None
    if "meta" in arrays:
        meta, problem = read_meta(arrays["meta"])
        if problem:
            raise problem.error(path)
        classes = meta.get("classes")
    ids, labels = {}, {}
    for s in SPLITS:
        for suffix, into in (("ids", ids), ("labels", labels)):
            key = f"{s}_{suffix}"
            if key in arrays:
                problem = extra_key_problem(arrays[key], s, suffix, len(splits[s]) if s in splits else None, classes)
                if problem:
                    raise problem.error(path)
                into[s] = arrays[key]
    times = {}
    for s in SPLITS:
        key = f"{s}_times"
        if key in arrays:
            rows = sum(len(sk) for sk in splits[s]) if s in splits else None
            problem = times_problem(arrays[key], s, rows)
            if problem:
                raise problem.error(path)
            times[s] = arrays[key].astype(np.float64, copy=False)
    return SketchDataset(splits, ids, labels, meta, path, times)
