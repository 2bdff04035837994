"""Acceptance: raw Quick, Draw! drawings converted with the defaults come out as Google simplified them.

The 1,112 raw drawings of ../shared/data that have a simplified twin (same key_id) go through the code
`sketchprep convert` runs; benchmarks/quickdraw_match.py prints the same figures (and the `rdp` baselines).
Measured: --distance line 95.5% identical, 98.1% same point count, median
polyline distance 0.00 px, 97.4% within 1 px, 99.7% within 2 px; --distance segment 22.6% identical,
median 1.80 px, 64.7% within 2 px. The thresholds sit just under the line figures, so a regression in
any raw step (normalise, resample, RDP, rounding) fails here.
"""
import numpy as np
import pytest
from conftest import shared_data

from benchmarks.quickdraw_match import compare, load_pairs, polyline_distance, run_sketchprep
from sketchprep.convert import ConvertOptions


@pytest.fixture(scope="module")
def pairs():
    shared_data("quickdraw_raw_ndjson")
    shared_data("quickdraw_simplified_ndjson")
    return load_pairs(shared_data())


def test_pairs_are_the_documented_ones(pairs):
    assert len(pairs.ids) == 1112
    assert all(len(r) == len(g) for r, g in zip(pairs.raw, pairs.google))  # Google keeps the stroke count


def test_line_distance_reproduces_google(pairs):
    f = compare(run_sketchprep(pairs, "line"), pairs.google)
    assert f.identical >= 0.95
    assert f.same_points >= 0.975
    assert f.median == 0.0
    assert f.within_1 >= 0.97
    assert f.within_2 >= 0.99


def test_segment_distance_is_further_from_google_so_line_is_the_default(pairs):
    line = compare(run_sketchprep(pairs, "line"), pairs.google)
    segment = compare(run_sketchprep(pairs, "segment"), pairs.google)
    assert segment.median > 1.0 and segment.within_2 < line.within_2 - 0.2
    assert ConvertOptions().distance == "line"


def test_polyline_distance():
    a = np.array([[0, 0], [10, 0]], dtype=float)
    assert polyline_distance(a, a) == 0.0
    assert polyline_distance(a, np.array([[0, 0], [5, 2], [10, 0]], dtype=float)) == pytest.approx(2.0)
    # symmetric: our extra far point counts as much as one of Google's
    assert polyline_distance(np.array([[0, 0], [20, 0]], float), a) == pytest.approx(10.0)
    assert polyline_distance(a, np.array([[0, 0], [20, 0]], float)) == pytest.approx(10.0)
    assert polyline_distance(np.array([[3, 4]], float), np.array([[0, 0], [0, 0]], float)) == pytest.approx(5.0)
