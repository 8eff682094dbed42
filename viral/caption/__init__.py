"""The caption stage (paper §2.3): VLM descriptions of every item image, title-guided or plain.

- `config.py`: `CaptionConfig` (params.yaml `caption:`); `prompts.yaml` / `prompts.py`: the templates.
- `backend.py`: the `Captioner` interface, requests/generations, image preparation.
- `hf_backend.py` (transformers), `vllm_backend.py` (vLLM, GPU), `precomputed.py` (imported files).
- `cache.py`: the resumable content cache; `output.py`: the output table; `run.py`: the stage.
- `tiny.py` + `qwen_processor.py`: a tiny random Qwen2.5-VL that runs offline on a CPU (tests, benchmark).
"""
