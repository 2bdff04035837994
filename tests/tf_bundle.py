"""Write TensorFlow V2 checkpoints ("tensor bundles") for tests, without TensorFlow.

The layout `tf.train.Saver` writes: `PREFIX.index`, a LevelDB-style table (one data block of
key -> BundleEntryProto, key "" -> BundleHeaderProto; an empty metaindex block; an index block; a
48-byte footer) and `PREFIX.data-0000S-of-0000N` shards of raw tensors. Knobs let tests craft
entries that lie (shape, size, offset, dtype, slices) and files in big-endian order or in several
shards. The reader under test is `sketchrnn.tf_checkpoint`; this writer is independent of it.
"""
from __future__ import annotations

import struct

import crc32c
import numpy as np

MAGIC = 0xDB4775248B80FB57
DTYPE_CODES = {np.dtype(np.float32): 1, np.dtype(np.float64): 2, np.dtype(np.int32): 3, np.dtype(np.int64): 9}


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number: int, value) -> bytes:
    """One protobuf field: int -> varint, bytes -> length-delimited."""
    if isinstance(value, bytes):
        return varint(number << 3 | 2) + varint(len(value)) + value
    return varint(number << 3) + varint(value)


def masked_crc(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def entry_proto(dtype: int, shape, shard: int, offset: int, size: int, crc: int | None, sliced: bool = False) -> bytes:
    shape_proto = b"".join(field(2, field(1, d)) for d in shape)
    out = field(1, dtype) + field(2, shape_proto) + field(3, shard) + field(4, offset) + field(5, size)
    if crc is not None:
        out += varint(6 << 3 | 5) + struct.pack("<I", crc)
    if sliced:
        out += field(7, field(1, b""))
    return out


def block(entries: list[tuple[bytes, bytes]]) -> bytes:
    out = b"".join(varint(0) + varint(len(k)) + varint(len(v)) + k + v for k, v in entries)
    return out + struct.pack("<II", 0, 1)        # one restart point at 0


def write_bundle(prefix, tensors: dict[str, np.ndarray], shards: int = 1, big_endian: bool = False,
                 lie: dict[str, dict] | None = None, compressed: bool = False) -> None:
    """Write `tensors` (name -> array) as a checkpoint at `prefix`. `lie` overrides fields of an entry
    (dtype, shape, shard, offset, size, crc, sliced); `compressed` marks the data block as snappy."""
    prefix = str(prefix)
    datas = [bytearray() for _ in range(shards)]
    entries = []
    for i, name in enumerate(sorted(tensors)):
        a = np.asarray(tensors[name])          # (ascontiguousarray would make a scalar 1-D)
        raw = a.astype(a.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
        shard = i % shards
        e = {"dtype": DTYPE_CODES[a.dtype], "shape": a.shape, "shard": shard, "offset": len(datas[shard]),
             "size": len(raw), "crc": masked_crc(raw), "sliced": False}
        e.update((lie or {}).get(name, {}))
        datas[shard] += raw
        entries.append((name.encode(), entry_proto(**e)))
    header = field(1, shards) + field(2, 1 if big_endian else 0)
    for s, data in enumerate(datas):
        with open(f"{prefix}.data-{s:05d}-of-{shards:05d}", "wb") as f:
            f.write(data)

    index = bytearray()

    def put(contents: bytes, kind: int = 0) -> bytes:
        handle = varint(len(index)) + varint(len(contents))
        index.extend(contents + bytes([kind]) + struct.pack("<I", masked_crc(contents + bytes([kind]))))
        return handle

    data_handle = put(block([(b"", header)] + entries), 1 if compressed else 0)
    meta_handle = put(block([]))
    index_handle = put(block([(entries[-1][0] if entries else b"", data_handle)]))
    footer = (meta_handle + index_handle).ljust(40, b"\0") + struct.pack("<Q", MAGIC)
    with open(f"{prefix}.index", "wb") as f:
        f.write(bytes(index) + footer)
