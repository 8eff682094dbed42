import numpy as np
import pytest

from viral.encode.impute import fill_with_mean
from viral.stage import StageError


def test_missing_items_get_the_mean_of_found_rows():
    rows = np.array([[1.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    matrix, imputed = fill_with_mean(4, [2, 0], rows, normalize=False, what="t")
    np.testing.assert_array_equal(matrix, [[3, 4], [2, 2], [1, 0], [2, 2]])
    np.testing.assert_array_equal(imputed, [False, True, False, True])


def test_normalised_mean_is_unit_length():
    rows = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    matrix, _ = fill_with_mean(3, [0, 1], rows, normalize=True, what="t")
    np.testing.assert_allclose(matrix[2], [2 ** -0.5, 2 ** -0.5], rtol=1e-6)


@pytest.mark.parametrize("ids, message", [([], "no item has a usable"), ([0, 0], "more than once"),
                                          ([0, 5], "outside 0..2")])
def test_bad_ids_are_one_line_errors(ids, message):
    with pytest.raises(StageError, match=message):
        fill_with_mean(3, ids, np.zeros((len(ids), 2), np.float32), normalize=False, what="t")
