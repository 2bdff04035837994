import gzip
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import orjson
import pytest
from click.testing import CliRunner

from conftest import REPO, SAMPLE, ctrl_c_reaches_child, shared_data
from sketchprep.cli import main
from sketchprep.convert import ConvertOptions, Kept, check_split, dedupe, parse_split, sketch_hashes, split_sizes
from sketchprep.dataset import load_dataset
from sketchprep.errors import OptionError, TooFewDrawingsError
from sketchprep.strokes import stroke3_to_polylines


def run(*args, input=None):
    result = CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)
    return result


def line(key, drawing, word="cat", recognized=True):
    return orjson.dumps({"key_id": key, "word": word, "recognized": recognized, "countrycode": "XX",
                         "timestamp": "2017-03-01 20:41:36.70725 UTC", "drawing": drawing}).decode()


def square(x0, size=40, raw=False):
    xs = [x0, x0 + size, x0 + size, x0, x0]
    ys = [0, 0, size, size, 0]
    return [[xs, ys, list(range(5))]] if raw else [[xs, ys]]


def many_lines(n, raw=False, word="cat"):
    """n distinct simple drawings."""
    return [line(str(1000 + i), square(i, 30 + i % 50, raw=raw) + [[[i % 7], [200]]] * (not raw), word=word)
            for i in range(n)]


def reference_load(path):
    """The reference loader's own call (sketch_rnn_train.py)."""
    return np.load(path, encoding="latin1", allow_pickle=True)


def check_contract(path, max_len=250, multiple=100):
    data = reference_load(path)
    seen = {}
    for split in ("train", "valid", "test"):
        arr = data[split]
        assert arr.dtype == object and arr.ndim == 1
        assert len(arr) % multiple == 0
        for s in arr:
            assert s.dtype == np.int16 and s.ndim == 2 and s.shape[1] == 3
            assert 1 <= len(s) <= max_len
            assert s[-1, 2] == 1
            assert set(np.unique(s[:, 2])) <= {0, 1}
            key = s.tobytes()
            assert seen.setdefault(key, split) == split, "a drawing is in two splits"
        assert len(data[f"{split}_ids"]) == len(arr)
    return data


def test_bundled_sample_converts_to_the_contract(tmp_path):
    out = tmp_path / "sample.npz"
    result = run("convert", str(SAMPLE), str(out), "--multiple", "20")
    assert result.exit_code == 0, result.output
    data = check_contract(out, multiple=20)
    assert [len(data[s]) for s in ("train", "valid", "test")] == [380, 20, 20]
    meta = json.loads(str(data["meta"]))
    assert meta["counts"] == {"train": len(data["train"]), "valid": len(data["valid"]), "test": len(data["test"])}
    assert len(meta["classes"]) == 12 and data["train_labels"].max() < 12
    assert sum(s["read"] for s in meta["sources"]) == meta["read"] == 424
    assert "read 424 drawings from 12 file(s)" in result.output
    # every id traces back to a line of the sample
    ids = {orjson.loads(ln)["key_id"] for f in SAMPLE.glob("*.gz") for ln in gzip.open(f)}
    assert set(data["train_ids"]) <= ids


def test_library_run_writes_what_the_command_writes(tmp_path):
    """`sketchprep.convert.run` (collect -> dedupe -> make_splits -> write_outputs) is the command's pipeline."""
    from sketchprep import convert

    assert run("convert", str(SAMPLE), str(tmp_path / "cli.npz"), "--multiple", "20", "-q").exit_code == 0
    collected, outputs = convert.run([str(SAMPLE)], ConvertOptions(multiple=20), out=str(tmp_path / "lib.npz"))
    assert [p for p, _, _ in outputs] == [str(tmp_path / "lib.npz")] and collected.report.read == 424
    cli, lib = load_dataset(tmp_path / "cli.npz"), load_dataset(tmp_path / "lib.npz")
    for split in ("train", "valid", "test"):
        assert len(lib.splits[split]) == len(cli.splits[split]) > 0
        assert all(np.array_equal(a, b) for a, b in zip(lib.splits[split], cli.splits[split]))
        assert lib.ids[split].tolist() == cli.ids[split].tolist()
        assert lib.labels[split].tolist() == cli.labels[split].tolist()
    assert lib.meta == cli.meta and lib.meta["counts"] == {"train": 380, "valid": 20, "test": 20}


