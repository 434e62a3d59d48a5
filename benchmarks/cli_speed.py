"""Where archbench's commands stand: each one timed against its reference in the same run (issue 25).

Every row is a command and a reference, each a fresh process timed end to end (imports, build, count,
output). Within one repetition the rows run one after another, each command right next to its reference
(their order alternating between repetitions), so a load that comes and goes weighs on both; the table
gives the medians and their ratio, and the goal of each row.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/cli_speed.py [--repeat 3] [--rows lstm,list] [--heavy]
        [--load N] [--json out.json]

``--heavy`` adds the real shapes (Mamba-2.8B against Llama-3-8B, T = 2048: minutes each). ``--load N`` runs N
CPU-bound busy loops beside the timings (the loaded column of the README's table). The machine's load
average at the start and the end is printed with the table: say it with the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

ARCHBENCH = [sys.executable, "-m", "archbench"]
IMPORT_TORCH = [sys.executable, "-c", "import torch"]
BARE_FVCORE = [sys.executable, "-c", """
import warnings; warnings.filterwarnings("ignore")
import torch, torchvision
from fvcore.nn import FlopCountAnalysis
model = torchvision.models.resnet50().eval()
analysis = FlopCountAnalysis(model, torch.randn(1, 3, 224, 224))
analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
with torch.no_grad():
    print(analysis.total())
"""]
SMALL_LLAMA = "hf:llama:hidden_size=768,num_hidden_layers=8,num_attention_heads=12,intermediate_size=2048"
SMALL_MAMBA = "hf:mamba:hidden_size=768,num_hidden_layers=8"
LLAMA3_8B = ("hf:llama:hidden_size=4096,intermediate_size=14336,num_hidden_layers=32,num_attention_heads=32,"
             "num_key_value_heads=8,vocab_size=128256")
MAMBA_2_8B = "hf:mamba:hidden_size=2560,num_hidden_layers=64,vocab_size=50280,state_size=16,expand=2"
SWEEP = ["scaling", "--model", "transformer", "--model", "lstm", "--seq", "512..10000", "--metric", "flops"]


@dataclass
class Row:
    """A command, its reference and the goal on their ratio (or, with ``absolute``, on the command's seconds)."""

    name: str
    command: list[str]
    reference: list[str]
    goal: float
    what: str
    absolute: bool = False
    heavy: bool = False


ROWS = [
    Row("lstm", ARCHBENCH + ["flops", "lstm", "--seq", "10000"], IMPORT_TORCH, 1.5,
        "flops lstm --seq 10000 / import torch"),
    Row("sweep", ARCHBENCH + SWEEP, ARCHBENCH + SWEEP[:3] + SWEEP[5:], 10.0,
        "the mission's FLOPs sweep (s); reference: the transformer alone", absolute=True),
    Row("mamba", ARCHBENCH + ["flops", SMALL_MAMBA, "--seq", "2048"], ARCHBENCH + ["flops", SMALL_LLAMA, "--seq", "2048"],
        2.0, "flops Mamba d=768 L=8 / Llama d=768 L=8, T=2048"),
    Row("list", ARCHBENCH + ["list"], IMPORT_TORCH, 0.5, "archbench list / import torch"),
    Row("resnet50", ARCHBENCH + ["flops", "resnet50"], BARE_FVCORE, 0.9, "flops resnet50 / a bare fvcore script"),
    Row("real-mamba", ARCHBENCH + ["flops", MAMBA_2_8B, "--seq", "2048"], ARCHBENCH + ["flops", LLAMA3_8B, "--seq", "2048"],
        2.0, "flops Mamba-2.8B / Llama-3-8B, T=2048", heavy=True),
]


def seconds(argv: list[str]) -> float:
    """Wall seconds of one fresh process (its output discarded); a failure stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}): {' '.join(argv)}\n{result.stderr[-2000:]}")
    return elapsed


def busy_loops(n: int) -> list[subprocess.Popen]:
    """``n`` CPU-bound processes (pure Python arithmetic), to be terminated by the caller."""
    loop = "x = 0\nwhile True:\n    x = (x * 31 + 7) % 1000003"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", help="comma-separated row names (default: every light row)")
    parser.add_argument("--heavy", action="store_true", help="also the real shapes (minutes)")
    parser.add_argument("--load", type=int, default=0, help="CPU-bound busy loops to run beside the timings")
    parser.add_argument("--json", help="write the samples and medians here")
    args = parser.parse_args()
    chosen = args.rows.split(",") if args.rows else [r.name for r in ROWS if args.heavy or not r.heavy]
    rows = [r for r in ROWS if r.name in chosen]
    samples: dict[str, tuple[list[float], list[float]]] = {r.name: ([], []) for r in rows}
    load_before = os.getloadavg()
    loops = busy_loops(args.load)
    try:
        for repetition in range(args.repeat):
            for row in rows:
                pair = [(row.command, 0), (row.reference, 1)]
                for argv, slot in pair if repetition % 2 == 0 else reversed(pair):
                    samples[row.name][slot].append(seconds(argv))
    finally:
        for process in loops:
            process.terminate()
            process.wait()
    load_after = os.getloadavg()
    print(f"{os.cpu_count()} cpus, {args.load} busy loop(s) beside, load average (1 min) {load_before[0]:.1f} at the "
          f"start, {load_after[0]:.1f} at the end; medians of {args.repeat}, seconds")
    print(f"{'row':<11} {'command':>8} {'reference':>9} {'ratio':>6} {'goal':>7} met  what")
    report = {"load": args.load, "loadavg": [load_before[0], load_after[0]], "repeat": args.repeat, "rows": {}}
    for row in rows:
        command, reference = (statistics.median(s) for s in samples[row.name])
        ratio = command / reference
        figure = command if row.absolute else ratio
        goal = f"<={row.goal:g}{' s' if row.absolute else 'x'}"
        print(f"{row.name:<11} {command:8.2f} {reference:9.2f} {ratio:6.2f} {goal:>7} {'yes' if figure <= row.goal else 'NO ':<4} "
              f"{row.what}")
        report["rows"][row.name] = {"command_s": samples[row.name][0], "reference_s": samples[row.name][1],
                                    "median_command_s": command, "median_reference_s": reference, "ratio": ratio,
                                    "goal": row.goal, "absolute": row.absolute, "met": figure <= row.goal}
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
