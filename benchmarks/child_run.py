"""Run one measurement in a child process (so its peak memory and threads are its own) and read the one
JSON line it prints last; a failed child becomes {"error": its last stderr line}. `peak_rss_mb` is the
child's own peak memory."""
from __future__ import annotations

import json
import resource
import subprocess
from pathlib import Path


def run_child(command: list[str]) -> dict:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def peak_rss_mb() -> float:
    """Peak resident memory of this process's own image, MB: VmHWM. Not ru_maxrss, which a child started
    by fork + exec inherits from its parent (Linux records the pre-exec image's high-water mark there);
    ru_maxrss is the fallback where /proc is absent."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
