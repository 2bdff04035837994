"""Hostile files and names: what is not a regular file, link cycles under `**`, floods of tiny items,
names that would forge messages, and inputs changed while they are read.

Each case runs `python -m sketchprep` in a subprocess (tests/hostile.py): the exit code, one `Error:` line
naming the file, no traceback, bounded time and memory, nothing changed or left behind. FIFOs would make a
reader that waits on them hang: the time bound is what catches that.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import zipfile

import numpy as np
import orjson
import pytest
from hostile import ROOT, run_case

from sketchprep.convert import ConvertOptions, collect
from sketchprep.dataset import load_dataset, read_npz, sketch_array
from sketchprep.errors import DatasetFormatError, InputError, shown
from sketchprep.files import NotRegularFileError, glob_paths, open_regular, read_bytes

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and device links are POSIX")

SAMPLE = ROOT / "sketchprep" / "data" / "quickdraw_sample"
SLOW = 30.0  # commands that import torch: seconds on a loaded machine


def raw_lines(n: int, start: int = 0, word: str = "cat") -> bytes:
    return b"".join(orjson.dumps({"key_id": str(start + i), "word": word, "recognized": True,
                                  "drawing": [[[0, 10 + i % 50, 20, 30 + i % 7], [0, 15, 5 + i % 11, 30]],
                                              [[5, 25], [5, 25 + i % 13]]]}) + b"\n" for i in range(n))


def good_npz(path, n: int = 30) -> None:
    rng = np.random.default_rng(0)
    sketches = [np.column_stack([rng.integers(-20, 20, (5, 2)), [0, 0, 1, 0, 1]]).astype(np.int16) for _ in range(n)]
    np.savez_compressed(path, train=sketch_array(sketches), valid=sketch_array(sketches[:5]),
                        test=sketch_array(sketches[:5]))


def fifo(folder, name: str) -> str:
    os.mkfifo(folder / name)
    return name


def link(folder, name: str, target: str) -> str:
    os.symlink(target, folder / name)
    return name


# ---------------------------------------------------------------------------------------------------
# 1. Files that are not regular files: refused by name before a byte is read, never waited on


@pytest.mark.parametrize("args", [["validate", "x.npz"], ["stats", "x.npz"], ["render", "x.npz", "-o", "g.svg"],
                                  ["merge", "x.npz", "out.npz"]], ids=lambda a: a[0])
@pytest.mark.parametrize("make", ["fifo", "zero", "urandom"])
def test_npz_that_is_not_a_file(tmp_path, args, make):
    {"fifo": lambda: fifo(tmp_path, "x.npz"), "zero": lambda: link(tmp_path, "x.npz", "/dev/zero"),
     "urandom": lambda: link(tmp_path, "x.npz", "/dev/urandom")}[make]()
    kind = "a FIFO" if make == "fifo" else "a character device"
    out = run_case(tmp_path, args, max_seconds=8, max_mb=300)
    said = out.stdout + out.stderr  # validate lists what it found on stdout; its verdict is the Error line
    assert f"not a regular file ({kind}" in said and "x.npz" in out.error_lines[0], said


@pytest.mark.parametrize("name", ["in.ndjson", "in.ndjson.gz", "in.bin", "in.svg"])
@pytest.mark.parametrize("command", ["convert", "stats", "render"])
def test_drawing_input_that_is_not_a_file(tmp_path, name, command):
    (tmp_path / "good.ndjson").write_bytes(raw_lines(3))
    fifo(tmp_path, name)
    args = {"convert": ["convert", "good.ndjson", name, "out.npz"], "stats": ["stats", "good.ndjson", name],
            "render": ["render", "good.ndjson", name, "-o", "g.svg"]}[command]
    out = run_case(tmp_path, args, message="not a regular file (a FIFO)", max_seconds=8, max_mb=300)
    assert name in out.error_lines[0]


def test_device_link_as_drawing_input(tmp_path):
    link(tmp_path, "zero.ndjson", "/dev/zero")
    link(tmp_path, "noise.svg", "/dev/urandom")
    for name in ("zero.ndjson", "noise.svg"):
        out = run_case(tmp_path, ["convert", name, "out.npz"], message="a character device, through a link to /dev/",
                       max_seconds=8, max_mb=300)
        assert "does not exist" not in out.stderr and "no such file" not in out.stderr.lower()


def test_folder_and_glob_skip_what_is_not_a_file(tmp_path):
    """A folder or a pattern reads regular files only (a FIFO or a device link in it is not a drawing file)."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "good.ndjson").write_bytes(raw_lines(4))
    fifo(d, "pipe.ndjson")
    link(d, "zero.ndjson", "/dev/zero")
    for inputs in (["d"], ["d/*.ndjson"]):
        out = run_case(tmp_path, ["convert", *inputs, "out.npz", "--split", "1/0/0", "--multiple", "1"], rc=0,
                       creates=("out.npz",),
                       max_seconds=10, max_mb=400)
        assert "4 drawings" in out.stdout, out.stdout
        (tmp_path / "out.npz").unlink()


