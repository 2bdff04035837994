import io
import os
import zipfile
import numpy as np
import pytest

from sketchprep.dataset import atomic_output, load_dataset, read_npz, save_dataset, sketch_array
from sketchprep.errors import DatasetFormatError, UnsafeFileError

from conftest import SHARED_DATA, shared_data

REAL_FILES = sorted((SHARED_DATA / "sketchrnn_npz").glob("*.npz"))


@pytest.mark.parametrize("path", REAL_FILES, ids=[p.name for p in REAL_FILES])
def test_every_real_file_loads_like_the_reference_loader(path):
    ours = load_dataset(path)
    ref = np.load(path, encoding="latin1", allow_pickle=True)
    for split in ("train", "valid", "test"):
        assert len(ours.splits[split]) == len(ref[split])
        for a, b in zip(ours.splits[split], ref[split]):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)


def test_real_files_cover_int16_float64_and_python2_pickles():
    shared_data("sketchrnn_npz")
    dtypes = {load_dataset(p).splits["train"][0].dtype for p in REAL_FILES}
    assert dtypes == {np.dtype(np.int16), np.dtype(np.float64)}


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _npz_bytes(**arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def test_hostile_pickle_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    hostile = np.empty(2, dtype=object)
    hostile[0] = np.zeros((3, 3), np.int16)
    hostile[1] = _Payload(marker)
    path = tmp_path / "evil.npz"
    path.write_bytes(_npz_bytes(train=hostile, valid=hostile, test=hostile))
    with pytest.raises(UnsafeFileError) as err:
        load_dataset(path)
    assert "evil.npz" in str(err.value) and "system" in str(err.value)
    assert not marker.exists()
    # the reference loader would have run it: prove the file really was hostile
    np.load(path, allow_pickle=True)["train"]
    assert marker.exists()


def test_not_a_zip_and_missing_keys(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_text("hello")
    with pytest.raises(DatasetFormatError, match="bad.npz"):
        read_npz(bad)
    partial = tmp_path / "partial.npz"
    partial.write_bytes(_npz_bytes(train=sketch_array([np.zeros((2, 3), np.int16)])))
    with pytest.raises(DatasetFormatError, match="missing key 'valid'"):
        load_dataset(partial)
    assert set(load_dataset(partial, require_splits=False).splits) == {"train"}


def test_wrong_sketch_shape_is_a_format_error(tmp_path):
    arr = sketch_array([np.zeros((2, 3), np.int16), np.zeros((2, 2), np.int16)])
    path = tmp_path / "shape.npz"
    path.write_bytes(_npz_bytes(train=arr, valid=arr, test=arr))
    with pytest.raises(DatasetFormatError, match=r"train: 1 sketch is not an \(n, 3\) numeric array; #1 is int16 \(2, 2\)"):
        load_dataset(path)


def test_save_is_readable_by_the_reference_call_and_by_us(tmp_path):
    sketches = [np.array([[1, 2, 0], [3, 4, 1]], np.int16), np.array([[5, 5, 1]], np.int16)]
    path = tmp_path / "out.npz"
    save_dataset(path, {"train": sketches, "valid": sketches[:1], "test": []},
                 ids={"train": ["a", "b"], "valid": ["a"], "test": []},
                 labels={"train": np.array([0, 1]), "valid": np.array([0]), "test": np.array([], int)},
                 meta={"classes": ["x", "y"]})
    ref = np.load(path, encoding="latin1", allow_pickle=True)
    assert ref["train"].dtype == object and ref["train"].shape == (2,)
    assert ref["test"].shape == (0,)
    ours = load_dataset(path)
    assert ours.classes == ["x", "y"]
    assert ours.ids["train"].tolist() == ["a", "b"]
    assert ours.labels["train"].tolist() == [0, 1]
    # the extra keys need no pickle
    plain = np.load(path)
    assert plain["train_ids"].dtype.kind == "U" and plain["meta"].dtype.kind == "U"


def test_equal_length_sketches_stay_an_object_array(tmp_path):
    same = [np.zeros((4, 3), np.int16) for _ in range(3)]
    path = tmp_path / "same.npz"
    save_dataset(path, {"train": same, "valid": same, "test": same})
    assert np.load(path, allow_pickle=True)["train"].shape == (3,)


def test_atomic_output_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "keep.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_output(path) as f:
            f.write(b"partial")
            raise RuntimeError("killed")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.npz"]


def test_float_sketches_and_3d_arrays_are_accepted(tmp_path):
    same = np.zeros((3, 4, 3), np.float32)  # what numpy makes of equal-length lists
    path = tmp_path / "f.npz"
    with zipfile.ZipFile(path, "w") as z:
        for k in ("train", "valid", "test"):
            buf = io.BytesIO()
            np.save(buf, same)
            z.writestr(f"{k}.npy", buf.getvalue())
    assert len(load_dataset(path).splits["train"]) == 3


def test_outputs_get_the_usual_file_mode(tmp_path):
    path = tmp_path / "mode.npz"
    save_dataset(path, {"train": [np.zeros((1, 3), np.int16)]})
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
