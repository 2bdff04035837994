"""RDP kernels and the 1 px resampler (sketchprep.simplify, sketchprep/_rdp.c)."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, strategies as st

from sketchprep import simplify
from sketchprep.simplify import _rdp_mask_numpy, _resample_numpy, rdp, rdp_mask, resample_flat, simplify_flat
from sketchprep.strokes import FlatDrawings, flatten

EPS = 2.0


def _rdp_package_mask(xy: np.ndarray, eps: float) -> np.ndarray:
    import rdp as rdp_package

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdp 0.8 calls np.cross on 2-vectors (deprecated in NumPy 2)
        return np.asarray(rdp_package.rdp(xy, eps, return_mask=True), dtype=bool)


def _distance_to_polyline(points: np.ndarray, polyline: np.ndarray) -> np.ndarray:
    """(n,) distance of each point to the polyline (m, 2), m >= 1."""
    if len(polyline) == 1:
        return np.sqrt(((points - polyline[0]) ** 2).sum(axis=1))
    a, d = polyline[:-1], polyline[1:] - polyline[:-1]
    l2 = (d * d).sum(axis=1)
    rel = points[:, None, :] - a[None]
    t = np.clip((rel * d[None]).sum(axis=2) / np.where(l2 > 0, l2, 1.0)[None], 0.0, 1.0)
    e = rel - t[..., None] * d[None]
    return np.sqrt((e * e).sum(axis=2)).min(axis=1)


def _mask(xy, eps=EPS, distance="line"):
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return rdp_mask(xy, np.array([0, len(xy)]), eps, distance)


# Strokes: continuous random walks (no ties), integer walks (many exact ties, repeated points), loops.
@st.composite
def float_strokes(draw, min_size=0, max_size=60):
    n = draw(st.integers(min_size, max_size))
    seed = draw(st.integers(0, 2**32 - 1))
    scale = draw(st.sampled_from([0.5, 3.0, 20.0]))
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(scale=scale, size=(n, 2)), axis=0) + 100.0


@st.composite
def int_strokes(draw, min_size=0, max_size=60):
    n = draw(st.integers(min_size, max_size))
    steps = draw(st.lists(st.tuples(st.integers(-4, 4), st.integers(-4, 4)), min_size=n, max_size=n))
    xy = np.cumsum(np.array(steps, dtype=np.float64).reshape(-1, 2), axis=0)
    if n > 2 and draw(st.booleans()):
        xy[-1] = xy[0]  # closed loop
    return xy


any_stroke = st.one_of(float_strokes(), int_strokes())


@st.composite
def batches(draw):
    strokes = draw(st.lists(any_stroke, min_size=0, max_size=8))
    strokes = [s for s in strokes if len(s)]
    counts = np.array([len(s) for s in strokes], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    points = np.concatenate(strokes) if strokes else np.zeros((0, 2))
    return points, offsets


# ---------------------------------------------------------------------------------------------------
# RDP properties


@given(any_stroke, st.sampled_from(["line", "segment"]), st.sampled_from([0.5, 2.0, 10.0]))
def test_rdp_keeps_endpoints_and_a_subsequence(xy, distance, eps):
    keep = _mask(xy, eps, distance)
    assert keep.shape == (len(xy),) and keep.dtype == bool  # never adds points: a mask over the input
    out = rdp(xy, eps, distance)
    np.testing.assert_array_equal(out, xy[keep])
    if len(xy):
        assert keep[0] and keep[-1]
    assert len(out) == len(xy) if len(xy) <= 2 else 2 <= len(out) <= len(xy)


@given(any_stroke, st.sampled_from([0.5, 2.0, 10.0]))
def test_segment_distance_keeps_every_point_within_epsilon(xy, eps):
    out = rdp(xy, eps, "segment")
    if len(xy):
        assert _distance_to_polyline(xy, out).max() <= eps + 1e-9


@given(float_strokes(min_size=1), st.sampled_from([0.5, 2.0, 10.0]))
def test_line_kernel_keeps_exactly_what_the_rdp_package_keeps(xy, eps):
    np.testing.assert_array_equal(_mask(xy, eps, "line"), _rdp_package_mask(xy, eps))


@given(int_strokes(min_size=1))
def test_line_kernel_matches_rdp_package_on_integer_strokes_with_ties(xy):
    # integer coordinates make the distances exact, so even tied farthest points agree (first one wins)
    np.testing.assert_array_equal(_mask(xy, EPS, "line"), _rdp_package_mask(xy, EPS))


@given(batches(), st.sampled_from([0.5, 2.0]))
def test_c_kernel_equals_numpy_fallback(batch, eps):
    points, offsets = batch
    for segment in (False, True):
        c = rdp_mask(points, offsets, eps, "segment" if segment else "line")
        np.testing.assert_array_equal(c, _rdp_mask_numpy(points, offsets, eps, segment))


@given(batches())
def test_batch_result_is_the_per_stroke_result(batch):
    points, offsets = batch
    keep = rdp_mask(points, offsets, EPS, "line")
    for a, b in zip(offsets[:-1], offsets[1:]):
        np.testing.assert_array_equal(keep[a:b], _mask(points[a:b]))


def test_c_kernel_is_built():
    # the fallback is for installs without a compiler; this checkout must test the real kernel
    assert simplify.HAVE_C_KERNEL


def test_fallback_is_used_without_the_c_kernel(monkeypatch):
    xy = np.array([[0, 0], [3, 5], [7, -2], [10, 0], [12, 9]], dtype=float)
    flat = flatten([[xy, xy[::-1] * 2]])
    with_c = (rdp_mask(flat.points, flat.stroke_offsets, EPS, "line"), resample_flat(flat).points)
    monkeypatch.setattr(simplify, "_c_kernel", None)
    np.testing.assert_array_equal(rdp_mask(flat.points, flat.stroke_offsets, EPS, "line"), with_c[0])
    np.testing.assert_array_equal(resample_flat(flat).points, with_c[1])


# ---------------------------------------------------------------------------------------------------
# RDP edge cases


@pytest.mark.parametrize("distance", ["line", "segment"])
def test_rdp_edge_cases(distance):
    assert rdp(np.zeros((0, 2)), EPS, distance).shape == (0, 2)
    np.testing.assert_array_equal(rdp([[3, 4]], EPS, distance), [[3, 4]])
    np.testing.assert_array_equal(rdp([[3, 4], [3, 4]], EPS, distance), [[3, 4], [3, 4]])
    np.testing.assert_array_equal(rdp([[1, 1]] * 5, EPS, distance), [[1, 1], [1, 1]])  # identical points
    np.testing.assert_array_equal(rdp([[0, 0], [5, 1], [10, 0]], EPS, distance), [[0, 0], [10, 0]])
    np.testing.assert_array_equal(rdp([[0, 0], [5, 3], [10, 0]], EPS, distance), [[0, 0], [5, 3], [10, 0]])
    # a point exactly epsilon away does not split (d > epsilon)
    np.testing.assert_array_equal(rdp([[0, 0], [5, 2], [10, 0]], EPS, distance), [[0, 0], [10, 0]])


def test_doubling_back_line_drops_the_excursion_segment_keeps_it():
    xy = [[0, 0], [100, 0], [50, 0]]
    np.testing.assert_array_equal(rdp(xy, EPS, "line"), [[0, 0], [50, 0]])  # the original Douglas-Peucker
    np.testing.assert_array_equal(_rdp_package_mask(np.array(xy, float), EPS), [True, False, True])
    np.testing.assert_array_equal(rdp(xy, EPS, "segment"), xy)


@pytest.mark.parametrize("distance", ["line", "segment"])
def test_closed_loop(distance):
    angle = np.linspace(0, 2 * np.pi, 60)
    loop = np.stack([50 + 40 * np.cos(angle), 50 + 40 * np.sin(angle)], axis=1)
    loop[-1] = loop[0]
    out = rdp(loop, EPS, distance)
    np.testing.assert_array_equal(out[0], out[-1])
    assert 6 <= len(out) < len(loop)
    assert _distance_to_polyline(loop, out).max() <= EPS + 1e-9
    # a loop smaller than epsilon: only its (equal) end points are left
    tiny = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
    np.testing.assert_array_equal(rdp(tiny, EPS, distance), [[0, 0], [0, 0]])


def test_ties_keep_the_first_farthest_point():
    # both inner points are 3 from the chord
    np.testing.assert_array_equal(_mask([[0, 0], [3, 3], [6, 3], [9, 0]], EPS), [True, True, False, True])
    np.testing.assert_array_equal(_mask([[0, 0], [3, 3], [6, 3], [9, 0]], EPS, "segment"), [True, True, False, True])


def test_epsilon_zero_keeps_everything_and_bad_distance_is_refused():
    xy = np.array([[0, 0], [1, 0], [2, 0]], dtype=float)
    assert _mask(xy, 0.0).all()
    with pytest.raises(ValueError, match="distance"):
        rdp_mask(xy, np.array([0, 3]), EPS, "manhattan")
    with pytest.raises(ValueError, match="offsets"):
        rdp_mask(xy, np.array([0, 4]), EPS, "line")


def test_simplify_flat_keeps_the_structure():
    flat = flatten([[np.array([[0, 0], [5, 0.5], [10, 0]]), np.array([[1, 1]])], [np.array([[0, 0], [0, 9]])]])
    out = simplify_flat(flat, EPS)
    np.testing.assert_array_equal(out.drawing_offsets, flat.drawing_offsets)
    np.testing.assert_array_equal(np.diff(out.stroke_offsets), [2, 1, 2])
    np.testing.assert_array_equal(out.points, [[0, 0], [10, 0], [1, 1], [0, 0], [0, 9]])


# ---------------------------------------------------------------------------------------------------
# Resampling


def _resample_one(xy, spacing=1.0):
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    return resample_flat(FlatDrawings(xy, np.array([0, len(xy)]), np.array([0, 1])), spacing).points


def _arc_length(xy):
    return float(np.sqrt(((xy[1:] - xy[:-1]) ** 2).sum(axis=1)).sum()) if len(xy) > 1 else 0.0


@given(st.one_of(float_strokes(min_size=1), int_strokes(min_size=1)), st.sampled_from([1.0, 0.7, 2.5]))
def test_resample_properties(xy, spacing):
    out = _resample_one(xy, spacing)
    length = _arc_length(xy)
    np.testing.assert_array_equal(out[0], xy[0])
    if length == 0:
        assert len(out) == 1
        return
    np.testing.assert_array_equal(out[-1], xy[-1])
    assert len(out) == math.ceil(length / spacing - 1e-9) + 1 or len(out) == math.ceil(length / spacing) + 1
    assert _distance_to_polyline(out, xy).max() < 1e-6  # every sample lies on the stroke
    gaps = np.sqrt(((out[1:] - out[:-1]) ** 2).sum(axis=1))
    assert gaps.max() <= spacing + 1e-9  # a chord is never longer than the arc it spans


def test_resample_places_samples_every_spacing_from_the_start():
    out = _resample_one([[0, 0], [3.5, 0], [3.5, 2]], 1.0)  # length 5.5: 0, 1, ..., 5, then the end
    np.testing.assert_allclose(out, [[0, 0], [1, 0], [2, 0], [3, 0], [3.5, 0.5], [3.5, 1.5], [3.5, 2]], atol=1e-12)
    assert len(_resample_one([[0, 0], [4, 0]], 1.0)) == 5       # an exact multiple: no extra sample at the end
    np.testing.assert_array_equal(_resample_one([[2, 3], [2, 3], [2, 3]]), [[2, 3]])  # zero length: one point
    np.testing.assert_array_equal(_resample_one([[2, 3]]), [[2, 3]])
    np.testing.assert_array_equal(_resample_one([[0, 0], [0.4, 0]]), [[0, 0], [0.4, 0]])  # shorter than spacing
    with pytest.raises(ValueError, match="spacing"):
        _resample_one([[0, 0], [1, 1]], 0.0)


@given(batches(), st.sampled_from([1.0, 0.7]))
def test_resample_is_per_stroke_and_c_equals_numpy(batch, spacing):
    points, offsets = batch
    flat = FlatDrawings(points, offsets, np.array([0, len(offsets) - 1]))
    out = resample_flat(flat, spacing)
    np_points, np_offsets = _resample_numpy(points, offsets, spacing)
    np.testing.assert_array_equal(out.stroke_offsets, np_offsets)
    np.testing.assert_array_equal(out.points, np_points)  # bit for bit
    for s, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        # a stroke's samples do not depend on the other strokes of the batch (bit for bit)
        alone = _resample_one(points[a:b], spacing)
        np.testing.assert_array_equal(out.points[out.stroke_offsets[s]:out.stroke_offsets[s + 1]], alone)


def test_resample_arithmetic_is_numpy_interp():
    # the documented arithmetic: np.cumsum of segment lengths, np.interp at k * spacing
    rng = np.random.default_rng(7)
    xy = np.cumsum(rng.normal(size=(40, 2)) * 3, axis=0)
    cum = np.concatenate([[0.0], np.cumsum(np.sqrt(((xy[1:] - xy[:-1]) ** 2).sum(axis=1)))])
    t = np.arange(math.ceil(cum[-1])) * 1.0
    want = np.stack([np.interp(t, cum, xy[:, 0]), np.interp(t, cum, xy[:, 1])], axis=1)
    out = _resample_one(xy)
    np.testing.assert_array_equal(out[:-1], want)
    np.testing.assert_array_equal(out[-1], xy[-1])
