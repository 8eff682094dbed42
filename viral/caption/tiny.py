"""Build a tiny, randomly initialised Qwen2.5-VL model + processor folder, offline, in well under a second.

It is the test double of a real VLM for the `transformers` backend (tests and the speed benchmark):
the same architecture, processor and chat format as Qwen2.5-VL, about 200k parameters, loadable with
`Qwen2_5_VLForConditionalGeneration.from_pretrained` / `AutoProcessor.from_pretrained`. Its captions
are deterministic word salad restricted to letters and spaces (via `suppress_tokens`), so they are
valid text that downstream stages can encode.
"""
from __future__ import annotations

import re
from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

# Our own ChatML template with Qwen's image placeholder (one per image part; the processor expands it).
# No whitespace control: the only whitespace in the output is the explicit newlines.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message.role != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message.role }}\n"
    "{% if message.content is string %}{{ message.content }}"
    "{% else %}{% for part in message.content %}"
    "{% if part.type == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part.type == 'text' %}{{ part.text }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_CORPUS = [
    "A soft cotton baby blanket in pastel blue with a printed star pattern.",
    "This stroller has a lightweight aluminium frame, a canopy and a storage basket.",
    "A stainless steel water bottle that keeps drinks cold for hours.",
    "Plush toy elephant with embroidered eyes, safe for newborns and toddlers.",
    "Red running shoes with breathable mesh and a cushioned rubber sole.",
    "A wooden puzzle set with bright colours to help children learn shapes.",
    "Product title: think about the image, then describe the product in two or three sentences.",
    "Describe this product for a recommender system using its essential features.",
]

_READABLE = re.compile(r"[A-Za-z ]+")


def _tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(_CORPUS, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )


def build_tiny_qwen(out_dir: str | Path, *, vocab_size: int = 400, seed: int = 0) -> Path:
    """Write a tiny Qwen2.5-VL model and its processor to `out_dir`; return the folder."""
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLImageProcessorPil,
    )

    from viral.caption.qwen_processor import TinyQwen2_5_VLProcessor

    out_dir = Path(out_dir)
    tokenizer = _tokenizer(vocab_size)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    eos = [ids["<|im_end|>"], ids["<|endoftext|>"]]
    # Qwen2.5-VL-7B-Instruct's own pixel limits, so the processor treats images as the real one does.
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 56 * 56, "longest_edge": 12845056},
        patch_size=14,
        temporal_patch_size=2,
        merge_size=2,
    )
    processor = TinyQwen2_5_VLProcessor(image_processor, tokenizer, chat_template=CHAT_TEMPLATE)
    head_dim = 16
    config = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=head_dim,
            # mrope_section must sum to head_dim / 2 (temporal, height, width rotary slices).
            rope_parameters={"rope_type": "default", "rope_theta": 1e6, "mrope_section": [2, 3, 3]},
            bos_token_id=ids["<|im_start|>"],
            eos_token_id=eos,
            pad_token_id=ids["<|endoftext|>"],
        ),
        vision_config=dict(
            depth=1,
            hidden_size=32,
            intermediate_size=64,
            num_heads=2,
            out_hidden_size=64,
            patch_size=14,
            spatial_merge_size=2,
            temporal_patch_size=2,
            window_size=56,
            fullatt_block_indexes=[0],
        ),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config)
    # A random model would emit byte-level fragments (invalid UTF-8); allow only letters and spaces.
    unreadable = [
        token_id
        for token_id in range(len(tokenizer))
        if token_id not in eos and not _READABLE.fullmatch(tokenizer.decode([token_id]))
    ]
    model.generation_config = GenerationConfig(
        eos_token_id=eos,
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
        suppress_tokens=unreadable,
    )
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir
