"""`sketchprep export DATA.npz`: every format, on datasets converted from real shared data."""
import json
import os
import shutil
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import shared_data, shared_fixture
from sketchprep.cli import main
from sketchprep.dataset import load_dataset
from sketchprep.formats.common import absolute_points, file_stems
from sketchprep.formats.export import ExportOptions, export_dataset, format_for
from sketchprep.strokes import stroke3_to_polylines

SPLITS = ("train", "valid", "test")


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


def subset(tmp_path, folder: str, pattern: str, count: int):
    """The first `count` files of a shared data folder, copied (file names keep their spaces)."""
    out = tmp_path / folder
    out.mkdir()
    for f in sorted(shared_data(folder).glob(pattern))[:count]:
        shutil.copy(f, out / f.name)
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """Datasets `convert` made from real data: Quick, Draw! raw (with times), simplified, and KanjiVG SVG."""
    tmp = tmp_path_factory.mktemp("data")
    out = {}
    sources = {
        "raw": (shared_data("quickdraw_raw_ndjson"), ["--keep-time"]),
        "simplified": (subset(tmp, "quickdraw_simplified_ndjson", "*.ndjson", 40), []),
        "kanjivg": (subset(tmp, "kanjivg_svg", "*.svg", 150), []),
    }
    for name, (source, extra) in sources.items():
        out[name] = tmp / f"{name}.npz"
        ok("convert", source, out[name], "--split", "0.8/0.1/0.1", "--multiple", "1", "-q", *extra)
    return out


def by_id(ds, split):
    """id -> (stroke-3, word, times or None) for every drawing of a split."""
    classes = ds.classes or ["?"]
    labels = ds.labels.get(split, np.zeros(len(ds.splits[split]), int))
    times = ds.sketch_times(split) or [None] * len(ds.splits[split])
    return {i: (s, classes[lab], t) for i, s, lab, t in zip(ds.ids[split], ds.splits[split], labels, times)}


def read_back(tmp_path, inputs, name, timed):
    out = tmp_path / f"{name}.npz"
    ok("convert", *inputs, out, "--epsilon", "0", "--size", "0", "--split", "1/0/0", "--multiple", "1",
       "--max-len", "100000", "-q", *(["--keep-time"] if timed else []))
    return by_id(load_dataset(out), "train")


@pytest.mark.parametrize("fmt", ["ndjson", "svg"])
@pytest.mark.parametrize("name", ["raw", "simplified", "kanjivg"])
def test_round_trip_gives_the_same_drawings_splits_words_and_ids(tmp_path, datasets, fmt, name):
    ds = load_dataset(datasets[name])
    exported = tmp_path / "out"
    ok("export", datasets[name], "-o", exported, "--format", fmt, "-q")
    timed = fmt == "ndjson" and name == "raw"
    for split in SPLITS:
        want = by_id(ds, split)
        inputs = [exported / f"{split}.ndjson"] if fmt == "ndjson" else [exported / split]
        if not want:
            continue
        got = read_back(tmp_path, inputs, split, timed)
        assert set(got) == set(want)  # the same ids, split by split
        for key, (sketch, word, times) in want.items():
            np.testing.assert_array_equal(got[key][0], sketch, err_msg=f"{name} {split} {key}")
            assert got[key][1] == word
            if timed:
                np.testing.assert_array_equal(got[key][2], times)  # the times survive too


def test_ndjson_is_googles_layout(tmp_path, datasets):
    exported = tmp_path / "nd"
    ok("export", datasets["raw"], "-o", exported, "--format", "ndjson", "-q")
    assert sorted(os.listdir(exported)) == ["test.ndjson", "train.ndjson", "valid.ndjson"]
    ds = load_dataset(datasets["raw"])
    first = json.loads((exported / "train.ndjson").read_text().splitlines()[0])
    assert set(first) == {"word", "key_id", "drawing"} and first["key_id"] == ds.ids["train"][0]
    strokes = stroke3_to_polylines(ds.splits["train"][0])
    assert [[s[0], s[1]] for s in first["drawing"]] == [[p[:, 0].astype(int).tolist(), p[:, 1].astype(int).tolist()]
                                                       for p in strokes]
    assert all(len(s) == 3 and len(s[2]) == len(s[0]) for s in first["drawing"])  # [xs, ys, ts]


