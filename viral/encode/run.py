"""The encode stage: `text.parquet` (MMRec's item text) and `visual.parquet` (what `visual` selects).

- text: Sentence-BERT of MMRec's item text (viral/encode/text.py); items whose text is blank are
  mean-imputed.
- visual `vlm_title` / `vlm_plain`: Sentence-BERT of the caption stage's descriptions (same model, so
  both modalities live in one space); items without a usable description are mean-imputed.
- visual `original`: the 4096-d CNN features of `data/raw/<ds>/image_features_<Cat>.b`, mean-imputed.

An output whose metadata already records the same inputs, model and settings is kept, so an
interrupted run resumes after the last finished file.
"""
from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from viral.data.amazon import FEATURE_DIM, category, image_features_name
from viral.data.prepared import ITEMS_FILE
from viral.encode.cnn import cnn_features
from viral.encode.config import EncodeConfig
from viral.encode.impute import fill_with_mean
from viral.encode.inputs import read_columns, read_descriptions
from viral.encode.sbert import encode_texts, load_encoder, resolve_device
from viral.encode.store import FeatureStoreError, read_metadata, write_features
from viral.encode.text import read_item_texts
from viral.io import write_json
from viral.params import Params
from viral.run_report import seconds_since, write_run_report
from viral.stage import StageError

log = logging.getLogger(__name__)

TEXT_FILE = "text.parquet"
VISUAL_FILE = "visual.parquet"
REPORT_FILE = "report.json"
RUN_KEYS = ("seconds", "texts_per_s", "reused")  # how a run went: in the run report, never in an output
# visual param -> caption prompt whose descriptions are encoded
VLM_PROMPTS = {"vlm_title": "title", "vlm_plain": "plain"}
CNN_MODEL = "McAuley et al. 2014 ImageNet CNN (VBPR features)"


def texts_fingerprint(item_ids: Sequence[int], texts: Sequence[str]) -> str:
    """sha256 of the (itemID, text) pairs: what an output was computed from."""
    digest = hashlib.sha256()
    for item_id, text in zip(item_ids, texts):
        digest.update(f"{item_id}\t{len(text)}\t".encode())
        digest.update(text.encode())
    return digest.hexdigest()


def _content_stats(stats: dict[str, Any]) -> dict[str, Any]:
    """The stats stored in the outputs: how the run went (timings, reuse) goes to the run report only, so
    re-encoding the same inputs writes byte-identical outputs and DVC does not re-run the stages below."""
    return {key: value for key, value in stats.items() if key not in RUN_KEYS}


def _content_report(report: dict[str, Any]) -> dict[str, Any]:
    """`report` without its run keys, per output file too: what `report.json` (a DVC output) holds."""
    content = _content_stats(report)
    content["outputs"] = {name: _content_stats(stats) for name, stats in report["outputs"].items()}
    return content


def _reusable(path: Path, expected: dict[str, Any]) -> dict[str, Any] | None:
    """The stats of an existing output computed from exactly `expected`, else None."""
    if not path.is_file():
        return None
    try:
        meta = read_metadata(path)
    except (FeatureStoreError, OSError, ValueError):
        return None
    if any(meta.get(key) != value for key, value in expected.items()):
        return None
    log.info("%s is up to date (same inputs and settings): kept", path)
    return {**meta.get("stats", {}), "reused": True}


class _Encoder:
    """The Sentence-BERT model, loaded on first use (a fully resumed run never pays for it)."""

    def __init__(self, config: EncodeConfig):
        self.config = config
        self._model = None

    @property
    def model(self):
        if self._model is None:
            self._model = load_encoder(self.config.model, self.config.device)
            log.info("model %s on %s (max_seq_length %d)", self.config.model, self._model.device,
                     self._model.max_seq_length)
        return self._model

    def __call__(self, texts: list[str], what: str):
        return encode_texts(self.model, texts, self.config.batch_size, self.config.normalize, what)

    def settings(self) -> dict[str, Any]:
        return {"model": self.config.model, "normalize": self.config.normalize}


