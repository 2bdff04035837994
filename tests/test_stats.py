"""stats: hand-made figures, properties against strokes.py, real files against figures computed here
independently, and raw inputs against the converter's own output."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from sketchprep.cli import main
from sketchprep.convert import ConvertOptions, collect, dedupe
from sketchprep.dataset import save_dataset
from sketchprep.errors import OptionError
from sketchprep.stats import (NO_LIMIT, dataset_stats, input_stats, npz_input, reference_scale_factor,
                              split_stats)
from sketchprep.strokes import bounds, stroke3_to_polylines, stroke_count

from conftest import SAMPLE, SHARED_DATA, shared_data

REAL_FILES = sorted((SHARED_DATA / "sketchrnn_npz").glob("*.npz"))


def _reference_scale_factor(train) -> float:
    """Magenta's loader, transcribed: clamp to +-1000, float32, pooled dx and dy, np.std."""
    data = []
    for s in train:
        s = np.maximum(np.minimum(s, 1000), -1000).astype(np.float32)
        data.append(s[:, 0])
        data.append(s[:, 1])
    return float(np.std(np.concatenate(data)))


# --------------------------------------------------------------------------------------------------
# hand-made


def test_split_stats_of_hand_made_sketches():
    square = np.array([[10, 10, 0], [20, 0, 0], [0, 20, 0], [-20, 0, 0], [0, -20, 1], [40, 40, 1]], np.int16)
    open_end = np.array([[0, 0, 1], [5, 0, 0], [5, 3, 0]], np.int16)  # a dot, then a stroke with no final pen-up
    s = split_stats([square, open_end], class_names=["a", "b"])
    assert s.count == 2 and s.dtype == "int16"
    assert (s.length["min"], s.length["max"], s.length["mean"]) == (3, 6, 4.5)
    assert s.values["strokes_per_sketch"].tolist() == [2, 2]
    assert s.values["points_per_stroke"].tolist() == [5, 1, 1, 2]
    # square: points (10,10)..(30,30) and the dot at (50,50): 40 x 40; open_end: (0,0)..(10,3)
    assert s.values["bbox_width"].tolist() == [40, 10] and s.values["bbox_height"].tolist() == [40, 3]
    assert s.pen_up_share == pytest.approx(3 / 9)
    assert s.max_abs_offset == 40
    assert s.longer_than == {200: 0, 250: 0, 300: 0}
    assert s.classes == {"a": 1, "b": 1}


def test_longer_than_counts_rows_strictly_over_each_threshold():
    sketches = [np.tile([1, 0, 1], (n, 1)) for n in (200, 201, 250, 251, 300, 301)]
    assert split_stats(sketches).longer_than == {200: 5, 250: 3, 300: 1}


def test_empty_split_and_empty_sketches():
    empty = split_stats([])
    assert empty.count == 0 and empty.length["max"] is None and empty.pen_up_share is None
    with_empty = split_stats([np.zeros((0, 3)), np.array([[1.0, 2.0, 1.0]])])
    assert with_empty.values["strokes_per_sketch"].tolist() == [0, 1]
    assert with_empty.values["points_per_stroke"].tolist() == [1]


def test_reference_scale_factor_clamps_and_filters_like_the_loader():
    a = np.array([[5000, -3, 0], [2, 2000, 1]], np.int16)
    b = np.array([[1, 1, 0], [0, 4, 1], [7, 7, 1]], np.int16)
    assert reference_scale_factor([a, b]) == pytest.approx(_reference_scale_factor([a, b]), rel=1e-6)
    assert reference_scale_factor([a, b], max_seq_len=2) == pytest.approx(_reference_scale_factor([a]), rel=1e-6)
    assert reference_scale_factor([]) is None


sketch3 = st.integers(1, 30).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-300, 300), min_size=2 * n, max_size=2 * n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n)))


