"""Read a TensorFlow V2 checkpoint (a "tensor bundle") without TensorFlow.

A checkpoint `PREFIX` is two kinds of file:
- `PREFIX.index`: a LevelDB-style table (sorted key -> value blocks, an index block, a 48-byte footer).
  Key "" holds a BundleHeaderProto (number of data shards, endianness); every other key is a tensor
  name whose value is a BundleEntryProto (dtype, shape, shard_id, offset, size, masked crc32c).
- `PREFIX.data-0000S-of-0000N`: the raw tensors, C order, in the header's byte order.

Hand-written because no maintained pure-Python reader exists on PyPI (`tensorflow-checkpoint-reader`
0.2.2 is an unfinished 2023 port pinned to protobuf 3.18); the format is small and stable. Protobuf
fields are decoded by hand (varints) so that no generated code is needed. Every block's and every
tensor's crc32c is checked.
"""
from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass

import numpy as np

from sketchprep.errors import SketchprepError
from sketchprep.files import TF_INDEX_BYTES, open_regular, read_bytes

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER = 5  # compression type (1 byte) + masked crc32c (4 bytes)

# tensorflow/core/framework/types.proto -> numpy dtype (strings and resources are not read)
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}
DTYPE_NAMES = {7: "string", 14: "bfloat16", 20: "resource", 21: "variant"}


class CheckpointFormatError(SketchprepError):
    """A file that is not a readable TensorFlow checkpoint (damaged, truncated, unsupported)."""


