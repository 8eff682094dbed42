"""params.yaml validation: every kind of bad input fails with one line naming the key."""
from pathlib import Path

import pytest
import yaml

from viral.config import ConfigError
from viral.models import model_class
from viral.params import load_params, parse_params

ROOT = Path(__file__).resolve().parents[1]


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_shipped_params_are_valid():
    params = load_params(ROOT / "params.yaml")
    assert params.dataset == "synthetic"
    assert params.train.epochs > 0


def test_shipped_model_sections_show_each_models_code_defaults():
    """params.yaml displays every model's published point; the code's defaults must say the same."""
    params = load_params(ROOT / "params.yaml")
    for name, config in params.models.items():
        assert config == model_class(name).Config(), name


def test_each_model_trains_at_its_own_point_unless_train_overrides_it():
    raw = _raw()
    raw["model"] = "lightgcn"
    params = parse_params(raw)
    assert params.train.point(params.model_config().train).batch_size == 2048
    assert params.train.point(params.model_config("viral").train).batch_size == 1024
    raw["train"]["lr"] = 0.05
    raw["models"]["lightgcn"]["train"] = {"batch_size": 512}  # a partial section keeps the other values
    point = parse_params(raw).train.point(parse_params(raw).model_config().train)
    assert (point.lr, point.batch_size, point.valid_metric) == (0.05, 512, "recall@20")


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda r: r.__setitem__("bogus", 1), "unknown key 'bogus'"),
        (lambda r: r["train"].__setitem__("lrr", 1), "train: unknown key 'lrr'"),
        (lambda r: r["train"].__setitem__("lr", "fast"), "train.lr: expected float or null, got 'fast'"),
        (lambda r: r["train"].__setitem__("epochs", 1.5), "train.epochs: expected int"),
        (lambda r: r["encode"].__setitem__("normalize", "yes"), "encode.normalize: expected bool"),
        (lambda r: r.__setitem__("dataset", "movies"), "dataset: unknown name 'movies'; valid: baby"),
        (lambda r: r.__setitem__("model", "nope"), "model: unknown name 'nope'; valid:"),
        (lambda r: r.__setitem__("fusion", "sum"), "fusion: unknown name 'sum'; valid: concat"),
        (lambda r: r.__setitem__("visual", "clip"), "visual: unknown name 'clip'"),
        (lambda r: r["caption"].__setitem__("backend", "openai"), "caption.backend: got 'openai', expected one of"),
        (lambda r: r["models"].__setitem__("nope", {}), "models.nope: unknown model"),
    ],
)
def test_bad_params_fail_with_one_line(mutate, expected):
    raw = _raw()
    mutate(raw)
    with pytest.raises(ConfigError) as err:
        parse_params(raw)
    message = str(err.value)
    assert expected in message
    assert message.startswith("params.yaml: ")
    assert "\n" not in message


def test_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("dataset: synthetic\ntrain: [unclosed\n")
    with pytest.raises(ConfigError, match=r"params.yaml: line \d+"):
        load_params(bad)