def test_svg_files_are_named_by_split_word_and_id_and_draw_in_the_box(tmp_path, datasets):
    exported = tmp_path / "svg"
    ok("export", datasets["simplified"], "-o", exported, "--format", "svg", "-q")
    ds = load_dataset(datasets["simplified"])
    key, label = ds.ids["valid"][0], ds.labels["valid"][0]
    path = exported / "valid" / ds.classes[label] / f"{key}.svg"
    text = path.read_text()
    assert 'viewBox="0 0 255 255"' in text and f'sketchprep:id="{key}"' in text
    assert sum(len(os.listdir(exported / s / w)) for s in SPLITS for w in os.listdir(exported / s)) == \
        sum(len(v) for v in ds.splits.values())


def test_kanjivg_ids_with_slashes_get_safe_distinct_file_names(tmp_path, datasets):
    exported = tmp_path / "svg"
    ok("export", datasets["kanjivg"], "-o", exported, "--format", "svg", "-q")
    files = [f for f in exported.rglob("*.svg")]
    assert len({f.name for f in files}) == len(files)  # ids are paths: cleaned, and never two alike
    stems = file_stems(["a/b", "a_b", "a/b", "CON", "ok", "OK"])
    assert stems[1] == "a_b" and stems[4] == "ok" and stems[0].startswith("a_b-") and stems[3].startswith("_CON-")
    assert len({s.casefold() for s in stems}) == len(stems)  # distinct even where names repeat or differ in case
    assert file_stems(["a/b", "a_b", "a/b", "CON", "ok", "OK"]) == stems  # the same names every time


def test_parquet_equals_the_npz_drawing_for_drawing(tmp_path, datasets):
    pq = pytest.importorskip("pyarrow.parquet")
    pd = pytest.importorskip("pandas")
    out = tmp_path / "raw.parquet"
    ok("export", datasets["raw"], "-o", out, "-q")  # the format from the name
    ds = load_dataset(datasets["raw"])
    table = pq.read_table(out)
    meta = json.loads(table.schema.metadata[b"sketchprep"])
    assert meta["classes"] == ds.classes and meta["dataset_meta"] == ds.meta
    frame = pd.read_parquet(out)
    assert len(frame) == sum(len(v) for v in ds.splits.values())
    assert pq.ParquetFile(out).metadata.num_row_groups >= 3  # one group per split at least
    for split in SPLITS:
        rows = frame[frame["split"] == split]
        assert rows["index"].tolist() == list(range(len(ds.splits[split])))
        assert rows["id"].tolist() == ds.ids[split].tolist()
        assert rows["label"].tolist() == ds.labels[split].tolist()
        assert rows["word"].tolist() == [ds.classes[i] for i in ds.labels[split]]
        times = ds.sketch_times(split)
        for (_, row), sketch, t in zip(rows.iterrows(), ds.splits[split], times):
            np.testing.assert_array_equal(np.stack(row["strokes"]), sketch)
            np.testing.assert_array_equal(row["times"], t)
            xy = np.cumsum(sketch[:, :2].astype(int), axis=0)
            assert (row["n_points"], row["n_strokes"]) == (len(sketch), int(sketch[:, 2].sum()))
            assert (row["width"], row["height"]) == tuple(np.ptp(xy, axis=0))
    # pyarrow alone, one column
    assert table.column("strokes").to_pylist()[0] == ds.splits["train"][0].tolist()


def test_parquet_reads_in_duckdb(tmp_path, datasets):
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "s.parquet"
    ok("export", datasets["simplified"], "-o", out, "-q")
    ds = load_dataset(datasets["simplified"])
    counts = dict(duckdb.sql(f"SELECT split, count(*) FROM '{out}' GROUP BY split").fetchall())
    assert counts == {s: len(ds.splits[s]) for s in SPLITS}


def test_parquet_without_times_has_no_times_column(tmp_path, datasets):
    pq = pytest.importorskip("pyarrow.parquet")
    out = tmp_path / "k.parquet"
    ok("export", datasets["kanjivg"], "-o", out, "-q")
    assert "times" not in pq.read_schema(out).names


