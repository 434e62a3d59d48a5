"""What counting costs: `archbench flops resnet50` against a bare fvcore script over the same model.

Two views, each timed with torch.utils.benchmark (median and IQR of the samples):

- end to end: a fresh process per run (imports, model build, count, output), the
  ``archbench flops resnet50`` command against a script that builds torchvision's resnet50
  and prints ``FlopCountAnalysis(model, x).total()``;
- in process: the counting call alone on an already built model, bare fvcore against
  ``count_flops`` with each engine (fvcore on cpu, dispatch on cpu, dispatch on meta).

Run: ``.venv/bin/python benchmarks/flops_cost.py [--model resnet50] [--min-time 20]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BARE_FVCORE = """
import warnings; warnings.filterwarnings("ignore")
import torch, torchvision
from fvcore.nn import FlopCountAnalysis
model = torchvision.models.get_model({name!r}, weights=None).eval()
analysis = FlopCountAnalysis(model, torch.randn(1, 3, 224, 224))
analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
with torch.no_grad():
    print(analysis.total())
"""


def timed(stmt: str, globals_: dict, min_time: float):
    """A torch.utils.benchmark Measurement of ``stmt`` (blocked_autorange, at least ``min_time`` seconds)."""
    from archbench.measure.latency import benchmark_timer

    return benchmark_timer()(stmt=stmt, globals=globals_).blocked_autorange(min_run_time=min_time)


def line(label: str, measurement, note: str = "") -> str:
    return (f"{label:<44} median {measurement.median:7.3f} s  IQR {measurement.iqr:6.3f} s  "
            f"({len(measurement.times)} runs){'  ' + note if note else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50", help="a torchvision model name")
    parser.add_argument("--min-time", type=float, default=20.0, help="seconds of timed runs per case")
    options = parser.parse_args()
    name, min_time = options.model, options.min_time

    import warnings

    import torch

    warnings.filterwarnings("ignore", category=FutureWarning)  # fvcore's import scripts a function (torch.jit.script)
    from fvcore.nn import FlopCountAnalysis

    from archbench.measure.flops import count_flops
    from archbench.models import build_model

    root = Path(__file__).resolve().parents[1]
    archbench = [sys.executable, "-m", "archbench", "flops", name, "--format", "json"]
    bare = [sys.executable, "-c", BARE_FVCORE.format(name=name)]
    run = lambda command: subprocess.run(command, check=True, capture_output=True, cwd=root)  # noqa: E731
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; model {name}")
    print("end to end (fresh process per run):")
    print(line(f"  archbench flops {name}", timed("run(archbench)", {"run": run, "archbench": archbench}, min_time)))
    print(line("  bare fvcore script", timed("run(bare)", {"run": run, "bare": bare}, min_time)))

    cpu, meta = build_model(name), build_model(name, device="meta")
    args, _ = cpu.example_inputs()

    def bare_fvcore():
        analysis = FlopCountAnalysis(cpu.module, args)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        with torch.no_grad():
            return analysis.total()

    print("in process (counting call only, model already built):")
    cases = [
        ("  bare FlopCountAnalysis(...).total()", "bare_fvcore()", bare_fvcore()),
        ("  count_flops, fvcore engine, cpu", "count_flops(cpu, engine='fvcore')",
         count_flops(cpu, engine="fvcore").macs),
        ("  count_flops, dispatch engine, cpu", "count_flops(cpu, engine='dispatch')",
         count_flops(cpu, engine="dispatch").macs),
        ("  count_flops, dispatch engine, meta", "count_flops(meta)", count_flops(meta).macs),
    ]
    scope = {"bare_fvcore": bare_fvcore, "count_flops": count_flops, "cpu": cpu, "meta": meta}
    for label, stmt, figure in cases:
        print(line(label, timed(stmt, scope, min_time), f"-> {figure:,.0f}"))


if __name__ == "__main__":
    main()
