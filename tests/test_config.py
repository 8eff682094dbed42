"""The typed-config builder: ranges and partial nested sections."""
from dataclasses import dataclass, field

import pytest

from viral.config import ConfigError, bounded, build, matching, torch_device


@dataclass(frozen=True)
class Point:
    lr: float = bounded(0.001, gt=0)
    batch_size: int = bounded(2048, ge=1)
    decay: float = bounded(1.0, gt=0, le=1)


@dataclass(frozen=True)
class Model:
    width: int | None = bounded(None, ge=1)
    train: Point = field(default_factory=lambda: Point(lr=0.0001, batch_size=1024))


def test_values_inside_the_range_pass():
    assert build(Point, {"lr": 0.5, "batch_size": 1, "decay": 1.0}) == Point(0.5, 1, 1.0)


@pytest.mark.parametrize("raw, message", [
    ({"lr": 0.0}, "train.lr: expected > 0, got 0.0"),
    ({"lr": -1}, "train.lr: expected > 0, got -1.0"),
    ({"batch_size": 0}, "train.batch_size: expected >= 1, got 0"),
    ({"decay": 1.5}, "train.decay: expected > 0 and <= 1, got 1.5"),
])
def test_out_of_range_values_fail_with_one_line(raw, message):
    with pytest.raises(ConfigError) as err:
        build(Point, raw, "train")
    assert str(err.value) == message


def test_none_is_not_range_checked():
    assert build(Model, {"width": None}).width is None
    with pytest.raises(ConfigError, match="width: expected >= 1, got 0"):
        build(Model, {"width": 0})


def test_a_nested_section_overrides_only_the_keys_it_lists():
    # the field's default instance (the model's own point) is the base, not the nested class defaults
    assert build(Model, {}).train == Point(lr=0.0001, batch_size=1024)
    assert build(Model, {"train": {"lr": 0.01}}).train == Point(lr=0.01, batch_size=1024)


@dataclass(frozen=True)
class Stage:
    k: int = bounded(5, ge=3, why="the split needs 3 per user")
    seed: int = bounded(0, ge=0, le=2**32 - 1)
    device: str = torch_device()
    mirrors: list[str] = matching(r"https?://\S+", "an http(s) URL", default_factory=list)
    sha: dict[str, str] = matching(r"[0-9a-f]{4}", "4 hex digits", default_factory=dict)


@pytest.mark.parametrize("raw, message", [
    ({"k": 2}, "stage.k: expected >= 3 (the split needs 3 per user), got 2"),
    ({"seed": 2**32}, "stage.seed: expected >= 0 and <= 4294967295, got 4294967296"),
    ({"device": "gpu"}, "stage.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"device": "cuda:x"}, "stage.device: expected auto, cpu, cuda or cuda:N, got 'cuda:x'"),
    ({"mirrors": ["http://a", "a.org/x"]}, "stage.mirrors[1]: expected an http(s) URL, got 'a.org/x'"),
    ({"sha": {"f.gz": "xyz"}}, "stage.sha.f.gz: expected 4 hex digits, got 'xyz'"),
])
def test_reasons_int_limits_and_forms_in_the_one_line(raw, message):
    with pytest.raises(ConfigError) as err:
        build(Stage, raw, "stage")
    assert str(err.value) == message


def test_legal_forms_pass():
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        assert build(Stage, {"device": device}).device == device
    assert build(Stage, {"mirrors": ["https://a/b"], "sha": {"f": "0a9f"}}).mirrors == ["https://a/b"]
