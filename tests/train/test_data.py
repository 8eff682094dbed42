"""Loading an MMRec data folder directly (ID-only models need no features)."""
from pathlib import Path

import numpy as np
import pytest

from viral.stage import StageError
from viral.train.data import load_mmrec_inputs

BABY = Path(__file__).resolve().parents[2] / "../shared/data/baby"


def write_folder(folder: Path) -> None:
    folder.mkdir()
    rows = [(0, 0, 0), (0, 1, 0), (0, 2, 1), (0, 3, 2), (1, 1, 0), (1, 3, 0), (1, 0, 1), (1, 2, 2)]
    (folder / "tiny.inter").write_text("userID\titemID\tx_label\n" + "".join(f"{u}\t{i}\t{s}\n" for u, i, s in rows))
    (folder / "i_id_mapping.csv").write_text("asin\titemID\n" + "".join(f"A{i}\t{i}\n" for i in range(5)))


def test_mmrec_folder_gives_its_own_split_and_the_user_item_graph(tmp_path):
    write_folder(tmp_path / "tiny")
    data = load_mmrec_inputs(tmp_path / "tiny", {"ui"})
    inputs = data.inputs
    assert (inputs.n_users, inputs.n_items, data.name) == (2, 5, "tiny")  # item 4 has no row, still counted
    assert inputs.train_pairs.tolist() == [[0, 0], [0, 1], [1, 1], [1, 3]]
    assert data.held_out["valid"].tolist() == [[0, 2], [1, 0]]
    assert data.held_out["test"].tolist() == [[0, 3], [1, 2]]
    assert inputs.graphs["ui"].shape == (7, 7) and inputs.graphs["ui"].nnz == 8


def test_mmrec_folder_without_what_the_model_needs_is_one_line(tmp_path):
    write_folder(tmp_path / "tiny")
    with pytest.raises(StageError, match="provides no ii"):
        load_mmrec_inputs(tmp_path / "tiny", {"ui", "ii"})


@pytest.mark.skipif(not BABY.is_dir(), reason="../shared/data/baby is not available in this checkout")
def test_real_baby_split_counts():
    data = load_mmrec_inputs(BABY)
    assert (data.inputs.n_users, data.inputs.n_items) == (19445, 7050)
    assert [len(data.inputs.train_pairs), len(data.held_out["valid"]), len(data.held_out["test"])] == [118551, 20559, 21682]
    assert np.unique(data.held_out["test"][:, 0]).size == 19445
