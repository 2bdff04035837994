"""The end of `convert` (spill, dedupe, split, writing): the same bytes for any number of workers, the same
dataset as the in-memory pipeline, and a spill that gives back exactly what it was given."""
from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest

from sketchprep import convert
from sketchprep.convert import ConvertOptions, Kept, Spill, collect, make_splits, sketch_hashes
from sketchprep.dataset import save_dataset
from sketchprep.formats import npz

from test_convert import line, many_lines, square  # noqa: F401


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of a few hundred sketches (and of 2 KB of ids), so that a small input is cut into many; the
    sizes are not multiples of pickle's batches of 1000."""
    monkeypatch.setattr(npz, "SKETCHES_PER_PIECE", 300)
    monkeypatch.setattr(npz, "BYTES_PER_PIECE", 2048)


@pytest.fixture
def inputs(tmp_path):
    """Three words over two files, with duplicates within and across the files."""
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    drawings = many_lines(3600)
    cats, dogs, owls = drawings[:1500], [d.replace('"cat"', '"dog"') for d in drawings[1500:2700]], \
        [d.replace('"cat"', '"owl"') for d in drawings[2700:]]
    a.write_text("\n".join(cats + dogs[:600] + cats[:40]) + "\n")
    b.write_text("\n".join(owls + dogs[600:] + dogs[:25] + [line("x", square(3), word="owl")]) + "\n")
    return [str(a), str(b)]


def test_one_and_two_workers_write_the_same_bytes(tmp_path, inputs, small_pieces):
    for by_word in (False, True):
        written = {}
        for workers in (1, 2):
            out = tmp_path / f"w{workers}-{by_word}"
            opts = ConvertOptions(workers=workers, multiple=10)
            if by_word:
                convert.run(inputs, opts, by_word=str(out))
                written[workers] = {p: (out / p).read_bytes() for p in sorted(os.listdir(out))}
            else:
                convert.run(inputs, opts, out=str(out) + ".npz")
                written[workers] = (tmp_path / f"{out.name}.npz").read_bytes()
        assert written[1] == written[2]
    assert sorted(written[1]) == ["cat.npz", "dog.npz", "owl.npz"]


def test_streamed_file_is_the_in_memory_pipelines_file(tmp_path, inputs, small_pieces):
    """What the end writes from a spill, in pieces, is byte for byte what `make_splits` + `save_dataset`
    write from everything in memory (the pipeline before the end streamed)."""
    opts = ConvertOptions(workers=2, multiple=10, seed=7)
    collected, [(path, summary, meta)] = convert.run(inputs, opts, out=str(tmp_path / "streamed.npz"))
    result = make_splits(collect(inputs, opts).kept, opts, None)
    save_dataset(tmp_path / "memory.npz", result.splits, ids=result.ids, labels=result.labels, meta=meta)
    assert (tmp_path / "streamed.npz").read_bytes() == (tmp_path / "memory.npz").read_bytes()
    assert summary.counts == result.counts and summary.duplicates == result.duplicates == 65
    assert summary.classes == ["cat", "dog", "owl"]
    assert len(zipfile.ZipFile(path).read("train.npy")) > 5 * 300 * 100  # several pieces


def test_spill_gives_back_every_sketch_and_key(tmp_path):
    rng = np.random.default_rng(0)
    chunks = []
    for c in range(5):
        lengths = rng.integers(1, 30, 40)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rows = rng.integers(-50, 50, (offsets[-1], 3)).astype(np.int16)
        labels = np.array(rng.choice(["ant", "bee", "cow"], 40) if c != 2 else ["bee"] * 40)
        ids = np.array([f"{c}-{i}" if c != 3 else f"\u00e9t\u00e9{i}" for i in range(40)])  # one chunk not ASCII
        chunks.append(Kept(rows, offsets, ids, labels, np.arange(40) + 100 * c, sketch_hashes(rows, offsets)))
    whole = Kept.concat(chunks)
    for on_disk, by_label in ((True, True), (True, False), (False, False)):
        with Spill(tmp_path / "out.npz", by_label=by_label, on_disk=on_disk) as spill:
            for k in chunks:
                spill.add(k)
            reader = spill.reader()
            assert spill.n == 200 and spill.id_width == whole.ids.dtype.itemsize // 4
            keys, rows, _ = reader.load()
            order = np.argsort(keys.order)
            np.testing.assert_array_equal(keys.order[order], whole.order)
            np.testing.assert_array_equal(keys.hashes[order], whole.hashes)
            assert keys.ids[order].astype(str).tolist() == whole.ids.tolist()
            for i, j in enumerate(order):
                np.testing.assert_array_equal(rows[keys.row_starts[j]:][:keys.lengths[j]], whole.sketch(i))
            for code, name in enumerate(reader.classes):  # one class alone
                keys, rows, _ = reader.load(code)
                mine = np.flatnonzero(whole.labels == name)
                np.testing.assert_array_equal(keys.order, whole.order[mine])
                assert len(rows) == sum(len(whole.sketch(i)) for i in mine)
                for k, i in enumerate(mine):
                    np.testing.assert_array_equal(rows[keys.row_starts[k]:][:keys.lengths[k]], whole.sketch(i))
        assert os.listdir(tmp_path) == []  # nothing left beside the output


