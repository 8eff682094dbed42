"""The shared frame of every stage entry point: validated params, logging, one-line errors."""
from __future__ import annotations

import logging
import sys
import time
from typing import Callable

from viral.config import ConfigError
from viral.params import Params, load_params

log = logging.getLogger("viral")


class StageError(RuntimeError):
    """An expected failure (bad input, missing file): reported as one line, exit status 1."""


def run_stage(name: str, body: Callable[[Params], None], params_path: str = "params.yaml") -> None:
    """Validate params.yaml up front, run `body(params)`, and turn known errors into one line."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        params = load_params(params_path)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    start = time.perf_counter()
    log.info("stage %s: dataset=%s data_seed=%s", name, params.dataset, params.data_seed)
    try:
        body(params)
    except (StageError, ConfigError) as err:
        print(f"error: {name}: {err}", file=sys.stderr)
        sys.exit(1)
    log.info("stage %s done in %.1f s", name, time.perf_counter() - start)
