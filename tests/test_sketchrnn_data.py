"""sketchrnn.data: the reference's preprocessing, augmentation and stroke-5 batches (REFERENCE A.4-A.6)."""
import numpy as np
import pytest
from hypothesis import given, strategies as st

pytest.importorskip("torch")

from sketchprep.dataset import save_dataset  # noqa: E402
from sketchprep.strokes import START_TOKEN, stroke3_to_stroke5  # noqa: E402
from sketchrnn.data import (Batches, Split, augment_keep_mask, load_data, normalizing_scale_factor,  # noqa: E402
                            pad_batch, random_scale_factors)

from conftest import shared_data  # noqa: E402


def test_reference_worked_example():
    """REFERENCE A.4: [[5,0,0],[0,5,1],[-5,0,1]] with max_len=4."""
    strokes5, lengths = pad_batch([np.array([[5, 0, 0], [0, 5, 1], [-5, 0, 1]], np.float32)], 4)
    expected = np.array([[0, 0, 1, 0, 0],
                         [5, 0, 1, 0, 0],
                         [0, 5, 0, 1, 0],
                         [-5, 0, 0, 1, 0],
                         [0, 0, 0, 0, 1]], np.float32)
    np.testing.assert_array_equal(strokes5[0], expected)
    assert lengths.tolist() == [3]
    encoder_rows, decoder_in, target = strokes5[0, 1:], strokes5[0, :4], strokes5[0, 1:5]
    np.testing.assert_array_equal(encoder_rows[:lengths[0]], expected[1:4])
    np.testing.assert_array_equal(decoder_in, expected[:4])
    assert (1 - target[:, 4]).tolist() == [1, 1, 1, 0]       # L_s mask


sketch3 = st.integers(1, 12).flatmap(lambda n: st.tuples(
    st.lists(st.integers(-50, 50), min_size=2 * n, max_size=2 * n),
    st.lists(st.integers(0, 1), min_size=n, max_size=n)))


@given(st.lists(sketch3, min_size=1, max_size=5), st.integers(0, 3))
def test_pad_batch_is_strokes_py_stroke5_behind_the_start_token(raw, extra):
    """The vectorised batch builder equals sketchprep.strokes.stroke3_to_stroke5 with S0 prepended."""
    sketches = []
    for xy, pen in raw:
        s = np.zeros((len(pen), 3), np.float32)
        s[:, :2] = np.array(xy, np.float32).reshape(-1, 2)
        s[:, 2] = pen
        sketches.append(s)
    steps = max(len(s) for s in sketches) + extra
    strokes5, lengths = pad_batch(sketches, steps)
    for s, row, n in zip(sketches, strokes5, lengths):
        assert n == len(s)
        np.testing.assert_array_equal(row, np.vstack([START_TOKEN, stroke3_to_stroke5(s, steps)]))


def _reference_augment(strokes, u, prob):
    """The reference's augment_strokes (utils.py), with its uniforms given."""
    result, prev, count, stroke = [], [0, 0, 1], 0, [0, 0, 1]
    for i in range(len(strokes)):
        cand = [strokes[i][0], strokes[i][1], strokes[i][2]]
        if cand[2] == 1 or prev[2] == 1:
            count = 0
        else:
            count += 1
        if cand[2] == 0 and prev[2] == 0 and count > 2 and u[i] < prob:
            stroke[0] += cand[0]
            stroke[1] += cand[1]
        else:
            stroke = cand
            prev = stroke
            result.append(stroke)
    return np.array(result, np.float32)


@given(st.lists(st.tuples(st.integers(-9, 9), st.integers(-9, 9), st.sampled_from([0, 0, 0, 1])), min_size=1,
                max_size=40),
       st.integers(0, 2**31), st.sampled_from([0.1, 0.5, 1.0]))
def test_point_dropping_matches_the_reference_loop(rows, seed, prob):
    s = np.array(rows, np.float32)
    u = np.random.default_rng(seed).random(len(s))
    keep = augment_keep_mask(s[:, 2], np.array([0]), u, prob)
    # the vectorised rule, applied as in Batches._augment
    kept_index = np.cumsum(keep) - 1
    out = np.zeros((keep.sum(), 3), np.float32)
    np.add.at(out[:, 0], kept_index, s[:, 0])
    np.add.at(out[:, 1], kept_index, s[:, 1])
    out[:, 2] = s[keep, 2]
    np.testing.assert_array_equal(out, _reference_augment(s, u, prob))
    np.testing.assert_allclose(out[:, :2].sum(0), s[:, :2].sum(0))   # total displacement kept


def test_point_dropping_resets_at_each_sketch_of_a_batch():
    a = np.array([[1, 0, 0]] * 6 + [[1, 0, 1]], np.float32)
    both = np.vstack([a, a])
    keep = augment_keep_mask(both[:, 2], np.array([0, len(a)]), np.zeros(len(both)), 1.0)
    alone = augment_keep_mask(a[:, 2], np.array([0]), np.zeros(len(a)), 1.0)
    assert keep.tolist() == alone.tolist() * 2
    assert alone.tolist() == [True, True, True, False, False, False, True]  # first points and the pen-up stay


def test_random_scale_factors_range():
    f = random_scale_factors(np.random.default_rng(0), 10000, 0.15)
    assert f.shape == (10000, 2) and f.min() >= 0.85 and f.max() < 1.15 and abs(f.mean() - 1) < 0.01


def _write(path, splits):
    save_dataset(path, {k: [np.asarray(s, np.int16) for s in v] for k, v in splits.items()})


def _walk(rng, n):
    s = np.zeros((n, 3), np.int16)
    s[:, :2] = rng.integers(-20, 21, size=(n, 2))
    s[:, 2] = rng.random(n) < 0.2
    s[-1, 2] = 1
    return s