def test_simplified_quickdraw_passes_through_unchanged(tmp_path):
    folder = shared_data("quickdraw_simplified_ndjson")
    out = tmp_path / "s.npz"
    assert run("convert", str(folder), str(out), "-q").exit_code == 0
    data = load_dataset(out)
    kept = {i: s for split in ("train", "valid", "test") for i, s in zip(data.ids[split], data.splits[split])}
    assert len(kept) >= 4000
    compared = 0
    for f in folder.glob("*.ndjson"):
        for raw_line in open(f, "rb"):
            rec = orjson.loads(raw_line)
            if str(rec["key_id"]) not in kept:
                continue
            ours = stroke3_to_polylines(kept[str(rec["key_id"])])
            theirs = [np.array(s[:2], dtype=float).T for s in rec["drawing"]]
            assert len(ours) == len(theirs)
            for a, b in zip(ours, theirs):
                np.testing.assert_array_equal(a, b)
            compared += 1
    assert compared == len(kept)


def test_raw_quickdraw_is_normalised_and_simplified(tmp_path):
    out = tmp_path / "raw.npz"
    common = ["--split", "1/0/0", "--multiple", "1", "--max-len", "100000", "-q"]
    assert run("convert", str(SAMPLE), str(out), *common).exit_code == 0
    assert run("convert", str(SAMPLE), str(tmp_path / "eps0.npz"), *common, "--epsilon", "0").exit_code == 0
    simplified, full = load_dataset(out), load_dataset(tmp_path / "eps0.npz")
    lengths = {}
    for s, i in zip(full.splits["train"], full.ids["train"]):
        pts = np.cumsum(s[:, :2].astype(int), axis=0)
        assert pts.min(axis=0).tolist() == [0, 0] and pts.max() == 255  # aligned, larger extent scaled to 255
        lengths[i] = len(s)
    for s, i in zip(simplified.splits["train"], simplified.ids["train"]):
        pts = np.cumsum(s[:, :2].astype(int), axis=0)
        assert pts.min() >= 0 and pts.max() <= 255
        assert len(s) < lengths[i]
    # --epsilon 0 keeps the raw points as they are (no 1-unit resampling): simplifying keeps about a quarter
    assert np.mean([len(s) for s in simplified.splits["train"]]) < 0.35 * np.mean(list(lengths.values()))


MALFORMED = [
    ("malformed_json", '{"key_id": "1", "drawing": [[[1, 2], [3, 4]]'),
    ("bad_drawing", line("2", [[[1, 2], [3]]])),
    ("bad_drawing", line("3", [[[1, "a"], [3, 4]]])),
    ("bad_drawing", line("4", [[[[1, 2]], [3, 4]]])),
    ("bad_drawing", line("5", [[[1, 2]]])),
    ("bad_drawing", line("6", "not a list")),
    ("empty_drawing", line("7", [])),
    ("empty_drawing", line("8", [[[], []]])),
    ("absurd_coordinate", line("9", [[[1, 1e300], [3, 4]]])),
    ("bad_drawing", '["a list", "not an object"]'),
]


@pytest.mark.parametrize("reason,bad", MALFORMED, ids=[f"{r}-{i}" for i, (r, _) in enumerate(MALFORMED)])
def test_malformed_line_is_counted_with_file_and_line(tmp_path, reason, bad):
    src = tmp_path / "in.ndjson"
    good = many_lines(3)
    src.write_text("\n".join([good[0], good[1], bad, good[2]]))
    out = tmp_path / "out.npz"
    result = run("convert", str(src), str(out), "--multiple", "1", "--split", "1/0/0", "--json")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["outputs"][0]["dropped"] == {reason: 1}
    assert report["outputs"][0]["counts"]["train"] == 3
    assert report["problems"][0].startswith(f"{src}:3: ")
    strict_out = tmp_path / "strict.npz"
    strict = CliRunner().invoke(main, ["convert", str(src), str(strict_out), "--strict"])
    assert strict.exit_code == 1
    assert f"Error: {src}:3: " in strict.output
    assert not strict_out.exists()


def test_nan_and_huge_numbers_are_counted(tmp_path):
    src = tmp_path / "in.ndjson"
    lines = many_lines(2)
    lines.append('{"key_id": "x", "word": "cat", "drawing": [[[1, NaN], [3, 4]]]}')  # NaN is not JSON
    lines.append('{"key_id": "y", "word": "cat", "drawing": [[[1, 123456789012345678901234567890], [3, 4]]]}')
    lines.append('{"key_id": "z", "word": "cat", "drawing": [[[1, 1e400], [3, 4]]]}')  # infinite as a double
    src.write_text("\n".join(lines) + "\n")
    result = run("convert", str(src), str(tmp_path / "o.npz"), "--multiple", "1", "--split", "1/0/0", "--json")
    report = json.loads(result.output)
    assert report["outputs"][0]["dropped"] == {"malformed_json": 2, "absurd_coordinate": 1}
    assert [p.split(": ")[0] for p in report["problems"]] == [f"{src}:3", f"{src}:4", f"{src}:5"]


