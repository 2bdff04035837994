"""Hostile and careless `.npz` files, shard files, recipes and checkpoints, fed to every command that
reads them (validate, stats, render, merge, train, sample, pipeline run).

Each case builds its crafted file here (no binaries checked in) and asserts, through `hostile.run_case`,
the exit code, the one `Error:` line and its words, no traceback, time and peak memory bounds, and that
no file changed or was left behind.
"""
from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
import zlib

import numpy as np
import pytest
from hostile import ROOT, run_case

from sketchprep.dataset import sketch_array, write_npz

# ---------------------------------------------------------------------------------------------------
# crafting


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def npy_header(descr, shape, fortran=False) -> bytes:
    """A .npy v1.0 header declaring anything."""
    header = repr({"descr": descr, "fortran_order": fortran, "shape": shape}).encode("latin1")
    pad = 64 - (10 + len(header) + 1) % 64
    header += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def write_zip(path, members: dict[str, bytes], level: int = 6) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=level) as z:
        for name, data in members.items():
            z.writestr(name, data)


def sketches(n=4, dtype=np.int16):
    return sketch_array([np.array([[1, 2, 0], [3, i, 1]], dtype) for i in range(n)])


def dataset(path, **members) -> str:
    """A valid 3-split file, with `members` (key -> array or raw .npy bytes) added or replacing keys."""
    arrays = {"train": sketches(), "valid": sketches(), "test": sketches()}
    arrays.update(members)
    write_zip(path, {f"{k}.npy": (v if isinstance(v, bytes) else npy(v)) for k, v in arrays.items()})
    return path.name


class Reconstruct:
    """Pickles like numpy's array pickles do (`_reconstruct` + BUILD), with any state."""

    def __init__(self, state, template=(0,)):
        self.state, self.template = state, template

    def __reduce__(self):
        from numpy._core.multiarray import _reconstruct
        return (_reconstruct, (np.ndarray, self.template, b"b"), self.state)


def pickled_member(obj, header_shape=(1,)) -> bytes:
    return npy_header("|O", header_shape) + pickle.dumps(obj, protocol=2)


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class DirectNdarray:
    """Calls numpy.ndarray itself (an allowed name) to allocate 2**28 objects."""

    def __reduce__(self):
        return (np.ndarray, ((2**28,), "O"))


class Codec:
    def __reduce__(self):
        import _codecs
        return (_codecs.encode, ("x" * 10, "rot13"))


def object_of(items) -> np.ndarray:
    out = np.empty(len(items), object)
    for i, s in enumerate(items):
        out[i] = s
    return out


