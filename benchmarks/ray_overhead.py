"""What `archbench run --executor ray` costs on this machine against a local run of the same suite.

Alternates the two runs (the CLI as a user runs it) for a few rounds, so load from other processes
hits both alike, and times a local Ray cluster's start-up and shut-down on their own. Prints the
median wall time of each, the overhead per case, (ray − local) / cases, and start-up/shut-down.

    .venv/bin/python benchmarks/ray_overhead.py [--suite suites/zoo.yaml] [--rounds 2]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall_of_run(suite: str, out: Path, *executor: str) -> float:
    """Seconds of `archbench run SUITE` (with ``executor`` options) in a fresh process."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "archbench", "run", suite, "--out", str(out), "--format", "json",
                    *executor], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def cluster_start_and_stop() -> tuple[float, float]:
    """Seconds to start a local Ray cluster (as the executor does) and to shut it down."""
    from archbench.executors.ray_executor import ray_cluster

    started = time.perf_counter()
    cluster = ray_cluster(None)
    cluster.__enter__()
    up = time.perf_counter()
    cluster.__exit__(None, None, None)
    return up - started, time.perf_counter() - up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", default="suites/zoo.yaml")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    from archbench.suite import load_suite

    cases = len(load_suite(args.suite).cases)
    local, ray = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.rounds):
            local.append(wall_of_run(args.suite, Path(folder) / "local.json"))
            ray.append(wall_of_run(args.suite, Path(folder) / "ray.json", "--executor", "ray"))
    start, stop = cluster_start_and_stop()
    local_s, ray_s = statistics.median(local), statistics.median(ray)
    print(f"{args.suite}: {cases} cases, {args.rounds} rounds")
    print(f"local run: {local_s:.1f} s (median of {', '.join(f'{t:.1f}' for t in local)})")
    print(f"ray run:   {ray_s:.1f} s (median of {', '.join(f'{t:.1f}' for t in ray)})")
    print(f"overhead per case: {(ray_s - local_s) / cases:.2f} s")
    print(f"local Ray cluster: start-up {start:.1f} s, shut-down {stop:.1f} s")


if __name__ == "__main__":
    main()
