"""Writing the sketch-rnn `.npz` (layout: see `sketchprep.strokes`; reading: `sketchprep.dataset`).

What `np.savez_compressed` writes, loadable by the reference loader: keys `train`, `valid`, `test`, each a
1-D object array of `(n, 3)` stroke-3 arrays, plus the optional `<split>_ids`, `<split>_labels`,
`<split>_times` and `meta`. Writing goes through `sketchprep.outputs.atomic_output` (a temporary file in the output's folder,
then a rename): a killed run leaves the previous file intact and never a partial one.

Writing is a stream of pieces. Every member (`<key>.npy`) is cut into pieces at fixed places (the `.npy`
header; every `SKETCHES_PER_PIECE` sketches of an object array; every `BYTES_PER_PIECE` bytes of other
arrays), each piece is deflated on its own and ended by a sync flush (as pigz does), and the pieces are
joined with one CRC (`crc32_combine`). So the pieces of one member can be made in worker processes, in
any number, and the file is the same byte for byte; no member is ever whole in memory. The `.npy` bytes
inside are exactly numpy's: the header of `np.lib.format.write_array`, and for object arrays the protocol-3
pickle that numpy's writer makes (without the memo, which would keep every sketch alive), produced sketch by
sketch (`pickled_sketches`, `pickled_packed`), so `np.load(..., allow_pickle=True, encoding='latin1')`
(the reference loader) and sketchprep's own pickle-free reader both read it.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import struct
import zlib
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ..outputs import atomic_output

SPLITS = ("train", "valid", "test")

# Deflate: zlib's level 1 writes sketch-rnn files about 4x faster than numpy's default level 6 (measured: 6
# vs 26 us per sketch), for files about 5% larger. Where ISA-L has a wheel, its level 0: 4.5x zlib's level 1
# on sketch pickles (354 vs 78 MB/s of CPU time), files 6% larger. Not ISA-L's level 1: its output for the
# same bytes varies now and then from call to call (measured: 2 of 324 pieces of one dataset came out two ways
# over 400 rounds; levels 1-3 work in a separately allocated buffer, level 0 keeps its whole state in the
# stream, and no piece ever varied at level 0), and a dataset must be the same bytes every time.
# Every zip reader, np.load included, reads any deflate stream; the arrays never depend on the compressor.
ZLIB_COMPRESSLEVEL = 1          # what zipfile (zlib) writes at, where a writer goes through zipfile
try:
    from isal import isal_zlib as _deflater
    NPZ_COMPRESSLEVEL = 0
except ImportError:  # no wheel for this machine
    _deflater = zlib
    NPZ_COMPRESSLEVEL = ZLIB_COMPRESSLEVEL
SKETCHES_PER_PIECE = 10_000    # sketches per deflated piece (a multiple of pickle's batch of appends)
BYTES_PER_PIECE = 4 * 2**20    # bytes per deflated piece of other arrays
_APPENDS_BATCH = 1000          # pickle writes a list as MARK ... APPENDS batches of this many items

Piece = tuple  # (deflated bytes ended by a sync flush, crc32 of the raw bytes, length of the raw bytes)


def deflate(raw: bytes | memoryview) -> Piece:
    """One piece: `raw` deflated on its own, ended by a sync flush so that pieces can be joined."""
    c = _deflater.compressobj(NPZ_COMPRESSLEVEL, _deflater.DEFLATED, -15)
    return c.compress(raw) + c.flush(_deflater.Z_SYNC_FLUSH), zlib.crc32(raw), len(raw)


_FINAL_BLOCK = zlib.compressobj(ZLIB_COMPRESSLEVEL, zlib.DEFLATED, -15).flush()  # an empty last block ends a member

# crc32_combine (zlib's, which Python's zlib does not expose): the CRC of A + B from the CRCs of A and B.
_POLY = 0xEDB88320


def _multmodp(a: int, b: int) -> int:
    """a * b modulo the CRC-32 polynomial (bit-reflected)."""
    m, p = 1 << 31, 0
    while True:
        if a & m:
            p ^= b
            if not a & (m - 1):
                return p
        m >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1


_X2N = [1 << 30]  # x^(2^k) modulo the polynomial, k = 0..31
for _ in range(31):
    _X2N.append(_multmodp(_X2N[-1], _X2N[-1]))


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """zlib.crc32(a + b) from crc1 = zlib.crc32(a), crc2 = zlib.crc32(b) and len2 = len(b)."""
    p, k = 1 << 31, 3  # x^(8 * len2): multiply x^0 by x^(2^k) for every bit of len2, from k = 3 (bytes -> bits)
    while len2:
        if len2 & 1:
            p = _multmodp(_X2N[k & 31], p)
        len2 >>= 1
        k += 1
    return _multmodp(p, crc1) ^ crc2


# ---------------------------------------------------------------------------------------------------
# The zip container


_LOCAL = struct.Struct("<4s2B4HL2L2H")          # as zipfile writes them
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_ZIP64_LOCAL = struct.Struct("<2H2Q")
_ZIP64_CENTRAL = struct.Struct("<2H3Q")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_END = struct.Struct("<4s4H2LH")
_VERSION = 45             # zip64
_DOS_DATE = (1 << 5) | 1  # 1980-01-01, 00:00 (what zipfile stamps on a member opened for writing)
_ATTRIBUTES = 0o600 << 16
_DEFLATED = 8
_FULL = 0xFFFFFFFF


class ZipStream:
    """A zip file of deflated members written one after the other from pieces (see `deflate`); `f` must
    be seekable (each member's local header is completed once its size is known, as zipfile does)."""

    def __init__(self, f):
        self._f = f
        self._entries: list[tuple[bytes, int, int, int, int]] = []
        self._member: list | None = None

    def _local_header(self, name: bytes, crc: int, csize: int, size: int) -> bytes:
        return (_LOCAL.pack(b"PK\x03\x04", _VERSION, 0, 0, _DEFLATED, 0, _DOS_DATE, crc, _FULL, _FULL,
                            len(name), _ZIP64_LOCAL.size) + name + _ZIP64_LOCAL.pack(1, 16, size, csize))

    def begin(self, name: str) -> None:
        encoded = name.encode("ascii")
        self._member = [encoded, self._f.tell(), 0, 0, 0]  # name, offset, crc, compressed size, size
        self._f.write(self._local_header(encoded, 0, 0, 0))

    def write(self, piece: Piece) -> None:
        data, crc, size = piece
        m = self._member
        self._f.write(data)
        m[2] = crc32_combine(m[2], crc, size)
        m[3] += len(data)
        m[4] += size

    def end(self) -> None:
        name, offset, crc, csize, size = self._member
        self._f.write(_FINAL_BLOCK)
        csize += len(_FINAL_BLOCK)
        here = self._f.tell()
        self._f.seek(offset)
        self._f.write(self._local_header(name, crc, csize, size))
        self._f.seek(here)
        self._entries.append((name, offset, crc, csize, size))
        self._member = None

    def add(self, name: str, pieces: Iterable[Piece]) -> None:
        self.begin(name)
        for piece in pieces:
            self.write(piece)
        self.end()

    def close(self) -> None:
        start = self._f.tell()
        for name, offset, crc, csize, size in self._entries:
            self._f.write(_CENTRAL.pack(b"PK\x01\x02", _VERSION, 3, _VERSION, 0, 0, _DEFLATED, 0, _DOS_DATE,
                                        crc, _FULL, _FULL, len(name), _ZIP64_CENTRAL.size, 0, 0, 0, _ATTRIBUTES,
                                        _FULL) + name + _ZIP64_CENTRAL.pack(1, 24, size, csize, offset))
        end = self._f.tell()
        count, cd_size = len(self._entries), end - start
        if count >= 0xFFFF or cd_size >= _FULL or start >= _FULL:
            self._f.write(_ZIP64_END.pack(b"PK\x06\x06", _ZIP64_END.size - 12, _VERSION, _VERSION, 0, 0, count, count,
                                          cd_size, start))
            self._f.write(_ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, end, 1))
        self._f.write(_END.pack(b"PK\x05\x06", 0, 0, min(count, 0xFFFF), min(count, 0xFFFF), min(cd_size, _FULL),
                                min(start, _FULL), 0))



