"""The training state saved after every epoch, so that an interrupted run resumes where it stopped and
ends bit-for-bit where an uninterrupted run would (weights, optimiser, RNG states, early-stopping state)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from viral.io import atomic_path

log = logging.getLogger(__name__)


def save_state(path: str | Path, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: str | Path, fingerprint: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state at `path` if it belongs to the same run (same fingerprint), else None."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file must not block a fresh start
        log.warning("ignoring unreadable checkpoint %s (%s)", path, err)
        return None
    if state.get("fingerprint") != fingerprint:
        log.info("checkpoint %s belongs to another configuration; starting afresh", path)
        return None
    return state
