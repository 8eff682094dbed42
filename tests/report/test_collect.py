"""Collection without DVC: `dvc exp show --json`-shaped records and files served by a fake fetch; every
malformed or missing experiment is one line naming it."""
import json
import re

import numpy as np
import pandas as pd
import pytest

from viral.encode.store import write_features
from viral.report.collect import (CollectError, Entry, entries, flatten, item_category, load_run, select,
                                  visual_features)

from .conftest import fake_params, fake_run


def state(rev, params, metrics, name=None):
    data = {"rev": rev, "params": {"params.yaml": {"data": params}},
            "metrics": {"results/metrics.json": {"data": metrics}}}
    return {"rev": rev, "name": name, "data": data, "error": None, "experiments": None}


def exp_show(*experiments, workspace_params=None):
    """A workspace entry and one baseline holding `experiments` = (name, state, executor state or None)."""
    ws = state("workspace", workspace_params or fake_params(), {"model": "viral", "dataset": "synthetic", "seed": 999})
    ranges = [{"name": name, "revs": [s] if s else [], "executor": {"state": ex, "name": name} if ex else None}
              for name, s, ex in experiments]
    return [ws, {**state("a" * 40, fake_params(), {}), "experiments": ranges}]


def files_of(run, tmp_path):
    """What the train stage would have written for `run`, as a fetch over (rev, path)."""
    folder = tmp_path / run.rev
    (folder / "results/plots").mkdir(parents=True)
    run.per_user.reset_index().to_parquet(folder / "results/per_user.parquet")
    (folder / "results/contribution.json").write_text(json.dumps(run.contribution))
    run.curves.to_csv(folder / "results/plots/curves.csv", index=False)

    def fetch(rev, path):
        local = tmp_path / rev / path
        if not local.is_file():
            raise FileNotFoundError(path)
        return local

    return folder, fetch


def entry_of(run, params=None, metrics=None):
    return Entry(run.name, run.rev, params or fake_params(seed=run.seed, model=run.model), metrics or run.metrics)


def test_flatten_uses_dotted_keys_and_tuples():
    assert flatten({"a": 1, "b": {"c": [1, 2], "d": {"e": None}}, "f": {}}) == {"a": 1, "b.c": (1, 2), "b.d.e": None, "f": {}}


def test_entries_keep_finished_experiments_and_skip_queued_failed_and_the_workspace():
    run = fake_run("exp-1", 5, 0.2)
    found = entries(exp_show(("exp-1", state("b" * 40, fake_params(seed=5), run.metrics), None),
                             ("exp-2", None, "queued"), ("exp-3", state("c" * 40, fake_params(), {}), "failed"),
                             ("exp-4", state("d" * 40, fake_params(), run.metrics), "success")))
    assert [(e.name, e.rev[:1]) for e in found] == [("exp-1", "b"), ("exp-4", "d")]
    assert found[0].params["seed"] == 5 and found[0].metrics["test"]["recall@20"] == run.metrics["test"]["recall@20"]
    with_workspace = entries(exp_show(), workspace=True)
    assert [e.name for e in with_workspace] == ["workspace"] and with_workspace[0].label == "workspace"


@pytest.mark.parametrize("broken, message", [
    ({"metrics": {}}, "experiment exp-9 (eeeeeee): results/metrics.json: not in the experiment"),
    ({"metrics": {"results/metrics.json": {"error": {"msg": "unable to read"}}}},
     "experiment exp-9 (eeeeeee): results/metrics.json: unable to read"),
    ({"params": {}}, "experiment exp-9 (eeeeeee): params.yaml: not in the experiment"),
])
def test_a_malformed_experiment_is_one_line_naming_it(broken, message):
    bad = state("e" * 40, fake_params(), {})
    bad["data"].update(broken)
    with pytest.raises(CollectError) as err:
        entries(exp_show(("exp-9", bad, None)))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_load_run_reads_every_file_and_indexes_users(tmp_path):
    run = fake_run("exp-1", 7, 0.2, model="viral")
    _, fetch = files_of(run, tmp_path)
    loaded = load_run(entry_of(run), fetch)
    assert (loaded.model, loaded.seed, loaded.dataset) == ("viral", 7, "synthetic")
    assert loaded.params["train.epochs"] == 1000 and loaded.params["models.viral.synergy"] is True
    pd.testing.assert_frame_equal(loaded.per_user, run.per_user)
    assert loaded.contribution == run.contribution and loaded.curves["epoch"].tolist() == [1, 2, 3, 4, 5]


