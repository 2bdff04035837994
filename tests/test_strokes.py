import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sketchprep.strokes import (
    FlatDrawings,
    bounds,
    concat_flat,
    flat_to_stroke3,
    flatten,
    interleave,
    normalize,
    normalize_flat,
    polylines_to_stroke3,
    stroke3_to_polylines,
    stroke3_to_stroke5,
    stroke5_to_stroke3,
    stroke_count,
)

coord = st.integers(-2000, 2000)


@st.composite
def int_stroke(draw, max_points=12):
    """An integer stroke with no point equal to its predecessor."""
    n = draw(st.integers(1, max_points))
    pts = [(draw(coord), draw(coord))]
    while len(pts) < n:
        p = (draw(coord), draw(coord))
        if p != pts[-1]:
            pts.append(p)
    return np.array(pts, dtype=np.float64)


int_drawing = st.lists(int_stroke(), min_size=1, max_size=6)
float_drawing = st.lists(
    arrays(np.float64, st.tuples(st.integers(1, 15), st.just(2)), elements=st.floats(-500, 500, allow_nan=False)),
    min_size=1, max_size=5)


@given(int_drawing)
def test_integer_polylines_round_trip_exactly(drawing):
    s3 = polylines_to_stroke3(drawing)
    assert s3.dtype == np.int16 and s3.shape == (sum(len(s) for s in drawing), 3)
    back = stroke3_to_polylines(s3)
    assert len(back) == len(drawing)
    for a, b in zip(back, drawing):
        np.testing.assert_array_equal(a, b)


@given(int_drawing)
def test_stroke3_invariants(drawing):
    s3 = polylines_to_stroke3(drawing)
    assert s3[-1, 2] == 1
    assert set(np.unique(s3[:, 2])) <= {0, 1}
    assert stroke_count(s3) == len(drawing)
    # first row is the first point's offset from the origin
    np.testing.assert_array_equal(s3[0, :2], drawing[0][0])


@given(float_drawing)
def test_float_polylines_quantise_without_drift(drawing):
    s3 = polylines_to_stroke3(drawing)
    back = stroke3_to_polylines(s3)
    assert len(back) == len(drawing)
    for a, b in zip(back, drawing):
        # every kept point is the rounded source point (no accumulated error), none repeats its predecessor
        rounded = np.rint(b)
        keep = np.ones(len(b), bool)
        keep[1:] = (rounded[1:] != rounded[:-1]).any(axis=1)
        np.testing.assert_array_equal(a, rounded[keep])


@given(int_drawing, st.integers(0, 20))
def test_stroke5_round_trip(drawing, extra):
    s3 = polylines_to_stroke3(drawing)
    s5 = stroke3_to_stroke5(s3, len(s3) + extra)
    assert s5.shape == (len(s3) + extra, 5)
    np.testing.assert_array_equal(s5[:, 2:].sum(axis=1), 1)  # one-hot pen state
    if extra:
        np.testing.assert_array_equal(stroke5_to_stroke3(s5), s3)


def test_stroke5_reference_worked_example():
    """REFERENCE A.4: stroke-3 [[5,0,0],[0,5,1],[-5,0,1]] with max_len=4 (S0 is prepended by the batcher)."""
    s5 = stroke3_to_stroke5(np.array([[5, 0, 0], [0, 5, 1], [-5, 0, 1]]), 4)
    np.testing.assert_array_equal(s5, [[5, 0, 1, 0, 0], [0, 5, 0, 1, 0], [-5, 0, 0, 1, 0], [0, 0, 0, 0, 1]])
    with pytest.raises(ValueError):
        stroke3_to_stroke5(np.zeros((5, 3)), 4)


def test_stroke5_to_stroke3_keeps_whole_array_when_first_row_ends():
    s5 = np.array([[0, 0, 0, 0, 1], [1, 1, 0, 1, 0]], dtype=float)
    assert stroke5_to_stroke3(s5).shape == (2, 3)


def test_readme_square_and_dot_example():
    square = np.array([[10, 10], [30, 10], [30, 30], [10, 30], [10, 10]], float)
    s3 = polylines_to_stroke3([square, np.array([[50, 50]], float)])
    np.testing.assert_array_equal(s3, [[10, 10, 0], [20, 0, 0], [0, 20, 0], [-20, 0, 0], [0, -20, 1], [40, 40, 1]])


