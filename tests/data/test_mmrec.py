"""MMRec folders as a source (read, check against raw data) and as an export target (round trip)."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from viral.data.config import PrepareConfig
from viral.data.mmrec import MMRecFormatError, read_feature, read_folder, read_folder_features
from viral.data.mmrec_export import export_mmrec, main
from viral.data.prepare import prepare_from_mmrec, prepare_from_raw
from viral.data.prepared import write_prepared
from viral.encode.store import write_features
from viral.stage import StageError

BABY = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "baby"


def _paths(raw_dir):
    return raw_dir / "reviews_Synthetic_5.json.gz", raw_dir / "meta_Synthetic.json.gz"


@pytest.fixture
def exported(raw_dir, tmp_path):
    """Our own prepared data exported as an MMRec folder `synthetic/` (with features)."""
    prepared, stats = prepare_from_raw(*_paths(raw_dir), PrepareConfig(), seed=3)
    prepared_dir = tmp_path / "prepared" / "synthetic"
    write_prepared(prepared_dir, prepared, stats)
    features = tmp_path / "features"
    n = len(prepared.items)
    rng = np.random.default_rng(0)
    text = rng.normal(size=(n, 8)).astype(np.float32)
    meta = {"model": "m", "normalize": False, "source": "test"}
    write_features(features / "text.parquet", np.arange(n), text, meta)
    write_features(features / "visual.parquet", np.arange(n)[::-1], text[::-1] * 2, meta)
    out = tmp_path / "mmrec" / "synthetic"
    written = export_mmrec(prepared_dir, features, out)
    return prepared, out, written, text


@pytest.mark.skipif(not BABY.is_dir(), reason="../shared/data/baby (MMRec's Baby split) is not in this checkout")
def test_baby_mmrec_split_is_adopted_exactly():
    prepared, stats = prepare_from_mmrec(BABY, None, None, PrepareConfig())
    assert (stats["users"], stats["items"], stats["interactions"]) == (19445, 7050, 160792)
    assert stats["splits"] == {"train": 118551, "valid": 20559, "test": 21682}
    mapping = pd.read_csv(BABY / "i_id_mapping.csv", sep="\t", dtype={"asin": str})
    by_id = mapping.set_index("itemID")["asin"]
    assert prepared.items["asin"].tolist() == by_id.reindex(range(7050)).tolist()
    inter = pd.read_csv(BABY / "baby.inter", sep="\t")
    ours = prepared.interactions.sort_values(["userID", "itemID"], ignore_index=True)
    theirs = inter.sort_values(["userID", "itemID"], ignore_index=True)
    assert ours["itemID"].tolist() == theirs["itemID"].tolist()
    assert ours["split"].tolist() == theirs["x_label"].tolist()
    urls = pd.read_csv(BABY / "baby_url.csv", keep_default_na=False)
    assert (prepared.items["imUrl"] == "").sum() == (urls["imUrl"] == "").sum() == 13
    assert prepared.users["reviewerID"].iloc[0] == "A1HK2FQW6KXQB2"


def test_export_round_trip_is_consistent_with_raw(exported, raw_dir):
    prepared, out, written, text = exported
    assert set(written) == {"synthetic.inter", "i_id_mapping.csv", "u_id_mapping.csv", "synthetic_url.csv",
                            "text_feat.npy", "image_feat.npy"}
    again, stats = prepare_from_mmrec(out, *_paths(raw_dir), PrepareConfig())
    assert stats["checked_against_raw"] and stats["raw_mismatches"] == []
    assert stats["mmrec_features"] == ["image_feat.npy", "text_feat.npy"]
    for column in ("userID", "itemID", "split", "rating", "timestamp"):
        assert again.interactions[column].tolist() == prepared.interactions[column].tolist(), column
    assert again.items.drop(columns="price").equals(prepared.items.drop(columns="price"))
    assert np.array_equal(read_feature(out / "text_feat.npy", len(prepared.items)), text)
    assert np.array_equal(read_feature(out / "image_feat.npy", len(prepared.items)), text * 2)


def test_ratings_come_from_raw_when_the_inter_lacks_them(exported, raw_dir):
    prepared, out, _, _ = exported
    inter = pd.read_csv(out / "synthetic.inter", sep="\t")
    inter[["userID", "itemID", "x_label"]].to_csv(out / "synthetic.inter", sep="\t", index=False)
    again, _ = prepare_from_mmrec(out, *_paths(raw_dir), PrepareConfig())
    assert np.allclose(again.interactions["rating"], prepared.interactions["rating"])


def test_inter_that_does_not_match_raw_is_reported(exported, raw_dir):
    _, out, _, _ = exported
    inter = pd.read_csv(out / "synthetic.inter", sep="\t")
    inter = inter.drop(index=[0, 1])  # two interactions the raw 5-core has
    inter.to_csv(out / "synthetic.inter", sep="\t", index=False)
    with pytest.raises(StageError, match=r"does not match the raw data .*2 interactions only in the raw 5-core"):
        prepare_from_mmrec(out, *_paths(raw_dir), PrepareConfig())
    adopted, stats = prepare_from_mmrec(out, *_paths(raw_dir), PrepareConfig(mmrec_check="warn"))
    assert len(adopted.interactions) == len(inter) and len(stats["raw_mismatches"]) == 1


def test_unknown_asins_and_users_are_reported(exported, raw_dir):
    _, out, _, _ = exported
    items = pd.read_csv(out / "i_id_mapping.csv", sep="\t")
    items.loc[0, "asin"] = "NOTINRAW01"
    items.to_csv(out / "i_id_mapping.csv", sep="\t", index=False)
    (out / "synthetic_url.csv").unlink()  # it would (rightly) disagree with the edited map first
    users = pd.read_csv(out / "u_id_mapping.csv", sep="\t")
    users.loc[0, "user_id"] = "GHOST"
    users.to_csv(out / "u_id_mapping.csv", sep="\t", index=False)
    with pytest.raises(StageError) as err:
        prepare_from_mmrec(out, *_paths(raw_dir), PrepareConfig())
    message = str(err.value)
    assert "1 asins of the item map are not in the reviews (e.g. 'NOTINRAW01')" in message
    assert "1 users of the user map never reviewed (e.g. 'GHOST')" in message
    assert "\n" not in message


def test_without_user_map_item_counts_are_compared(exported, raw_dir):
    _, out, _, _ = exported
    (out / "u_id_mapping.csv").unlink()
    _, stats = prepare_from_mmrec(out, *_paths(raw_dir), PrepareConfig())
    assert stats["raw_mismatches"] == []
    inter = pd.read_csv(out / "synthetic.inter", sep="\t").drop(index=[0])
    inter.to_csv(out / "synthetic.inter", sep="\t", index=False)
    with pytest.raises(StageError, match="1 items have a different interaction count"):
        prepare_from_mmrec(out, *_paths(raw_dir), PrepareConfig())


@pytest.mark.parametrize(
    "edit, expected",
    [
        (lambda f: f.assign(x_label=f["x_label"].where(f.index != 4, 3)), r"synthetic\.inter:6: field 'x_label': expected 0, 1 or 2, got 3"),
        (lambda f: f.astype({"itemID": object}).assign(itemID=lambda g: g["itemID"].where(g.index != 0, "abc")),
         r"synthetic\.inter:2: field 'itemID': expected an integer, got 'abc'"),
        (lambda f: f.assign(itemID=f["itemID"].where(f.index != 1, 10**6)), r"synthetic\.inter:3: field 'itemID': expected an id in 0\.\."),
        (lambda f: pd.concat([f, f.iloc[[0]]]), r"duplicate \(userID, itemID\) pair"),
        (lambda f: f.assign(userID=f["userID"].where(f.index != 2, -1)), r"synthetic\.inter:4: field 'userID': expected a non-negative id, got -1"),
        (lambda f: f.drop(columns="x_label"), r"missing column\(s\) x_label"),
    ],
)
def test_bad_inter_files(exported, edit, expected):
    _, out, _, _ = exported
    frame = pd.read_csv(out / "synthetic.inter", sep="\t")
    edit(frame).to_csv(out / "synthetic.inter", sep="\t", index=False)
    with pytest.raises(MMRecFormatError, match=expected):
        read_folder(out)


def test_bad_maps_and_folders(exported, tmp_path):
    _, out, _, _ = exported
    with pytest.raises(MMRecFormatError, match="no such MMRec data folder"):
        read_folder(tmp_path / "nope")
    items = pd.read_csv(out / "i_id_mapping.csv", sep="\t")
    items.loc[1, "itemID"] = 0
    items.to_csv(out / "i_id_mapping.csv", sep="\t", index=False)
    with pytest.raises(MMRecFormatError, match="i_id_mapping.csv: field 'itemID': expected each id"):
        read_folder(out)
    (out / "other.inter").write_text("userID\titemID\tx_label\n")
    (out / "synthetic.inter").rename(out / "third.inter")
    with pytest.raises(MMRecFormatError, match="expected exactly one <name>.inter file, found other.inter, third.inter"):
        read_folder(out)


def test_feature_shape_is_checked(exported):
    prepared, out, _, _ = exported
    with pytest.raises(MMRecFormatError, match=r"expected shape \(3, d\)"):
        read_feature(out / "text_feat.npy", 3)


def test_cli(exported, tmp_path, capsys):
    _, out, _, _ = exported
    prepared_dir = tmp_path / "prepared" / "synthetic"
    assert main(["--prepared", str(prepared_dir), "--out", str(tmp_path / "cli"), "--name", "syn"]) == 0
    assert (tmp_path / "cli" / "syn.inter").is_file() and not (tmp_path / "cli" / "text_feat.npy").exists()
    assert main(["--prepared", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 1
    assert "not found" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_folder_features_are_found_and_checked(exported):
    prepared, out, _, text = exported
    features = read_folder_features(out)
    assert sorted(features) == ["image", "text"] and np.array_equal(features["text"], text)
    (out / "image_feat.npy").unlink()
    np.save(out / "text_feat.npy", np.zeros((2, 8), dtype=np.float64))
    with pytest.raises(MMRecFormatError, match=rf"text_feat\.npy: expected shape \({len(prepared.items)}, d\), got \(2, 8\)"):
        read_folder_features(out)


def test_url_file_that_disagrees_with_the_item_map(exported):
    _, out, _, _ = exported
    urls = pd.read_csv(out / "synthetic_url.csv", keep_default_na=False)
    urls.loc[2, "asin"] = "OTHER"
    urls.to_csv(out / "synthetic_url.csv", index=False)
    with pytest.raises(MMRecFormatError, match="synthetic_url.csv: itemID 2 has asin 'OTHER', but i_id_mapping.csv maps it to"):
        read_folder(out)
