"""python -m viral.report.sweep: queue the paper's experiments with DVC's queue, run them, build the report.

    python -m viral.report.sweep [--tables 1 2] [--seeds 999 1000 1001] [--backbones MODEL ...]
                                 [-S key=value ...] [--jobs 1] [--dry-run] [--no-wait] [--no-report]

Nothing edits params.yaml: each table is one or more `dvc exp run --queue` grids (DVC's `-S key=a,b`
sweep syntax), then `dvc queue start -j JOBS`; by default it waits for the queue to drain and runs
`python -m viral.report`. Table 1 = every model of the registry; Table 2 = VIRAL with each `visual` and
`fusion` ablation (one knob at a time, as the paper does); `--backbones` adds VIRAL per `caption.model`
(Fig. 4 bottom). Every grid crosses `--seeds`, on the one split `data_seed` fixes. With `--jobs` > 1 each
run gets `train.threads` = cores / jobs unless `-S train.threads=...` is given. Queued experiments only
see files git tracks: commit (or `git add`) code first.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time

from viral.models import MODELS
from viral.report.collect import CollectError, DvcRepository
from viral.report.groups import PROPOSED

log = logging.getLogger(__name__)

# Table 2 of the paper: the knob values that depart from VIRAL's defaults, one knob at a time.
TABLE2 = {"visual": ("original", "vlm_plain"), "fusion": ("pooling", "concat", "weighted_concat")}
DVC = [sys.executable, "-m", "dvc"]


def queue_commands(tables: list[str], seeds: list[int], settings: list[str], backbones: list[str] = (),
                   jobs: int = 1, cores: int | None = None) -> list[list[str]]:
    """The `dvc exp run --queue` commands of the requested tables (and backbones), in order."""
    extra = [arg for setting in settings for arg in ("-S", setting)]
    if jobs > 1 and not any(setting.startswith("train.threads=") for setting in settings):
        extra += ["-S", f"train.threads={max(1, (cores or os.cpu_count() or 1) // jobs)}"]
    seeds_arg = ["-S", "seed=" + ",".join(str(seed) for seed in seeds)]
    queue = ["exp", "run", "--queue"]
    commands = []
    if "1" in tables:
        commands.append([*queue, "-S", "model=" + ",".join(MODELS), *seeds_arg, *extra])
    elif "2" in tables or backbones:
        commands.append([*queue, "-S", f"model={PROPOSED}", *seeds_arg, *extra])  # the reference row
    if "2" in tables:
        for knob, values in TABLE2.items():
            commands.append([*queue, "-S", f"model={PROPOSED}", "-S", f"{knob}={','.join(values)}", *seeds_arg, *extra])
    if backbones:
        commands.append([*queue, "-S", f"model={PROPOSED}", "-S", f"caption.model={','.join(backbones)}",
                         *seeds_arg, *extra])
    return commands


def queue_states(exp_show: list[dict]) -> dict[str, int]:
    """How many experiments of `dvc exp show --json` output are queued, running, failed, successful."""
    counts: dict[str, int] = {}
    for baseline in exp_show:
        for exp_range in baseline.get("experiments") or []:
            state = (exp_range.get("executor") or {}).get("state", "success")
            counts[state] = counts.get(state, 0) + 1
    return counts


def _run(command: list[str]) -> str:
    print("$ dvc " + " ".join(command), flush=True)
    done = subprocess.run([*DVC, *command], capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"error: sweep: dvc {' '.join(command[:3])} failed: {last}")
    return done.stdout


def untracked_sources() -> list[str]:
    """Files git does not track under the code folders: queued experiments would not see them."""
    done = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "viral", "stages"],
                          capture_output=True, text=True)
    return [line[3:] for line in done.stdout.splitlines() if line.startswith("??")]


def wait(poll_s: float) -> dict[str, int]:
    """Poll `dvc exp show` until nothing of HEAD's is queued or running; returns the final state counts."""
    with DvcRepository(".") as repository:
        while True:
            try:
                counts = queue_states(repository.exp_show())
            except CollectError as err:  # e.g. the queue's lock held a moment: ask again
                log.warning("%s", err)
                counts = {"unknown": 1}
            log.info("queue: %s", ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "empty")
            if not set(counts) & {"queued", "running", "unknown"}:
                return counts
            time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m viral.report.sweep", description=__doc__.splitlines()[0])
    parser.add_argument("--tables", nargs="+", choices=["1", "2"], default=["1", "2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[999, 1000, 1001])
    parser.add_argument("--backbones", nargs="+", default=[], metavar="CAPTION_MODEL",
                        help="also VIRAL per caption.model (Fig. 4 bottom)")
    parser.add_argument("-S", "--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                        help="added to every experiment, e.g. -S dataset=baby -S train.epochs=50")
    parser.add_argument("--jobs", type=int, default=1, help="dvc queue start -j JOBS (parallel experiments)")
    parser.add_argument("--poll", type=float, default=30.0, help="seconds between queue checks while waiting")
    parser.add_argument("--dry-run", action="store_true", help="print the dvc commands, run nothing")
    parser.add_argument("--no-wait", action="store_true", help="return once the queue has started")
    parser.add_argument("--no-report", action="store_true", help="do not build the report at the end")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    commands = queue_commands(args.tables, args.seeds, args.settings, args.backbones, args.jobs)
    start = ["queue", "start", "-j", str(args.jobs)]
    if args.dry_run:
        for command in [*commands, start]:
            print("dvc " + " ".join(command))
        return 0
    missing = untracked_sources()
    if missing:
        print(f"error: sweep: {len(missing)} untracked file(s) under viral/ or stages/ (e.g. {missing[0]}): queued "
              "experiments would not see them; commit or `git add` them first", file=sys.stderr)
        return 1
    for command in commands:
        _run(command)
    _run(start)
    if args.no_wait:
        return 0
    counts = wait(args.poll)
    print(json.dumps({"sweep": args.tables, "seeds": args.seeds, "experiments": counts}), flush=True)
    if args.no_report:
        return 0
    from viral.report.__main__ import main as report

    return report([])


if __name__ == "__main__":
    sys.exit(main())