def test_stroke5_equals_what_training_builds(tmp_path, datasets):
    from sketchrnn.data import Batches, load_data, pad_batch

    out = tmp_path / "s5.npz"
    ok("export", datasets["raw"], "-o", out, "--format", "stroke5", "--normalize", "-q")
    got = np.load(out)
    data = load_data([str(datasets["raw"])], max_seq_len=100000)
    meta = json.loads(str(got["meta"]))
    assert meta["scale_factor"] == data.scale_factor and meta["n_max"] == data.target_steps
    for split in SPLITS:
        batch = next(Batches(data.splits[split], len(data.splits[split]), data.target_steps).eval_batches())
        order = np.argsort(got[f"{split}_lengths"], kind="stable")  # training sorts by length
        np.testing.assert_array_equal(got[split][order], batch.strokes5)
        np.testing.assert_array_equal(got[f"{split}_labels"][order], batch.labels)
    # --max-len: the reference's pad to exactly N_max, longer drawings left out
    out96 = tmp_path / "s96.npz"
    result = ok("export", datasets["raw"], "-o", out96, "--format", "stroke5", "--max-len", "96")
    assert "left out" in result.output
    ds = load_dataset(datasets["raw"])
    fits = [s for s in ds.splits["train"] if len(s) <= 96]
    expected, lengths = pad_batch([np.clip(s, -1000, 1000).astype(np.float32) for s in fits], 96)
    np.testing.assert_array_equal(np.load(out96)["train"], expected)
    np.testing.assert_array_equal(np.load(out96)["train_lengths"], lengths)
    assert np.load(out96)["train"].shape[1:] == (97, 5)


def test_points_are_the_absolute_drawing_with_pen_flags(tmp_path, datasets):
    out = tmp_path / "p.npz"
    ok("export", datasets["raw"], "-o", out, "--format", "points", "-q")
    ds, got = load_dataset(datasets["raw"]), np.load(out)
    for split in SPLITS:
        drawings = np.split(got[split], got[f"{split}_offsets"][1:-1])
        times = np.split(got[f"{split}_times"], got[f"{split}_offsets"][1:-1])
        for d, s, t, want_t in zip(drawings, ds.splits[split], times, ds.sketch_times(split)):
            np.testing.assert_array_equal(d[:, :2], np.cumsum(s[:, :2], axis=0))
            np.testing.assert_array_equal(d[:, 2], s[:, 2])
            np.testing.assert_array_equal(t, want_t)
        assert got[f"{split}_ids"].tolist() == ds.ids[split].tolist()


def test_points_resampled_to_n_keep_every_stroke_and_its_ends(tmp_path, datasets):
    out = tmp_path / "p.npz"
    ok("export", datasets["raw"], "-o", out, "--format", "points", "--resample", "64", "-q")
    ds, got = load_dataset(datasets["raw"]), np.load(out)
    kept = {k: i for i, k in enumerate(got["train_ids"])}
    checked = 0
    for sketch, key, times in zip(ds.splits["train"], ds.ids["train"], ds.sketch_times("train")):
        strokes = stroke3_to_polylines(sketch)
        if len(strokes) > 64:
            assert key not in kept
            continue
        p, t = got["train"][kept[key]], got["train_times"][kept[key]]
        assert p.shape == (64, 3) and p.dtype == np.float32
        ends = np.flatnonzero(p[:, 2] == 1)
        assert len(ends) == len(strokes) and ends[-1] == 63
        starts = np.r_[0, ends[:-1] + 1]
        stroke_times = np.split(times, np.cumsum([len(s) for s in strokes])[:-1])
        for a, b, stroke, st in zip(starts, ends, strokes, stroke_times):
            np.testing.assert_allclose(p[a, :2], stroke[0], atol=1e-4)
            if b > a:
                np.testing.assert_allclose(p[b, :2], stroke[-1], atol=1e-4)
            assert st.min() <= t[a:b + 1].min() and t[a:b + 1].max() <= st.max()
        checked += 1
    assert checked > 900


