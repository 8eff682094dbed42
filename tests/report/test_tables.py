"""Grouping runs by configuration and the tables built from fake experiment records."""
import math

import pytest

from viral.report.groups import group_runs, is_reference, relevant_params, varying_knobs
from viral.report.stats import align_users, mean_sd, paired_test, welch
from viral.report.tables import comparisons, summary, table1, table2

from .conftest import fake_run, paper_runs


def texts(table):
    return [[cell.text for cell in row] for row in table.rows]


def test_knobs_a_model_does_not_read_and_knobs_without_effect_are_ignored():
    viral = relevant_params(fake_run("a", 1, 0.1, model="viral", fusion="concat").params)
    lightgcn = relevant_params(fake_run("b", 1, 0.1, model="lightgcn", fusion="concat", visual="original",
                                        **{"train.threads": 1}).params)
    assert viral["fusion"] == "concat" and viral["visual"] == "vlm_title" and "caption.model" in viral
    assert "seed" not in viral and "train.threads" not in viral and not any(k.startswith("models.bpr") for k in viral)
    assert {"fusion", "visual", "caption.model", "train.threads"}.isdisjoint(lightgcn)
    assert lightgcn["models.lightgcn.n_layers"] == 3 and lightgcn["data_seed"] == 999


def test_seeds_of_one_configuration_form_one_group_and_a_repeated_seed_counts_once():
    runs = [fake_run("l1", 2, 0.1, model="lightgcn"), fake_run("l2", 1, 0.1, model="lightgcn", fusion="concat"),
            fake_run("l3", 1, 0.1, model="lightgcn"), fake_run("v1", 1, 0.2, model="viral")]
    groups = group_runs(runs)
    assert [(g.model, g.seeds, [r.name for r in g.runs]) for g in groups] == \
           [("lightgcn", [1, 2], ["l2", "l1"]), ("viral", [1], ["v1"])]


def test_table1_rows_cells_bold_and_the_comparison_against_the_best_baseline(runs):
    groups = group_runs(runs)
    table = table1(groups)
    rows = texts(table)
    assert [row[0] for row in rows] == ["bpr", "lightgcn", "viral, fusion=concat", "viral, visual=original", "viral",
                                        "viral vs best baseline", "p, Wilcoxon over users", "p, paired t over users",
                                        "p, Welch t over seeds"]
    assert table.columns == ["Model", "R@10", "R@20", "N@10", "N@20", "Seeds"]
    assert table.spans == [("", 1), ("synthetic", 4), ("", 1)]
    viral_runs = [r for r in runs if r.name.startswith("viral-")]
    r20 = [r.metrics["test"]["recall@20"] for r in viral_runs]
    assert rows[4][2] == "{:.4f} ± {:.4f}".format(*mean_sd(r20)) and rows[4][5] == "3"
    assert [cell.bold for cell in table.rows[4][1:5]] == [True] * 4
    assert not any(cell.bold for row in table.rows[:4] for cell in row)
    # The comparison row: VIRAL against LightGCN (the best baseline), recomputed here from the runs.
    lightgcn = [r for r in runs if r.model == "lightgcn"]
    l20 = [r.metrics["test"]["recall@20"] for r in lightgcn]
    assert rows[5][2] == f"{mean_sd(r20)[0] / mean_sd(l20)[0] - 1:+.1%} vs lightgcn"
    ours = sum(r.per_user["test_recall@20"] for r in viral_runs) / 3
    theirs = sum(r.per_user["test_recall@20"] for r in lightgcn) / 3
    users = paired_test(*align_users(ours, theirs))
    found = {c.metric: c for c in comparisons(groups)}["recall@20"]
    assert found.users == users
    assert found.seeds_p == pytest.approx(welch(r20, l20)[1])
    assert rows[6][2] == f"{users.wilcoxon_p:.1e} (n={users.nonzero})"


def test_table1_without_a_baseline_says_why_there_is_no_comparison():
    table = table1(group_runs([fake_run("v", 1, 0.2), fake_run("v2", 2, 0.2)]))
    assert len(table.rows) == 1 and "No comparison" in table.notes[0]


def test_table2_labels_rows_like_the_paper_with_viral_last(runs):
    table = table2(group_runs(runs))
    rows = texts(table)
    assert [row[0] for row in rows] == ["Image: original CNN feature", "Fusion: concat", "VIRAL"]
    assert table.columns == ["Variant", "R@10", "R@20", "N@10", "N@20", "ΔR@20", "p"]
    assert rows[2][5:] == ["–", "–"] and rows[1][5].startswith("-")
    assert table2(group_runs([fake_run("l", 1, 0.1, model="lightgcn")])) is None


def test_rows_line_up_across_datasets_and_a_missing_cell_is_a_dash():
    runs = paper_runs(seeds=(1, 2)) + [fake_run("baby-v", 1, 0.05, dataset="baby"),
                                       fake_run("baby-v2", 2, 0.06, dataset="baby")]
    table = table1(group_runs(runs))
    assert table.spans == [("", 1), ("baby", 4), ("synthetic", 4), ("", 1)]
    by_label = {row[0]: row for row in texts(table)}
    assert by_label["viral"][-1] == "2/2" and by_label["bpr"][-1] == "0/2"
    assert by_label["bpr"][1:5] == ["–"] * 4 and by_label["viral vs best baseline"][1] == "–"


def test_the_reference_row_is_the_proposed_model_at_the_code_defaults(runs):
    groups = group_runs(runs)
    knobs = varying_knobs(groups)
    assert knobs == ["fusion", "visual"]
    assert [g.knobs.get("fusion") for g in groups if is_reference(g, knobs)] == ["viral"]


def test_summary_holds_every_group_and_comparison(runs):
    result = summary(group_runs(runs))
    assert len(result["groups"]) == 5 and len(result["comparisons"]) == 4
    viral = next(g for g in result["groups"] if g["label"] == "viral")
    assert viral["seeds"] == [1, 2, 3] and not math.isnan(viral["test"]["ndcg@20"]["sd"])


def test_a_single_seed_shows_its_value_without_a_spread():
    table = table1(group_runs([fake_run("v", 1, 0.2)]))
    assert "±" not in table.rows[0][2].text and table.rows[0][-1].text == "1"


def test_no_paired_comparison_across_splits():
    runs = [fake_run("v", 1, 0.2), fake_run("v2", 2, 0.2),
            fake_run("l", 1, 0.1, model="lightgcn", data_seed=5), fake_run("l2", 2, 0.1, model="lightgcn", data_seed=5)]
    assert comparisons(group_runs(runs)) == []
    ablation = runs[:2] + [fake_run("c", 1, 0.2, fusion="concat", data_seed=5)]
    rows = texts(table2(group_runs(ablation)))
    assert [row[0] for row in rows] == ["data_seed=5, Fusion: concat", "VIRAL"] and rows[0][5:] == ["–", "–"]
