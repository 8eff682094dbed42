import numpy as np
import pytest

from viral.encode.sbert import (PACKAGED_MODEL, encode_texts, load_encoder, resolve_device, resolve_model,
                                truncated_count)
from viral.stage import StageError

TEXTS = [
    "Soft cotton baby bib with snap buttons",
    "",
    "stroller " * 400,  # far beyond 256 word pieces: truncated
    "A red leather bag",
    "Keeps\nlines apart",
] + [f"item number {k} with a plain description of {k % 7} words" for k in range(40)]


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("normalize", [True, False])
def test_matches_a_direct_sentence_transformer_encode(minilm, normalize):
    ours = encode_texts(minilm, TEXTS, batch_size=7, normalize=normalize)
    direct = minilm.encode(TEXTS, normalize_embeddings=normalize)
    assert ours.matrix.shape == (len(TEXTS), 384) and ours.matrix.dtype == np.float32
    assert _cosine_rows(ours.matrix, direct).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(ours.matrix, axis=1), 1.0, rtol=1e-5)
    assert ours.truncated == 1
    assert ours.stats()["truncated_share"] == round(1 / len(TEXTS), 4)


def test_truncation_counts_special_tokens(minilm):
    # "word" is one word piece; with [CLS] and [SEP], 254 words fill 256 exactly.
    assert truncated_count(minilm, ["word " * 254, "word " * 255, "short"]) == 1


def test_empty_input_gives_an_empty_matrix(minilm):
    assert encode_texts(minilm, [], 8, True).matrix.shape == (0, 384)


def test_model_resolution(tmp_path):
    assert resolve_model(PACKAGED_MODEL).endswith("model")
    assert resolve_model(str(tmp_path)) == str(tmp_path)
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"


def test_unloadable_model_is_a_one_line_error(tmp_path):
    with pytest.raises(StageError, match="encode.model: cannot load") as err:
        load_encoder(str(tmp_path), "cpu")
    assert "\n" not in str(err.value)


def test_device_resolution():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(StageError, match="encode.device: cuda:1 requested but no CUDA device"):
            resolve_device("cuda:1")
