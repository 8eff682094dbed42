"""The typed-config builder: ranges and partial nested sections."""
from dataclasses import dataclass, field

import pytest

from viral.config import ConfigError, bounded, build


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
