import importlib.util
from pathlib import Path

import pytest

from viral.config import ConfigError

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "batch_cpu_seconds.py"
spec = importlib.util.spec_from_file_location("batch_cpu_seconds", SCRIPT)
batch_cpu_seconds = importlib.util.module_from_spec(spec)
spec.loader.exec_module(batch_cpu_seconds)


def test_a_spec_names_a_model_and_overrides_of_its_config():
    cls, config = batch_cpu_seconds.parse_spec("mentor:nce_nodes=batch,nce_temperature=0.4,feature_mask_grad=false")
    assert cls.__name__ == "MENTOR"
    assert (config.nce_nodes, config.nce_temperature, config.feature_mask_grad) == ("batch", 0.4, False)
    assert batch_cpu_seconds.parse_spec("cohesion")[1] == batch_cpu_seconds.model_class("cohesion").Config()
    with pytest.raises(ConfigError, match="models.cohesion: unknown key 'no_such_knob'"):
        batch_cpu_seconds.parse_spec("cohesion:no_such_knob=1")
    with pytest.raises(ConfigError, match="models.mentor.nce_nodes"):
        batch_cpu_seconds.parse_spec("mentor:nce_nodes=some")
    with pytest.raises(ValueError, match="unknown model"):
        batch_cpu_seconds.parse_spec("nope")