# ---------------------------------------------------------------------------------------------------
# The .npy bytes, piece by piece


def npy_header(dtype: np.dtype, shape: tuple) -> bytes:
    """The header `np.lib.format.write_array` writes for a C-ordered array of this dtype and shape."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)),
                                               "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue()


def _fast_pickle(obj) -> bytes:
    """Protocol 3 without the memo, as numpy's writer would pickle it but keeping nothing alive."""
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=3)
    pickler.fast = True
    pickler.dump(obj)
    return buf.getvalue()


def _pickle_int(n: int) -> bytes:
    """How pickle writes a non-negative int below 2**31."""
    if n < 256:
        return b"K" + bytes((n,))
    if n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def _pickle_bytes(n: int) -> bytes:
    """The opcode before `n` bytes of data (protocol 3)."""
    return b"C" + bytes((n,)) if n < 256 else b"B" + struct.pack("<I", n)


class _ElementTemplate:
    """The pickle of an (n, columns) C-ordered array of one dtype (columns None: an (n,) array, e.g. one
    value per point), less its two varying parts (the row count and the data): found by pickling probes,
    then checked against pickle for several sizes."""

    def __init__(self, dtype: np.dtype, columns: int | None):
        shape_of = (lambda n: (n,)) if columns is None else (lambda n: (n, columns))
        probe = np.zeros(shape_of(300), dtype)
        body = _fast_pickle(probe)[2:-1]  # without PROTO and STOP
        tail = b"\x85" if columns is None else _pickle_int(columns) + b"\x86"  # TUPLE1 or TUPLE2
        shape = _pickle_int(300) + tail
        data = _pickle_bytes(probe.nbytes) + probe.tobytes()
        i, j = body.find(shape), body.find(data)
        if body.count(shape) != 1 or body.count(data) != 1 or j < i:
            raise ValueError("unexpected pickle layout")
        self.prefix, self.shape_tail = body[:i], tail
        self.middle, self.suffix = body[i + len(shape):j], body[j + len(data):]
        self.row_bytes = probe.itemsize * (columns or 1)
        self._heads: dict[int, bytes] = {}
        rng = np.random.default_rng(0)
        for n in (1, 2, 42, 43, 255, 256, 11_000, 65_536):
            a = rng.integers(-100, 100, shape_of(n)).astype(dtype)
            if self.pickle(a) != _fast_pickle(a)[2:-1]:
                raise ValueError("unexpected pickle layout")

    def head(self, n: int) -> bytes:
        """Everything before the data of an n-row array."""
        h = self._heads.get(n)
        if h is None:
            h = self._heads[n] = b"".join((self.prefix, _pickle_int(n), self.shape_tail, self.middle,
                                           _pickle_bytes(n * self.row_bytes)))
        return h

    def pickle(self, a: np.ndarray) -> bytes:
        return self.head(len(a)) + a.tobytes() + self.suffix


