"""`transformers` backend: any Hugging Face image-text-to-text model, batched with left padding.

Requests are sorted by image size before batching so that images of similar visual-token count
share a batch (less padding); results are put back in request order. A batch that raises is bisected
until the failing request stands alone. Images arrive already on Qwen2.5-VL's grid
(`viral.caption.geometry`); for Qwen models each batch checks that the processor kept them as they are,
so the visual-token count is the one every other backend uses.
"""
from __future__ import annotations

from typing import Sequence

from viral.caption.backend import CaptionRequest, Generation, Sampling, bisect_failures, first_line
from viral.caption.geometry import PATCH
from viral.caption.prompts import render_chat
from viral.stage import StageError


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StageError(f"caption.device {device!r}: no CUDA GPU is visible to torch")
    return device


class TransformersCaptioner:
    backend = "transformers"

    def __init__(self, model: str, sampling: Sampling, *, batch_size: int = 8, device: str = "auto"):
        import torch
        from transformers import AutoModelForImageTextToText

        from viral.caption.qwen_processor import load_processor

        self.model = model
        self.sampling = sampling
        self.batch_size = batch_size
        self.device = resolve_device(device)
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        self.processor = load_processor(model)
        try:
            self.net = AutoModelForImageTextToText.from_pretrained(model, dtype=dtype).to(self.device).eval()
        except (OSError, ValueError, KeyError) as err:
            raise StageError(f"caption.model {model!r}: cannot load it ({first_line(err)})") from None
        self.processor.tokenizer.padding_side = "left"
        eos = self.net.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        self.pad_id = self.processor.tokenizer.pad_token_id

    def _generate_kwargs(self) -> dict:
        kwargs = dict(max_new_tokens=self.sampling.max_new_tokens, repetition_penalty=self.sampling.repetition_penalty)
        if self.sampling.greedy:
            return kwargs | dict(do_sample=False)
        # Override the model's own top-k/top-p (Qwen ships top_k=1) so `temperature` means what it says.
        return kwargs | dict(do_sample=True, temperature=self.sampling.temperature, top_k=0, top_p=1.0)

    def _batch(self, requests: Sequence[CaptionRequest]) -> list[Generation]:
        import torch

        texts = [render_chat(self.processor, r.text) for r in requests]
        inputs = self.processor(text=texts, images=[r.image for r in requests], padding=True, return_tensors="pt")
        check_grid(inputs, requests)
        inputs = inputs.to(self.device)
        if not self.sampling.greedy:
            torch.manual_seed(self.sampling.seed)
        with torch.inference_mode():
            output = self.net.generate(**inputs, **self._generate_kwargs(), pad_token_id=self.pad_id)
        prompt_len = inputs["input_ids"].shape[1]
        prompt_tokens = inputs["attention_mask"].sum(dim=1).tolist()
        results = []
        for row, n_prompt in zip(output[:, prompt_len:].tolist(), prompt_tokens):
            stop = next((i for i, token in enumerate(row) if token in self.eos_ids), None)
            new_tokens = row if stop is None else row[: stop + 1]
            text = self.processor.decode(new_tokens, skip_special_tokens=True).strip()
            results.append(Generation(text, int(n_prompt), len(new_tokens), "length" if stop is None else "stop"))
        return results

    def generate(self, requests: Sequence[CaptionRequest]) -> list[Generation]:
        order = sorted(range(len(requests)), key=lambda i: (requests[i].image.width * requests[i].image.height, i))
        results: list[Generation | None] = [None] * len(requests)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            for i, generation in zip(chunk, bisect_failures(self._batch, [requests[i] for i in chunk])):
                results[i] = generation
        return results


def check_grid(inputs, requests: Sequence[CaptionRequest]) -> None:
    """Qwen processors report each image's patch grid: it must be the image's own size, not a resize."""
    grids = inputs.get("image_grid_thw")
    if grids is None:
        return
    for request, (_, rows, cols) in zip(requests, grids.tolist()):
        if (cols * PATCH, rows * PATCH) != request.image.size:
            raise StageError(
                f"the model's processor resized a {request.image.width}x{request.image.height} image to "
                f"{cols * PATCH}x{rows * PATCH}: caption.max_pixels exceeds the processor's own max_pixels"
            )
