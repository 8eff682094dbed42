"""`caption.backend: ray`: the same captions on a Ray cluster, through Ray Data.

The driver (this process) plans exactly as the in-process backends do (`viral.caption.jobs`: same cache
keys, only uncached jobs), then streams a Ray Data pipeline and saves what comes back as the same
cache parts (`ResultWriter`), every `shard_items` results, so a killed run resumes with only the
missing jobs and the output tables are identical in format to the other backends':

    read_parquet(the image shards holding to-do items)   # workers read the images stage's shards
      -> map_batches(prepare_rows)                        # CPU tasks: pick the jobs, decode + grid resize
      -> engine                                           # replicas on the cluster
      -> driver: ResultWriter                             # cache parts, one per prompt

Engines (`caption.ray.engine`, also the cache key's engine, so runs move freely between a single
node and a cluster):
- `vllm`: `ray.data.llm`'s vLLM engine processor, one replica per `tensor_parallel_size` GPUs. The
  driver renders each prompt with the model's chat template, so the processor's own chat-template,
  tokenize and detokenize stages are off and each row goes to the engine as prompt text + the prepared
  image, exactly what the single-node vLLM backend submits. Argument names of `ray.data.llm` are all
  in `vllm_processor`, `engine_request` and `engine_result`.
- `transformers`: an actor pool (`map_batches` with a callable class) running the transformers backend:
  CPU clusters, and what the tests run on a local 2-CPU Ray with the tiny Qwen2.5-VL.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import time
from typing import TYPE_CHECKING, Callable, Iterator

import pyarrow as pa
from tqdm import tqdm

from viral.caption.backend import CaptionRequest, Generation, make_captioner, sampling_from
from viral.caption.config import CaptionConfig, RayConfig
from viral.caption.feed import decode_failure
from viral.caption.geometry import image_from_pixels, prepare_image
from viral.caption.jobs import ImageIndex, Job, Plan
from viral.caption.writer import ResultWriter
from viral.stage import StageError

if TYPE_CHECKING:
    from types import ModuleType

log = logging.getLogger(__name__)

JOB_SCHEMA = pa.schema(
    [("itemID", pa.int64()), ("job", pa.int64()), ("text", pa.string()), ("chat", pa.string()),
     ("image_id", pa.string())]
)  # fmt: skip
PREPARED_SCHEMA = pa.schema(
    [("job", pa.int64()), ("text", pa.string()), ("chat", pa.string()), ("image_id", pa.string()),
     ("pixels", pa.large_binary()), ("width", pa.int32()), ("height", pa.int32()), ("error", pa.string())]
)  # fmt: skip
RESULT_SCHEMA = pa.schema(
    [("job", pa.int64()), ("description", pa.string()), ("prompt_tokens", pa.int32()),
     ("generated_tokens", pa.int32()), ("finish_reason", pa.string()), ("error", pa.string())]
)  # fmt: skip
NOT_RETURNED = "no result from the Ray pipeline (image decode failed on a worker: see the Ray worker logs)"


def import_ray() -> "ModuleType":
    try:
        import ray
    except ImportError:
        raise StageError("caption.backend=ray needs the ray package: pip install 'viral[ray]'") from None
    return ray


def llm_api() -> "ModuleType":
    """`ray.data.llm` (imported only for the vllm engine; it needs vllm on the GPU workers)."""
    from ray.data import llm

    return llm


@contextlib.contextmanager
def connected(config: RayConfig) -> Iterator["ModuleType"]:
    """The Ray runtime: an existing one, the cluster at `address`, or a local one started (and stopped) here."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict = dict(address=config.address or None, log_to_driver=True)
    if not config.address:  # these only apply to a Ray started by this process
        kwargs.update(num_cpus=config.num_cpus, include_dashboard=False)
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as err:
        raise StageError(f"caption.ray.address {config.address!r}: cannot start or reach Ray ({err})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def jobs_table(plan: Plan, chat: Callable[[str], str] | None) -> pa.Table:
    """The to-do list as a table (what the workers need to build requests); `chat` renders the full
    chat text where the engine needs it pre-rendered (vLLM), else the column is empty."""
    todo = plan.todo
    return pa.table(
        {
            "itemID": [job.item.item_id for job in todo],
            "job": list(range(len(todo))),  # position in plan.todo: what results come back with
            "text": [job.text for job in todo],
            "chat": [chat(job.text) if chat else "" for job in todo],
            "image_id": [job.image_sha256 for job in todo],
        },
        schema=JOB_SCHEMA,
    )


def prepare_rows(images: pa.Table, jobs, max_pixels: int) -> pa.Table:
    """Ray Data task: the jobs whose images are in this block, each image decoded and resized once."""
    import pyarrow.compute as pc
    import ray

    if isinstance(jobs, ray.ObjectRef):  # Ray Data passes fn_kwargs through unresolved
        jobs = ray.get(jobs)
    mine = jobs.filter(pc.is_in(jobs.column("itemID"), value_set=images.column("itemID")))
    data = dict(zip(images.column("itemID").to_pylist(), images.column("image").to_pylist()))
    decoded: dict[int, tuple] = {}
    rows = []
    for job in mine.to_pylist():
        item_id = job.pop("itemID")
        if item_id not in decoded:
            try:
                image = prepare_image(data[item_id], max_pixels)
                decoded[item_id] = (image.tobytes(), image.width, image.height, None)
            except Exception as err:  # PIL raises many types for damaged bytes
                log.warning("item %d: %s", item_id, decode_failure(err))
                decoded[item_id] = (None, None, None, decode_failure(err))
        pixels, width, height, error = decoded[item_id]
        rows.append(dict(job, pixels=pixels, width=width, height=height, error=error))
    return pa.Table.from_pylist(rows, schema=PREPARED_SCHEMA)


def drop_failed(batch: pa.Table) -> pa.Table:
    import pyarrow.compute as pc

    return batch.filter(pc.is_null(batch.column("error")))


def result_row(job: int, generation: Generation) -> dict:
    return dict(
        job=job, description=generation.text, prompt_tokens=generation.prompt_tokens,
        generated_tokens=generation.generated_tokens, finish_reason=generation.finish_reason, error=generation.error,
    )  # fmt: skip


def generation_of(row: dict) -> Generation:
    """A driver-side result row (either engine, or a row ray.data.llm marked as failed) as a Generation."""
    error = row.get("error") or row.get("__inference_error__")
    if error:
        return Generation.failed(str(error))
    return Generation(row["description"], row["prompt_tokens"], row["generated_tokens"], row["finish_reason"])


class TransformersReplica:
    """Ray Data actor: the transformers backend on prepared rows (failed preparations pass through)."""

    def __init__(self, config: CaptionConfig, seed: int):
        self.captioner = make_captioner(config, seed)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        ok = [row for row in rows if row["error"] is None]
        requests = [
            CaptionRequest(row["image_id"], row["text"], image_from_pixels(row["pixels"], row["width"], row["height"]))
            for row in ok
        ]
        generated = dict(zip((row["job"] for row in ok), self.captioner.generate(requests)))
        results = [
            result_row(row["job"], generated[row["job"]] if row["error"] is None else Generation.failed(row["error"]))
            for row in rows
        ]
        return pa.Table.from_pylist(results, schema=RESULT_SCHEMA)


def engine_request(row: dict, sampling: dict) -> dict:
    """ray.data.llm preprocess: the row the vLLM engine stage reads (prompt, multimodal data, sampling)."""
    image = image_from_pixels(row["pixels"], row["width"], row["height"])
    return dict(
        job=row["job"],
        prompt=row["chat"],
        multimodal_data={"image": image},
        multimodal_uuids={"image": row["image_id"]},
        sampling_params=dict(sampling),
    )


def engine_result(row: dict, max_tokens: int) -> dict:
    """ray.data.llm postprocess. Its output has no finish reason: a full `max_tokens` counts as `length`."""
    generated = int(row["num_generated_tokens"])
    return dict(
        job=row["job"], description=str(row["generated_text"]).strip(), prompt_tokens=int(row["num_input_tokens"]),
        generated_tokens=generated, finish_reason="length" if generated >= max_tokens else "stop", error=None,
    )  # fmt: skip


def replicas(config: CaptionConfig, cluster: dict) -> int:
    """`caption.ray.replicas`, or with 0 one replica per engine's worth of GPUs in the cluster."""
    if config.ray.replicas:
        return config.ray.replicas
    gpus_each = config.tensor_parallel_size if config.uses_vllm else config.ray.gpus_per_replica
    if not gpus_each:
        return 1
    count = int(cluster.get("GPU", 0) // gpus_each)
    if count < 1:
        raise StageError(
            f"caption.ray: the Ray cluster has {cluster.get('GPU', 0):g} GPUs, fewer than one replica needs"
            f" ({gpus_each:g}); set caption.ray.engine: transformers with gpus_per_replica: 0 for CPUs"
        )
    return count


def vllm_processor(config: CaptionConfig, seed: int, count: int):
    """ray.data.llm's vLLM engine processor for prepared rows."""
    from viral.caption.vllm_backend import engine_env, engine_kwargs, sampling_kwargs

    llm = llm_api()
    processor_config = llm.vLLMEngineProcessorConfig(
        model_source=config.model,
        engine_kwargs=engine_kwargs(config, seed),
        batch_size=config.ray.batch_size,
        concurrency=count,
        runtime_env={"env_vars": engine_env(config)},
        chat_template_stage=False,
        tokenize_stage=False,
        detokenize_stage=False,
        should_continue_on_error=True,
    )
    return llm.build_processor(
        processor_config,
        preprocess=functools.partial(engine_request, sampling=sampling_kwargs(sampling_from(config, seed))),
        postprocess=functools.partial(engine_result, max_tokens=config.max_new_tokens),
    )


def caption_with_ray(
    config: CaptionConfig, seed: int, plan: Plan, index: ImageIndex, writer: ResultWriter
) -> dict[str, float]:
    """Generate `plan.todo` on Ray, saving results as they stream back; return the timings (`stream_results`)."""
    chat = None  # the transformers engine renders its own chat text
    if config.uses_vllm:
        from viral.caption.prompts import render_chat
        from viral.caption.qwen_processor import load_processor

        chat = functools.partial(render_chat, load_processor(config.model))
    table = jobs_table(plan, chat)
    # Absolute: workers do not share this process's working directory (on a cluster, a shared filesystem).
    shards = sorted({str(index.shards[job.shard].resolve()) for job in plan.todo})
    with connected(config.ray) as ray:
        ray.data.DataContext.get_current().enable_progress_bars = False  # our own tqdm counts results
        count = replicas(config, ray.cluster_resources())
        log.info("caption on Ray: %d jobs from %d image shards, %d %s replicas", len(plan.todo), len(shards), count,
                 config.engine)  # fmt: skip
        ds = ray.data.read_parquet(shards, columns=["itemID", "image"])
        ds = ds.map_batches(prepare_rows, batch_format="pyarrow",
                            fn_kwargs=dict(jobs=ray.put(table), max_pixels=config.max_pixels))  # fmt: skip
        # Engine-sized blocks: replicas share the work evenly and results stream back (and are saved) in
        # small batches, instead of one image shard's worth per block.
        ds = ds.repartition(target_num_rows_per_block=config.ray.batch_size)
        if config.uses_vllm:
            ds = vllm_processor(config, seed, count)(ds.map_batches(drop_failed, batch_format="pyarrow"))
        else:
            ds = ds.map_batches(
                TransformersReplica, fn_constructor_kwargs=dict(config=config, seed=seed), batch_format="pyarrow",
                batch_size=config.ray.batch_size, compute=ray.data.ActorPoolStrategy(size=count),
                num_cpus=config.ray.cpus_per_replica, num_gpus=config.ray.gpus_per_replica,
            )  # fmt: skip
        return stream_results(ds, plan.todo, writer, config.shard_items)


def stream_results(ds, jobs: list[Job], writer: ResultWriter, every: int) -> dict[str, float]:
    """Consume the pipeline, saving a cache part per prompt every `every` results; return its timings:
    seconds in all, and until the first batch of results (replicas starting, loading the model) with its size."""
    start = time.perf_counter()
    first, first_results = None, 0
    seen: set[int] = set()
    pending: list = []
    with tqdm(total=len(jobs), unit="generation", desc="caption (ray)") as progress:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            if first is None:
                first, first_results = time.perf_counter() - start, batch.num_rows
            for row in batch.to_pylist():
                seen.add(row["job"])
                pending.append((jobs[row["job"]], generation_of(row)))
            progress.update(batch.num_rows)
            if len(pending) >= every:
                writer.record(pending)
                pending = []
        pending.extend((job, Generation.failed(NOT_RETURNED)) for i, job in enumerate(jobs) if i not in seen)
        writer.record(pending)
    seconds = time.perf_counter() - start
    log.info("caption on Ray: %d results in %.1f s, the first after %.1f s", len(seen), seconds, first or seconds)
    return dict(generate_seconds=seconds, first_result_seconds=first or seconds, first_results=first_results)
