"""A Qwen2.5-VL processor that works without torchvision (the CPU/CI environment has none).

transformers' own `Qwen2_5_VLProcessor` insists on a video processor, and the only one it has imports
torchvision. Captioning is image-only, so this subclass wires just the image processor and the
tokenizer. It is registered with `AutoProcessor` on import: without the registration
`AutoProcessor.from_pretrained` silently returns only the tokenizer and images would be ignored, so
every place that loads a model folder imports this module first (`register()` is idempotent).
"""
from __future__ import annotations

from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLProcessor
from transformers.processing_utils import ProcessorMixin


class TinyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Image processor + tokenizer only; behaves like `Qwen2_5_VLProcessor` for image prompts."""

    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = "<|image_pad|>"
        self.video_token = "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def register() -> None:
    AutoProcessor.register(Qwen2_5_VLConfig, TinyQwen2_5_VLProcessor, exist_ok=True)


register()
