"""The torchvision-free processor is a fallback: registered where torchvision is missing, never otherwise."""
from __future__ import annotations

from transformers import Qwen2_5_VLConfig

import viral.caption.qwen_processor as qwen_processor


def test_registered_only_where_torchvision_is_missing(monkeypatch):
    calls = []
    monkeypatch.setattr(qwen_processor.AutoProcessor, "register", lambda *args, **kwargs: calls.append(args))
    monkeypatch.setattr(qwen_processor, "is_torchvision_available", lambda: True)
    assert qwen_processor.register() is False and calls == []  # e.g. inside a vLLM process: the real one stays
    monkeypatch.setattr(qwen_processor, "is_torchvision_available", lambda: False)
    assert qwen_processor.register() is True
    assert calls == [(Qwen2_5_VLConfig, qwen_processor.TinyQwen2_5_VLProcessor)]


def test_loading_a_model_folder_gives_a_processor_with_images(tiny_model):
    processor = qwen_processor.load_processor(str(tiny_model))
    assert hasattr(processor, "image_processor") and processor.image_token == "<|image_pad|>"