def test_bitmap_matches_googles_own_bitmaps(tmp_path):
    fixtures = shared_fixture("numpy_bitmap")
    pytest.importorskip("cairocffi")
    classes = ["bicycle", "cat", "diamond", "eye"]
    files = [shared_data("quickdraw_simplified_ndjson", f"{c}.ndjson") for c in classes]
    data = tmp_path / "four.npz"
    ok("convert", *files, data, "--split", "1/0/0", "--multiple", "1", "-q")
    out = tmp_path / "bm.npz"
    ok("export", data, "-o", out, "--format", "bitmap", "-q")
    got = np.load(out)
    assert got["train"].shape[1:] == (28, 28) and got["train"].dtype == np.uint8
    images = dict(zip(got["train_ids"], got["train"]))
    errors, same = [], []
    for c, f in zip(classes, files):
        google = np.load(fixtures / f"{c}.npy")
        for row, text in enumerate(f.read_text().splitlines()):
            ours = images[json.loads(text)["key_id"]].astype(int).ravel()
            errors.append(np.abs(ours - google[row].astype(int)).mean())
            same.append((ours == google[row]).mean())
    assert len(errors) == 100
    assert np.mean(errors) <= 0.5 and np.mean(same) >= 0.95, (np.mean(errors), np.mean(same))


def test_png_is_an_image_folder_of_the_bitmaps(tmp_path, datasets):
    pytest.importorskip("cairocffi")
    from PIL import Image

    folder, bitmaps = tmp_path / "png", tmp_path / "bm.npz"
    ok("export", datasets["simplified"], "-o", folder, "--format", "png", "--size", "32", "-q")
    ok("export", datasets["simplified"], "-o", bitmaps, "--format", "bitmap", "--size", "32", "-q")
    ds, got = load_dataset(datasets["simplified"]), np.load(bitmaps)
    # torchvision's ImageFolder(root): one class per sub-folder, sorted; every .png in it a sample
    root = folder / "test"
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    assert set(classes) == {ds.classes[i] for i in ds.labels["test"]}
    for i, key in enumerate(ds.ids["test"]):
        image = np.asarray(Image.open(root / ds.classes[ds.labels["test"][i]] / f"{key}.png"))
        np.testing.assert_array_equal(image, got["test"][i])


def test_bad_options_and_outputs_are_refused_before_anything_is_read(tmp_path, datasets, monkeypatch):
    import sketchprep.dataset

    def no_load(*a, **k):
        raise AssertionError("the dataset was read")

    monkeypatch.setattr(sketchprep.dataset, "load_dataset", no_load)
    data = datasets["raw"]
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    cases = [
        (["-o", tmp_path / "a.npz"], 2, "say which with --format"),
        (["-o", tmp_path / "a"], 2, "say which format with --format"),
        (["-o", tmp_path / "a.parquet", "--format", "stroke5"], 2, "writes a .npz file"),
        (["-o", tmp_path / "a.npz", "--format", "svg"], 2, "writes a folder"),
        (["-o", tmp_path / "a.npz", "--format", "points", "--size", "3"], 2, "--size goes with --format bitmap or png"),
        (["-o", tmp_path / "a.npz", "--format", "stroke5", "--max-len", "0"], 2, "--max-len must be"),
        (["-o", tmp_path / "a.npz", "--format", "bitmap", "--size", "100000"], 2, "--size must be"),
        (["-o", tmp_path / "a.npz", "--format", "points", "--resample", "-3"], 2, "--resample must be"),
        (["-o", tmp_path / "a.npz", "--format", "bitmap", "--checkpoint", "latest"], 2, "--checkpoint goes with a RUN"),
        (["-o", tmp_path / "nowhere" / "a.parquet"], 1, "does not exist"),
        (["-o", data, "--format", "points"], 1, "is also an input"),
        (["-o", tmp_path / "full", "--format", "ndjson"], 1, "exists and is not empty"),
        ([], 2, "give -o OUT"),
    ]
    for args, code, words in cases:
        result = run("export", data, *args)
        assert result.exit_code == code and words in result.output, (args, result.output)
        assert "Traceback" not in result.output
    assert sorted(os.listdir(tmp_path)) == ["full"]


