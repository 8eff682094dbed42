"""Every field of every config, found by introspection: numbers declare a range and fail outside it,
names and forms fail when unknown, each with one line naming the key (new fields and models included)."""
import dataclasses
import types
import typing
from typing import Literal, Union

import pytest

from viral.config import ConfigError
from viral.models import MODELS, model_class
from viral.params import Params, parse_params


def _plain(tp):
    """The type without `| None`."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        options = [option for option in typing.get_args(tp) if option is not type(None)]
        return options[0] if len(options) == 1 else tp
    return tp


def _fields(cls, path: tuple[str, ...]):
    """(key path, field, plain type) of every leaf field of dataclass `cls`, nested sections walked."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        tp = _plain(hints[f.name])
        if dataclasses.is_dataclass(tp):
            yield from _fields(tp, path + (f.name,))
        else:
            yield path + (f.name,), f, tp


def _all_fields():
    for path, f, tp in _fields(Params, ()):
        if path != ("models",):  # each model's own Config, below
            yield path, f, tp
    for name in sorted(MODELS):
        yield from _fields(model_class(name).Config, ("models", name))


FIELDS = list(_all_fields())
NUMERIC = [(path, f) for path, f, tp in FIELDS if tp in (int, float)]


def _nested(path: tuple[str, ...], value) -> dict:
    raw = value
    for key in reversed(path):
        raw = {key: raw}
    return raw


def _rejected(path: tuple[str, ...], value) -> str:
    with pytest.raises(ConfigError) as err:
        parse_params(_nested(path, value))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"params.yaml: {'.'.join(path)}"), message
    return message


def _outside(bounds) -> list:
    """One value just outside each side of the interval."""
    values = []
    if bounds.ge is not None:
        values.append(bounds.ge - 1)
    if bounds.gt is not None:
        values.append(bounds.gt)
    if bounds.le is not None:
        values.append(bounds.le + 1)
    if bounds.lt is not None:
        values.append(bounds.lt)
    return values


def test_the_walk_sees_every_stage_and_model():
    top = {path[0] for path, _, _ in FIELDS}
    assert {"download", "prepare", "images", "caption", "encode", "graphs", "train", "seed"} <= top
    assert {path[1] for path, _, _ in FIELDS if path[0] == "models"} == set(MODELS)
    assert ("download", "synthetic", "n_users") in {path for path, _, _ in FIELDS}


@pytest.mark.parametrize("path, f", NUMERIC, ids=[".".join(p) for p, _ in NUMERIC])
def test_every_number_declares_a_range_that_holds_its_default(path, f):
    bounds = f.metadata.get("range")
    assert bounds is not None and bounds.limits(), f"{'.'.join(path)}: declare its range with viral.config.bounded"
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    assert default is None or bounds.contains(default)


@pytest.mark.parametrize("path, f", NUMERIC, ids=[".".join(p) for p, _ in NUMERIC])
def test_every_number_outside_its_range_fails_with_one_line(path, f):
    for value in _outside(f.metadata["range"]):
        assert "expected" in _rejected(path, value)


NAMED = [(path, f) for path, f, tp in FIELDS
         if typing.get_origin(tp) is Literal or "choices" in f.metadata or "pattern" in f.metadata]


@pytest.mark.parametrize("path, f", NAMED, ids=[".".join(p) for p, _ in NAMED])
def test_every_unknown_name_or_form_fails_with_one_line(path, f):
    default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
    bogus = "no such value!"
    value = [bogus] if isinstance(default, list) else {"x": bogus} if isinstance(default, dict) else bogus
    _rejected(path, value)


@pytest.mark.parametrize("raw, message", [
    ({"train": {"epochs": 0}}, "train.epochs: expected >= 1, got 0"),
    ({"train": {"batch_size": -1}}, "train.batch_size: expected >= 1, got -1"),
    ({"train": {"batch_size": 0}}, "train.batch_size: expected >= 1, got 0"),
    ({"train": {"eval_every": 0}}, "train.eval_every: expected >= 1, got 0"),
    ({"train": {"device": "gpu"}}, "train.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"train": {"lr": -1}}, "train.lr: expected > 0, got -1.0"),
    ({"images": {"concurrency": 0}}, "images.concurrency: expected >= 1, got 0"),
    ({"images": {"shard_items": 0}}, "images.shard_items: expected >= 1, got 0"),
    ({"download": {"retries": -1}}, "download.retries: expected >= 0, got -1"),
    ({"download": {"mirrors": ["snap.stanford.edu/data"]}},
     "download.mirrors[0]: expected an http:// or https:// URL, got 'snap.stanford.edu/data'"),
    ({"download": {"sha256": {"meta_Baby.json.gz": "abc"}}},
     "download.sha256.meta_Baby.json.gz: expected a sha256 hex digest"),
    ({"models": {"viral": {"fusion": "concat"}}},
     "models.viral.fusion: set the top-level `fusion` instead"),
])
def test_the_reported_cases_fail_with_one_line(raw, message):
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    assert str(err.value).startswith(f"params.yaml: {message}")


def test_a_model_field_named_like_any_top_level_knob_is_rejected():
    for knob in ("dataset", "model", "fusion", "visual", "seed", "data_seed"):
        with pytest.raises(ConfigError, match=rf"models\.bpr\.{knob}: set the top-level `{knob}` instead"):
            parse_params({"models": {"bpr": {knob: 1}}})


def test_boundary_and_legal_forms_pass():
    params = parse_params({"train": {"device": "cuda:1", "epochs": 1, "patience": 0, "weight_decay": 0},
                           "download": {"mirrors": ["http://127.0.0.1:8000/files"], "retries": 0}})
    assert params.train.device == "cuda:1" and params.download.retries == 0
