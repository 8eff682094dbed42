"""The data stages end to end through the params registry: the synthetic chain, an MMRec folder all the
way to a trained VIRAL (its own features, images and captions skipped), a custom folder through
images and precomputed captions, and one-line errors."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from viral.caption.run import run_caption
from viral.data.download import run_download
from viral.data.images import load_image_status, load_images, run_images
from viral.data.prepare import run_prepare
from viral.data.prepared import load_prepared
from viral.encode.run import run_encode
from viral.encode.store import read_features
from viral.graphs.run import run_graphs
from viral.params import parse_params
from viral.stage import run_stage
from viral.train.run import run_train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["datasets"]["synthetic"].update(n_users=80, n_items=40, image_size=32)
    raw["images"]["cache_dir"] = "data/cache/images"
    raw["caption"]["cache_dir"] = "data/cache/captions"
    raw["caption"]["prompt_file"] = str(ROOT / "viral/caption/prompts.yaml")
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
    stats = json.loads(Path("data/prepared/synthetic/stats.json").read_text())
    assert (stats["dataset"], stats["source"], stats["split"]) == ("synthetic", "synthetic", "random")


def mmrec_folder(folder: Path, n_users=24, n_items=16, per_user=6, seed=0) -> dict:
    """A small MMRec folder (5-column .inter, both id maps, url file, both feature files)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    rows = []
    for user in range(n_users):
        items = rng.choice(n_items, per_user, replace=False)
        items[0] = user % n_items  # every item gets users
        items = list(dict.fromkeys(items.tolist()))
        labels = [0] * (len(items) - 2) + [1, 2]
        rows += [(user, item, 5.0, 1000 + k, label) for k, (item, label) in enumerate(zip(items, labels))]
    pd.DataFrame(rows, columns=["userID", "itemID", "rating", "timestamp", "x_label"]).to_csv(
        folder / "toy.inter", sep="\t", index=False)
    pd.DataFrame({"asin": [f"B{i:09d}" for i in range(n_items)], "itemID": range(n_items)}).to_csv(
        folder / "i_id_mapping.csv", sep="\t", index=False)
    pd.DataFrame({"user_id": [f"U{u}" for u in range(n_users)], "userID": range(n_users)}).to_csv(
        folder / "u_id_mapping.csv", sep="\t", index=False)
    pd.DataFrame({"itemID": range(n_items), "asin": [f"B{i:09d}" for i in range(n_items)],
                  "imUrl": [f"http://127.0.0.1:9/{i}.jpg" for i in range(n_items)]}).to_csv(folder / "toy_url.csv",
                                                                                          index=False)
    text = rng.normal(size=(n_items, 24)).astype(np.float32)
    image = rng.normal(size=(n_items, 40))  # float64, as MMRec stores image features
    np.save(folder / "text_feat.npy", text)
    np.save(folder / "image_feat.npy", image)
    return {"rows": rows, "text": text, "image": image}


def test_mmrec_folder_trains_viral_on_its_own_features(workdir):
    tmp_path, raw = workdir
    made = mmrec_folder(tmp_path / "MMRec" / "toy")
    raw["datasets"]["toy_mmrec"] = {"source": "mmrec", "path": str(tmp_path / "MMRec" / "toy")}
    raw.update(dataset="toy_mmrec", model="viral")  # visual stays vlm_title: the folder's features win
    raw["train"].update(epochs=2, batch_size=64, device="cpu", eval_batch_size=64)
    raw["encode"]["device"] = "cpu"
    params = parse_params(raw)
    run_download(params)
    run_prepare(params)
    interactions, items = load_prepared("data/prepared/toy_mmrec")
    ours = interactions.sort_values(["userID", "itemID"])[["userID", "itemID", "split"]].to_numpy().tolist()
    theirs = sorted([u, i, s] for u, i, _, _, s in made["rows"])
    assert ours == theirs
    run_images(params)
    status = load_image_status("data/images/toy_mmrec")
    assert (status["status"] == "skipped").all() and load_images("data/images/toy_mmrec").num_rows == 0
    reports = run_caption(params)  # the precomputed backend needs no file for such a dataset
    for prompt in ("title", "plain"):
        assert reports[prompt]["captioned"] == 0 and "skipped" in reports[prompt]
    report = run_encode(params)
    text, text_meta = read_features("data/features/toy_mmrec/text.parquet")
    visual, _ = read_features("data/features/toy_mmrec/visual.parquet")
    np.testing.assert_array_equal(text, made["text"])
    np.testing.assert_allclose(visual, made["image"].astype(np.float32))
    assert text_meta["source"] == "mmrec:text_feat.npy" and not text_meta["imputed"].any()
    assert report["outputs"]["visual.parquet"]["dim"] == 40
    run_graphs(params)
    metrics = run_train(params)
    assert (metrics["model"], metrics["dataset"], metrics["epochs"]) == ("viral", "toy_mmrec", 2)
    assert 0.0 <= metrics["test"]["recall@20"] <= 1.0


