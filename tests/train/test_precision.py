"""train.precision / train.compile: bf16 autocast of the dense blocks only, fp32 everywhere else."""
import numpy as np
import pytest
import torch

from viral.config import ConfigError
from viral.models import MODELS, model_class
from viral.models.lightgcn import LightGCN
from viral.models.viral import VIRAL, Config
from viral.params import parse_params
from viral.train.config import TrainConfig
from viral.train.loop import build_model, fit
from viral.train.precision import prepare_dense_blocks

from ..models.multimodal_inputs import multimodal_data, random_batch
from ..models.test_viral import _batch, _model, engine_data, tiny_inputs
from .conftest import random_data

CPU = torch.device("cpu")
# Stated tolerances of bf16 autocast against fp32 (bf16 keeps 8 mantissa bits: ~0.4% per rounding):
LOSS_RTOL = 1e-3        # every loss term
EMBEDDING_RTOL = 2e-2   # ||z_bf16 - z_fp32|| / ||z_fp32|| for user and item embeddings
GRADIENT_RTOL = 5e-2    # the same over all parameters' gradients as one vector (single parameters can
                        # have an exactly-zero fp32 gradient, e.g. attention key biases)


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def _losses_embeddings_gradients(model, batch):
    out = model.loss(*batch)
    gradients = torch.autograd.grad(out["loss"], list(model.parameters()))
    with torch.no_grad():
        users, items = model.embeddings()
    return out, (users, items), torch.cat([g.flatten() for g in gradients])


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", ["faithful", "scalable"])
def test_bf16_autocast_agrees_with_fp32_on(device, mode):
    inputs = tiny_inputs(visual_dim=24)
    model = _model(inputs, synergy_mode=mode, fusion_width=8).to(device)
    batch = [t.to(device) for t in _batch(inputs)]
    exact = _losses_embeddings_gradients(model, batch)
    prepare_dense_blocks(model, "bf16", False, torch.device(device))
    low = _losses_embeddings_gradients(model, batch)
    for name, value in exact[0].items():
        assert low[0][name].dtype == torch.float32, name
        assert low[0][name].item() == pytest.approx(value.item(), rel=LOSS_RTOL), name
        assert low[0][name].item() != value.item() or name == "reg", f"{name}: bf16 was not used"
    for got, want in zip(low[1], exact[1]):
        assert got.dtype == torch.float32
        assert _relative(got, want) < EMBEDDING_RTOL
    assert _relative(low[2], exact[2]) < GRADIENT_RTOL


def test_only_the_dense_blocks_run_in_bf16():
    inputs = tiny_inputs(visual_dim=24)
    model = _model(inputs, fusion_width=8)
    seen = {}

    def record(name):
        def hook(module, args, output):
            seen[name] = output.dtype

        return hook

    model.fusion.text_in.register_forward_hook(record("fusion linear"))
    model.gcn.mlps[0].hidden.register_forward_hook(record("slot MLP"))
    blocks = prepare_dense_blocks(model, "bf16", False, CPU)
    assert blocks == [model.fusion, model.gcn.mlps]
    slots, views = model._slot_inputs()
    assert seen == {"fusion linear": torch.bfloat16}
    assert all(view.dtype == torch.float32 for pair in views.values() for view in pair)
    assert all(slot.dtype == torch.float32 for slot in slots.values())
    nodes = model.gcn([slots[slot] for slot in model.slots], model.ui, 2)
    assert seen["slot MLP"] == torch.bfloat16 and nodes.dtype == torch.float32  # propagated in fp32


def test_preparing_again_replaces_the_setting():
    inputs = tiny_inputs(visual_dim=24)
    batch = _batch(inputs)
    model = _model(inputs, fusion_width=8)
    with torch.no_grad():
        exact = model.loss(*batch)["loss"]
        prepare_dense_blocks(model, "bf16", False, CPU)
        prepare_dense_blocks(model, "bf16", False, CPU)
        low = model.loss(*batch)["loss"]
        prepare_dense_blocks(model, "fp32", False, CPU)
        assert torch.equal(model.loss(*batch)["loss"], exact)
    assert not torch.equal(low, exact)
    assert "forward" not in model.fusion.__dict__


