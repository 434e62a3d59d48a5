"""How fast `archbench run` keeps records as a suite grows: records per second at the start and the end, peak memory.

Generates a suite of N params cases (``mlp:hidden=1..N``) in a temporary folder, runs it under
``/usr/bin/time -v`` and, while it runs, counts the lines of its journal every ``--poll`` seconds.
A writer that rewrote the whole document per record would slow down as the run grows; a
journal that appends one line per record should not.

    python benchmarks/journal_throughput.py --cases 10000
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_suite(folder: Path, cases: int) -> Path:
    """A suite of ``cases`` params cases of the mlp, one hidden size each."""
    path = folder / f"params-{cases}.yaml"
    lines = ["name: journal-throughput", "defaults: {device: cpu}", "cases:"]
    lines += [f"  - {{id: c{i}, model: 'mlp:hidden={i}', metrics: [params]}}" for i in range(1, cases + 1)]
    path.write_text("\n".join(lines) + "\n")
    return path


def rate(samples: list[tuple[float, int]], start: float, end: float) -> float:
    """Records per second between two times, from (time, records on disk) samples."""
    inside = [(t, n) for t, n in samples if start <= t <= end]
    if len(inside) < 2 or inside[-1][0] == inside[0][0]:
        return float("nan")
    return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=30.0, help="seconds at the start and the end to average over")
    parser.add_argument("--poll", type=float, default=0.5)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="archbench-journal-") as tmp:
        folder = Path(tmp)
        suite, out = write_suite(folder, args.cases), folder / "run.json"
        journal = folder / "run.json.partial.jsonl"
        command = ["/usr/bin/time", "-v", sys.executable, "-m", "archbench", "run", str(suite), "--out", str(out),
                   "--format", "json"]
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, int]] = []
        while process.poll() is None:
            if journal.is_file():
                with open(journal, "rb") as handle:
                    samples.append((time.monotonic() - started, sum(1 for _ in handle) - 1))  # minus the header
            time.sleep(args.poll)
        stderr = process.communicate()[1]
        elapsed = time.monotonic() - started
        if process.returncode != 0:
            sys.exit(f"archbench run failed ({process.returncode}):\n{stderr}")
        records = len(__import__("json").loads(out.read_text())["records"])
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", stderr).group(1))
    first = next(t for t, n in samples if n > 0)
    last = samples[-1][0]
    print(f"{args.cases} cases, {records} records in {elapsed:.1f} s (first record after {first:.1f} s)")
    print(f"records/s in the first {args.window:g} s: {rate(samples, first, first + args.window):.1f}")
    print(f"records/s in the last {args.window:g} s: {rate(samples, last - args.window, last):.1f}")
    print(f"peak RSS: {peak_kb / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
