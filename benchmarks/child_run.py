"""Run one measurement in a child process (so its peak memory and threads are its own) and read the one
JSON line it prints last; a failed child becomes {"error": its last stderr line}."""
from __future__ import annotations

import json
import subprocess


def run_child(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])