def test_missing_or_broken_files_name_the_experiment_and_the_file(tmp_path):
    run = fake_run("exp-1", 7, 0.2)
    folder, fetch = files_of(run, tmp_path)
    label = re.escape(f"experiment exp-1 ({run.rev[:7]})")
    (folder / "results/contribution.json").write_text("{not json")
    with pytest.raises(CollectError, match=rf"^{label}: results/contribution.json: unreadable \(JSONDecodeError"):
        load_run(entry_of(run), fetch)
    (folder / "results/per_user.parquet").unlink()
    with pytest.raises(CollectError, match=rf"^{label}: results/per_user.parquet: not found at this revision"):
        load_run(entry_of(run), fetch)
    run.per_user.drop(columns=["test_ndcg@20"]).reset_index().to_parquet(folder / "results/per_user.parquet")
    with pytest.raises(CollectError, match=rf"^{label}: results/per_user.parquet: columns test_ndcg@20 missing"):
        load_run(entry_of(run), fetch)


def test_params_and_metrics_that_disagree_or_do_not_validate_are_errors(tmp_path):
    run = fake_run("exp-1", 7, 0.2)
    _, fetch = files_of(run, tmp_path)
    with pytest.raises(CollectError, match=r"^experiment exp-1 \(\w{7}\): params.yaml: .*train.*lr"):
        load_run(entry_of(run, params=fake_params(seed=7, **{"train.lr": "fast"})), fetch)
    with pytest.raises(CollectError, match="results/metrics.json: seed is 7 but params.yaml says 8"):
        load_run(entry_of(run, params=fake_params(seed=8)), fetch)
    metrics = {**run.metrics, "test": {"recall@20": 0.1}}
    with pytest.raises(CollectError, match="results/metrics.json: test lacks recall@10, ndcg@10, ndcg@20"):
        load_run(entry_of(run, metrics=metrics), fetch)


def test_selecting_an_experiment_that_is_not_there_names_it():
    found = [Entry("exp-1", "a" * 40, {}, {}), Entry("exp-2", "b" * 40, {}, {})]
    assert [e.name for e in select(found, ("exp-2",))] == ["exp-2"]
    assert select(found, ()) == found
    with pytest.raises(CollectError, match=r"^experiment exp-7: not found among the finished experiments \(exp-1, exp-2\)"):
        select(found, ("exp-2", "exp-7"))


def test_item_category_picks_a_level_of_the_first_path():
    paths = [["Baby", "Feeding", "Bibs"], ["Baby", "Gear"]]
    assert item_category(paths) == "Bibs" and item_category(paths, 1) == "Feeding" and item_category(paths, 5) == "Bibs"
    assert item_category([]) == "" and item_category(None) == ""


def test_visual_features_are_read_once_per_dataset_and_setting(tmp_path):
    runs = [fake_run("a", 1, 0.2), fake_run("b", 2, 0.2), fake_run("c", 3, 0.2, visual="original")]
    for run in runs:
        folder = tmp_path / run.rev
        matrix = np.full((3, 4), run.seed, dtype=np.float32)
        write_features(folder / "data/features/synthetic/visual.parquet", np.arange(3), matrix,
                       {"source": "x", "model": "m", "normalize": False})
        (folder / "data/prepared/synthetic").mkdir(parents=True)
        pd.DataFrame({"itemID": [2, 0, 1], "categories": [[["S", "Toys"]], [["S", "Bibs"]], []]}).to_parquet(
            folder / "data/prepared/synthetic/items.parquet")
    features = visual_features(runs, lambda rev, path: tmp_path / rev / path)
    assert [(f.visual, f.matrix[0, 0]) for f in features] == [("vlm_title", 1.0), ("original", 3.0)]
    assert features[0].categories.tolist() == ["Bibs", "", "Toys"]
