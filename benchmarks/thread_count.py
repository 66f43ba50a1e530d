"""Wall time of ``nasgen search`` at different ``--threads``: what the default is chosen by.

Runs ``nasgen search --steps N --warmup-epochs 0 --threads T`` (the default env and
controller otherwise) as separate processes, thread counts alternating back to back so that
load from other jobs on the machine hits each count alike, and prints per run the process
wall time, the search loop's own time (``wall_time_s`` of ``result.json``) and the 1-minute
load average at the start.

Usage::

    python benchmarks/thread_count.py                      # --threads 1 and 2, twice, 100 steps
    python benchmarks/thread_count.py --threads 1,2,4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(threads: int, steps: int, logdir: Path) -> dict:
    """One ``nasgen search`` process; its wall time, search time and the load when it started."""
    load = os.getloadavg()[0]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nasgen", "search", "--steps", str(steps), "--warmup-epochs", "0",
                    "--threads", str(threads), "--logdir", str(logdir), "--no-progress"],
                   check=True, capture_output=True, env=env)
    wall = time.perf_counter() - start
    (run_dir,) = [p for p in logdir.iterdir() if p.is_dir()]
    result = json.loads((run_dir / "result.json").read_text())
    return {"threads": threads, "wall_s": wall, "search_s": result["wall_time_s"], "load": load}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds over the thread counts (default 2)")
    parser.add_argument("--steps", type=int, default=100, help="search steps per run (default 100)")
    args = parser.parse_args()
    counts = [int(t) for t in args.threads.split(",")]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for threads in counts:
                logdir = Path(tmp) / f"r{repeat}t{threads}"
                logdir.mkdir()
                run = one_run(threads, args.steps, logdir)
                runs.append(run)
                print(f"round {repeat + 1}  --threads {threads}: wall {run['wall_s']:.1f} s, "
                      f"search loop {run['search_s']:.1f} s, load at start {run['load']:.1f}", flush=True)
    print(f"cores: {os.cpu_count()}; medians over {args.repeats} rounds:")
    for threads in counts:
        mine = [r for r in runs if r["threads"] == threads]
        print(f"  --threads {threads}: wall {statistics.median(r['wall_s'] for r in mine):.1f} s, "
              f"search loop {statistics.median(r['search_s'] for r in mine):.1f} s")


if __name__ == "__main__":
    main()