@pytest.mark.parametrize("make", ["fifo", "urandom"])
def test_recipe_that_is_not_a_file(tmp_path, make):
    fifo(tmp_path, "r.toml") if make == "fifo" else link(tmp_path, "r.toml", "/dev/urandom")
    run_case(tmp_path, ["pipeline", "run", "r.toml"], message="not a regular file", max_seconds=8, max_mb=300)


def test_recipe_over_the_bound_is_refused_unread(tmp_path):
    (tmp_path / "r.toml").write_bytes(b"# " + b"x" * (2 << 20) + b"\n")
    run_case(tmp_path, ["pipeline", "run", "r.toml"], message="too large for a recipe", max_seconds=8, max_mb=300)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A tiny trained run and its dataset (the `browser` preset at 16 units, 4 steps)."""
    pytest.importorskip("torch")
    from sketchrnn.model import HParams
    from sketchrnn.presets import read_preset
    from sketchrnn.train import train

    base = tmp_path_factory.mktemp("run")
    good_npz(base / "data.npz", 60)
    hps = HParams.from_dict({**read_preset("browser"), "dec_rnn_size": 16, "batch_size": 10, "save_every": 4})
    train([str(base / "data.npz")], base / "run", hps, max_steps=4, samples=0)
    return base


def _copy_run(run_folder, tmp_path):
    shutil.copy(run_folder / "data.npz", tmp_path / "data.npz")
    shutil.copytree(run_folder / "run", tmp_path / "run")


@pytest.mark.parametrize("args, message", [
    (["train", "x.npz", "--out", "r", "--max-steps", "1"], "x.npz: not a regular file (a FIFO)"),
    (["train", "data.npz", "--out", "r", "--preset", "p.json", "--max-steps", "1"], "--preset p.json: not a regular file"),
    (["sample", "x.npz", "-o", "s.svg"], "x.npz: not a regular file (a FIFO). Give a checkpoint file"),
    (["import", "x.json", "--out", "imported"], "x.json: not a regular file (a FIFO)"),
], ids=["train-data", "preset", "sample-checkpoint", "import-js"])
def test_model_files_that_are_not_files(tmp_path, run_folder, args, message):
    _copy_run(run_folder, tmp_path)
    for name in ("x.npz", "p.json", "x.json"):
        fifo(tmp_path, name)
    run_case(tmp_path, args, rc=2 if "--preset" in args else 1, message=message, max_seconds=SLOW, max_mb=1500)


@pytest.mark.parametrize("name", ["latest.pt", "metrics.jsonl"])
def test_resume_with_a_fifo_in_the_run(tmp_path, run_folder, name):
    _copy_run(run_folder, tmp_path)
    (tmp_path / "run" / name).unlink()
    fifo(tmp_path / "run", name)
    run_case(tmp_path, ["train", "data.npz", "--out", "run", "--resume", "--max-steps", "8"],
             message=f"{name}: not a regular file (a FIFO)", max_seconds=SLOW, max_mb=1500)


def test_plot_with_a_fifo_for_metrics(tmp_path, run_folder):
    _copy_run(run_folder, tmp_path)
    (tmp_path / "run" / "metrics.jsonl").unlink()
    fifo(tmp_path / "run", "metrics.jsonl")
    run_case(tmp_path, ["plot", "run", "-o", "p.svg"], message="metrics.jsonl: not a regular file (a FIFO)",
             max_seconds=SLOW, max_mb=1000)


@pytest.mark.parametrize("name", ["model_config.json", "vector-1234.index", "vector-1234.data-00000-of-00001"])
def test_tf_model_files_that_are_not_files(tmp_path, name):
    pytest.importorskip("torch")
    from conftest import shared_fixture

    shutil.copytree(shared_fixture("tf_checkpoints", "u_lstm"), tmp_path / "model")
    (tmp_path / "model" / name).chmod(0o644)
    (tmp_path / "model" / name).unlink()
    link(tmp_path / "model", name, "/dev/zero")
    out = run_case(tmp_path, ["import", "model", "--out", "run"], message="not a regular file (a character device",
                   max_seconds=SLOW, max_mb=1500)
    assert name in out.error_lines[0]


def test_library_readers_refuse_fifos_without_blocking(tmp_path):
    from sketchprep.download import _cached
    from sketchprep.pipeline import _read_state

    fifo(tmp_path, "p")
    with pytest.raises(NotRegularFileError, match=r"not a regular file \(a FIFO\)"):
        open_regular(tmp_path / "p")
    with pytest.raises(IsADirectoryError):
        open_regular(tmp_path)
    with socket.socket(socket.AF_UNIX) as server:  # a socket cannot be opened at all: still named for what it is
        server.bind(str(tmp_path / "sock"))
        with pytest.raises(NotRegularFileError, match=r"not a regular file \(a socket\)"):
            open_regular(tmp_path / "sock")
    with pytest.raises(DatasetFormatError, match="not a regular file"):
        load_dataset(tmp_path / "p")
    assert _read_state(tmp_path / "p") == {}  # a damaged pipeline state only means every step runs again
    fifo(tmp_path, "cat.ndjson.json")  # the download record of cat.ndjson
    (tmp_path / "cat.ndjson").write_bytes(b"{}")
    assert _cached("cat", "http://x/cat.ndjson", tmp_path / "cat.ndjson") is None


def test_read_bytes_bounds(tmp_path):
    (tmp_path / "f").write_bytes(b"x" * 100)
    assert read_bytes(tmp_path / "f", "a test file", 100) == b"x" * 100
    with pytest.raises(InputError, match=r"100 bytes is too large for a test file \(at most 99 bytes\)"):
        read_bytes(tmp_path / "f", "a test file", 99)


# ---------------------------------------------------------------------------------------------------
# 2. `**` never descends into linked folders: a link cycle ends


@pytest.fixture
def cycle(tmp_path):
    d = tmp_path / "d" / "sub"
    d.mkdir(parents=True)
    for name in ("cactus.ndjson.gz", "broom.ndjson.gz"):
        shutil.copy(SAMPLE / name, d / name)
    (tmp_path / "d" / "top.ndjson").write_bytes(raw_lines(5))
    link(d, "loop", "..")        # d/sub/loop -> d: a cycle
    link(d, "self", ".")         # d/sub/self -> d/sub
    link(tmp_path / "d", "root", "/")  # the whole file system
    return tmp_path


@pytest.mark.parametrize("command", ["convert", "stats", "render"])
def test_globstar_through_a_link_cycle(cycle, command):
    pattern = "d/**/*.ndjson*"
    args = {"convert": ["convert", pattern, "out.npz", "--multiple", "1"], "stats": ["stats", pattern],
            "render": ["render", pattern, "-o", "g.svg"]}[command]
    out = run_case(cycle, args, rc=0, creates=("out.npz", "g.svg"), max_seconds=15, max_mb=500)
    if command == "stats":
        assert "3 input file(s)" in out.stdout, out.stdout


def test_globstar_expands_each_file_once(cycle):
    assert glob_paths(str(cycle / "d" / "**" / "*.ndjson*")) == sorted(
        [str(cycle / "d" / "top.ndjson"), str(cycle / "d" / "sub" / "broom.ndjson.gz"),
         str(cycle / "d" / "sub" / "cactus.ndjson.gz")])


def test_globstar_matches_glob_where_there_are_no_links(tmp_path, monkeypatch):
    for rel in ("a.ndjson", "x/b.ndjson", "x/y/c.ndjson", "x/y/z/d.svg", ".hidden/e.ndjson", "x/.f.ndjson", "q/r/s.bin"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    for pattern in ("**/*.ndjson", "x/**/*.ndjson", "x/**", "**/y/*", "*/**/*.svg", "x/**/y/**/*", "**/*/*.bin",
                    str(tmp_path / "**" / "*.ndjson"), "nothing/**/*.ndjson", "**"):
        assert glob_paths(pattern) == sorted(glob.glob(pattern, recursive=True)), pattern


# ---------------------------------------------------------------------------------------------------
# 10. Floods of tiny items: bounded by the file's size, refused before they cost memory


def tiny_sketches_npz(path, n: int, nested: bool = False, same: bool = False) -> None:
    """n one-point sketches in train: random points (each pickled on its own, about 3.4 bytes each once
    compressed), or one array repeated (`same`: quick to write, and the header still declares n)."""
    rng = np.random.default_rng(1)
    points = rng.integers(0, 255, (1 if same else n, 2)).astype(np.int16)
    sketches = [np.array([[x, y, 1]], dtype=np.int16) for x, y in points] * (n if same else 1)
    train = sketch_array(sketches)
    if nested:  # one declared element, an object array of n arrays: only counting while unpickling sees them
        outer = np.empty(1, dtype=object)
        outer[0] = train
        train = outer
    small = sketch_array(sketches[:10])
    np.savez_compressed(path, train=train, valid=small, test=small)


@pytest.fixture(scope="module")
def floods(tmp_path_factory):
    """A million one-point sketches, and 110,000 distinct ones flat and nested (pickling each costs 30 us)."""
    folder = tmp_path_factory.mktemp("flood")
    tiny_sketches_npz(folder / "million.npz", 1_000_000, same=True)
    tiny_sketches_npz(folder / "dots.npz", 110_000)
    tiny_sketches_npz(folder / "nested.npz", 110_000, nested=True)
    return folder


@pytest.mark.parametrize("name, declared", [("million.npz", "1,000,000"), ("dots.npz", "110,000")])
@pytest.mark.parametrize("args", [["validate"], ["stats"], ["render", "-o", "g.svg"]], ids=lambda a: a[0])
def test_floods_of_one_point_sketches_are_refused_unread(tmp_path, floods, name, declared, args):
    shutil.copy(floods / name, tmp_path / name)
    out = run_case(tmp_path, [args[0], name, *args[1:]], max_seconds=5, max_mb=300)
    said = out.stdout + out.stderr  # validate lists what it found on stdout; its verdict is the Error line
    assert f"declares {declared} arrays" in said and "SKETCHPREP_NPZ_MAX_ARRAYS_PER_MB=" in said, said


def test_nested_flood_is_stopped_while_unpickling(tmp_path, floods):
    shutil.copy(floods / "nested.npz", tmp_path / "nested.npz")
    run_case(tmp_path, ["stats", "nested.npz"], message="builds more than 100,000 arrays", max_seconds=20,
             max_mb=500)


def test_the_array_bound_can_be_raised(tmp_path, monkeypatch):
    import sketchprep.dataset as dataset

    tiny_sketches_npz(tmp_path / "dots.npz", 2000)
    monkeypatch.setattr(dataset, "ARRAYS_FLOOR", 100)
    with pytest.raises(DatasetFormatError, match="declares 2,000 arrays"):
        read_npz(tmp_path / "dots.npz")
    monkeypatch.setenv(dataset.MAX_ARRAYS_ENV, "100000000")
    assert len(read_npz(tmp_path / "dots.npz")["train"]) == 2000
    monkeypatch.setenv(dataset.MAX_ARRAYS_ENV, "-3")
    with pytest.raises(Exception, match="expected a number > 0"):
        read_npz(tmp_path / "dots.npz")


def test_real_datasets_are_far_under_the_array_bound():
    from conftest import shared_data

    for path in sorted(shared_data("sketchrnn_npz").glob("*.npz")):
        with zipfile.ZipFile(path) as zf:
            per_mb = max(len(v) * 2**20 / zf.getinfo(f"{k}.npy").compress_size
                         for k, v in read_npz(path, keys=("train", "valid", "test")).items())
        assert per_mb < 65_536 / 4, (path.name, per_mb)


def js_model_bytes(values: int) -> bytes:
    return b"[" + b"0," * values + b"0]"


@pytest.mark.parametrize("content, message, max_mb", [
    (lambda: js_model_bytes(25_000_000), "values; a sketch-rnn-js model holds a few dozen", 450),  # 50 MB of zeros
    (lambda: orjson.dumps([{"scale_factor": 1.0}, [[4, 123], [123], [5, 16], [4, 16], [16]],
                           ["A" * 40_000_000] + ["AAAA"] * 4]), "weight 0 holds about 15,000,000 int16 values", 600),
], ids=["zeros", "long-weight"])
def test_js_model_floods_are_bounded_by_the_file_size(tmp_path, content, message, max_mb):
    pytest.importorskip("torch")
    (tmp_path / "m.gen.json").write_bytes(content())
    # importing torch alone takes about 220 MB; the 50 MB of zeros are refused after their first 16 MB
    run_case(tmp_path, ["import", "m.gen.json", "--out", "run"], message=message, max_seconds=SLOW, max_mb=max_mb)


# ---------------------------------------------------------------------------------------------------
# 11. Messages: names cannot forge lines; NUL bytes are named as such; a file cut while read fails


FORGED = "a\nError: forged\x1b[2J"


@pytest.mark.parametrize("args, rc, escaped", [
    (["validate", FORGED + ".npz"], 1, "a\\nError: forged\\x1b[2J.npz"),
    (["stats", FORGED + ".npz"], 1, "a\\nError: forged\\x1b[2J.npz"),
    (["convert", FORGED + ".ndjson", "out.npz"], 1, "a\\nError: forged\\x1b[2J.ndjson"),
    (["render", "missing\nError: x.npz", "-o", "g.svg"], 1, "missing\\nError: x.npz"),
    (["convert", "d", "out.npz", "--split", "1/0/0", "--multiple", "1"], 0, "d/a\\nError: forged\\x1b[2J.ndjson:1"),
], ids=["validate", "stats", "convert", "missing", "folder"])
def test_a_name_cannot_forge_an_error_line(tmp_path, args, rc, escaped):
    (tmp_path / (FORGED + ".npz")).write_bytes(b"not a zip")
    (tmp_path / (FORGED + ".ndjson")).write_bytes(b"\xff\xfe" + "{}".encode("utf-16-le"))
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / (FORGED + ".ndjson")).write_bytes(b"{bad\n" + raw_lines(1))
    out = run_case(tmp_path, args, rc=rc, creates=("out.npz",), max_seconds=10, max_mb=400)
    both = out.stdout + out.stderr
    assert escaped in both and "\x1b" not in both, both
    assert not [ln for ln in both.splitlines() if ln.startswith(("Error: forged", "Error: x.npz"))], both


def test_shown_escapes_every_control_character():
    assert shown("a\nb\r\tc\x1b\x7f\x85\u2028\udcff") == "a\\nb\\r\\tc\\x1b\\x7f\\x85\\u2028\\udcff"
    assert shown("cat/日本 (1).svg") == "cat/日本 (1).svg"


@pytest.mark.parametrize("name", ["nul.ndjson", "nul.ndjson.gz"])
def test_nul_bytes_are_not_called_utf16(tmp_path, name):
    import gzip

    data = b"\x00" * 10_000
    (tmp_path / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    (tmp_path / "good.ndjson").write_bytes(raw_lines(2))
    out = run_case(tmp_path, ["convert", name, "out.npz"], message="only NUL bytes", max_seconds=10, max_mb=400)
    assert "UTF-16" not in out.stderr
    out = run_case(tmp_path, ["stats", name, "good.ndjson"], rc=0, max_seconds=10, max_mb=400)
    assert "1 unreadable file" in out.stdout, out.stdout


def test_bom_less_utf16_and_utf32_are_still_named(tmp_path):
    for codec, name in (("utf-16-le", "UTF-16"), ("utf-16-be", "UTF-16"), ("utf-32-le", "UTF-32"), ("utf-32-be", "UTF-32")):
        (tmp_path / "w.ndjson").write_bytes(raw_lines(3).decode().encode(codec))
        run_case(tmp_path, ["convert", "w.ndjson", "out.npz"], message=f"file is {name}", max_seconds=10, max_mb=400)


# A file another program cuts while `convert` reads it: the hook stands in for that program, deterministically
# (it truncates the input to a quarter after the first unit of work).
_TRUNCATING_HOOK = """
import importlib
import os