def encode_output(path: Path, n_items: int, item_ids: list[int], texts: list[str], source: str,
                  encoder: _Encoder) -> dict[str, Any]:
    """Encode the non-blank `texts` of `item_ids`, mean-impute the rest, write `path`; returns stats."""
    usable = [(item_id, text) for item_id, text in zip(item_ids, texts) if text.strip()]
    ids = [item_id for item_id, _ in usable]
    expected = {**encoder.settings(), "source": source, "input_sha256": texts_fingerprint(item_ids, texts)}
    if (stats := _reusable(path, expected)) is not None:
        return stats
    encoded = encoder([text for _, text in usable], source)
    matrix, imputed = fill_with_mean(n_items, ids, encoded.matrix, encoder.config.normalize, source)
    stats = {**encoded.stats(), "imputed": int(imputed.sum()), "dim": int(matrix.shape[1])}
    write_features(path, range(n_items), matrix,
                   {**expected, "max_seq_length": encoder.model.max_seq_length, "stats": _content_stats(stats)},
                   imputed=imputed)
    return stats


def original_output(path: Path, n_items: int, items_path: Path, features_path: Path) -> dict[str, Any]:
    """Write the CNN features of the dataset's items (mean-imputed, not normalised); returns stats."""
    if not features_path.is_file():
        raise StageError(f"{features_path}: not found; visual: original needs the 2014 CNN features "
                         "(set download.image_features: true and rerun the download stage)")
    columns = read_columns(items_path, ("itemID", "asin"), "prepared items")
    with open(features_path, "rb") as stream:  # content, not mtime: a re-downloaded copy is the same input
        file_sha256 = hashlib.file_digest(stream, "sha256").hexdigest()
    expected = {"model": CNN_MODEL, "normalize": False, "source": features_path.name,
                "input_sha256": texts_fingerprint(columns["itemID"], columns["asin"]), "file_sha256": file_sha256}
    if (stats := _reusable(path, expected)) is not None:
        return stats
    start = time.perf_counter()
    ids, rows = cnn_features(features_path, columns["itemID"], columns["asin"])
    matrix, imputed = fill_with_mean(n_items, ids, rows, False, str(features_path))
    stats = {"found": len(ids), "imputed": int(imputed.sum()), "dim": FEATURE_DIM, "seconds": seconds_since(start)}
    log.info("%s: %d of %d items found, %d mean-imputed", features_path, len(ids), n_items, stats["imputed"])
    write_features(path, range(n_items), matrix, {**expected, "stats": _content_stats(stats)}, imputed=imputed)
    return stats


def run_encode(params: Params, root: str | Path = ".") -> dict[str, Any]:
    """Write data/features/<dataset>/{text,visual}.parquet, report.json and the run report; returns the
    run report (report.json plus timings and reuse flags)."""
    root = Path(root)
    dataset = params.dataset
    items_path = root / "data" / "prepared" / dataset / ITEMS_FILE
    out_dir = root / "data" / "features" / dataset
    start = time.perf_counter()
    item_ids, texts = read_item_texts(items_path)
    n_items = len(item_ids)
    if item_ids != list(range(n_items)):
        raise StageError(f"{items_path}: itemID must be 0..{n_items - 1} in order (rerun the prepare stage)")
    encoder = _Encoder(params.encode)
    report: dict[str, Any] = {"dataset": dataset, "items": n_items, "visual": params.visual,
                              "model": params.encode.model, "normalize": params.encode.normalize,
                              "batch_size": params.encode.batch_size,
                              "device": resolve_device(params.encode.device)}
    outputs = report["outputs"] = {}
    outputs[TEXT_FILE] = encode_output(out_dir / TEXT_FILE, n_items, item_ids, texts, "item_text", encoder)
    if params.visual in VLM_PROMPTS:
        prompt = VLM_PROMPTS[params.visual]
        captions = root / "data" / "captions" / dataset / f"{prompt}.parquet"
        ids, descriptions, unusable = read_descriptions(captions)
        outputs[VISUAL_FILE] = {"input": str(captions), "unusable_caption_rows": unusable,
                                **encode_output(out_dir / VISUAL_FILE, n_items, ids, descriptions,
                                                f"vlm_{prompt}", encoder)}
    else:
        cat = category(dataset, params.download.synthetic.category)
        features_path = root / "data" / "raw" / dataset / image_features_name(cat)
        outputs[VISUAL_FILE] = {"input": str(features_path),
                                **original_output(out_dir / VISUAL_FILE, n_items, items_path, features_path)}
    report["seconds"] = seconds_since(start)
    write_json(out_dir / REPORT_FILE, _content_report(report))
    write_run_report("encode", report, root)
    return report
