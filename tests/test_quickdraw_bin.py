"""Quick, Draw! .bin input: the same drawings as the simplified ndjson they encode."""
import struct

import numpy as np
import orjson
from click.testing import CliRunner

from conftest import shared_data
from sketchprep.cli import main
from sketchprep.dataset import load_dataset
from sketchprep.sources.quickdraw_bin import iter_record_chunks, parse_records


def write_bin(records, path):
    """Google's binary layout (examples/binary_file_parser.py in googlecreativelab/quickdraw-dataset)."""
    with open(path, "wb") as f:
        for r in records:
            f.write(struct.pack("<Q2sbIH", int(r["key_id"]), r["countrycode"].encode()[:2].ljust(2, b" "),
                                int(r["recognized"]), 1490000000, len(r["drawing"])))
            for s in r["drawing"]:
                f.write(struct.pack("<H", len(s[0])) + bytes(s[0]) + bytes(s[1]))


def test_bin_converts_like_the_ndjson_it_encodes(tmp_path):
    src = shared_data("quickdraw_simplified_ndjson", "cat.ndjson")
    records = [orjson.loads(line) for line in open(src, "rb")]
    write_bin(records, tmp_path / "cat.bin")
    args = ["--split", "1/0/0", "--multiple", "1", "-q"]
    assert CliRunner().invoke(main, ["convert", str(tmp_path / "cat.bin"), str(tmp_path / "b.npz"), *args]).exit_code == 0
    assert CliRunner().invoke(main, ["convert", str(src), str(tmp_path / "n.npz"), *args]).exit_code == 0
    b, n = load_dataset(tmp_path / "b.npz"), load_dataset(tmp_path / "n.npz")
    assert b.ids["train"].tolist() == n.ids["train"].tolist()
    for x, y in zip(b.splits["train"], n.splits["train"]):
        np.testing.assert_array_equal(x, y)
    assert b.meta["classes"] == ["cat"]


def test_truncated_file_and_filters(tmp_path):
    records = [{"key_id": str(10 + i), "countrycode": "US", "recognized": i % 2 == 0,
                "drawing": [[[i, i + 5, i + 9], [0, 3, 7]], [[1], [2]]]} for i in range(7)]
    path = tmp_path / "full_binary_dog.bin"
    write_bin(records, path)
    path.write_bytes(path.read_bytes()[:-3])  # cut inside the last record
    with open(path, "rb") as f:
        chunks = list(iter_record_chunks(f, chunk_bytes=40))
    batches = [parse_records(data, str(path), first, 0, truncated, None, True) for first, data, _, truncated in chunks]
    assert sum(b.flat.n_drawings for b in batches) == 3  # records 1, 3, 5 are recognised; 7 is cut
    assert [str(p) for b in batches for p in b.problems] == [f"{path}:7: the file ends inside this record (truncated)"]
    assert sum(b.filtered["unrecognized"] for b in batches) == 3
    assert {lb for b in batches for lb in b.labels} == {"dog"}
    one = batches[0]
    np.testing.assert_array_equal(one.flat.drawing(0)[0], [[0, 0], [5, 3], [9, 7]])
    np.testing.assert_array_equal(one.flat.drawing(0)[1], [[1, 2]])
    result = CliRunner().invoke(main, ["convert", str(path), str(tmp_path / "o.npz"), "--split", "1/0/0",
                                       "--multiple", "1", "--json"])
    assert result.exit_code == 0
    assert orjson.loads(result.output)["outputs"][0]["dropped"] == {"bad_drawing": 1}
