"""Property: arbitrary small `.npz` members (random bytes, random dtypes and shapes, object arrays, random
meta JSON) fed to the loader never raise anything but sketchprep's own errors."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from sketchprep.dataset import CONTRACT_KEYS, load_dataset, read_npz
from sketchprep.errors import SketchprepError
from sketchprep.validate import validate_file

DTYPES = st.sampled_from(["<i2", "<i8", "<u1", "<f4", "<f8", "|b1", "<c8", "<U3", "|S2", ">i4"])
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner,
                                                                                        max_size=4),
                           max_leaves=12)


def npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


@st.composite
def arrays(draw):
    return draw(hnp.arrays(DTYPES, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)))


@st.composite
def object_arrays(draw):
    items = draw(st.lists(arrays() | st.integers() | st.text(max_size=3) | st.none(), max_size=5))
    out = np.empty(len(items), object)
    for i, x in enumerate(items):
        out[i] = x
    if draw(st.booleans()) and len(items) == 4:
        out = out.reshape(2, 2)
    return out


@st.composite
def members(draw):
    kind = draw(st.sampled_from(["bytes", "array", "object", "meta", "sliced"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "array":
        return npy(draw(arrays()))
    if kind == "object":
        return npy(draw(object_arrays()))
    if kind == "meta":
        return npy(np.array(json.dumps(draw(json_values))))
    data = npy(draw(object_arrays() | arrays()))  # a real member, cut or with a flipped byte
    cut = draw(st.integers(0, len(data)))
    flip = draw(st.integers(0, 255))
    return data[:cut] + bytes([flip]) + data[cut + 1:]


@settings(max_examples=150)
@given(st.dictionaries(st.sampled_from([*CONTRACT_KEYS, "junk"]), members(), max_size=6), st.booleans())
def test_the_loader_raises_only_its_own_errors(tmp_path_factory, files, require_splits):
    path = tmp_path_factory.mktemp("npz") / "x.npz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for key, data in files.items():
            z.writestr(f"{key}.npy", data)
    for load in (read_npz, lambda p: load_dataset(p, require_splits=require_splits)):
        try:
            load(path)
        except SketchprepError:
            pass
    validate_file(path)  # reports every problem as a finding, never raises
