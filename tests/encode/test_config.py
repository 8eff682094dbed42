import pytest

from viral.config import ConfigError, build
from viral.encode.config import EncodeConfig


@pytest.mark.parametrize("raw, message", [
    ({"batch_size": 0}, "batch_size: expected a positive int, got 0"),
    ({"device": "gpu"}, "device: got 'gpu', expected auto, cpu, cuda or cuda:N"),
    ({"model": " "}, "model: must not be empty"),
])
def test_bad_values_are_one_line(raw, message):
    with pytest.raises(ConfigError, match=message):
        build(EncodeConfig, raw, "encode")


def test_devices_accepted():
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        assert build(EncodeConfig, {"device": device}, "encode").device == device