@settings(max_examples=60, deadline=None)
@given(st.lists(sketch3, min_size=1, max_size=8))
def test_batch_figures_match_strokes_py_sketch_by_sketch(raw):
    sketches = []
    for xy, pen in raw:
        s = np.zeros((len(pen), 3), np.int16)
        s[:, :2] = np.array(xy).reshape(-1, 2)
        s[:, 2] = pen
        sketches.append(s)
    stats = split_stats(sketches)
    for i, s in enumerate(sketches):
        x0, x1, y0, y1 = bounds(s)
        assert stats.values["bbox_width"][i] == x1 - x0 and stats.values["bbox_height"][i] == y1 - y0
        assert stats.values["strokes_per_sketch"][i] == stroke_count(s)
    pieces = [len(p) for s in sketches for p in stroke3_to_polylines(s)]
    assert stats.values["points_per_stroke"].tolist() == pieces


def test_npz_input_classifies_arguments():
    assert npz_input(["a.npz"]) == "a.npz"
    assert npz_input(["cat.ndjson", "dir/"]) is None
    with pytest.raises(OptionError):
        npz_input(["a.npz", "b.npz"])
    with pytest.raises(OptionError):
        npz_input(["a.npz", "cat.ndjson"])


# --------------------------------------------------------------------------------------------------
# real files: figures computed independently here with the reference's own np.load


@pytest.mark.parametrize("path", REAL_FILES, ids=[p.name for p in REAL_FILES])
def test_real_file_stats_match_independent_figures(path):
    ref = np.load(path, encoding="latin1", allow_pickle=True)
    stats = dataset_stats(path)
    for split in ("train", "valid", "test"):
        sketches = list(ref[split])
        s = stats.splits[split]
        lengths = np.array([len(x) for x in sketches])
        assert s.count == len(sketches)
        assert s.length["max"] == lengths.max() and s.length["min"] == lengths.min()
        assert s.length["mean"] == pytest.approx(lengths.mean())
        assert s.length["p95"] == pytest.approx(np.percentile(lengths, 95))
        assert s.longer_than[200] == int((lengths > 200).sum())
        assert s.strokes_per_sketch["mean"] == pytest.approx(np.mean([(x[:, 2] == 1).sum() for x in sketches]))
        assert s.pen_up_share == pytest.approx(np.concatenate([x[:, 2] for x in sketches]).mean())
        widths = [bounds(x)[1] - bounds(x)[0] for x in sketches[:300]]
        assert s.values["bbox_width"][:300].tolist() == pytest.approx(widths)
    assert stats.scale_factor == pytest.approx(_reference_scale_factor(ref["train"]), rel=1e-5)


def test_aaron_sheep_scale_factor_is_the_published_figure():
    stats = dataset_stats(shared_data("sketchrnn_npz", "aaron_sheep.npz"))
    assert stats.scale_factor == pytest.approx(18.52, abs=0.005)  # REFERENCE A.5, measured there too
    assert "7400 train sketches" in stats.scale_factor_how and "drops none" in stats.scale_factor_how


def test_cli_stats_on_npz_text_json_and_plot(tmp_path):
    path = shared_data("sketchrnn_npz", "aaron_sheep.npz")
    runner = CliRunner()
    text = runner.invoke(main, ["stats", str(path)])
    assert text.exit_code == 0, text.output
    assert "scale factor (train): 18.5198" in text.output
    lines = {line.split("  ")[0].strip(): line.split() for line in text.output.splitlines() if line}
    assert lines["sketches"][-3:] == ["7400", "300", "300"]
    assert lines["length max"][-3:] == ["250", "248", "250"]
    plot = tmp_path / "stats.png"
    as_json = runner.invoke(main, ["stats", str(path), "--json", "--plot", str(plot)])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert data["splits"]["valid"]["count"] == 300 and data["scale_factor"] == pytest.approx(18.52, abs=0.005)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labelled_dataset_reports_classes(tmp_path):
    s = np.array([[1, 2, 1]], np.int16)
    path = tmp_path / "l.npz"
    save_dataset(path, {"train": [s, s * 2, s * 3], "valid": [s * 4], "test": [s * 5]},
                 labels={"train": np.array([0, 1, 1]), "valid": np.array([1]), "test": np.array([0])},
                 meta={"classes": ["cat", "dog"]})
    stats = dataset_stats(path)
    assert stats.splits["train"].classes == {"cat": 1, "dog": 2}
    assert stats.splits["test"].classes == {"cat": 1}
    out = CliRunner().invoke(main, ["stats", str(path)]).output
    assert any(line.split() == ["dog", "2", "1", "0"] for line in out.splitlines())


