"""The ndjson source: the columnar fast path and the per-line path must read every chunk alike."""
import numpy as np
import pytest

from conftest import SAMPLE, shared_data
from sketchprep.sources import ndjson
from sketchprep.sources.ndjson import _parse_columnar, _parse_per_line, iter_line_chunks, open_lines, split_lines

from test_convert import line, many_lines


def assert_same(a, b):
    np.testing.assert_array_equal(a.flat.points, b.flat.points)
    np.testing.assert_array_equal(a.flat.stroke_offsets, b.flat.stroke_offsets)
    np.testing.assert_array_equal(a.flat.drawing_offsets, b.flat.drawing_offsets)
    np.testing.assert_array_equal(a.kinds, b.kinds)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.order, b.order)
    assert (a.flat.times is None) == (b.flat.times is None)
    if a.flat.times is not None:
        np.testing.assert_array_equal(a.flat.times, b.flat.times)  # NaN (no time) equals NaN here
    assert a.read == b.read and a.filtered == b.filtered and [str(p) for p in a.problems] == [str(p) for p in b.problems]


def chunks(path):
    with open_lines(str(path)) as f:
        return list(iter_line_chunks(f, chunk_bytes=20000))


@pytest.mark.parametrize("folder", ["quickdraw_raw_ndjson", "quickdraw_simplified_ndjson"])
@pytest.mark.parametrize("filters", [(None, False), (frozenset({"cat", "clock"}), True)])
@pytest.mark.parametrize("keep_time", [False, True])
def test_columnar_path_equals_per_line_path_on_real_files(folder, filters, keep_time):
    files = sorted(shared_data(folder).glob("*.ndjson"))[:40]
    used = 0
    for index, f in enumerate(files):
        for first, blob, _ in chunks(f):
            fast = _parse_columnar(blob, str(f), first, index, *filters, keep_time)
            slow = _parse_per_line(split_lines(blob), str(f), first, index, *filters, keep_time=keep_time)
            if keep_time and folder == "quickdraw_raw_ndjson" and fast.flat.n_drawings:
                assert np.isfinite(fast.flat.times).all()  # every raw point has its t
            assert fast is not None, f"{f}:{first}: the columnar path refused a well-formed chunk"
            assert_same(fast, slow)  # fractional coordinates included: re-read exactly
            used += 1
    assert used > 40


def test_bundled_sample_takes_the_columnar_path_and_reads_the_same():
    for index, f in enumerate(sorted(SAMPLE.glob("*.gz"))):
        for first, blob, _ in chunks(f):
            fast = _parse_columnar(blob, str(f), first, index, None, False)
            assert fast is not None
            assert_same(fast, _parse_per_line(split_lines(blob), str(f), first, index))


@pytest.mark.parametrize("extra", [
    "",                                                     # blank line
    line("x", []),                                          # empty drawing
    line("x", [[[], []], [[1, 2], [3, 4]]]),                # an empty stroke is dropped, the rest kept
    line("x", [[[1, 2], [3]]]),                             # unequal x and y
    line("x", [[[1, 2], [3, 4], [0]]]),                     # unequal t
    line("x", [[[1, 2], [3, 4], [0, "a"]]]),                # a t that is not a number
    line("x", [[[1, 2], [3, 4]], [[5, 6], [7, 8], [0, 9]]]),  # times for some strokes only
    line(17, [[[1, 2], [3, 4]]]),                           # integer key_id
    '{"key_id": "x", "word": "cat", "drawing": [[[1, 2], [3, 4]]]}',  # no "recognized"
    line("x", [[[1, 2e7], [3, 4]]]),                        # absurd coordinate
    '{"broken',
])
@pytest.mark.parametrize("keep_time", [False, True])
def test_any_chunk_reads_the_same_whichever_path_takes_it(extra, keep_time):
    lines = [(ln + "\n").encode() for ln in many_lines(5, raw=True)[:2] + [extra] + many_lines(3)]
    per_line = _parse_per_line([ln.rstrip(b"\n") for ln in lines], "f.ndjson", 10, 3, keep_time=keep_time)
    result = ndjson.parse_lines(b"".join(lines), "f.ndjson", 10, 3, keep_time=keep_time)
    assert_same(result, per_line)
    assert result.read == 5 + (extra != "")


def test_string_columns_read_exactly():
    import awkward as ak

    from sketchprep.sources.ndjson import _strings

    for values in (["cat", "The Eiffel Tower", "a"], ["5201136883597312"] * 3, ["café", "x"], ["", "dog"], []):
        column = ak.Array(values) if values else ak.Array(["x"])[:0]
        assert _strings(column).tolist() == values


@pytest.mark.parametrize("text", [b"", b"a\n", b"a\nb", b"a\n\nb\n", b"\n\n", b"x" * 50 + b"\n" + b"y" * 70])
def test_chunks_are_whole_lines_numbered_like_file_iteration(text, tmp_path):
    path = tmp_path / "f.ndjson"
    path.write_bytes(text)
    with open(path, "rb") as f:
        expected = [ln.rstrip(b"\n") for ln in f]
    with open(path, "rb") as f:
        chunks = list(iter_line_chunks(f, chunk_bytes=7))
    got = [ln for _, blob, _ in chunks for ln in split_lines(blob)]
    assert got == expected
    firsts = [first for first, _, _ in chunks]
    assert firsts == [1 + sum(len(split_lines(b)) for _, b, _ in chunks[:i]) for i in range(len(chunks))]


@pytest.mark.parametrize("text", [b"", b"a\n", b"a\nb", b"a\n\nb\n", b"\n\n", b"x" * 50 + b"\n" + b"y" * 70,
                                  b"abcdef\n" * 9, b"abcdefg\n" * 9])
def test_byte_ranges_cut_the_chunks_that_streaming_cuts(text, tmp_path):
    from sketchprep.sources.ndjson import byte_ranges, read_range

    path = tmp_path / "f.ndjson"
    path.write_bytes(text)
    with open(path, "rb") as f:
        streamed = [blob for _, blob, _ in iter_line_chunks(f, chunk_bytes=7)]
    ranges = list(byte_ranges(str(path), chunk_bytes=7))
    assert [read_range(str(path), a, b) for a, b in ranges] == streamed
