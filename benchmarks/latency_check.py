"""Acceptance check: `archbench latency MODEL` against a direct torch.utils.benchmark median, same session.

Alternates the two (direct Timer in this process, then the CLI as a user runs it) for a few rounds,
so load from other processes hits both alike, and compares the median of each side's medians.
Exit status 1 when they differ by more than the tolerance.

    .venv/bin/python benchmarks/latency_check.py [--model resnet50] [--rounds 3] [--min-time 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path


def direct_median(model: str, threads: int, min_time: float) -> float:
    """Median seconds of one forward, timed here with torch.utils.benchmark.Timer (no archbench measuring code)."""
    import torch
    from torch.utils.benchmark import Timer
    from torchvision.models import get_model

    module = get_model(model, weights=None).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.inference_mode():
        return Timer("module(x)", globals={"module": module, "x": x}, num_threads=threads).blocked_autorange(
            min_run_time=min_time).median


def cli_median(model: str, threads: int, min_time: float) -> float:
    """The ``latency_s`` of ``archbench latency MODEL --format json``, run as a separate command."""
    archbench = Path(sys.executable).with_name("archbench")
    done = subprocess.run(
        [str(archbench), "latency", model, "--threads", str(threads), "--min-time", str(min_time), "--format", "json"],
        capture_output=True, text=True, check=True,
    )
    records = json.loads(done.stdout)["records"]
    return next(r["value"] for r in records if r["metric"] == "latency_s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="a torchvision model at 1x3x224x224")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--min-time", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.10)
    args = parser.parse_args()

    direct, cli = [], []
    for round_ in range(1, args.rounds + 1):
        direct.append(direct_median(args.model, args.threads, args.min_time))
        cli.append(cli_median(args.model, args.threads, args.min_time))
        print(f"round {round_}: direct Timer {direct[-1] * 1e3:8.2f} ms   archbench latency {cli[-1] * 1e3:8.2f} ms")
    a, b = statistics.median(direct), statistics.median(cli)
    difference = abs(b - a) / a
    print(f"median of medians: direct {a * 1e3:.2f} ms, archbench {b * 1e3:.2f} ms, difference {difference:.1%} "
          f"(tolerance {args.tolerance:.0%}, threads {args.threads}, min time {args.min_time:g} s)")
    return 0 if difference <= args.tolerance else 1


if __name__ == "__main__":
    sys.exit(main())
