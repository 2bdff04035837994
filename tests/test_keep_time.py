"""`convert --keep-time`: every kept point's time, on real raw Quick, Draw! drawings."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_data
from sketchprep.cli import main
from sketchprep.dataset import load_dataset
from sketchprep.simplify import resample_flat
from sketchprep.strokes import FlatDrawings, _offsets, stroke3_to_polylines
from sketchprep.validate import validate_file


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def source_drawings() -> dict[str, list]:
    """key_id -> the raw drawing's strokes [xs, ys, ts] (non-empty strokes only, as convert reads them)."""
    out = {}
    for f in sorted(shared_data("quickdraw_raw_ndjson").glob("*.ndjson")):
        for text in f.read_text().splitlines():
            rec = json.loads(text)
            out[rec["key_id"]] = [s for s in rec["drawing"] if len(s[0])]
    return out


@pytest.fixture(scope="module")
def raw():
    return source_drawings()


def converted(tmp_path, *options):
    out = tmp_path / "timed.npz"
    result = run("convert", shared_data("quickdraw_raw_ndjson"), out, "--keep-time", "--split", "1/0/0",
                 "--multiple", "1", "--max-len", "100000", "-q", *options)
    assert result.exit_code == 0, result.output
    return out, load_dataset(out)


def strokes_with_times(ds):
    """(id, [(stroke-3 rows, times) per stroke]) for every drawing of train."""
    for sketch, times, key in zip(ds.splits["train"], ds.sketch_times("train"), ds.ids["train"]):
        ends = np.flatnonzero(sketch[:, 2] == 1) + 1
        yield key, [(sketch[a:b], times[a:b]) for a, b in zip(np.r_[0, ends[:-1]], ends)]


def test_times_lie_within_their_strokes_source_times_and_never_go_back(tmp_path, raw):
    out, ds = converted(tmp_path)
    assert set(ds.times) == {"train", "valid", "test"} and len(ds.splits["train"]) > 1200
    findings = {f.code for f in validate_file(out, batch_size=1, max_len=100000).findings}
    assert findings == {"split_too_small"}  # valid and test are empty here; the times pass
    monotone_source = 0
    for key, strokes in strokes_with_times(ds):
        source = raw[key]
        assert len(strokes) == len(source)  # every stroke keeps at least its first point
        for (rows, t), (_, _, ts) in zip(strokes, source):
            assert np.isfinite(t).all()
            assert min(ts) <= t.min() and t.max() <= max(ts)
            assert t[0] == ts[0]  # a stroke's first point: its own t
            if np.all(np.diff(ts) >= 0):  # two real strokes' own times go back a little; theirs pass through
                monotone_source += 1
                assert np.all(np.diff(t) >= 0)
    assert monotone_source > 6000


def test_at_epsilon_0_times_are_exactly_the_sources_t(tmp_path, raw):
    _, ds = converted(tmp_path, "--epsilon", "0")
    for key, strokes in strokes_with_times(ds):
        for (rows, t), (xs, ys, ts) in zip(strokes, raw[key]):
            # the kept points are source points (a point rounding onto its predecessor is dropped): their times
            # are the source's, in order
            it = iter(ts)
            assert all(any(v == w for w in it) for v in t), (key, t, ts)
            assert t[0] == ts[0]


def test_at_size_0_and_epsilon_0_integer_drawings_keep_every_point_and_time_where_they_are(tmp_path, raw):
    _, ds = converted(tmp_path, "--epsilon", "0", "--size", "0")
    whole = 0
    for (key, strokes), sketch in zip(strokes_with_times(ds), ds.splits["train"]):
        source = raw[key]
        if not all(float(v).is_integer() for s in source for v in s[0] + s[1]):
            continue
        whole += 1
        for (rows, t), (xs, ys, ts) in zip(strokes, source):
            assert t.tolist() == [float(v) for v in ts]
        got = np.concatenate(stroke3_to_polylines(sketch))  # in the source's own coordinates: not even aligned
        np.testing.assert_array_equal(got, np.concatenate([np.column_stack(s[:2]) for s in source]))
    assert whole > 100


def test_times_do_not_change_the_drawings_and_survive_shards(tmp_path):
    common = ["--multiple", "1", "-q"]
    data = shared_data("quickdraw_raw_ndjson")
    assert run("convert", data, tmp_path / "plain.npz", *common).exit_code == 0
    assert run("convert", data, tmp_path / "timed.npz", "--keep-time", *common).exit_code == 0
    for i in range(2):
        assert run("convert", data, tmp_path / f"s{i}.npz", "--keep-time", "--shard", f"{i}/2", *common).exit_code == 0
    assert run("merge", tmp_path / "s0.npz", tmp_path / "s1.npz", tmp_path / "merged.npz", "-q").exit_code == 0
    plain, timed, merged = (load_dataset(tmp_path / f"{n}.npz") for n in ("plain", "timed", "merged"))
    for split in ("train", "valid", "test"):
        assert all(np.array_equal(a, b) for a, b in zip(plain.splits[split], timed.splits[split]))
        assert all(np.array_equal(a, b) for a, b in zip(timed.splits[split], merged.splits[split]))
        np.testing.assert_array_equal(timed.times[split], merged.times[split])
    assert not plain.times


def test_simplified_input_has_no_times_to_keep(tmp_path):
    out = tmp_path / "s.npz"
    assert run("convert", shared_data("quickdraw_simplified_ndjson"), out, "--keep-time", "--multiple", "1",
               "-q").exit_code == 0
    assert not load_dataset(out).times


def test_resampled_times_interpolate_along_the_arc_length():
    # a 10-unit stroke drawn in 100 ms at a steady speed but with a pause at its middle point (5, 0)
    pts = np.array([[0, 0], [5, 0], [5, 0], [10, 0], [20, 20], [20, 20]], dtype=float)
    t = np.array([0, 50, 80, 130, 200, 210], dtype=float)
    flat = FlatDrawings(pts, _offsets(np.array([4, 2])), _offsets(np.array([2])), t)
    out = resample_flat(flat, 1.0)
    assert np.diff(out.stroke_offsets).tolist() == [11, 1]  # 0, 1, ..., 9 and the last point; a dot
    expected = [0, 10, 20, 30, 40, 50, 90, 100, 110, 120, 130]  # at the pause: the first of the two times
    np.testing.assert_allclose(out.times[:11], expected)
    assert out.times[11] == 200  # a dot: its first point's time