convert = importlib.import_module("sketchprep.convert.collect")  # the module (sketchprep.convert.collect is a function)

_process, _done = convert.process_task, []

def process_task(task, opts):
    result = _process(task, opts)
    if not _done:
        _done.append(1)
        target = os.environ["SKETCHPREP_TEST_TRUNCATE"]
        os.truncate(target, os.path.getsize(target) // 4)
    return result

convert.process_task = process_task
"""


@pytest.mark.parametrize("name", ["big.ndjson", "big.ndjson.gz", "big.bin"])
@pytest.mark.parametrize("command", ["convert", "stats"])
def test_input_cut_while_it_is_read(tmp_path, name, command):
    import gzip

    from test_quickdraw_bin import write_bin

    if name.endswith(".bin"):  # about 4 MB: several units of work
        stroke = [list(range(0, 200, 2)), list(range(100))]
        write_bin([{"key_id": i, "countrycode": "US", "recognized": True, "drawing": [stroke]} for i in range(20_000)],
                  tmp_path / name)
    else:
        data = raw_lines(25_000)
        (tmp_path / name).write_bytes(gzip.compress(data, 1) if name.endswith(".gz") else data)
    hook = tmp_path.parent / f"{tmp_path.name}-hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_TRUNCATING_HOOK)
    args = ["convert", name, "out.npz", "--workers", "1"] if command == "convert" else ["stats", name]
    out = run_case(tmp_path, args, message="changed while it was read", creates=(name,), max_seconds=30, max_mb=600,
                   env={"PYTHONPATH": f"{hook}{os.pathsep}{ROOT}", "SKETCHPREP_TEST_TRUNCATE": str(tmp_path / name)})
    assert name in out.error_lines[0] and not (tmp_path / "out.npz").exists()


def test_collect_fails_on_a_file_cut_between_chunks(tmp_path):
    path = tmp_path / "big.ndjson"
    path.write_bytes(raw_lines(25_000))

    def cut(_):
        if path.stat().st_size > 2**20:
            os.truncate(path, path.stat().st_size // 4)

    with pytest.raises(InputError, match="changed while it was read") as e:
        collect([str(path)], ConvertOptions(workers=1), progress=cut)
    assert e.value.path == str(path)
