import pytest

from viral.config import ConfigError, build
from viral.encode.config import EncodeConfig


@pytest.mark.parametrize("raw, message", [
    ({"batch_size": 0}, "encode.batch_size: expected >= 1, got 0"),
    ({"device": "gpu"}, "encode.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"model": " "}, "model: must not be empty"),
])
def test_bad_values_are_one_line(raw, message):
    with pytest.raises(ConfigError, match=message):
        build(EncodeConfig, raw, "encode")


def test_devices_accepted():
    for device in ("auto", "cpu", "cuda", "cuda:3"):
        assert build(EncodeConfig, {"device": device}, "encode").device == device
