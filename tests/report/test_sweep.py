"""The paper's sweeps as DVC queue commands: no params.yaml edits, one grid per table, seeds crossed."""
from viral.models import MODELS
from viral.report import sweep


def test_both_tables_queue_every_model_and_each_ablation_one_knob_at_a_time():
    commands = sweep.queue_commands(["1", "2"], [999, 1000], [])
    assert commands == [
        ["exp", "run", "--queue", "-S", "model=" + ",".join(MODELS), "-S", "seed=999,1000"],
        ["exp", "run", "--queue", "-S", "model=viral", "-S", "visual=original,vlm_plain", "-S", "seed=999,1000"],
        ["exp", "run", "--queue", "-S", "model=viral", "-S", "fusion=pooling,concat,weighted_concat", "-S", "seed=999,1000"],
    ]


def test_table2_alone_also_queues_the_viral_reference_and_backbones_add_a_grid():
    commands = sweep.queue_commands(["2"], [1], ["train.epochs=20"], backbones=["Qwen/A", "Qwen/B"])
    assert commands[0] == ["exp", "run", "--queue", "-S", "model=viral", "-S", "seed=1", "-S", "train.epochs=20"]
    assert commands[-1] == ["exp", "run", "--queue", "-S", "model=viral", "-S", "caption.model=Qwen/A,Qwen/B",
                            "-S", "seed=1", "-S", "train.epochs=20"]
    assert len(commands) == 4


def test_parallel_jobs_share_the_cores_unless_threads_are_set():
    assert sweep.queue_commands(["1"], [1], [], jobs=2, cores=2)[0][-2:] == ["-S", "train.threads=1"]
    assert sweep.queue_commands(["1"], [1], [], jobs=2, cores=16)[0][-2:] == ["-S", "train.threads=8"]
    assert sweep.queue_commands(["1"], [1], ["train.threads=3"], jobs=2)[0][-2:] == ["-S", "train.threads=3"]
    assert "train.threads" not in " ".join(sweep.queue_commands(["1"], [1], [], jobs=1)[0])


def test_queue_states_count_the_experiments_by_executor_state():
    show = [{"rev": "workspace", "experiments": None},
            {"rev": "a" * 40, "experiments": [{"executor": {"state": "queued"}}, {"executor": {"state": "running"}},
                                              {"executor": None}, {"executor": {"state": "failed"}},
                                              {"executor": {"state": "queued"}}]}]
    assert sweep.queue_states(show) == {"queued": 2, "running": 1, "success": 1, "failed": 1}


def test_dry_run_prints_the_commands_and_runs_nothing(capsys):
    assert sweep.main(["--dry-run", "--tables", "1", "--seeds", "7"]) == 0
    assert capsys.readouterr().out.splitlines() == [f"dvc exp run --queue -S model={','.join(MODELS)} -S seed=7",
                                                    "dvc queue start -j 1"]
