"""A Qwen2.5-VL processor that works without torchvision (the CPU/CI environment has none).

transformers' own `Qwen2_5_VLProcessor` insists on a video processor, and the only one it has imports
torchvision. Captioning is image-only, so this subclass wires just the image processor and the
tokenizer. Without it, `AutoProcessor.from_pretrained` on a machine without torchvision silently
returns only the tokenizer and images would be ignored, so every place that loads a model folder calls
`register()` first. Where torchvision is installed (every vLLM environment: vLLM depends on it) the
real processor works and `register()` leaves `AutoProcessor` alone, so this class never shadows it.
"""
from __future__ import annotations

from transformers import AutoProcessor, Qwen2_5_VLConfig, Qwen2_5_VLProcessor
from transformers.processing_utils import ProcessorMixin
from transformers.utils import is_torchvision_available


class TinyQwen2_5_VLProcessor(Qwen2_5_VLProcessor):
    """Image processor + tokenizer only; behaves like `Qwen2_5_VLProcessor` for image prompts."""

    attributes = ["image_processor", "tokenizer"]

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        self.image_token = "<|image_pad|>"
        self.video_token = "<|video_pad|>"
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)
        self.video_token_id = tokenizer.convert_tokens_to_ids(self.video_token)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)


def register() -> bool:
    """Register the image-only processor for Qwen2.5-VL configs where torchvision is missing (idempotent).

    Returns whether it is registered."""
    if is_torchvision_available():
        return False
    AutoProcessor.register(Qwen2_5_VLConfig, TinyQwen2_5_VLProcessor, exist_ok=True)
    return True


def load_processor(model: str):
    """`AutoProcessor.from_pretrained(model)` with the image-only fallback registered; one line on failure."""
    from viral.caption.backend import first_line
    from viral.stage import StageError

    register()
    try:
        processor = AutoProcessor.from_pretrained(model)
    except (OSError, ValueError, KeyError) as err:
        raise StageError(f"caption.model {model!r}: cannot load its processor ({first_line(err)})") from None
    if not hasattr(processor, "image_processor"):
        raise StageError(f"caption.model {model!r}: its processor has no image processor (text-only model?)")
    return processor
