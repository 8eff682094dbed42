"""The three data stages end to end on a tiny synthetic dataset, the MMRec source, and one-line errors."""
from pathlib import Path

import pytest
import yaml

from viral.data.download import run_download
from viral.data.images import load_image_status, load_images, run_images
from viral.data.prepare import run_prepare
from viral.data.prepared import load_prepared
from viral.params import parse_params
from viral.stage import run_stage

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["download"]["synthetic"].update(n_users=80, n_items=40, image_size=32)
    raw["images"]["cache_dir"] = "data/cache/images"
    monkeypatch.chdir(tmp_path)
    return tmp_path, raw


def test_synthetic_chain_download_prepare_images(workdir):
    tmp_path, raw = workdir
    params = parse_params(raw)
    run_download(params)
    run_prepare(params)
    run_images(params)
    interactions, items = load_prepared("data/prepared/synthetic")
    assert len(items) == 40 and interactions["userID"].nunique() == 80
    assert (items["imUrl"].str.startswith("images/")).all()
    status = load_image_status("data/images/synthetic")
    assert (status["status"] == "ok").all() and len(status) == 40
    assert load_images("data/images/synthetic").column("itemID").to_pylist() == list(range(40))


def test_prepare_adopts_an_mmrec_folder_without_raw_data(workdir):
    tmp_path, raw = workdir
    folder = tmp_path / "mm" / "toy"
    folder.mkdir(parents=True)
    rows = [(u, i, s) for u in range(3) for i, s in zip(range(4), (0, 0, 1, 2))]
    (folder / "toy.inter").write_text("userID\titemID\tx_label\n" + "".join(f"{u}\t{i}\t{s}\n" for u, i, s in rows))
    (folder / "i_id_mapping.csv").write_text("asin\titemID\n" + "".join(f"B{i}\t{i}\n" for i in range(4)))
    (folder / "toy_url.csv").write_text("itemID,asin,imUrl\n0,B0,http://x/0.jpg\n1,B1,\n2,B2,\n3,B3,\n")
    raw.update(dataset="baby")
    raw["prepare"].update(split="mmrec_file", mmrec_dir=str(folder))
    run_prepare(parse_params(raw))
    interactions, items = load_prepared("data/prepared/baby")
    assert len(interactions) == 12 and interactions["split"].tolist() == [0, 0, 1, 2] * 3
    assert items["imUrl"].tolist() == ["http://x/0.jpg", "", "", ""] and (items["title"] == "").all()


def _run(name, body, raw, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_info:
        run_stage(name, body, str(tmp_path / "params.yaml"))
    return exit_info.value.code


def test_missing_inputs_are_one_line_errors(workdir, capsys):
    tmp_path, raw = workdir
    assert _run("prepare", run_prepare, raw, tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: prepare: data/raw/synthetic/reviews_Synthetic_5.json.gz: not found (run the download stage first)"
    assert _run("images", run_images, raw, tmp_path) == 1
    assert capsys.readouterr().err.strip() == ("error: images: data/prepared/synthetic: not found (run the prepare "
                                               "stage first)")
    raw["prepare"]["split"] = "mmrec_file"
    assert _run("prepare", run_prepare, raw, tmp_path) == 1
    assert capsys.readouterr().err.strip() == ("error: prepare: prepare.mmrec_dir: required when prepare.split "
                                               "is mmrec_file")
    raw["prepare"]["k_core"] = 2
    assert _run("prepare", run_prepare, raw, tmp_path) == 2
    assert "prepare.k_core: expected >= 3 (the split needs 3 interactions per user), got 2" in capsys.readouterr().err