_TEMPLATES: dict = {}


def _template(dtype: np.dtype, columns: int | None) -> _ElementTemplate | None:
    key = (np.dtype(dtype).str, columns)
    if key not in _TEMPLATES:
        try:
            _TEMPLATES[key] = _ElementTemplate(np.dtype(dtype), columns)
        except ValueError:  # a numpy that pickles differently: every element goes through pickle itself
            _TEMPLATES[key] = None
    return _TEMPLATES[key]


def _pickled_element(a) -> bytes:
    if isinstance(a, np.ndarray) and type(a) is np.ndarray and a.ndim in (1, 2) and a.flags.c_contiguous \
            and a.dtype.kind in "iuf" and a.dtype.isnative and (a.ndim == 1 or 0 < a.shape[1] < 256):
        t = _template(a.dtype, a.shape[1] if a.ndim == 2 else None)
        if t is not None:
            return t.pickle(a)
    return _fast_pickle(a)[2:-1]


_OBJECT_ARRAY: list = []


def _object_array_parts(n: int) -> tuple[bytes, bytes]:
    """What comes before the first element and after the last in the pickle of an n-element 1-D object
    array (numpy's reduce: an ndarray rebuilt from its shape, dtype and the list of its elements)."""
    if not _OBJECT_ARRAY:
        probe = np.empty(300, dtype=object)  # 300 Nones
        body = _fast_pickle(probe)
        shape = _pickle_int(300) + b"\x85"
        items = b"](" + b"N" * 300 + b"e"
        i, j = body.find(shape), body.find(items)
        if body.count(shape) != 1 or body.count(items) != 1:
            raise ValueError("unexpected pickle layout of an object array")
        _OBJECT_ARRAY[:] = [body[:i], body[i + len(shape):j], body[j + len(items):]]
    before, middle, after = _OBJECT_ARRAY
    return before + _pickle_int(n) + b"\x85" + middle + b"]", after