def test_stdin_gzip_integer_key_ids_and_missing_final_newline(tmp_path):
    lines = many_lines(4)
    lines[0] = line(18446744073709551615, square(3))  # the largest 64-bit key_id, as a JSON integer
    text = "\n".join(lines)  # no final newline
    gz = tmp_path / "cats.ndjson.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    for args, inp in (([str(gz)], None), (["-"], text)):
        out = tmp_path / "o.npz"
        result = run("convert", *args, str(out), "--multiple", "1", "--split", "1/0/0", input=inp)
        assert result.exit_code == 0, result.output
        data = load_dataset(out)
        assert sorted(data.ids["train"]) == sorted(["18446744073709551615", "1001", "1002", "1003"])


def test_word_and_recognized_filters(tmp_path):
    src = tmp_path / "in.ndjson"
    lines = many_lines(4, word="cat") + many_lines(3, word="dog")
    lines.append(line("99", square(9), word="cat", recognized=False))
    src.write_text("\n".join(lines))
    result = run("convert", str(src), str(tmp_path / "o.npz"), "--word", "cat", "--recognized-only",
                 "--multiple", "1", "--split", "1/0/0", "--json")
    report = json.loads(result.output)["outputs"][0]
    assert report["counts"]["train"] == 4
    assert report["filtered"] == {"other_word": 3, "unrecognized": 1}


def test_duplicates_are_dropped_and_splits_disjoint(tmp_path):
    src = tmp_path / "in.ndjson"
    lines = many_lines(300)
    lines += [line("dup" + str(i), orjson.loads(lines[i])["drawing"]) for i in range(50)]
    src.write_text("\n".join(lines))
    out = tmp_path / "o.npz"
    result = run("convert", str(src), str(out), "--json", "--multiple", "10")
    report = json.loads(result.output)["outputs"][0]
    assert report["dropped"]["duplicate"] == 50
    data = check_contract(out, multiple=10)
    ids = np.concatenate([data["train_ids"], data["valid_ids"], data["test_ids"]])
    assert not any(i.startswith("dup") for i in ids)  # the first occurrence in the input is the one kept


def test_output_does_not_depend_on_input_order_or_workers(tmp_path):
    lines = many_lines(500)
    a, b = tmp_path / "a.ndjson", tmp_path / "b.ndjson"
    a.write_text("\n".join(lines))
    b.write_text("\n".join(lines[::-1]))
    assert run("convert", str(a), str(tmp_path / "a.npz"), "-q", "--multiple", "5").exit_code == 0
    assert run("convert", str(b), str(tmp_path / "b.npz"), "-q", "--multiple", "5", "--workers", "2").exit_code == 0
    da, db = load_dataset(tmp_path / "a.npz"), load_dataset(tmp_path / "b.npz")
    for split in ("train", "valid", "test"):
        assert da.ids[split].tolist() == db.ids[split].tolist()
    assert run("convert", str(a), str(tmp_path / "c.npz"), "-q", "--multiple", "5", "--seed", "1").exit_code == 0
    assert load_dataset(tmp_path / "c.npz").ids["train"].tolist() != da.ids["train"].tolist()


def test_max_len_drop_and_fit(tmp_path):
    src = tmp_path / "in.ndjson"
    t = np.linspace(0, 2 * np.pi, 400)
    wiggle = [[(100 + 100 * np.cos(t) + 5 * np.sin(40 * t)).tolist(), (100 + 100 * np.sin(t)).tolist(), list(range(400))]]
    src.write_text("\n".join(many_lines(5) + [line("long", wiggle)]))
    common = ["--multiple", "1", "--split", "1/0/0", "--max-len", "60", "--json"]
    dropped = json.loads(run("convert", str(src), str(tmp_path / "o.npz"), *common).output)["outputs"][0]
    assert dropped["dropped"] == {"too_long": 1}
    fitted = json.loads(run("convert", str(src), str(tmp_path / "f.npz"), *common, "--fit").output)["outputs"][0]
    assert fitted["dropped"] == {} and fitted["fitted"] == 1 and fitted["counts"]["train"] == 6
    assert max(len(s) for s in load_dataset(tmp_path / "f.npz").splits["train"]) <= 60