@pytest.fixture(scope="module")
def gib_member(tmp_path_factory) -> bytes:
    """A raw deflate stream of 1 GiB of zeros (about 1 MB): one 16 MiB block compressed and ended with a full
    flush (which makes it independent of what came before), 64 times, then an empty final block."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = c.compress(bytes(16 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return chunk * 64 + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def zip_with_deflated(path, name: str, deflated: bytes, size: int, others: dict[str, bytes]) -> None:
    """A zip whose member `name` holds the raw deflate stream `deflated` of `size` zero bytes."""
    crc = 0
    block = bytes(16 << 20)
    for _ in range(size // len(block)):
        crc = zlib.crc32(block, crc)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in others.items():
            z.writestr(k, v)
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        info.file_size, info.compress_size, info.CRC = size, len(deflated), crc
        # write the already-deflated stream as is (zipfile has no public call for that)
        z.fp.seek(z.start_dir)
        info.header_offset = z.start_dir
        z.fp.write(info.FileHeader(zip64=True))
        z.fp.write(deflated)
        z.start_dir = z.fp.tell()
        z.filelist.append(info)
        z.NameToInfo[name] = info
        z._didModify = True


# ---------------------------------------------------------------------------------------------------
# .npz files in validate, stats and render

GOOD = {"train": sketches(), "valid": sketches(), "test": sketches()}

LAYOUT_CASES = [
    # id, members, message (the same words in every command)
    ("string_sketches", {"train": object_of([np.array([["a", "b", "c"]])] * 4)}, "4 sketches are not (n, 3) numeric arrays"),
    ("complex_sketches", {"valid": sketches(dtype=np.complex64)}, "are not (n, 3) numeric arrays"),
    ("bool_sketches", {"test": sketches(dtype=bool)}, "numeric arrays; #0 is bool"),
    ("object_of_object", {"train": object_of([object_of([1, 2, 3]).reshape(1, 3)] * 4)}, "#0 is object (1, 3)"),
    ("nan_sketches", {"train": object_of([np.array([[np.nan, 1, 0], [2, np.inf, 1]])] * 4)},
     "train: 4 sketches hold NaN or infinite values (0, 1, 2, 3)"),
    ("2d_split", {"train": np.zeros((5, 3), np.int16)}, "expected a 1-D object array of (n, 3) sketches"),
    ("3d_strings", {"train": np.zeros((4, 2, 3), "<U1")}, "expected a 1-D object array of (n, 3) sketches"),
    ("meta_list", {"meta": np.array(json.dumps([1, 2]))}, "meta: the JSON is a list, not an object"),
    ("meta_classes_str", {"meta": np.array(json.dumps({"classes": "cat"}))}, "meta.classes is not a list of strings"),
    ("meta_not_json", {"meta": np.array("{nope")}, "meta: Expecting property name"),
    ("meta_int_array", {"meta": np.arange(3)}, "not a 0-d unicode array"),
    ("float_labels", {"train_labels": np.zeros(4)}, "train_labels is float64, not integers"),
    ("labels_out_of_range", {"train_labels": np.array([0, 1, 2, 7]), "meta": np.array(json.dumps({"classes": ["a", "b"]}))},
     "outside 0..1"),
    ("labels_wrong_length", {"valid_labels": np.array([0, 0])}, "has 2 entries for 4 sketches"),
    ("ids_2d", {"test_ids": np.array([["a", "b"]] * 2)}, "test_ids has shape (2, 2), not (N,)"),
    ("missing_valid", {"valid": None}, "missing key 'valid'"),
]


def _layout_file(tmp_path, members) -> str:
    arrays = dict(GOOD)
    for k, v in members.items():
        if v is None:
            arrays.pop(k)
        else:
            arrays[k] = v
    write_zip(tmp_path / "x.npz", {f"{k}.npy": npy(v) for k, v in arrays.items()})
    return "x.npz"


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=[c[0] for c in LAYOUT_CASES])
def test_layout_problems_are_refused_by_stats(tmp_path, case):
    _, members, message = case
    run_case(tmp_path, ["stats", _layout_file(tmp_path, members)], message=message)


@pytest.mark.parametrize("case", LAYOUT_CASES[1::2], ids=[c[0] for c in LAYOUT_CASES[1::2]])
def test_layout_problems_are_refused_by_render_with_the_same_words(tmp_path, case):
    _, members, message = case
    run_case(tmp_path, ["render", _layout_file(tmp_path, members), "-o", "grid.svg"], message=message)


@pytest.mark.parametrize("case", LAYOUT_CASES[::3], ids=[c[0] for c in LAYOUT_CASES[::3]])
def test_validate_reports_the_same_words_and_fails(tmp_path, case):
    _, members, message = case
    name = _layout_file(tmp_path, members)
    out = run_case(tmp_path, ["validate", name], message="FAILED")
    assert message.lower() in out.stdout.lower()


def test_not_a_zip_empty_truncated_and_a_folder(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    run_case(tmp_path, ["stats", "text.npz"], message="not a readable .npz (zip) file")
    (tmp_path / "empty.npz").write_bytes(b"")
    run_case(tmp_path, ["render", "empty.npz", "-o", "g.svg"], message="not a readable .npz (zip) file")
    dataset(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "cut.npz").write_bytes(data[: len(data) // 2])
    run_case(tmp_path, ["stats", "cut.npz"], message="not a readable .npz (zip) file")
    (tmp_path / "dir.npz").mkdir()
    run_case(tmp_path, ["stats", "dir.npz"], message="is a folder")


def test_pickles_that_ask_for_code_are_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    evil = object_of([np.zeros((2, 3), np.int16), Payload(marker)])
    dataset(tmp_path / "evil.npz", train=evil)
    run_case(tmp_path, ["stats", "evil.npz"], message="only numpy arrays may be unpickled")
    out = run_case(tmp_path, ["validate", "evil.npz"], message="FAILED")
    assert "unsafe_pickle" in out.stdout and not marker.exists()
    dataset(tmp_path / "codec.npz", train=pickled_member(Codec()))
    run_case(tmp_path, ["render", "codec.npz", "-o", "g.svg"], message="only latin1")


def test_object_arrays_that_declare_more_than_they_hold(tmp_path):
    # the .npy header declares 2e8 objects in a member of a few hundred bytes
    dataset(tmp_path / "header.npz", train=pickled_member(sketches(), header_shape=(200_000_000,)))
    run_case(tmp_path, ["stats", "header.npz"], message="declares 200,000,000 objects", max_mb=300)
    # the pickle's own array state declares 2e8 elements (only allowed globals), holding one
    state = (1, (200_000_000,), np.dtype(object), False, [None])
    dataset(tmp_path / "state.npz", train=pickled_member(Reconstruct(state)))
    run_case(tmp_path, ["render", "state.npz", "-o", "g.svg"], message="declares 200,000,000 elements but holds 1",
             max_mb=300)
    out = run_case(tmp_path, ["validate", "state.npz"], message="FAILED", max_mb=300)
    assert "declares 200,000,000 elements" in out.stdout
    # numpy's array template itself asked to be 2e8 elements
    dataset(tmp_path / "template.npz", train=pickled_member(Reconstruct(state, template=(200_000_000,))))
    run_case(tmp_path, ["stats", "template.npz"], message="array template of shape (200000000,)", max_mb=300)
    # bytes that do not match the declared shape
    short = (1, (1000, 3), np.dtype(np.int16), False, b"\0" * 6)
    dataset(tmp_path / "short.npz", train=pickled_member(object_of([Reconstruct(short)] * 1)))
    run_case(tmp_path, ["stats", "short.npz"], message="declares 3,000 x 2 bytes but holds 6 bytes")
    # a sub-array dtype that would expand each element
    sub = (1, (2,), np.dtype(("O", (10000, 10000))), False, [None, None])
    dataset(tmp_path / "subarray.npz", train=pickled_member(Reconstruct(sub)))
    run_case(tmp_path, ["stats", "subarray.npz"], message="sub-array", max_mb=300)


def test_pickle_opcodes_that_allocate_what_they_name(tmp_path):
    # the C unpickler grows its memo list to the largest index named: these 13 bytes cost it 2 GB
    dataset(tmp_path / "memo.npz", train=npy_header("|O", (1,)) + b"\x80\x02N" + b"r" + (2**27).to_bytes(4, "little") + b".")
    run_case(tmp_path, ["stats", "memo.npz"], message="member holds a NoneType, not an array", max_mb=300)
    # BYTEARRAY8 allocates the length it names before reading it
    dataset(tmp_path / "ba8.npz", train=npy_header("|O", (1,)) + b"\x80\x05\x96" + (2**40).to_bytes(8, "little") + b".")
    run_case(tmp_path, ["stats", "ba8.npz"], message="refusing protocol-5 buffers", max_mb=300)
    dataset(tmp_path / "direct.npz", train=pickled_member(DirectNdarray()))
    run_case(tmp_path, ["render", "direct.npz", "-o", "g.svg"], message="refusing to call numpy.ndarray directly",
             max_mb=300)


def test_damaged_members(tmp_path):
    dataset(tmp_path / "big.npz", train=npy_header("<i2", (10**12, 3)) + b"\0" * 12)
    run_case(tmp_path, ["stats", "big.npz"], message="the header declares (1000000000000, 3)", max_mb=300)
    dataset(tmp_path / "struct.npz", train=npy_header([("a", "<i2"), ("b", "<f4")], (4,)) + b"\0" * 24)
    run_case(tmp_path, ["render", "struct.npz", "-o", "g.svg"], message="structured")
    dataset(tmp_path / "garbage.npz", train=os.urandom(300))
    run_case(tmp_path, ["stats", "garbage.npz"], message="cannot read member")
    good = npy(sketches())
    dataset(tmp_path / "cut.npz", valid=good[: len(good) - 20])
    run_case(tmp_path, ["stats", "cut.npz"], message="cannot read object array")
    dataset(tmp_path / "deep.npz", test=npy_header("|O", (1,)) + b"\x80\x02" + b"(" * 100_000 + b"l" * 100_000 + b".")
    run_case(tmp_path, ["stats", "deep.npz"], message="member holds a list, not an array")


def test_a_deflated_gigabyte_costs_nothing_under_an_unknown_key(tmp_path, gib_member):
    others = {f"{k}.npy": npy(v) for k, v in GOOD.items()}
    zip_with_deflated(tmp_path / "junk.npz", "junk.npy", gib_member, 1 << 30, others)
    out = run_case(tmp_path, ["stats", "junk.npz", "--json"], rc=0, max_mb=400, max_seconds=5)
    assert json.loads(out.stdout)["splits"]["train"]["count"] == 4
    run_case(tmp_path, ["validate", "junk.npz", "--batch-size", "1"], rc=0, max_mb=400, max_seconds=5)
    zip_with_deflated(tmp_path / "bomb.npz", "train.npy", gib_member, 1 << 30,
                      {k: v for k, v in others.items() if k != "train.npy"})
    run_case(tmp_path, ["stats", "bomb.npz"], message="SKETCHPREP_NPZ_MAX_RATIO", max_mb=400, max_seconds=5)
    out = run_case(tmp_path, ["validate", "bomb.npz"], message="FAILED", max_mb=400, max_seconds=5)
    assert "inflates" in out.stdout


def test_members_compressed_other_than_numpy_does_are_refused_unread(tmp_path):
    with zipfile.ZipFile(tmp_path / "bz.npz", "w", zipfile.ZIP_BZIP2) as z:  # bzip2 inflates without a bound
        for k, v in GOOD.items():
            z.writestr(f"{k}.npy", npy(v))
    run_case(tmp_path, ["stats", "bz.npz"], message="compressed with bzip2")


def test_the_member_bound_can_be_lowered_and_raised(tmp_path):
    dataset(tmp_path / "x.npz")
    run_case(tmp_path, ["stats", "x.npz"], message="over the 0.0001 MiB bound",
             env={"SKETCHPREP_NPZ_MAX_MB": "0.0001"})
    run_case(tmp_path, ["stats", "x.npz"], rc=2, message="SKETCHPREP_NPZ_MAX_MB='lots'",
             env={"SKETCHPREP_NPZ_MAX_MB": "lots"})


def test_stdout_closed_by_head_exits_quietly(tmp_path):
    dataset(tmp_path / "x.npz")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(f"{sys.executable} -m sketchprep stats x.npz --json | head -1", shell=True, cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=30, check=False)
    assert proc.stdout.strip() == "{" and proc.stderr == "", proc.stderr


# ---------------------------------------------------------------------------------------------------
# shard headers in merge


def shard_files(tmp_path, n=2, header=None, arrays=None, names=None) -> list[str]:
    """N consistent shard files of one run (built directly, as `convert --shard` writes them); `header` and
    `arrays` change shard 0."""
    from sketchprep.convert import ConvertOptions
    from sketchprep.shards import SHARD_FORMAT, content_fingerprint, inputs_fingerprint

    src = tmp_path / "in.ndjson"
    src.write_text("{}\n")
    names = names or [f"s{i}.npz" for i in range(n)]
    for i, name in enumerate(names):
        rows = np.array([[1, 2, 0], [3, 4, 1], [5, i, 1]], np.int16)
        a = {"rows": rows, "row_offsets": np.array([0, 2, 3], np.int64), "ids": np.array([f"k{i}a", f"k{i}b"]),
             "labels": np.array(["cat", "cat"]), "order": np.array([2 * i, 2 * i + 1], np.int64),
             "hashes": np.array([11 + i, 22 + i], np.uint64)}
        h = {"format": SHARD_FORMAT, "version": "x", "shard": [i, n], "files": [str(src)],
             "inputs_sha256": inputs_fingerprint([str(src)]), "content_sha256": content_fingerprint(a),
             "options": ConvertOptions(multiple=1).to_json(),
             "report": {"read": 2, "dropped": {}, "filtered": {}, "fitted": 0,
                        "sources": {str(src): {"read": 2, "kept": 2}}, "problems": []}}
        if i == 0:
            a.update(arrays or {})
            h.update(header or {})
        with open(tmp_path / name, "wb") as f:
            write_npz(f, {**a, "header": np.array(json.dumps(h))})
    return names


def test_two_good_shards_merge(tmp_path):
    names = shard_files(tmp_path)
    run_case(tmp_path, ["merge", *names, "m.npz", "--split", "1/0/0", "-q"], rc=0, creates=("m.npz",))


SHARD_CASES = [
    ("header_list", {"header": "LIST"}, "not a JSON object"),
    ("a_billion_shards", {"header": {"shard": [0, 10**9]}}, "'shard' must be [I, N]"),
    ("shard_strings", {"header": {"shard": ["0", "2"]}}, "'shard' must be [I, N]"),
    ("files_not_list", {"header": {"files": "in.ndjson"}}, "'files' must be a list of paths"),
    ("sources_unknown_file", {"header": {"report": {"read": 1, "dropped": {}, "filtered": {}, "fitted": 0,
                                                    "sources": {"/x": {"read": 1, "kept": 1}}, "problems": []}}},
     "'report.sources'"),
    ("problems_bad", {"header": {"report": {"read": 1, "dropped": {}, "filtered": {}, "fitted": 0, "sources": {},
                                            "problems": [[1, 2]]}}}, "'report.problems'"),
    ("dropped_negative", {"header": {"report": {"read": 1, "dropped": {"x": -5}, "filtered": {}, "fitted": 0,
                                                "sources": {}, "problems": []}}}, "'report.dropped/filtered'"),
    ("options_bad", {"header": {"options": {"epsilon": "x"}}}, "bad 'options'"),
    ("old_format", {"header": {"format": "sketchprep-shard-1"}}, "not a shard file of this sketchprep"),
    ("no_fingerprint", {"header": {"content_sha256": None}}, "'content_sha256' must be a sha256"),
    ("rows_shape", {"arrays": {"rows": np.zeros((3, 2), np.int16)}}, "'rows' must be an (R, 3) int array"),
    ("offsets_back", {"arrays": {"row_offsets": np.array([0, 3, 2], np.int64)}}, "'row_offsets' must run"),
    ("ids_short", {"arrays": {"ids": np.array(["a"])}}, "'ids' must hold one entry per sketch"),
]


@pytest.mark.parametrize("case", SHARD_CASES, ids=[c[0] for c in SHARD_CASES])
def test_crafted_shard_headers_are_refused(tmp_path, case, monkeypatch):
    _, change, message = case
    header = change.get("header")
    if header == "LIST":
        names = shard_files(tmp_path)
        with open(tmp_path / names[0], "wb") as f:  # a header that is JSON but not an object
            write_npz(f, {"rows": np.zeros((0, 3), np.int16), "row_offsets": np.zeros(1, np.int64),
                          "ids": np.zeros(0, "<U1"), "labels": np.zeros(0, "<U1"), "order": np.zeros(0, np.int64),
                          "hashes": np.zeros(0, np.uint64), "header": np.array("[1, 2]")})
    else:
        names = shard_files(tmp_path, header=header, arrays=change.get("arrays"))
    run_case(tmp_path, ["merge", *names, "m.npz"], message=message)


def test_shards_from_changed_inputs_or_data_are_refused(tmp_path):
    names = shard_files(tmp_path)
    # shard 1 made after the input changed
    shard_files(tmp_path, header={"inputs_sha256": "0" * 64}, names=["t0.npz"])
    run_case(tmp_path, ["merge", "t0.npz", names[1], "m.npz"], rc=2, message="different contents of the same inputs")
    # kept data edited after writing
    shard_files(tmp_path, arrays={"hashes": np.array([99, 98], np.uint64)}, names=["u0.npz"])
    import sketchprep.shards as sh
    with open(tmp_path / "u0.npz", "rb") as f:
        z = zipfile.ZipFile(f)
        header = json.loads(str(np.load(io.BytesIO(z.read("header.npy")))[()]))
    header["content_sha256"] = "1" * 64
    from sketchprep.dataset import read_npz
    a = read_npz(tmp_path / "u0.npz")
    a["header"] = np.array(json.dumps(header))
    with open(tmp_path / "u0.npz", "wb") as f:
        write_npz(f, a)
    assert sh.SHARD_FORMAT in json.dumps(header)
    run_case(tmp_path, ["merge", "u0.npz", names[1], "m.npz"], message="does not match its fingerprint")


def test_merge_refuses_missing_shards_a_dataset_and_out_as_input(tmp_path):
    names = shard_files(tmp_path, n=3)
    run_case(tmp_path, ["merge", names[0], names[1], "m.npz"], rc=2, message="shards 2/3 are missing")
    dataset(tmp_path / "data.npz")
    run_case(tmp_path, ["merge", "data.npz", "m.npz"], message="not a sketchprep shard file (no rows")
    run_case(tmp_path, ["merge", *names, names[0]], message="also an input")


# ---------------------------------------------------------------------------------------------------
# recipes in pipeline run

RECIPES = [
    ("not_utf8", "description = 'caf\xe9'\n".encode("latin1") + b'[convert]\ninputs = ["a"]\n', "not UTF-8"),
    ("utf16", '[convert]\ninputs = ["a"]\n'.encode("utf-16"), "not UTF-8"),
    ("not_toml", b"[convert\n", "not valid TOML"),
    ("convert_is_5", b"convert = 5\n", "convert must be a table of options"),
    ("inputs_ints", b"[convert]\ninputs = [1, 2]\n", "convert.inputs must be a list of paths"),
    ("unknown_step", b'[convrt]\ninputs = ["a"]\n', "unknown table(s) convrt"),
    ("unknown_option", b'[convert]\ninputs = ["a"]\nepsilom = 2\n', "convert.epsilom: unknown option"),
    ("table_value", b'[convert]\ninputs = ["a"]\n[render]\nn = {a = 1}\n', "render.n must be a string, number"),
    ("description_int", b'description = 5\n[convert]\ninputs = ["a"]\n', "description must be a string"),
    ("by_word_str", b'[convert]\ninputs = ["a"]\nby_word = "yes"\n', "convert.by_word must be true or false"),
    ("pipeline_option", b'[convert]\ninputs = ["a"]\n[train]\nout = "x"\n', "train.out: unknown option"),
]


@pytest.mark.parametrize("case", RECIPES, ids=[c[0] for c in RECIPES])
def test_bad_recipes_are_refused_before_any_step(tmp_path, case):
    _, text, message = case
    (tmp_path / "r.toml").write_bytes(text)
    run_case(tmp_path, ["pipeline", "run", "r.toml", "--out", "out"], message=message)


def test_a_set_override_is_checked_like_the_recipe(tmp_path):
    (tmp_path / "r.toml").write_bytes(b'[convert]\ninputs = ["a"]\n')
    run_case(tmp_path, ["pipeline", "run", "r.toml", "--out", "out", "--set", "convert.nope=1"],
             message="convert.nope: unknown option")


# ---------------------------------------------------------------------------------------------------
# checkpoints and datasets in train and sample (each case pays for importing torch: few of them, and a
# wider time bound: the import alone takes 2 s of CPU, over 7 s of wall time on a loaded CI machine)

TORCH_SECONDS = 30


def test_checkpoints_that_fail_the_safe_load_never_advise_unsafe_loading(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "best.pt").write_bytes(b"PK\x03\x04" + os.urandom(200))
    out = run_case(tmp_path, ["sample", "run", "-o", "s.svg"], message="not a sketchrnn checkpoint, or a damaged one",
                   max_seconds=TORCH_SECONDS)
    assert "weights_only" not in out.stderr


def test_checkpoint_hparams_are_range_checked_before_a_model_is_built(tmp_path):
    torch = pytest.importorskip("torch")
    from sketchrnn.train import CHECKPOINT_FORMAT

    run = tmp_path / "run"
    run.mkdir()
    torch.save({"format": CHECKPOINT_FORMAT, "hparams": {"dec_rnn_size": 10**6}, "model": {}, "scale_factor": 1.0,
                "max_len": 10, "step": 0, "data_files": []}, run / "best.pt")
    run_case(tmp_path, ["sample", "run", "-o", "s.svg"],
             message="hparam dec_rnn_size must be a whole number from 1 to 16384, not 1000000",
             max_mb=800, max_seconds=TORCH_SECONDS)


def test_checkpoint_weights_must_hold_the_data_their_shapes_claim(tmp_path):
    torch = pytest.importorskip("torch")
    from sketchrnn.model import HParams, SketchRNN
    from sketchrnn.train import CHECKPOINT_FORMAT

    big = HParams(enc_rnn_size=4096, dec_rnn_size=4096)
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in SketchRNN(big).state_dict().items()}
    one = torch.zeros(1)  # every weight a broadcast view of one float: a 4 KB file claiming 200M parameters
    (tmp_path / "run").mkdir()
    torch.save({"format": CHECKPOINT_FORMAT, "hparams": big.to_dict(), "scale_factor": 1.0, "max_len": 10,
                "step": 0, "data_files": [], "model": {k: one.expand(*s) if len(s) else one[0] for k, s in shapes.items()}},
               tmp_path / "run" / "best.pt")
    run_case(tmp_path, ["sample", "run", "-o", "s.svg"], message="its weights hold 1 values for a model of",
             max_mb=800, max_seconds=TORCH_SECONDS)


def test_train_refuses_what_validate_calls_a_layout_error(tmp_path):
    _layout_file(tmp_path, {"train": object_of([np.array([["a", "b", "c"]])] * 4)})
    run_case(tmp_path, ["train", "x.npz", "--out", "run", "--max-steps", "1"],
             message="train: 4 sketches are not (n, 3) numeric arrays; #0 is <U1 (1, 3)", max_seconds=TORCH_SECONDS)


@pytest.mark.parametrize("state", [b"{not json", b"[1, 2]", b"\xff\xfe"])
def test_a_damaged_pipeline_state_file_only_means_steps_run_again(tmp_path, state):
    (tmp_path / "r.toml").write_bytes(b'[convert]\ninputs = ["in.ndjson"]\nmultiple = 1\nsplit = "1/0/0"\n')
    (tmp_path / "in.ndjson").write_text(json.dumps({"word": "cat", "key_id": "1", "recognized": True,
                                                    "drawing": [[[0, 10, 20], [0, 5, 30]]]}) + "\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / ".pipeline-state.json").write_bytes(state)
    run_case(tmp_path, ["pipeline", "run", "r.toml", "--out", "out"], rc=0,
             creates=("out/.pipeline-state.json", "out/dataset.npz", "out/convert.txt", "out/report.md"))