def _marks(first: int, count: int, total: int) -> Iterator[tuple[int, bytes, bytes]]:
    """(index, bytes before, bytes after) of the elements of first..first+count-1 that pickle marks, as it
    batches a `total`-element list: one element is `item APPEND`, more are `MARK items APPENDS` per 1000."""
    if total == 1:
        if count:
            yield first, b"", b"a"
        return
    end = first + count
    for g in range(first - first % _APPENDS_BATCH, end, _APPENDS_BATCH):  # batch starts
        last = min(g + _APPENDS_BATCH, total) - 1
        if g >= first:
            yield (g, b"(", b"e") if last == g else (g, b"(", b"")
        if first <= last < end and last != g:
            yield last, b"", b"e"


def pickled_sketches(sketches: Sequence[np.ndarray], first: int, total: int) -> bytes:
    """The bytes that elements first..first+len(sketches)-1 of a `total`-element object array take in its
    pickle (see `object_array_head` for the rest)."""
    parts = [_pickled_element(s) for s in sketches]
    for g, before, after in _marks(first, len(parts), total):
        parts[g - first] = before + parts[g - first] + after
    return b"".join(parts)


def pickled_packed(rows: np.ndarray, starts: np.ndarray, lengths: np.ndarray, first: int, total: int) -> bytes:
    """`pickled_sketches` of the sketches rows[starts[i]:starts[i] + lengths[i]], straight from `rows` (no
    array is made for each sketch, each row is copied once). `rows` is (R, columns) or, for one value per
    point (another per-point array riding along with the stroke-3 rows), (R,)."""
    t = None
    if rows.ndim in (1, 2) and rows.dtype.kind in "iuf" and rows.dtype.isnative and \
            (rows.ndim == 1 or 0 < rows.shape[1] < 256):
        t = _template(rows.dtype, rows.shape[1] if rows.ndim == 2 else None)
    if t is None or not rows.flags.c_contiguous:
        return pickled_sketches([rows[s:s + n] for s, n in zip(starts.tolist(), lengths.tolist())], first, total)
    k = len(lengths)
    if not k:
        return b""
    data = memoryview(rows).cast("B")
    ns, at = lengths.tolist(), (np.asarray(starts, np.int64) * t.row_bytes).tolist()
    parts: list = [t.suffix] * (3 * k)  # head, data, suffix of each sketch
    parts[0::3] = [t.head(n) for n in ns]
    parts[1::3] = [data[a:a + n * t.row_bytes] for a, n in zip(at, ns)]
    for g, before, after in _marks(first, k, total):
        if before:
            parts[3 * (g - first)] = before + parts[3 * (g - first)]
        if after:
            parts[3 * (g - first) + 2] = t.suffix + after
    return b"".join(parts)


def object_array_head(n: int) -> bytes:
    """The `.npy` header and the start of the pickle of an n-element object array (up to its elements)."""
    return npy_header(np.dtype(object), (n,)) + _object_array_parts(n)[0]


def object_array_tail(n: int) -> bytes:
    return _object_array_parts(n)[1]