@pytest.mark.parametrize("name", sorted(set(MODELS) - {"viral"}))  # VIRAL: the tests above
def test_every_model_runs_its_dense_blocks_in_bf16_and_the_rest_in_fp32(name):
    cls = model_class(name)
    config = cls.Config()
    data = multimodal_data(40, 80, 6, cls.inputs_needed(config) - {"text", "visual"})
    model = build_model(cls, data, config, seed=0)
    batch = random_batch(data)
    if not config.train.negatives:
        batch = batch[:2] + (None,)

    def first_batch_loss():  # the same epoch start each time: graphs drawn, pruned or rebuilt alike
        model.pre_epoch(0, np.random.default_rng(0))
        return model.loss(*batch)

    exact = first_batch_loss()
    blocks = prepare_dense_blocks(model, "bf16", False, CPU)
    seen = []
    for block in blocks:
        block.register_forward_hook(lambda module, args, output: seen.append(output.dtype))
    low = first_batch_loss()
    if name in ("bpr", "lightgcn"):
        assert blocks == [] and torch.equal(low["loss"], exact["loss"])
        return
    assert seen and all(dtype == torch.float32 for dtype in seen)  # cast back to fp32 at the block's edge
    assert low["loss"].dtype == torch.float32 and not torch.equal(low["loss"], exact["loss"])  # bf16 was used
    assert low["loss"].item() == pytest.approx(exact["loss"].item(), rel=2e-2)


def test_models_without_dense_blocks_are_unchanged():
    data = random_data()
    model = build_model(LightGCN, data, LightGCN.Config(), seed=0)
    before = model.embeddings()
    assert prepare_dense_blocks(model, "bf16", True, CPU) == []
    assert all(torch.equal(a, b) for a, b in zip(model.embeddings(), before))


def test_fit_trains_viral_in_bf16():
    data = engine_data()
    config = TrainConfig(epochs=2, batch_size=64, lr=0.01, device="cpu", checkpoint=False, precision="bf16")
    model = build_model(VIRAL, data, Config(attention_heads=2, ffn_mult=2, fusion_width=8), seed=0)
    result = fit(model, data, config, seed=0, progress=False)
    assert all(np.isfinite(record["loss"]) for record in result.history)
    assert "forward" in model.fusion.__dict__  # evaluation ran through the prepared blocks as well


def test_bad_precision_fails_with_one_line():
    with pytest.raises(ConfigError, match="train.precision: got 'fp16', expected one of fp32, bf16"):
        parse_params({"train": {"precision": "fp16"}})
    with pytest.raises(ValueError, match="train.precision: expected one of fp32, bf16, got 'fp16'"):
        prepare_dense_blocks(torch.nn.Linear(1, 1), "fp16", False, CPU)


@pytest.mark.slow  # inductor compiles C++ kernels: minutes on a small shared CPU
@pytest.mark.parametrize("mode", ["faithful", "scalable"])  # scalable: the sparse attention stays eager
def test_compiled_dense_blocks_give_the_eager_loss_and_gradients(mode):
    inputs = tiny_inputs(visual_dim=24)
    model, batch = _model(inputs, synergy_mode=mode, fusion_width=8), _batch(inputs)
    eager = _losses_embeddings_gradients(model, batch)
    prepare_dense_blocks(model, "fp32", True, CPU)
    compiled = _losses_embeddings_gradients(model, batch)
    assert compiled[0]["loss"].item() == pytest.approx(eager[0]["loss"].item(), rel=1e-5)
    assert _relative(compiled[2], eager[2]) < 1e-4