@dataclass
class TensorEntry:
    """Where one tensor of the bundle lies."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None       # masked, as stored
    sliced: bool              # a partitioned variable (stored in slices): not supported


def _crc32c(data: bytes) -> int:
    import crc32c

    return crc32c.crc32c(data)


def unmask_crc(masked: int) -> int:
    """LevelDB/TF store crc32c values masked: rotate right 15 bits after adding a constant."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def proto_fields(buf: bytes):
    """Yield (field number, wire type, value) of a serialized protobuf message; value is an int for
    varint/fixed fields and bytes for length-delimited ones."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise ValueError("truncated fixed64")
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ValueError("truncated field")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            if pos + 4 > len(buf):
                raise ValueError("truncated fixed32")
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    dims = []
    for number, _, value in proto_fields(buf):
        if number == 2:                       # TensorShapeProto.dim
            size = 0
            for n, _, v in proto_fields(value):
                if n == 1:                    # Dim.size (int64, two's complement in a varint)
                    size = v - (1 << 64) if v >= 1 << 63 else v
            dims.append(size)
        elif number == 3 and value:           # unknown_rank
            raise ValueError("tensor of unknown rank")
    return tuple(dims)


def _parse_entry(name: str, buf: bytes) -> TensorEntry:
    e = TensorEntry(name, 0, (), 0, 0, 0, None, False)
    for number, _, value in proto_fields(buf):
        if number == 1:
            e.dtype = value
        elif number == 2:
            e.shape = _parse_shape(value)
        elif number == 3:
            e.shard = value
        elif number == 4:
            e.offset = value
        elif number == 5:
            e.size = value
        elif number == 6:
            e.crc32c = value
        elif number == 7:
            e.sliced = True
    return e


def _block_entries(block: bytes):
    """Yield (key, value) of one table block (prefix-compressed keys; restart array at the end)."""
    if len(block) < 4:
        raise ValueError("block too short")
    n_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * n_restarts
    if end < 0:
        raise ValueError("bad restart array")
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        vlen, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + vlen > end:
            raise ValueError("bad block entry")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        yield key, block[pos:pos + vlen]
        pos += vlen


def _block_handle(buf: bytes, pos: int = 0) -> tuple[int, int, int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return offset, size, pos


class TFCheckpoint:
    """The tensors of one checkpoint prefix: `names()`, `entry(name)`, `read(name)` -> numpy array.

    >>> ckpt = TFCheckpoint("run/vector-1234")      # reads run/vector-1234.index
    >>> ckpt.read("vector_rnn/RNN/output_w").shape
    """

    def __init__(self, prefix: str | os.PathLike):
        self.prefix = str(prefix)
        self.index_path = self.prefix + ".index"
        try:
            self._index = read_bytes(self.index_path, "a TensorFlow checkpoint index", TF_INDEX_BYTES)
        except FileNotFoundError:
            raise CheckpointFormatError("no such checkpoint index file", path=self.index_path) from None
        except OSError as e:
            raise CheckpointFormatError(f"cannot read: {e.strerror}", path=self.index_path) from None
        try:
            self.entries, self.num_shards, self.big_endian = self._read_index()
        except (ValueError, struct.error) as e:
            raise CheckpointFormatError(f"not a TensorFlow checkpoint index ({e}). Give the `.index` file of a "
                                        "TF checkpoint written by tf.train.Saver", path=self.index_path) from None

    def _read_block(self, offset: int, size: int) -> bytes:
        raw = self._index[offset:offset + size + BLOCK_TRAILER]
        if offset < 0 or len(raw) != size + BLOCK_TRAILER:
            raise ValueError("block past the end of the file")
        if raw[size] != 0:
            raise ValueError(f"compressed block (type {raw[size]}); TF writes bundle indexes uncompressed")
        stored = struct.unpack_from("<I", raw, size + 1)[0]
        if _crc32c(raw[:size + 1]) != unmask_crc(stored):
            raise ValueError("block checksum mismatch (damaged file)")
        return raw[:size]

    def _read_index(self):
        data = self._index
        if len(data) < FOOTER_SIZE:
            raise ValueError("file too short")
        footer = data[-FOOTER_SIZE:]
        if struct.unpack_from("<Q", footer, 40)[0] != TABLE_MAGIC:
            raise ValueError("bad table magic")
        _, _, pos = _block_handle(footer)               # metaindex (unused)
        index_offset, index_size, _ = _block_handle(footer, pos)
        entries: dict[str, TensorEntry] = {}
        num_shards, big_endian, header_seen = 1, False, False
        for _, handle in _block_entries(self._read_block(index_offset, index_size)):
            offset, size, _ = _block_handle(handle)
            for key, value in _block_entries(self._read_block(offset, size)):
                if key == b"":
                    header_seen = True
                    for number, _, v in proto_fields(value):
                        if number == 1:
                            num_shards = v
                        elif number == 2:
                            big_endian = v == 1
                    continue
                name = key.decode("utf-8", "replace")
                entries[name] = _parse_entry(name, value)
        if not header_seen:
            raise ValueError("no bundle header")
        return entries, num_shards, big_endian

    def names(self) -> list[str]:
        return sorted(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def data_path(self, shard: int) -> str:
        return f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}"

    def read(self, name: str) -> np.ndarray:
        """The tensor `name` as a numpy array in native byte order (crc32c checked)."""
        e = self.entries.get(name)
        if e is None:
            raise CheckpointFormatError(f"no tensor {name!r} in this checkpoint", path=self.index_path)
        if e.sliced:
            raise CheckpointFormatError(f"{name}: partitioned (sliced) variables are not supported",
                                        path=self.index_path)
        if e.dtype not in DTYPES:
            kind = DTYPE_NAMES.get(e.dtype, f"dtype {e.dtype}")
            raise CheckpointFormatError(f"{name}: {kind} tensors are not supported", path=self.index_path)
        dtype = np.dtype(DTYPES[e.dtype]).newbyteorder(">" if self.big_endian else "<")
        count = math.prod(e.shape)           # Python ints: a crafted shape cannot overflow
        if min(e.shape, default=0) < 0 or count * dtype.itemsize != e.size:
            raise CheckpointFormatError(f"{name}: {e.size} bytes stored for shape {e.shape}", path=self.index_path)
        if not 0 <= e.shard < self.num_shards:
            raise CheckpointFormatError(f"{name}: shard {e.shard} of {self.num_shards}", path=self.index_path)
        path = self.data_path(e.shard)
        try:
            with open_regular(path, "a TensorFlow checkpoint data file") as f:
                if e.offset + e.size > os.fstat(f.fileno()).st_size:   # checked before allocating the tensor
                    raise CheckpointFormatError(f"{name}: file ends inside the tensor (truncated download?)",
                                                path=path)
                f.seek(e.offset)
                raw = f.read(e.size)
        except FileNotFoundError:
            raise CheckpointFormatError("missing checkpoint data file (copy it beside the .index file)",
                                        path=path) from None
        except OSError as e2:
            raise CheckpointFormatError(f"cannot read: {e2.strerror}", path=path) from None
        if len(raw) != e.size:
            raise CheckpointFormatError(f"{name}: file ends inside the tensor (truncated download?)", path=path)
        if e.crc32c is not None and _crc32c(raw) != unmask_crc(e.crc32c):
            raise CheckpointFormatError(f"{name}: checksum mismatch (damaged file)", path=path)
        return np.frombuffer(raw, dtype=dtype).reshape(e.shape).astype(dtype.newbyteorder("="))

    def read_all(self) -> dict[str, np.ndarray]:
        return {name: self.read(name) for name in self.names()}