def test_preprocessing_order_and_scale_factor(tmp_path):
    rng = np.random.default_rng(1)
    train = [_walk(rng, n) for n in (5, 9, 3, 12)] + [np.array([[3000, -4000, 0], [1, 1, 1]], np.int16)]
    valid = [_walk(rng, 4), _walk(rng, 30)]       # 30 > max_seq_len: dropped
    test = [_walk(rng, 7)]
    _write(tmp_path / "a.npz", {"train": train, "valid": valid, "test": test})
    d = load_data([str(tmp_path / "a.npz")], max_seq_len=20)
    assert d.dropped == {"train": 0, "valid": 1, "test": 0}
    assert [len(s) for s in d.splits["train"].strokes] == [2, 3, 5, 9, 12]        # sorted by length
    clamped = [np.clip(s, -1000, 1000).astype(np.float64) for s in train]
    expected = np.std(np.concatenate([s[:, :2] for s in clamped]))
    assert d.scale_factor == pytest.approx(expected)
    np.testing.assert_allclose(d.splits["train"].strokes[0][0, :2], [1000 / expected, -1000 / expected], rtol=1e-6)
    np.testing.assert_allclose(d.splits["test"].strokes[0][:, :2], test[0][:, :2] / expected, rtol=1e-6)
    assert d.max_len == 12 and d.target_steps == 13
    assert normalizing_scale_factor([np.array([[1, -1, 0], [1, -1, 1]], np.float32)]) == 1.0


def test_several_files_are_concatenated_with_labels(tmp_path):
    rng = np.random.default_rng(2)
    for name in ("cat", "dog"):
        _write(tmp_path / f"{name}.npz", {k: [_walk(rng, 6)] * n for k, n in (("train", 3), ("valid", 2), ("test", 1))})
    d = load_data([str(tmp_path / "cat.npz"), str(tmp_path / "dog.npz")])
    assert d.classes == ["cat", "dog"]
    assert sorted(d.splits["train"].labels.tolist()) == [0, 0, 0, 1, 1, 1]
    assert len(d.splits["valid"]) == 4 and len(d.splits["test"]) == 2


def test_the_longest_sketch_gets_an_end_of_sketch_row():
    """Fix of REFERENCE F.4: the reference pads to exactly N_max, so the longest sketch never sees p3."""
    strokes = [np.array([[1, 1, 0]] * n + [[1, 1, 1]], np.float32) for n in (2, 5)]
    batches = Batches(Split(strokes, np.zeros(2, np.int64)), 2, target_steps=7)
    (batch,) = list(batches.eval_batches())
    assert batch.strokes5.shape == (2, 8, 5)
    assert batch.strokes5[1, 7].tolist() == [0, 0, 0, 0, 1]    # row len+1 of the 6-row sketch
    assert batch.norm_steps == 7


def test_pad_to_batch_pads_to_the_batch_longest_but_keeps_the_divisor():
    strokes = [np.array([[1, 1, 0]] * n + [[1, 1, 1]], np.float32) for n in (2, 3, 40)]
    batches = Batches(Split(strokes, np.zeros(3, np.int64)), 2, target_steps=42, pad_to_batch=True)
    first, second = batches.eval_batches()
    assert first.strokes5.shape == (2, 6, 5) and first.norm_steps == 42
    assert second.strokes5.shape == (1, 43, 5)


def test_evaluation_covers_every_sketch_including_the_remainder():
    """REFERENCE F.6: the reference drops the last partial batch (and divides by zero below batch_size)."""
    strokes = [np.array([[1, 1, 1]] * (i + 1), np.float32) for i in range(7)]
    batches = Batches(Split(strokes, np.arange(7)), 3, target_steps=8)
    sizes = [len(b.lengths) for b in batches.eval_batches()]
    assert sizes == [3, 3, 1]
    shards = [[len(b.lengths) for b in batches.eval_batches(rank, 2)] for rank in (0, 1)]
    assert shards == [[3, 1], [3]]


def test_training_batches_depend_only_on_seed_and_step():
    strokes = [np.array([[i, 1, 0], [1, 2, 0], [2, 1, 0], [1, 1, 0], [1, 0, 1]], np.float32) for i in range(50)]
    split = Split(strokes, np.arange(50))
    a = Batches(split, 8, 6, False, 0.15, 0.5, seed=3)
    b = Batches(split, 8, 6, False, 0.15, 0.5, seed=3)
    np.testing.assert_array_equal(a.random_batch(7).strokes5, b.random_batch(7).strokes5)
    assert not np.array_equal(a.random_batch(7).strokes5, a.random_batch(8).strokes5)
    assert all(s[:, 0].tolist() == [float(i), 1, 2, 1, 1] for i, s in enumerate(strokes))  # the split is untouched
    ranks = [set(a.random_batch(4, rank, 2).labels.tolist()) for rank in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 8 and not ranks[0] & ranks[1]    # disjoint halves of one permutation
    batch = a.random_batch(1)
    assert (batch.lengths <= 5).all() and (batch.lengths >= 3).all()          # points dropped, first/last kept


def test_too_few_train_sketches_is_a_clear_error():
    from sketchprep.errors import OptionError

    split = Split([np.array([[1, 1, 1]], np.float32)] * 3, np.zeros(3, np.int64))
    with pytest.raises(OptionError, match="fewer than batch_size"):
        Batches(split, 4, 2).random_batch(0)


def test_real_data_scale_factor():
    """REFERENCE A.5 measured the aaron_sheep train scale factor at about 18.52 px."""
    d = load_data([str(shared_data("sketchrnn_npz", "aaron_sheep.npz"))])
    assert d.scale_factor == pytest.approx(18.52, abs=0.01)
    assert d.max_len == 250 and len(d.splits["train"]) == 7400
