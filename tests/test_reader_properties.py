"""Property tests of the ndjson reader: any bytes and any JSON give counted reasons, never an exception
other than sketchprep's own; a line over the length bound is replaced, never held."""
from __future__ import annotations

import io
import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from sketchprep.convert import BAD_INPUT_REASONS, ConvertOptions, process_task
from sketchprep.errors import SketchprepError
from sketchprep.limits import Limits
from sketchprep.sources.ndjson import (
    TOO_LONG_MARK,
    byte_ranges,
    count_lines,
    iter_line_chunks,
    parse_lines,
    read_range,
    split_lines,
)

OPTS = ConvertOptions(limits=Limits(points_per_stroke=5000, points_per_drawing=20000))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=40,
)
numbers = st.integers(-2**70, 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.booleans() | st.none()
strokes = st.lists(st.lists(st.lists(numbers, max_size=6), min_size=0, max_size=4), max_size=4)


def run(blob: bytes) -> None:
    """The whole per-chunk pipeline on `blob`; only SketchprepError may escape, every problem is counted."""
    try:
        result = process_task(("ndjson", "x.ndjson", 0, 1, blob, len(blob)), OPTS)
    except SketchprepError:
        return
    assert all(p.reason in BAD_INPUT_REASONS for p in result.problems), result.problems
    assert sum(result.dropped.values()) >= len(result.problems)
    assert result.kept.n + sum(result.dropped.values()) + sum(result.filtered.values()) == result.read


@settings(max_examples=150)
@given(st.binary(max_size=400))
def test_arbitrary_bytes(blob):
    run(blob)


@settings(max_examples=150)
@given(st.lists(json_values, max_size=5))
def test_arbitrary_json_lines(values):
    run(b"\n".join(json.dumps(v).encode() for v in values))


@settings(max_examples=150)
@given(st.lists(st.fixed_dictionaries({"word": json_values, "key_id": json_values, "drawing": strokes}), max_size=4))
def test_arbitrary_values_in_drawing_records(records):
    run(b"\n".join(json.dumps(r).encode() for r in records) + b"\n")


lines_of_text = st.lists(st.text(alphabet="ab{}[]1 \u00e9", max_size=30).map(str.encode), max_size=12)


@settings(max_examples=100)
@given(lines_of_text, st.integers(1, 20), st.booleans())
def test_long_lines_become_one_marker_each(lines, max_line, final_newline):
    blob = b"\n".join(lines) + (b"\n" if final_newline else b"")
    chunks = list(iter_line_chunks(io.BytesIO(blob), chunk_bytes=7, max_line=max_line))
    expected = [line if len(line) <= max_line else TOO_LONG_MARK + str(len(line)).encode()
                for line in split_lines(blob)]
    assert split_lines(b"".join(c for _, c, _ in chunks)) == expected
    assert [first for first, _, _ in chunks] == [1 + sum(count_lines(c) for _, c, _ in chunks[:k])
                                                 for k in range(len(chunks))]


@settings(max_examples=60)
@given(lines_of_text, st.integers(1, 20))
def test_byte_ranges_cap_lines_as_streaming_does(tmp_path_factory, lines, max_line):
    path = tmp_path_factory.mktemp("r") / "a.ndjson"
    path.write_bytes(b"\n".join(lines))
    streamed = [c for _, c, _ in iter_line_chunks(io.BytesIO(path.read_bytes()), chunk_bytes=7, max_line=max_line)]
    ranged = [read_range(str(path), a, b, max_line) for a, b in byte_ranges(str(path), chunk_bytes=7)]
    assert ranged == streamed


def test_parse_lines_reports_a_marker_as_line_too_long():
    batch = parse_lines(b'{"word": "a"}\n' + TOO_LONG_MARK + b"123456\n", "x.ndjson", 5, 0, max_line=100)
    _, too_long = batch.problems
    assert (too_long.reason, too_long.line) == ("line_too_long", 6) and "123,456 bytes" in too_long.message


coords = st.floats(-1000, 1000, allow_nan=False, allow_infinity=False)
drawings = st.lists(st.lists(st.lists(st.tuples(coords, coords), min_size=1, max_size=8), min_size=1, max_size=3),
                    min_size=1, max_size=4)
# every extent the ndjson reader accepts (|coordinate| <= 1e6): tiny (down to subnormal), ordinary and huge,
# around an origin anywhere in that range
extents = st.sampled_from([1.0, 1e-3, 1e-150, 1e-300, 1e-310, 1e3])
origins = st.sampled_from([0.0, 1.0, -999_000.0, 999_000.0])


@settings(max_examples=150)
@given(drawings, st.sampled_from([None, 0.0, 255.0, 17.0]), st.sampled_from([1.0, 0.5, 3.0]), extents, origins)
@example([[[(0.0, 0.0), (0.0, 1.4568317038085893e-300)]]], 255.0, 1.0, 1.0, 0.0)  # a length whose square underflows
@example([[[(0.0, 0.0), (3e-310, 0.0)], [(0.0, 1e-300)]]], 255.0, 1.0, 1.0, 0.0)  # subnormal offsets, normal extent
def test_resampled_counts_bound_what_resampling_makes(drawings, size, spacing, extent, origin):
    import numpy as np

    from sketchprep import simplify
    from sketchprep.strokes import flatten, normalize_flat

    flat = flatten([[np.array(s, dtype=np.float64) * extent + origin for s in d] for d in drawings])
    bound = simplify.resampled_counts(flat, spacing, size)
    made = np.diff(simplify.resample_flat(normalize_flat(flat, size) if size is not None else flat,
                                          spacing).stroke_offsets)
    assert (made <= bound).all() and (bound <= made + 2).all()
    kernel, simplify._c_kernel = simplify._c_kernel, None  # the numpy fallback agrees
    try:
        assert np.allclose(simplify.resampled_counts(flat, spacing, size), bound, rtol=1e-12, atol=1)
    finally:
        simplify._c_kernel = kernel