def test_by_word_writes_one_file_per_class(tmp_path):
    src = tmp_path / "in.ndjson"
    src.write_text("\n".join(many_lines(200, word="cat") + [x.replace("10", "20", 1) for x in many_lines(100, word="dog")]))
    out_dir = tmp_path / "per_class"
    result = run("convert", str(src), "--by-word", str(out_dir), "--split", "0.8/0.1/0.1", "--multiple", "10")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out_dir.iterdir()) == ["cat.npz", "dog.npz"]
    cat = load_dataset(out_dir / "cat.npz")
    assert [len(cat.splits[s]) for s in ("train", "valid", "test")] == [160, 20, 20]
    assert cat.labels == {} and cat.meta["word"] == "cat"


def test_split_sizes_round_down_never_up():
    # valid and test: their share rounded down to a multiple; train: the rest, rounded down
    assert split_sizes(424, (0.9, 0.05, 0.05), 100) == (400, 0, 0)  # check_split refuses this one
    assert split_sizes(424, (0.9, 0.05, 0.05), 20) == (380, 20, 20)
    assert split_sizes(375, (0.9, 0.05, 0.05), 1) == (339, 18, 18)
    assert split_sizes(10000, (0.9, 0.05, 0.05), 100) == (9000, 500, 500)
    assert split_sizes(3900, (0.9, 0.05, 0.05), 100) == (3700, 100, 100)
    assert split_sizes(75000, (70000, 2500, 2500), 100) == (70000, 2500, 2500)
    assert split_sizes(80000, (70000, 2500, 2500), 100) == (70000, 2500, 2500)
    assert split_sizes(10000, (70000, 2500, 2500), 100) == (5000, 2500, 2500)
    assert split_sizes(1234, (1, 0, 0), 100) == (1200, 0, 0)
    assert split_sizes(1234, (1, 0, 0), 1) == (1234, 0, 0)
    assert split_sizes(1234, (0.9, 0.05, 0.05), 1) == (1112, 61, 61)
    assert split_sizes(25, (0.9, 0.05, 0.05), 1) == (23, 1, 1)
    assert split_sizes(50, (0.9, 0.05, 0.05), 100) == (0, 0, 0)
    for n in range(1, 400):
        for m in (1, 7, 20):
            sizes = split_sizes(n, (0.8, 0.1, 0.1), m)
            assert all(x % m == 0 for x in sizes) and sum(sizes) <= n
            assert sizes[1] <= n * 0.1 and sizes[2] <= n * 0.1  # never raised
            assert n - sum(sizes) < 3 * m  # what rounding drops is under a multiple per split


def test_check_split_names_the_fix():
    with pytest.raises(TooFewDrawingsError, match=r"Use --multiple 1 \(keeps all 25: train 23, valid 1, test 1\)"):
        check_split(25, (0.9, 0.05, 0.05), 100)
    with pytest.raises(TooFewDrawingsError, match=r"--multiple 20 \(keeps 420.*--multiple 1 \(keeps all 424"):
        check_split(424, (0.9, 0.05, 0.05), 100)
    with pytest.raises(TooFewDrawingsError, match="2500 valid \\+ 2500 test.*--split 950/25/25 --multiple 25"):
        check_split(1000, (70000, 2500, 2500), 100)
    with pytest.raises(TooFewDrawingsError, match="--split 8/1/1 --multiple 1"):
        check_split(10, (0.9, 0.05, 0.05), 100)
    with pytest.raises(TooFewDrawingsError, match="--split 1/0/0 --multiple 1"):
        check_split(2, (0.9, 0.05, 0.05), 1)
    check_split(3900, (0.9, 0.05, 0.05), 100)
    check_split(7, (1, 0, 0), 1)
    for n in (3, 25, 424, 999):  # every suggested fix works
        for split, m in (((0.9, 0.05, 0.05), 100), ((0.8, 0.1, 0.1), 50), ((7000, 250, 250), 50)):
            try:
                check_split(n, split, m)
            except TooFewDrawingsError as e:
                fix = str(e).split(". Use ")[1]
                words = fix.split()
                m2 = int(words[words.index("--multiple") + 1].rstrip(","))
                s2 = parse_split(words[words.index("--split") + 1]) if "--split" in words[:3] else split
                check_split(n, s2, m2)