def test_single_point_strokes_and_repeated_points():
    s3 = polylines_to_stroke3([np.array([[3.2, 4.0], [3.4, 4.1], [9, 9]]), np.array([[1, 1], [1.2, 0.9]])])
    # (3.4, 4.1) rounds onto (3, 4) and is dropped; the second stroke collapses to one point (a dot)
    np.testing.assert_array_equal(s3, [[3, 4, 0], [6, 5, 1], [-8, -8, 1]])


def test_keep_repeats_keeps_zero_offset_rows():
    flat = flatten([[np.array([[5, 5], [5, 5]], float)], [np.array([[5, 5], [5, 5]], float)]])
    out = flat_to_stroke3(flat, keep_repeats=np.array([True, False]))
    np.testing.assert_array_equal(out.sketch(0), [[5, 5, 0], [0, 0, 1]])
    np.testing.assert_array_equal(out.sketch(1), [[5, 5, 1]])


def test_int16_overflow_is_detected_not_wrapped():
    flat = flatten([[np.array([[0, 0], [40000, 0]], float)], [np.array([[0, 0], [10, 0]], float)]])
    out = flat_to_stroke3(flat)
    assert out.overflow.tolist() == [True, False]
    with pytest.raises(ValueError, match="int16"):
        polylines_to_stroke3([np.array([[0, 0], [40000, 0]], float)])


@given(float_drawing, st.sampled_from([255.0, 100.0, 1.0]))
def test_normalize_aligns_and_scales(drawing, size):
    out = normalize(drawing, size)
    pts = np.concatenate(out)
    np.testing.assert_allclose(pts.min(axis=0), 0, atol=1e-9)
    extent = (pts.max(axis=0) - pts.min(axis=0)).max()
    src = np.concatenate(drawing)
    with np.errstate(divide="ignore", over="ignore"):
        scalable = np.isfinite(size / (src.max(axis=0) - src.min(axis=0)).max())
    if scalable:
        assert extent == pytest.approx(size)
    else:  # a dot, or too small to scale: only aligned
        assert extent == (src.max(axis=0) - src.min(axis=0)).max()


def test_normalize_size_zero_keeps_units():
    out = normalize([np.array([[10.0, 20.0], [30.0, 25.0]])], 0)
    np.testing.assert_array_equal(out[0], [[0, 0], [20, 5]])


@given(st.lists(int_drawing, min_size=1, max_size=6), st.data())
def test_flat_select_concat_interleave(drawings, data):
    flat = flatten(drawings)
    assert flat.n_drawings == len(drawings)
    idx = data.draw(st.lists(st.integers(0, len(drawings) - 1), max_size=8))
    sub = flat.select(np.array(idx, dtype=np.int64))
    assert sub.n_drawings == len(idx)
    for j, i in enumerate(idx):
        for a, b in zip(sub.drawing(j), drawings[i]):
            np.testing.assert_array_equal(a, b)
    both = concat_flat([flat, flat])
    assert both.n_drawings == 2 * len(drawings)
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(drawings), max_size=len(drawings))))
    chosen = flat.select(np.flatnonzero(mask))
    others = normalize_flat(flat, 1.0).select(np.flatnonzero(~mask))
    mixed = interleave(mask, chosen, others)
    ref = normalize_flat(flat, 1.0)
    for d in range(len(drawings)):
        expected = flat.drawing(d) if mask[d] else ref.drawing(d)
        for a, b in zip(mixed.drawing(d), expected):
            np.testing.assert_array_equal(a, b)


def test_bounds_and_stroke_count():
    s3 = np.array([[10, 10, 0], [20, 0, 1], [-25, 5, 1]])
    assert bounds(s3) == (5, 30, 10, 15)
    assert stroke_count(s3) == 2
    assert stroke_count(np.array([[1, 1, 0], [1, 1, 0]])) == 1  # a malformed ending still counts as a stroke
    assert stroke3_to_polylines(np.zeros((0, 3))) == []


def test_flatten_rejects_empty():
    with pytest.raises(ValueError):
        flatten([[np.zeros((0, 2))]])
    with pytest.raises(ValueError):
        flatten([[]])
    assert isinstance(flatten([]), FlatDrawings)
