import numpy as np
import pytest

from ferkit.data import RawSplit, apply_protocol, majority_labels, soft_targets
from ferkit.errors import DataError

#            neu hap sur sad ang dis fea con unk NF
ROWS = np.array([
    [0, 10, 0, 0, 0, 0, 0, 0, 0, 0],   # unanimous happiness
    [4, 1, 1, 1, 1, 1, 1, 0, 0, 0],    # 4/10 raw, but single votes are outliers: 4/4 neutral
    [5, 5, 0, 0, 0, 0, 0, 0, 0, 0],    # tie: no class has more than half
    [1, 1, 1, 1, 1, 1, 1, 1, 1, 1],    # all single votes: nothing left
    [2, 0, 0, 0, 0, 0, 0, 0, 8, 0],    # unknown wins
    [0, 0, 0, 0, 0, 0, 0, 3, 0, 7],    # not-a-face wins
    [0, 0, 0, 0, 0, 0, 0, 6, 0, 3],    # contempt 6 of 9 (a 9-vote row)
    [0, 0, 3, 2, 0, 0, 0, 0, 0, 0],    # surprise 3 of 5
    [3, 3, 2, 0, 0, 0, 0, 0, 2, 0],    # no majority; soft keeps it
])


def test_majority_protocol_on_hand_built_rows():
    assert majority_labels(ROWS).tolist() == [1, 0, -1, -1, -1, -1, 7, 2, -1]


def test_soft_targets_are_the_emotion_vote_distribution_after_outlier_removal():
    dist, keep = soft_targets(ROWS)
    assert keep.tolist() == [True, True, True, False, False, False, True, True, True]
    np.testing.assert_allclose(dist[1], [1, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(dist[2], [0.5, 0.5, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(dist[7], [0, 0, 0.6, 0.4, 0, 0, 0, 0])
    np.testing.assert_allclose(dist[8], [3 / 8, 3 / 8, 2 / 8, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(dist[keep].sum(axis=1), 1.0, rtol=1e-6)


def _split(votes: np.ndarray) -> RawSplit:
    n = len(votes)
    images = np.arange(n, dtype=np.uint8)[:, None, None] * np.ones((1, 48, 48), np.uint8)
    return RawSplit(names=tuple(f"f{i}" for i in range(n)), images=images, votes=votes)


def test_apply_protocol_keeps_faces_aligned_with_targets():
    labelled = apply_protocol(_split(ROWS), "majority", 8)
    assert labelled.names == ("f0", "f1", "f6", "f7")
    assert labelled.labels.tolist() == [1, 0, 7, 2]
    assert [int(img[0, 0]) for img in labelled.images] == [0, 1, 6, 7]
    np.testing.assert_array_equal(labelled.targets, np.eye(8, dtype=np.float32)[[1, 0, 7, 2]])
    soft = apply_protocol(_split(ROWS), "probability", 8)
    assert soft.names == ("f0", "f1", "f2", "f6", "f7", "f8")
    assert soft.labels.tolist() == [1, 0, 0, 7, 2, 0]


def test_hard_labels_give_one_hot_targets_in_every_mode():
    split = RawSplit(names=("a", "b"), images=np.zeros((2, 48, 48), np.uint8), labels=np.array([2, 0]))
    for mode in ("majority", "soft", "probability"):
        labelled = apply_protocol(split, mode, 7)
        np.testing.assert_array_equal(labelled.targets, np.eye(7, dtype=np.float32)[[2, 0]])


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(DataError, match="unknown label mode 'votes'.*majority, soft, probability"):
        apply_protocol(_split(ROWS), "votes", 8)
