import json

import numpy as np
import pytest
from click.testing import CliRunner

from conftest import SAMPLE
from sketchprep.cli import main
from sketchprep.dataset import load_dataset, read_npz

from test_convert import line, many_lines


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def same_dataset(a, b):
    da, db = load_dataset(a), load_dataset(b)
    for split in ("train", "valid", "test"):
        assert len(da.splits[split]) == len(db.splits[split])
        for x, y in zip(da.splits[split], db.splits[split]):
            np.testing.assert_array_equal(x, y)
        np.testing.assert_array_equal(da.ids[split], db.ids[split])
        if split in da.labels or split in db.labels:
            np.testing.assert_array_equal(da.labels[split], db.labels[split])
    ma, mb = dict(da.meta), dict(db.meta)
    ma.pop("command"), mb.pop("command")
    assert ma == mb


@pytest.fixture
def inputs(tmp_path):
    """Two files, with duplicates across them and bad lines, big enough for several chunks."""
    a = tmp_path / "a.ndjson"
    b = tmp_path / "b.ndjson"
    lines = many_lines(4500)
    a.write_text("\n".join(lines[:2500] + ["{broken"] + lines[:10]))
    b.write_text("\n".join(lines[2500:] + [line("e", [])] + lines[2500:2600]))
    return [a, b, SAMPLE]


def test_merged_shards_equal_one_run(tmp_path, inputs):
    single = tmp_path / "single.npz"
    assert run("convert", *inputs, single, "-q", "--workers", "1").exit_code == 0
    shards = []
    for i in (2, 0, 1):
        shard = tmp_path / f"shard-{i}.npz"
        result = run("convert", *inputs, shard, "--shard", f"{i}/3")
        assert result.exit_code == 0 and f"wrote shard {i}/3" in result.output
        shards.append(shard)
    merged = tmp_path / "merged.npz"
    result = run("merge", *shards, merged, "--json")
    assert result.exit_code == 0, result.output
    same_dataset(single, merged)
    report = json.loads(result.output)
    assert report["outputs"][0]["dropped"]["duplicate"] == 110
    assert [p.split(": ")[0].rsplit("/", 1)[-1] for p in report["problems"]] == ["a.ndjson:2501", "b.ndjson:2001"]
    # a shard file needs no pickle to read
    assert set(read_npz(shards[0])) == {"rows", "row_offsets", "ids", "labels", "order", "hashes", "header"}


def test_merge_by_word_and_resplit(tmp_path, inputs):
    shards = [tmp_path / f"s{i}.npz" for i in range(2)]
    for i, s in enumerate(shards):
        run("convert", *inputs, s, "--shard", f"{i}/2", "-q")
    # the sample's words have ~35 drawings each: --multiple 1 gives every one of them all three splits
    assert run("convert", *inputs, "--by-word", tmp_path / "one", "-q", "--multiple", "1").exit_code == 0
    assert run("merge", *shards, "--by-word", tmp_path / "two", "-q", "--multiple", "1").exit_code == 0
    names = sorted(p.name for p in (tmp_path / "one").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "two").iterdir()) and "cat.npz" in names
    for name in names:
        same_dataset(tmp_path / "one" / name, tmp_path / "two" / name)
    run("convert", *inputs, tmp_path / "seed5.npz", "-q", "--seed", "5", "--split", "0.8/0.1/0.1")
    run("merge", *shards, tmp_path / "m5.npz", "-q", "--seed", "5", "--split", "0.8/0.1/0.1")
    same_dataset(tmp_path / "seed5.npz", tmp_path / "m5.npz")


def test_merge_refuses_incomplete_or_mixed_shards(tmp_path, inputs):
    s0, s1, other = tmp_path / "s0.npz", tmp_path / "s1.npz", tmp_path / "o.npz"
    run("convert", *inputs, s0, "--shard", "0/2", "-q")
    run("convert", *inputs, s1, "--shard", "1/2", "-q")
    run("convert", *inputs, other, "--shard", "1/2", "-q", "--epsilon", "3")
    missing = CliRunner().invoke(main, ["merge", str(s0), str(tmp_path / "m.npz")])
    assert missing.exit_code == 2 and "shards 1/2 are missing" in missing.output
    mixed = CliRunner().invoke(main, ["merge", str(s0), str(other), str(tmp_path / "m.npz")])
    assert mixed.exit_code == 2 and "different run" in mixed.output
    twice = CliRunner().invoke(main, ["merge", str(s0), str(s0), str(tmp_path / "m.npz")])
    assert twice.exit_code == 2 and "both shard 0/2" in twice.output
    not_shard = tmp_path / "plain.npz"
    assert run("convert", SAMPLE, not_shard, "-q", "--multiple", "1").exit_code == 0
    bad = CliRunner().invoke(main, ["merge", str(not_shard), str(tmp_path / "m.npz")])
    assert bad.exit_code == 1 and "not a sketchprep shard file" in bad.output
    assert CliRunner().invoke(main, ["convert", str(SAMPLE), str(s0), "--shard", "2/2"]).exit_code == 2