def test_summary_says_when_rounding_moved_a_split_far_from_what_was_asked(tmp_path):
    src = tmp_path / "in.ndjson"
    src.write_text("\n".join(many_lines(39)))
    result = run("convert", str(src), str(tmp_path / "o.npz"), "--multiple", "1")
    assert result.exit_code == 0, result.output
    assert "wrote " + str(tmp_path / "o.npz") + ": train 37, valid 1, test 1" in result.output
    assert "valid: asked 5.0%, written 2.6% (1 of 39)" in result.output
    meta = load_dataset(tmp_path / "o.npz").meta
    assert meta["split_notes"] == ["valid: asked 5.0%, written 2.6% (1 of 39)", "test: asked 5.0%, written 2.6% (1 of 39)"]
    assert meta["split_shares"]["asked"]["valid"] == pytest.approx(0.05)
    assert meta["split_shares"]["written"]["train"] == pytest.approx(37 / 39)
    quiet = run("convert", str(src), str(tmp_path / "p.npz"), "--multiple", "1", "--split", "0.5/0.25/0.25")
    assert "asked" not in quiet.output  # 21/9/9 of 39: close to what was asked


def test_split_counts_are_checked_before_reading():
    with pytest.raises(OptionError, match="multiples"):
        ConvertOptions(split=(70000, 2550, 2500), multiple=100)
    with pytest.raises(OptionError, match="--split train must be a whole number from 0 to 1000000000, not 7000.5"):
        ConvertOptions(split=(7000.5, 2500, 2500), multiple=1)
    with pytest.raises(OptionError, match="--split valid must be 0 or a number from 0.000001 to 1"):
        ConvertOptions(split=(1, 1e-320, 0))      # a subnormal share overflowed the split sizes
    with pytest.raises(OptionError, match="--epsilon must be a number from 0 to 1000000, not nan"):
        ConvertOptions(epsilon=float("nan"))      # NaN passes every one-sided check


def test_usage_errors(tmp_path):
    src = tmp_path / "in.ndjson"
    src.write_text("\n".join(many_lines(3)))
    assert CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "o.txt")]).exit_code == 2
    assert CliRunner().invoke(main, ["convert", str(src)]).exit_code == 2
    assert CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "o.npz"), "--split", "1/2"]).exit_code == 2
    missing = CliRunner().invoke(main, ["convert", str(tmp_path / "nope.ndjson"), str(tmp_path / "o.npz")])
    assert missing.exit_code == 1 and "nope.ndjson: no such file or directory" in missing.output
    with pytest.raises(OptionError):
        ConvertOptions(epsilon=-1)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_convert_leaves_existing_output_intact(tmp_path, sig):
    """A run killed midway (here: while it waits for more input on stdin) leaves OUT as it was."""
    out = tmp_path / "out.npz"
    out.write_bytes(b"previous contents")
    proc = subprocess.Popen([sys.executable, "-m", "sketchprep", "convert", "-", str(out), "-q"], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=ctrl_c_reaches_child)
    proc.stdin.write(("\n".join(many_lines(3000)) + "\n").encode())
    proc.stdin.flush()
    time.sleep(1.0)
    assert proc.poll() is None
    proc.send_signal(sig)
    proc.communicate()
    assert proc.returncode != 0
    assert out.read_bytes() == b"previous contents"
    assert os.listdir(tmp_path) == ["out.npz"]


def test_help_runs_without_torch(tmp_path):
    """`sketchprep --help` and `convert` must not import torch (it is an optional extra)."""
    code = ("import sys; sys.modules['torch'] = None\n"
            "from sketchprep.cli import main\n"
            f"main(['convert', {str(SAMPLE)!r}, {str(tmp_path / 'x.npz')!r}, '-q', '--multiple', '1'], "
            "standalone_mode=False)\n"
            "main(['--help'])\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "convert" in result.stdout
    assert (tmp_path / "x.npz").exists()


def test_dedupe_keeps_the_earliest_and_survives_hash_collisions():
    sketches = [np.array([[1, 2, 1]]), np.array([[1, 2, 0], [3, 4, 1]]), np.array([[1, 2, 1]]), np.array([[9, 9, 1]])]
    rows = np.concatenate(sketches).astype(np.int16)
    offsets = np.cumsum([0] + [len(s) for s in sketches])
    order = np.array([30, 10, 20, 40])
    kept = Kept(rows, offsets, np.array(list("abcd")), np.array(["x"] * 4), order, sketch_hashes(rows, offsets))
    out, n = dedupe(kept)
    assert n == 1 and out.ids.tolist() == ["b", "c", "d"]  # "a" (order 30) repeats "c" (order 20)
    collided = Kept(rows, offsets, kept.ids, kept.labels, order, np.zeros(4, np.uint64))  # every hash equal
    out, n = dedupe(collided)
    assert n == 1 and out.ids.tolist() == ["b", "c", "d"]
    assert len(set(sketch_hashes(rows, offsets).tolist())) == 3
