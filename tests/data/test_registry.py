"""The dataset registry in params.yaml: built-in names, every source, one-line errors listing what
exists, and DVC stages that depend on the selected entry only."""
from pathlib import Path

import pytest
import yaml

from viral.config import ConfigError
from viral.data.datasets import BUILTIN, SOURCES, parse_datasets
from viral.params import Params, load_params, parse_params

ROOT = Path(__file__).resolve().parents[2]


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_registry_is_valid_and_keeps_the_four_names():
    params = load_params(ROOT / "params.yaml")
    assert set(BUILTIN) <= set(params.datasets)
    assert {entry.source for entry in params.datasets.values()} == set(SOURCES)
    baby = params.datasets["baby"]
    assert (baby.source, baby.category, baby.split) == ("amazon2014", "Baby", "random")
    assert params.datasets["clothing"].category == "Clothing_Shoes_and_Jewelry"
    assert params.datasets["synthetic"].settings.generator() == Params().datasets["synthetic"].settings.generator()


def test_builtins_exist_without_a_datasets_section():
    params = parse_params({"dataset": "sports"})
    assert params.dataset_config().category == "Sports_and_Outdoors"


def test_an_entry_overrides_only_what_it_lists():
    registry = parse_datasets({"baby": {"source": "amazon2014", "split": "last_out"},
                               "synthetic": {"source": "synthetic", "n_users": 60, "n_items": 30}})
    assert (registry["baby"].category, registry["baby"].split) == ("Baby", "last_out")
    assert registry["synthetic"].settings.n_users == 60 and registry["synthetic"].settings.noise == 0.1


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.__setitem__("dataset", "movies"),
     "dataset: unknown name 'movies'; valid: baby, baby_2023, baby_mmrec_split, beauty_2018, clothing"),
    (lambda r: r["datasets"].__setitem__("x", {"category": "Baby"}),
     "datasets.x.source: missing; valid: synthetic, amazon2014, amazon2018, amazon2023, mmrec, custom"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "ebay"}), "datasets.x.source: unknown source 'ebay'; valid:"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "amazon2014", "category": "Baby_Products"}),
     "datasets.x.category: unknown name 'Baby_Products'; valid: Amazon_Instant_Video, Apps_for_Android"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "amazon2023"}), "datasets.x.category: missing required key"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "amazon2018", "category": "Books", "split": "published_last_out"}),
     "datasets.x.split: got 'published_last_out', expected one of random, last_out, timestamp, mmrec"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "amazon2014", "category": "Baby", "split": "timestamp"}),
     "datasets.x: split: timestamp needs valid_from and test_from"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "amazon2014", "category": "Baby", "split": "mmrec"}),
     "datasets.x: split: mmrec needs mmrec_dir"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "amazon2014", "category": "Baby", "mmrec_dir": "d"}),
     "datasets.x: mmrec_dir: only read with split: mmrec"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "amazon2014", "category": "Baby", "valid_from": -1}),
     "datasets.x.valid_from: expected >= 0"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "mmrec"}), "datasets.x.path: missing required key"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "mmrec", "path": "p", "split": "random"}),
     "datasets.x: unknown key 'split'; valid keys: path"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "custom", "path": "p", "split": "mmrec", "mmrec_dir": "d"}),
     "datasets.x.split: got 'mmrec', expected one of random, last_out, timestamp"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "custom", "path": "p", "columns": {"usr": "a"}}),
     "datasets.x.columns: unknown key 'usr'"),
    (lambda r: r["datasets"].__setitem__("x", {"source": "custom", "path": "p", "items": "../items.csv"}),
     "datasets.x: items: expected a file name inside the folder"),
    (lambda r: r["datasets"].__setitem__("a b", {"source": "synthetic"}), "datasets.a b: a dataset name is a folder name"),
    (lambda r: r.__setitem__("datasets", ["baby"]), "datasets: expected a mapping"),
])
def test_bad_registry_is_one_line(mutate, expected):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("params.yaml: ")


def test_data_stages_depend_on_the_selected_entry_only():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name in ("download", "prepare", "encode"):
        params = stages[name]["params"]
        assert "datasets.${dataset}" in params and "datasets" not in params, name
    assert not any("datasets" in str(p) for p in stages["images"]["params"])