@pytest.fixture
def timed_inputs():
    """Drawings without times (simplified) first, then raw ones with times: the spill starts its times late."""
    from conftest import shared_data

    simplified = sorted(shared_data("quickdraw_simplified_ndjson").glob("*.ndjson"))[:2]
    return [str(p) for p in simplified] + [str(shared_data("quickdraw_raw_ndjson"))]


def test_keep_time_one_and_two_workers_write_the_in_memory_pipelines_bytes(tmp_path, timed_inputs, small_pieces):
    """--keep-time through the spill: OUT.npz and every --by-word file are the same bytes for 1 and 2 workers,
    and what make_splits + save_dataset write from everything in memory, `<split>_times` included."""
    from sketchprep.dataset import load_dataset

    written = {}
    for workers in (1, 2):
        opts = ConvertOptions(workers=workers, multiple=1, seed=3, keep_time=True, split=(0.6, 0.2, 0.2))
        collected, [(_, _, meta)] = convert.run(timed_inputs, opts, out=str(tmp_path / f"w{workers}.npz"))
        _, words = convert.run(timed_inputs, opts, by_word=str(tmp_path / f"words{workers}"))
        written[workers] = (tmp_path / f"w{workers}.npz").read_bytes(), \
            {name: (tmp_path / f"words{workers}" / name).read_bytes() for name in sorted(os.listdir(tmp_path / f"words{workers}"))}
    assert written[1] == written[2] and len(written[1][1]) > 10

    kept = collect(timed_inputs, opts).kept
    assert kept.times is not None and np.isnan(kept.times).any() and np.isfinite(kept.times).any()
    result = make_splits(kept, opts, None)
    save_dataset(tmp_path / "memory.npz", result.splits, ids=result.ids, labels=result.labels, meta=meta,
                 times=result.times)
    assert (tmp_path / "memory.npz").read_bytes() == written[1][0]
    ds = load_dataset(tmp_path / "w1.npz")
    assert set(ds.times) == {"train", "valid", "test"}
    assert all(len(ds.times[s]) == sum(len(x) for x in ds.splits[s]) for s in ds.times)

    for path, summary, word_meta in words:  # each word's file: its own drawings split in memory
        word = word_meta["word"]
        mine = np.flatnonzero(kept.labels == word)
        part = make_splits(kept.take(mine), opts, None, f" of word {word!r}")
        save_dataset(tmp_path / "word.npz", part.splits, ids=part.ids, meta=word_meta, times=part.times)
        assert (tmp_path / "word.npz").read_bytes() == written[2][1][os.path.basename(path)], word


def test_spill_gives_back_times_with_nan_for_sketches_without(tmp_path):
    rng = np.random.default_rng(1)
    chunks = []
    for c in range(4):
        lengths = rng.integers(1, 20, 30)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        rows = rng.integers(-50, 50, (offsets[-1], 3)).astype(np.int16)
        labels = np.array(rng.choice(["ant", "bee"], 30))
        times = None if c in (0, 2) else rng.random(offsets[-1]) * 1000  # the first chunk has none
        chunks.append(Kept(rows, offsets, np.array([f"{c}-{i}" for i in range(30)]), labels, np.arange(30) + 100 * c,
                           sketch_hashes(rows, offsets), times))
    whole = Kept.concat(chunks)
    for on_disk, by_label in ((True, True), (True, False), (False, False)):
        with Spill(tmp_path / "out.npz", by_label=by_label, on_disk=on_disk) as spill:
            for k in chunks:
                spill.add(k)
            reader = spill.reader()
            keys, rows, times = reader.load()
            for j in range(keys.n):
                i = int(np.flatnonzero(whole.order == keys.order[j])[0])
                a, b = whole.row_offsets[i], whole.row_offsets[i + 1]
                np.testing.assert_array_equal(times[keys.row_starts[j]:][:keys.lengths[j]], whole.times[a:b])
            for code, name in enumerate(reader.classes):
                keys, rows, times = reader.load(code)
                mine = np.flatnonzero(whole.labels == name)
                np.testing.assert_array_equal(keys.order, whole.order[mine])
                np.testing.assert_array_equal(times, whole.take(mine).times)
    with Spill(tmp_path / "out.npz") as spill:  # no times at all: none given back
        spill.add(chunks[0])
        assert spill.reader().load()[2] is None