def test_cli_stats_usage_errors(tmp_path):
    path = shared_data("sketchrnn_npz", "aaron_sheep.npz")
    runner = CliRunner()
    assert runner.invoke(main, ["stats", str(path), "--epsilon", "1"]).exit_code == 2
    assert runner.invoke(main, ["stats", str(path), str(path)]).exit_code == 2
    broken = tmp_path / "broken.npz"
    broken.write_text("no zip")
    result = runner.invoke(main, ["stats", str(broken)])
    assert result.exit_code == 1 and "broken.npz" in result.output


# --------------------------------------------------------------------------------------------------
# raw inputs: exactly what the converter's pipeline produces


RAW = ["cactus.ndjson", "axe.ndjson"]


def _raw_inputs():
    return [str(shared_data("quickdraw_raw_ndjson", name)) for name in RAW]


def test_raw_input_stats_are_the_converters_figures():
    inputs = _raw_inputs()
    opts = ConvertOptions(epsilon=2.0, max_len=60)
    stats = input_stats(inputs, opts)
    kept = collect(inputs, opts).kept
    expected = split_stats([kept.sketch(i) for i in range(kept.n)], kept.labels.tolist())
    got = stats.splits["kept"]
    assert got.count == kept.n and got.length == expected.length and got.classes == expected.classes
    assert got.points_per_stroke == expected.points_per_stroke and got.bbox_width == expected.bbox_width
    everything = collect(inputs, replace(opts, max_len=NO_LIMIT)).kept
    assert stats.splits["all"].count == everything.n
    assert stats.conversion["too_long"] == everything.n - kept.n > 0
    assert stats.splits["all"].longer_than[200] == int((np.diff(everything.row_offsets) > 200).sum())
    # points removed by RDP: the same drawings at epsilon 0 against epsilon 2
    before = collect(inputs, replace(opts, epsilon=0.0, max_len=NO_LIMIT)).kept
    assert stats.conversion["points_before_rdp"] == len(before.rows)
    assert stats.conversion["points_after_rdp"] == len(everything.rows)
    assert stats.conversion["removed_by_rdp"] > 0.5 * len(before.rows)  # raw strokes are resampled at 1 px
    assert stats.conversion["duplicates"] == dedupe(kept)[1]
    assert stats.scale_factor == pytest.approx(_reference_scale_factor([kept.sketch(i) for i in range(kept.n)]),
                                               rel=1e-5)


def test_raw_input_stats_with_fit_keep_what_convert_fit_keeps():
    inputs = _raw_inputs()[:1]
    opts = ConvertOptions(epsilon=2.0, max_len=40, fit=True)
    stats = input_stats(inputs, opts)
    kept = collect(inputs, opts).kept
    assert stats.splits["kept"].count == kept.n and stats.splits["kept"].length["max"] <= 40


def test_simplified_quickdraw_passes_through_so_rdp_removes_nothing():
    path = str(shared_data("quickdraw_simplified_ndjson", "cat.ndjson"))
    stats = input_stats([path], ConvertOptions())
    assert stats.conversion["removed_by_rdp"] == 0 and stats.splits["kept"].count > 0
    stronger = input_stats([path], ConvertOptions(epsilon=4.0))
    assert stronger.conversion["removed_by_rdp"] > 0


def test_cli_stats_on_the_bundled_sample():
    result = CliRunner().invoke(main, ["stats", str(SAMPLE), "--max-len", "100", "--epsilon", "1.5"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.startswith("12 input file(s), 424 drawings read; as `convert --epsilon 1.5 --distance line "
                          "--size 255 --max-len 100`")
    assert "RDP at epsilon 1.5 removed" in out and "scale factor (kept)" in out
    assert "underwear" in out  # classes are listed


def test_stdin_is_refused_because_stats_reads_inputs_twice():
    result = CliRunner().invoke(main, ["stats", "-"], input='{"word": "a", "drawing": [[[0, 5], [0, 5]]]}\n')
    assert result.exit_code == 2 and "stdin" in result.output
