"""The training loop: early stopping rule, bit-for-bit repeatability, resume after interruption, best
weights restored, NaN abort."""
import dataclasses

import numpy as np
import pytest
import torch

from viral.models.bpr import BPR
from viral.models.lightgcn import LightGCN
from viral.train.config import TrainConfig, TrainingPoint
from viral.train.evaluate import evaluate
from viral.train.loop import _Run, build_model, fit

from .conftest import random_data

CONFIG = TrainConfig(epochs=6, batch_size=64, lr=0.01, patience=50, device="cpu", checkpoint=False)


def without_timing(history):
    return [{k: v for k, v in r.items() if "seconds" not in k} for r in history]


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_early_stopping_follows_mmrec():
    model = torch.nn.Linear(1, 1)
    run = _Run(model, torch.optim.SGD(model.parameters(), lr=0.1), np.random.default_rng(0))
    stops = []
    for epoch, score in enumerate([0.1, 0.2, 0.2, 0.15, 0.19], start=1):
        run.epoch = epoch
        run.record_evaluation({"valid": {"recall@20": score}, "test": {"recall@20": score}}, patience=2)
        stops.append(run.stopped_early)
    # An equal score is not an improvement; the run stops once 3 (> patience) evaluations failed.
    assert stops == [False, False, False, False, True]
    assert run.best["epoch"] == 2 and run.bad_evals == 3


@pytest.mark.parametrize("cls", [BPR, LightGCN])
def test_cpu_runs_are_bit_for_bit_repeatable(tiny_data, cls):
    results, models = [], []
    for _ in range(2):
        model = build_model(cls, tiny_data, cls.Config(), seed=5)
        results.append(fit(model, tiny_data, CONFIG, seed=5, progress=False))
        models.append(model)
    assert without_timing(results[0].history) == without_timing(results[1].history)
    assert same_weights(*models)
    other = build_model(cls, tiny_data, cls.Config(), seed=6)
    fit(other, tiny_data, CONFIG, seed=6, progress=False)
    assert not same_weights(models[0], other)


def test_resume_after_interruption_matches_an_uninterrupted_run(tiny_data, tmp_path):
    config = dataclasses.replace(CONFIG, checkpoint=True)
    straight = build_model(LightGCN, tiny_data, LightGCN.Config(), seed=1)
    expected = fit(straight, tiny_data, config, seed=1, progress=False)

    interrupted = build_model(LightGCN, tiny_data, LightGCN.Config(), seed=1)
    calls = {"n": 0}
    original = interrupted.loss

    def crash_in_epoch_four(*args):
        calls["n"] += 1
        if calls["n"] == 3 * 3 + 2:  # 3 batches per epoch: second batch of epoch 4
            raise KeyboardInterrupt
        return original(*args)

    interrupted.loss = crash_in_epoch_four
    with pytest.raises(KeyboardInterrupt):
        fit(interrupted, tiny_data, config, seed=1, checkpoint=tmp_path / "state.pt", progress=False)

    resumed = build_model(LightGCN, tiny_data, LightGCN.Config(), seed=1)
    result = fit(resumed, tiny_data, config, seed=1, checkpoint=tmp_path / "state.pt", progress=False)
    assert without_timing(result.history) == without_timing(expected.history)
    assert (result.best_epoch, result.valid, result.test) == (expected.best_epoch, expected.valid, expected.test)
    assert same_weights(resumed, straight)


def test_more_epochs_continue_a_finished_run_and_other_settings_start_afresh(tiny_data, tmp_path):
    path = tmp_path / "state.pt"
    short = dataclasses.replace(CONFIG, epochs=3)
    fit(build_model(BPR, tiny_data, BPR.Config(), 2), tiny_data, short, 2, checkpoint=path, progress=False)
    continued = fit(build_model(BPR, tiny_data, BPR.Config(), 2), tiny_data, CONFIG, 2, checkpoint=path, progress=False)
    straight = fit(build_model(BPR, tiny_data, BPR.Config(), 2), tiny_data, CONFIG, 2, progress=False)
    assert without_timing(continued.history) == without_timing(straight.history)
    other_lr = dataclasses.replace(CONFIG, lr=0.02)
    fresh = fit(build_model(BPR, tiny_data, BPR.Config(), 2), tiny_data, other_lr, 2, checkpoint=path, progress=False)
    assert [r["epoch"] for r in fresh.history] == list(range(1, 7))
    assert without_timing(fresh.history) != without_timing(straight.history)


