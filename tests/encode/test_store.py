import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from viral.encode.store import FeatureStoreError, read_features, read_metadata, write_features

META = {"model": "m", "normalize": True, "source": "item text"}


def test_round_trip_is_exact_and_sorted(tmp_path):
    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((7, 5)).astype(np.float32)
    ids = np.array([3, 0, 6, 1, 5, 2, 4])
    mask = ids % 2 == 0
    path = tmp_path / "f.parquet"
    write_features(path, ids, matrix, META, imputed=mask)

    got, meta = read_features(path)
    expected = np.empty_like(matrix)
    expected[ids] = matrix
    assert got.dtype == np.float32 and got.flags.writeable
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(meta["imputed"], np.arange(7) % 2 == 0)
    assert {k: meta[k] for k in ("model", "normalize", "source", "dim")} == {**META, "dim": 5}
    table = pq.read_table(path)
    assert table.column("itemID").to_pylist() == list(range(7))
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 5)
    assert json.loads(table.schema.metadata[b"dim"]) == 5
    assert read_metadata(path)["model"] == "m"


def test_metadata_from_read_can_be_written_back(tmp_path):
    matrix = np.arange(6, dtype=np.float32).reshape(3, 2)
    write_features(tmp_path / "a.parquet", range(3), matrix, META, imputed=[True, False, True])
    got, meta = read_features(tmp_path / "a.parquet")
    write_features(tmp_path / "b.parquet", range(3), got, meta)
    again, meta_again = read_features(tmp_path / "b.parquet")
    np.testing.assert_array_equal(again, matrix)
    np.testing.assert_array_equal(meta_again["imputed"], [True, False, True])


def test_reader_handles_many_row_groups_out_of_order(tmp_path):
    # Written by hand (not by write_features): several chunks, rows not sorted.
    rng = np.random.default_rng(1)
    n, d = 50, 3
    ids = rng.permutation(n)
    matrix = rng.standard_normal((n, d)).astype(np.float32)
    table = pa.table({
        "itemID": pa.array(ids, pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(matrix.ravel()), d),
        "imputed": pa.array(np.zeros(n, bool)),
    })
    path = tmp_path / "f.parquet"
    pq.write_table(table, path, row_group_size=7)
    got, _ = read_features(path)
    np.testing.assert_array_equal(got[ids], matrix)


@pytest.mark.parametrize("ids, message", [
    ([0, 1, 3], "contiguous 0..2"),
    ([0, 1, 1], "1 missing"),
    ([-1, 0, 1], "contiguous"),
])
def test_non_contiguous_ids_are_rejected(tmp_path, ids, message):
    with pytest.raises(FeatureStoreError, match=message):
        write_features(tmp_path / "f.parquet", ids, np.zeros((3, 2)), META)
    table = pa.table({
        "itemID": pa.array(ids, pa.int64()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(6, np.float32)), 2),
        "imputed": pa.array([False] * 3),
    })
    pq.write_table(table, tmp_path / "g.parquet")
    with pytest.raises(FeatureStoreError, match=rf"g.parquet: .*{message}"):
        read_features(tmp_path / "g.parquet")


def test_bad_writes_leave_existing_file_intact(tmp_path):
    path = tmp_path / "f.parquet"
    write_features(path, range(2), np.ones((2, 2)), META)
    bad = np.ones((2, 2))
    bad[1, 0] = np.nan
    with pytest.raises(FeatureStoreError, match="NaN"):
        write_features(path, range(2), bad, META)
    with pytest.raises(FeatureStoreError, match="lacks source"):
        write_features(path, range(2), np.ones((2, 2)), {"model": "m", "normalize": False})
    with pytest.raises(FeatureStoreError, match="3 item ids for 2"):
        write_features(path, range(3), np.ones((2, 2)), META)
    np.testing.assert_array_equal(read_features(path)[0], np.ones((2, 2)))
    assert [p.name for p in tmp_path.iterdir()] == ["f.parquet"]


def test_reader_rejects_wrong_embedding_type(tmp_path):
    table = pa.table({"itemID": pa.array([0], pa.int64()), "embedding": pa.array([[1.0, 2.0]]),
                      "imputed": pa.array([False])})
    pq.write_table(table, tmp_path / "f.parquet")
    with pytest.raises(FeatureStoreError, match="fixed_size_list<float32>"):
        read_features(tmp_path / "f.parquet")
    with pytest.raises(FeatureStoreError, match="not found"):
        read_features(tmp_path / "missing.parquet")


def test_reader_allocates_the_matrix_once(tmp_path):
    import tracemalloc

    n, d = 3000, 384
    path = tmp_path / "f.parquet"
    write_features(path, range(n), np.ones((n, d), np.float32), META)
    tracemalloc.start()
    matrix, _ = read_features(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # numpy allocations only (Arrow's own buffers are not traced): one (n, d) matrix plus small id arrays.
    assert peak < 1.25 * matrix.nbytes


def test_reader_rejects_features_of_another_catalog(tmp_path):
    path = tmp_path / "text.parquet"
    write_features(path, np.arange(3), np.ones((3, 4), np.float32), {"model": "m", "normalize": False, "source": "s"})
    assert read_features(path, 3)[0].shape == (3, 4)
    with pytest.raises(FeatureStoreError, match=r"3 item rows, but the prepared data has 5 items"):
        read_features(path, 5)


@pytest.mark.parametrize("damage", [
    lambda path: path.write_bytes(b"this is not parquet at all\n" * 40),
    lambda path: path.write_bytes(b""),
    lambda path: path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2]),
    lambda path: path.write_bytes(b"PAR1" + b"\0" * 64 + b"PAR1"),
], ids=["garbage", "empty", "truncated", "bad-footer"])
def test_damaged_files_are_one_line_errors(tmp_path, damage):
    path = tmp_path / "f.parquet"
    write_features(path, np.arange(4), np.ones((4, 3)), META)
    damage(path)
    for read in (read_features, read_metadata):
        with pytest.raises(FeatureStoreError, match=r"f\.parquet: not a readable Parquet feature file \(") as err:
            read(path)
        assert "\n" not in str(err.value)
