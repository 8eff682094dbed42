"""The caption stage (paper §2.3): VLM descriptions of every item image, title-guided and plain.

- `config.py`: `CaptionConfig` (params.yaml `caption:`); `prompts.yaml` / `prompts.py`: the templates.
- `geometry.py`: decoding and the one resize onto Qwen2.5-VL's grid that every backend shares.
- `backend.py`: the `Captioner` interface, requests/generations, failure bisection.
- `hf_backend.py` (transformers), `vllm_backend.py` (vLLM, GPU), `ray_backend.py` (Ray Data over a
  cluster), `precomputed.py` (imported files).
- `jobs.py`: the plan (items, image locations, cache keys, to-do list); `feed.py`: the next chunk decoded
  while the current one generates; `writer.py`: results into cache parts; `cache.py`: the resumable
  content cache; `output.py`: the output table; `provenance.py`: engine settings and library versions;
  `run.py`: the stage.
- `tiny.py` + `qwen_processor.py`: a tiny random Qwen2.5-VL that runs offline on a CPU (tests, benchmark).
"""