def test_a_finished_run_on_other_inputs_is_not_resumed(tmp_path):
    """Same model, config, seed and train pairs but another graph (e.g. another `visual` upstream):
    the old checkpoint must not stand in for the new run."""
    path = tmp_path / "state.pt"
    first, second = random_data(), random_data()
    second.inputs.graphs["ui"] = second.inputs.graphs["ui"] * 0.5
    fit(build_model(LightGCN, first, LightGCN.Config(), 2), first, CONFIG, 2, checkpoint=path, progress=False)
    rerun = fit(build_model(LightGCN, second, LightGCN.Config(), 2), second, CONFIG, 2, checkpoint=path, progress=False)
    straight = fit(build_model(LightGCN, second, LightGCN.Config(), 2), second, CONFIG, 2, progress=False)
    assert without_timing(rerun.history) == without_timing(straight.history)


def test_model_holds_the_best_valid_weights_after_fit(tiny_data):
    model = build_model(BPR, tiny_data, BPR.Config(), seed=3)
    result = fit(model, tiny_data, dataclasses.replace(CONFIG, epochs=8), seed=3, progress=False)
    assert evaluate(model, tiny_data) == {"valid": result.valid, "test": result.test}
    evaluated = [r for r in result.history if "valid_recall@20" in r]
    assert result.valid["recall@20"] == max(r["valid_recall@20"] for r in evaluated)
    assert result.n_parameters == (60 + 40) * 64


def test_nan_loss_aborts(tiny_data):
    model = build_model(BPR, tiny_data, BPR.Config(), seed=3)
    model.loss = lambda *args: {"loss": model.user_embedding.sum() * float("nan")}
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 1"):
        fit(model, tiny_data, CONFIG, seed=3, progress=False)


def test_a_saved_run_longer_than_asked_is_not_reported_as_the_result(tiny_data, tmp_path):
    """A checkpoint that ran 6 epochs must not stand in for a 3-epoch run (it would report 6)."""
    path = tmp_path / "state.pt"
    fit(build_model(BPR, tiny_data, BPR.Config(), 2), tiny_data, CONFIG, 2, checkpoint=path, progress=False)
    short = dataclasses.replace(CONFIG, epochs=3)
    rerun = fit(build_model(BPR, tiny_data, BPR.Config(), 2), tiny_data, short, 2, checkpoint=path, progress=False)
    straight = fit(build_model(BPR, tiny_data, BPR.Config(), 2), tiny_data, short, 2, progress=False)
    assert rerun.epochs == 3 and rerun.best_epoch <= 3
    assert without_timing(rerun.history) == without_timing(straight.history)


class RecordingBPR(BPR):
    """BPR that records what the engine hands it: the learning rate of each epoch and the negatives."""

    def __init__(self, inputs, config):
        super().__init__(inputs, config)
        self.lrs, self.negatives = [], []
        self.optimizer = None

    def pre_epoch(self, epoch, rng):
        self.epochs_started = epoch + 1

    def loss(self, users, pos, neg):
        self.negatives.append(neg)
        if neg is None:  # in-batch negatives: the other positives of the batch
            neg = pos.roll(1)
        return super().loss(users, pos, neg)


def test_the_model_training_point_drives_the_loop(tiny_data, monkeypatch):
    point = TrainingPoint(lr=0.02, batch_size=100, lr_decay=0.5, lr_decay_every=2, valid_metric="ndcg@10",
                          negatives=False)
    config = BPR.Config(train=point)
    model = build_model(RecordingBPR, tiny_data, config, seed=1)
    seen_lrs = []
    original_step = torch.optim.Adam.step

    def step(self, *args, **kwargs):
        seen_lrs.append(self.param_groups[0]["lr"])
        return original_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    engine = TrainConfig(epochs=4, patience=50, device="cpu", checkpoint=False)
    result = fit(model, tiny_data, engine, seed=1, progress=False)
    batches = -(-len(tiny_data.inputs.train_pairs) // 100)
    assert seen_lrs == [pytest.approx(0.02 * 0.5 ** (epoch / 2)) for epoch in range(4) for _ in range(batches)]
    assert all(neg is None for neg in model.negatives) and model.epochs_started == 4
    assert result.point == point
    evaluated = [r for r in result.history if "valid_ndcg@10" in r]
    assert result.valid["ndcg@10"] == max(r["valid_ndcg@10"] for r in evaluated)
    # an explicit engine override wins over the model's point
    overridden = fit(build_model(RecordingBPR, tiny_data, config, seed=1), tiny_data,
                     dataclasses.replace(engine, lr=0.001, valid_metric="recall@20"), seed=1, progress=False)
    assert (overridden.point.lr, overridden.point.valid_metric, overridden.point.batch_size) == (0.001, "recall@20", 100)


def test_every_loss_term_is_logged_per_epoch(tiny_data):
    result = fit(build_model(BPR, tiny_data, BPR.Config(), 3), tiny_data, CONFIG, 3, progress=False)
    for record in result.history:
        assert {"loss", "bpr", "reg"} <= set(record)
        assert record["loss"] == pytest.approx(record["bpr"] + record["reg"], rel=1e-5)