def sketch_member_pieces(sketches: Sequence[np.ndarray]) -> Iterator[Piece]:
    """The pieces of an object-array member holding `sketches`, deflated here."""
    n = len(sketches)
    yield deflate(object_array_head(n))
    for a in range(0, n, SKETCHES_PER_PIECE):
        yield deflate(pickled_sketches(sketches[a:a + SKETCHES_PER_PIECE], a, n))
    yield deflate(object_array_tail(n))


def array_raw_pieces(dtype: np.dtype, shape: tuple, items: Callable[[int, int], np.ndarray]) -> Iterator[bytes]:
    """The raw pieces of the member of a numeric or unicode array of this dtype and shape, whose items (in
    C order) a to b are `items(a, b)`: the `.npy` header, then every `BYTES_PER_PIECE` bytes' worth of items."""
    dtype = np.dtype(dtype)
    yield npy_header(dtype, shape)
    total = 1
    for d in shape:
        total *= int(d)
    step = max(1, BYTES_PER_PIECE // max(dtype.itemsize, 1))
    for a in range(0, total, step):
        yield np.ascontiguousarray(items(a, min(a + step, total)), dtype=dtype).tobytes()


def array_member_pieces(arr: np.ndarray) -> Iterator[Piece]:
    """The pieces of the member holding an array (numeric, unicode, or 1-D of objects), deflated here."""
    arr = np.asanyarray(arr)
    if arr.dtype.hasobject:
        if arr.ndim != 1:
            raise ValueError("object arrays are written 1-D")
        yield from sketch_member_pieces(arr)
        return
    flat = arr.reshape(-1, order="C")
    for raw in array_raw_pieces(arr.dtype, arr.shape, lambda a, b: flat[a:b]):
        yield deflate(raw)


# ---------------------------------------------------------------------------------------------------
# Whole files


def sketch_array(sketches: list[np.ndarray]) -> np.ndarray:
    """A 1-D object array holding the given sketches (never a ragged-list conversion)."""
    out = np.empty(len(sketches), dtype=object)
    for i, s in enumerate(sketches):
        out[i] = s
    return out


def dataset_arrays(splits: dict[str, Sequence[np.ndarray]], ids: dict | None = None, labels: dict | None = None,
                   meta: dict | None = None, times: dict | None = None) -> dict:
    """The members of a sketch-rnn `.npz`, in the order they are written: the three splits' sketches (as
    given, a list or a 1-D object array), then ids, labels, times and meta. times: per split, the (R,)
    float64 time of every row of its sketches, one after another (`<split>_times`)."""
    arrays: dict = {name: splits.get(name, []) for name in SPLITS}
    for name, values in (ids or {}).items():
        arrays[f"{name}_ids"] = np.asarray(values, dtype=str) if len(values) else np.zeros(0, dtype="<U1")
    for name, values in (labels or {}).items():
        arrays[f"{name}_labels"] = np.asarray(values, dtype=np.int32)
    for name, values in (times or {}).items():
        arrays[f"{name}_times"] = np.asarray(values, dtype=np.float64)
    if meta is not None:
        arrays["meta"] = np.array(json.dumps(meta, sort_keys=True))
    return arrays


def save_dataset(path: str | os.PathLike, splits: dict[str, list[np.ndarray]], ids: dict[str, list[str]] | None = None,
                 labels: dict[str, np.ndarray] | None = None, meta: dict | None = None,
                 times: dict[str, np.ndarray] | None = None) -> None:
    """Write a sketch-rnn `.npz` atomically (the layout of `np.savez_compressed`; loadable by the reference
    loader). times: per split, the (R,) float64 time of every row of its sketches, one after another
    (`<split>_times`)."""
    with atomic_output(path) as f:
        write_npz(f, dataset_arrays(splits, ids, labels, meta, times))


def write_npz(f, arrays: dict) -> None:
    """What `np.savez_compressed(f, **arrays)` writes (one deflated `<key>.npy` per array), in pieces: no
    member is whole in memory. A value that is a list is written as a 1-D object array of its items."""
    zf = ZipStream(f)
    for key, arr in arrays.items():
        if isinstance(arr, (list, tuple)):
            zf.add(f"{key}.npy", sketch_member_pieces(arr))
        else:
            zf.add(f"{key}.npy", array_member_pieces(arr))
    zf.close()
