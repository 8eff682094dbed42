import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "info_nce_memory.py"
spec = importlib.util.spec_from_file_location("info_nce_memory", SCRIPT)
info_nce_memory = importlib.util.module_from_spec(spec)
spec.loader.exec_module(info_nce_memory)


def test_every_all_node_form_measures_the_same_loss_and_the_batch_form_its_own_rows():
    rows = {form: info_nce_memory.measure(form, nodes=1500, dim=8, batch_nodes=40, seed=1)
            for form in info_nce_memory.FORMS}
    dense = rows["dense"]
    for form in ("blocks_4096", "blocks_1024"):
        assert rows[form]["rows"] == 1500
        assert rows[form]["value"] == pytest.approx(dense["value"], rel=1e-6)
        assert rows[form]["grad_norm"] == pytest.approx(dense["grad_norm"], rel=1e-5)
    assert rows["batch_nodes"]["rows"] == 40
    assert all(row["cpu_seconds"] >= 0 and row["extra_peak_mb"] >= 0 for row in rows.values())