def test_custom_folder_through_images_and_precomputed_captions(workdir):
    from PIL import Image

    tmp_path, raw = workdir
    folder = tmp_path / "shop"
    (folder / "pics").mkdir(parents=True)
    rows = [(f"u{u}", f"i{(u + k) % 8}", 4.0, 100 * u + k) for u in range(12) for k in range(6)]
    pd.DataFrame(rows, columns=["customer", "product", "stars", "when"]).to_parquet(folder / "events.parquet")
    for i in range(8):
        Image.new("RGB", (8, 8), (30 * i, 0, 0)).save(folder / "pics" / f"i{i}.png")
    pd.DataFrame({"product": [f"i{i}" for i in range(8)], "name": [f"Thing {i}" for i in range(8)],
                  "picture": [f"pics/i{i}.png" for i in range(8)],
                  "categories": ["Home|Kitchen"] * 8}).to_csv(folder / "products.csv", index=False)
    pd.DataFrame({"asin": [f"i{i}" for i in range(8)], "description": [f"A red thing {i}." for i in range(8)]}).to_csv(
        folder / "descriptions_title.csv", index=False)
    raw["datasets"]["shop"] = {
        "source": "custom", "path": str(folder), "interactions": "events.parquet", "items": "products.csv",
        "split": "last_out", "columns": {"user": "customer", "item": "product", "rating": "stars", "timestamp": "when",
                                         "title": "name", "image": "picture"}}
    raw["dataset"] = "shop"
    raw["caption"]["prompts"] = ["title"]
    params = parse_params(raw)
    run_download(params)
    run_prepare(params)
    interactions, items = load_prepared("data/prepared/shop")
    assert len(items) == 8 and interactions["userID"].nunique() == 12
    latest = interactions.loc[interactions.groupby("userID")["timestamp"].idxmax()]
    assert (latest["split"] == 2).all()
    assert items["title"].str.startswith("Thing ").all() and [list(path) for path in items.loc[0, "categories"]] == [["Home", "Kitchen"]]
    run_images(params)
    assert (load_image_status("data/images/shop")["status"] == "ok").all()
    assert run_caption(params)["title"]["captioned"] == 8


def _run(name, body, raw, tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit) as exit_info:
        run_stage(name, body, str(tmp_path / "params.yaml"))
    return exit_info.value.code


def test_missing_inputs_and_bad_names_are_one_line_errors(workdir, capsys):
    tmp_path, raw = workdir
    assert _run("prepare", run_prepare, raw, tmp_path) == 1
    err = capsys.readouterr().err.strip()
    assert err == "error: prepare: data/raw/synthetic/reviews_Synthetic_5.json.gz: not found (run the download stage first)"
    Path("data/raw/synthetic").mkdir(parents=True)
    Path("data/raw/synthetic/reviews_Synthetic.json.gz").write_text("")
    assert _run("prepare", run_prepare, raw, tmp_path) == 1
    assert capsys.readouterr().err.strip().endswith("(run the download stage first); data/raw/synthetic has: "
                                                    "reviews_Synthetic.json.gz")
    assert _run("images", run_images, raw, tmp_path) == 1
    assert capsys.readouterr().err.strip() == ("error: images: data/prepared/synthetic: not found (run the prepare "
                                               "stage first)")
    raw["dataset"] = "movies"
    assert _run("prepare", run_prepare, raw, tmp_path) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "dataset: unknown name 'movies'; valid: baby, " in err and "\n" not in err
    raw.update(dataset="synthetic")
    raw["datasets"]["synthetic"]["source"] = "amazon2099"
    assert _run("download", run_download, raw, tmp_path) == 2
    assert "datasets.synthetic.source: unknown source 'amazon2099'; valid: synthetic, amazon2014" in capsys.readouterr().err
    raw["datasets"]["synthetic"] = {"source": "amazon2018", "category": "Baby"}
    assert _run("download", run_download, raw, tmp_path) == 2
    assert "datasets.synthetic.category: unknown name 'Baby'; valid: AMAZON_FASHION, All_Beauty" in capsys.readouterr().err
    raw["datasets"]["synthetic"] = {"source": "synthetic"}
    raw["prepare"]["k_core"] = 2
    assert _run("prepare", run_prepare, raw, tmp_path) == 2
    assert "prepare.k_core: expected >= 3 (the split needs 3 interactions per user), got 2" in capsys.readouterr().err
