import numpy as np
import pytest

from viral.data.amazon import FEATURE_DIM, RawFormatError, write_image_features
from viral.encode.cnn import cnn_features


def _asin(k: int) -> str:
    return f"B{k:09d}"


def test_keeps_only_dataset_items_first_record_wins(tmp_path):
    rng = np.random.default_rng(0)
    rows = rng.standard_normal((5, FEATURE_DIM)).astype(np.float32)
    # file: asins 7, 1, 9 (not in the dataset), 3, 1 again (duplicate: ignored)
    path = tmp_path / "image_features_Baby.b"
    write_image_features(path, [_asin(7), _asin(1), _asin(9), _asin(3), _asin(1)], rows)
    ids, found = cnn_features(path, item_ids=[0, 1, 2], asins=[_asin(1), _asin(3), _asin(7)])
    assert ids == [2, 0, 1]
    np.testing.assert_array_equal(found, rows[[0, 1, 3]])
    assert found.dtype == np.float32


def test_truncated_last_record_is_a_clear_error(tmp_path):
    path = tmp_path / "image_features_Baby.b"
    write_image_features(path, [_asin(0), _asin(1)], np.ones((2, FEATURE_DIM), np.float32))
    with open(path, "r+b") as stream:
        stream.truncate(path.stat().st_size - 100)
    with pytest.raises(RawFormatError, match="image_features_Baby.b: size .* not a multiple .* truncated"):
        cnn_features(path, [0, 1], [_asin(0), _asin(1)])
