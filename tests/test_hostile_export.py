"""`export DATA.npz` on options and datasets that could make it run away: memory stays bounded, a refusal is
one `Error:` line, and nothing is left behind (see tests/hostile.py)."""
from __future__ import annotations

import os

import numpy as np
import pytest
from hostile import run_case

from sketchprep.dataset import save_dataset


def dataset(folder, n: int, rows: int = 5, name: str = "d.npz"):
    sketch = lambda i: np.array([[i % 50, i // 50, 0]] + [[1, 1, 0]] * (rows - 2) + [[2, 0, 1]], np.int16)  # noqa: E731
    save_dataset(folder / name, {"train": [sketch(i) for i in range(n)], "valid": [], "test": []},
                 meta={"options": {"size": 255}})
    return name


def test_huge_padding_is_built_a_block_at_a_time(tmp_path):
    name = dataset(tmp_path, 300)
    # 300 drawings padded to 100,001 steps: 600 MB of float32, never held at once
    out = run_case(tmp_path, ["export", name, "-o", "p.npz", "--format", "stroke5", "--max-len", "100000", "-q"],
                   rc=0, creates=("p.npz",), max_seconds=60, max_mb=500)
    assert out.rc == 0 and (tmp_path / "p.npz").stat().st_size < 20 * 2**20


def test_huge_images_are_built_a_few_at_a_time(tmp_path):
    pytest.importorskip("cairocffi")
    name = dataset(tmp_path, 24)
    # 24 images of 4096 x 4096: 400 MB, built 4 at a time
    run_case(tmp_path, ["export", name, "-o", "b.npz", "--format", "bitmap", "--size", "4096", "-q"],
             rc=0, creates=("b.npz",), max_seconds=60, max_mb=500)


def test_a_drawing_too_long_to_pad_everything_to_needs_max_len(tmp_path):
    save_dataset(tmp_path / "long.npz", {"train": [np.ones((200_000, 3), np.int16), np.ones((3, 3), np.int16)],
                                         "valid": [], "test": []})
    run_case(tmp_path, ["export", "long.npz", "-o", "p.npz", "--format", "stroke5"], rc=2,
             message="give --max-len", max_mb=500)


@pytest.mark.parametrize("option", [["--size", "99999"], ["--resample", "0"], ["--max-len", "100001"]])
def test_option_values_out_of_range_are_refused_before_reading(tmp_path, option):
    (tmp_path / "d.npz").write_bytes(b"not even a zip file")  # never read: the option is refused first
    fmt = {"--size": "bitmap", "--resample": "points", "--max-len": "stroke5"}[option[0]]
    run_case(tmp_path, ["export", "d.npz", "-o", "o.npz", "--format", fmt, *option], rc=2, message="must be")


def test_a_file_that_is_not_a_dataset_is_refused_and_nothing_written(tmp_path):
    (tmp_path / "d.npz").write_bytes(b"not even a zip file")
    for args in (["-o", "o.parquet"], ["-o", "out", "--format", "svg"]):
        if args[1].endswith(".parquet"):
            pytest.importorskip("pyarrow")
        run_case(tmp_path, ["export", "d.npz", *args], rc=1, message="not a readable .npz")
    assert sorted(os.listdir(tmp_path)) == ["d.npz"]