def test_run_only_and_data_only_options_stay_apart(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    result = run("export", run_dir, "-o", tmp_path / "m.gen.json", "--format", "parquet")
    assert result.exit_code == 2 and "--format goes with a dataset (DATA.npz)" in result.output


def test_missing_pyarrow_names_the_pip_command(tmp_path, datasets, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now raises ImportError
    result = run("export", datasets["raw"], "-o", tmp_path / "x.parquet")
    assert result.exit_code == 1
    assert "Error: --format parquet needs pyarrow" in result.output and "pip install 'sketchprep[parquet]'" in result.output
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("fmt, out, step", [("ndjson", "nd", "lines"), ("stroke5", "s.npz", "padded"),
                                            ("svg", "svg", "document")])
def test_a_failed_export_leaves_nothing_behind(tmp_path, datasets, monkeypatch, fmt, out, step):
    from importlib import import_module

    module = import_module(f"sketchprep.formats.{fmt}")
    real, calls = getattr(module, step), []

    def fails_later(*a, **k):  # the first block or split is written, then the disk fills up
        calls.append(1)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real(*a, **k)

    monkeypatch.setattr(module, step, fails_later)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(OSError):
        export_dataset(load_dataset(datasets["raw"]), str(out_dir / out), ExportOptions(fmt))
    assert os.listdir(out_dir) == []  # no OUT, no temporary file or folder


def test_format_follows_the_name_only_where_it_is_certain():
    assert format_for("a.parquet", None) == "parquet" and format_for("a.PQ", None) == "parquet"
    assert format_for("out", "svg") == "svg" and format_for("x.npz", "bitmap") == "bitmap"


def test_absolute_points_restart_at_every_sketch():
    rows = np.array([[1, 2, 0], [3, 4, 1], [5, 5, 1], [-1, 0, 1]], dtype=np.int16)
    np.testing.assert_array_equal(absolute_points(rows, np.array([0, 2, 2, 4])),
                                  [[1, 2], [4, 6], [5, 5], [4, 5]])


def test_hostile_words_and_ids_stay_inside_out_and_read_back(tmp_path):
    from sketchprep.dataset import save_dataset

    words = ["..", "a/b", "CON", "x" * 400, "tab\there", "ctl\x01", "Cat", "cat"]
    ids = ["../../escape", ".", "", "a" * 1000, "dup", "dup", "/etc/passwd", "key\x02"]
    sketches = [np.array([[i, i, 0], [3, 4, 1], [1, 1, 1]], np.int16) for i in range(len(words))]
    data = tmp_path / "hostile.npz"
    save_dataset(data, {"train": sketches, "valid": [], "test": []}, ids={"train": ids},
                 labels={"train": np.arange(len(words))}, meta={"classes": words})
    for fmt in ("svg", "png"):
        out = tmp_path / fmt
        ok("export", data, "-o", out, "--format", fmt, "-q")
        files = [f for f in out.rglob("*") if f.is_file()]
        assert len(files) == len(words) and all(out in f.resolve().parents for f in files)
        assert len({str(f).casefold() for f in files}) == len(files)
    back = tmp_path / "back.npz"
    ok("convert", tmp_path / "svg" / "train", back, "--epsilon", "0", "--size", "0", "--split", "1/0/0",
       "--multiple", "1", "-q")
    loaded = load_dataset(back)
    got = by_id(loaded, "train")
    clean = [i.replace("\x02", "\ufffd") for i in ids]
    assert sorted(loaded.ids["train"].tolist()) == sorted(clean)  # both "dup"s come back (their files differ)
    for key, sketch, word in zip(clean, sketches, words):
        if key != "dup":
            np.testing.assert_array_equal(got[key][0], sketch)
            assert got[key][1] == word.replace("\x01", "\ufffd")


@pytest.mark.parametrize("fmt", ["parquet", "ndjson", "svg", "stroke5", "points", "bitmap", "png"])
def test_progress_counts_every_drawing_once(tmp_path, datasets, fmt):
    from sketchprep.formats.export import FORMATS, require

    try:
        require(fmt)
    except Exception as e:  # noqa: BLE001
        pytest.skip(str(e))
    ds = load_dataset(datasets["simplified"])
    seen = []
    out = tmp_path / ("out" + (FORMATS[fmt].suffixes[0] if FORMATS[fmt].suffixes else ""))
    options = {"resample": 16} if fmt == "points" else {}
    summary = export_dataset(ds, str(out), ExportOptions(fmt, **options), progress=seen.append)
    total = sum(len(v) for v in ds.splits.values())
    assert sum(seen) == total == sum(summary.counts.values()) + sum(summary.dropped.values())
