"""The content cache: which changes invalidate a caption, and parts that survive kills and damage."""
from __future__ import annotations

import pytest

from viral.caption.cache import CaptionCache, caption_key

BASE = dict(image_sha256="ab" * 32, prompt_text="Describe Mug.", backend="transformers", model="m",
            sampling={"max_new_tokens": 8, "temperature": 0.0, "repetition_penalty": 1.05}, max_pixels=1000)  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        dict(image_sha256="cd" * 32),
        dict(prompt_text="Describe Cup."),
        dict(backend="vllm"),
        dict(model="other"),
        dict(sampling={**BASE["sampling"], "repetition_penalty": 1.0}),
        dict(max_pixels=2000),
    ],
)
def test_every_output_changing_field_changes_the_key(change):
    assert caption_key(**{**BASE, **change}) != caption_key(**BASE)
    assert caption_key(**BASE) == caption_key(**dict(reversed(list(BASE.items()))))


def entry(key: str, text: str) -> dict:
    return dict(key=key, description=text, backend="b", model="m", prompt_hash="h", prompt_tokens=3,
                generated_tokens=2, finish_reason="stop")  # fmt: skip


def test_append_load_compact(tmp_path):
    cache = CaptionCache(tmp_path / "c")
    assert cache.load() == {} and cache.append([]) is None
    cache.append([entry("k1", "one"), entry("k2", "two")])
    cache.append([entry("k3", "three")])
    (tmp_path / "c" / ".part-x.parquet.123.tmp").write_bytes(b"half written")  # a killed write: ignored
    before = cache.load()
    assert sorted(before) == ["k1", "k2", "k3"] and before["k3"] == entry("k3", "three")
    cache.compact()
    assert len(cache.parts()) == 1 and cache.load() == before


def test_damaged_part_is_skipped_not_fatal(tmp_path, caplog):
    cache = CaptionCache(tmp_path)
    cache.append([entry("k1", "one")])
    (tmp_path / "part-broken.parquet").write_bytes(b"not parquet")
    assert list(cache.load()) == ["k1"]
    assert "unreadable cache part skipped" in caplog.text
