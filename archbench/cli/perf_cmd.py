"""`archbench latency` and `archbench memory`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    BatchOpt, DeviceOpt, DtypeOpt, FormatOpt, InputOpt, OutOpt, SeqOpt, check_output_options, finish, handle_errors,
    parse_input,
)

ModelsArg = Annotated[list[str], typer.Argument(help="One or more registry models: NAME or NAME:key=value,...")]


@app.command("latency")
@handle_errors
def latency_command(
    models: ModelsArg,
    device: DeviceOpt = "cpu",
    batch: BatchOpt = 1,
    seq: SeqOpt = None,
    input: InputOpt = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads (default: torch's).")] = None,
    dtype: DtypeOpt = "float32",
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed calls per model.")] = 1.0,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile first; compile time reported apart.")] = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Forward latency (median, IQR, raw samples) with torch.utils.benchmark, throughput, and FLOP/s against the peak.

    The peak is the FLOP/s of a large matmul at the same dtype, device and threads, measured once per run (env.peak_flops_s).
    """
    import torch
    from rich.console import Console

    from archbench.errors import UserError
    from archbench.measure.latency import count_macs, measure_latency
    from archbench.measure.peak import matmul_size, measure_peak_flops
    from archbench.models import check_device

    check_output_options(fmt, out)
    if threads is not None and threads < 1:
        raise UserError(f"--threads must be a positive integer, got {threads}")
    if min_time <= 0:
        raise UserError(f"--min-time must be positive, got {min_time:g}")
    check_device(device)
    shape = parse_input(input)
    metas = _validate(models, batch, seq, shape, dtype)
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    console = Console(stderr=True)  # progress line on stderr; the document goes to stdout
    with console.status(f"timing a {matmul_size(device)}² matmul for the peak FLOP/s"):
        peak = measure_peak_flops(device, dtype, threads)
    records = []
    try:
        for meta in metas:
            built, failure = _build(meta, device, batch, seq, shape, dtype)
            if failure:
                records.append(failure)
                continue
            macs, mac_warnings = count_macs(meta)  # counted on the meta device: no second forward
            with console.status(f"timing {meta.spec}" + (" (compiling first)" if compile else "")):
                measured = measure_latency(built, threads=threads, min_time=min_time, compile=compile, macs=macs,
                                           peak_flops=peak)
            by_metric = {r.metric: r for r in measured}
            by_metric.get("achieved_flops_s", by_metric["latency_s"]).warnings.extend(mac_warnings)
            records += measured
            del built  # free this model's memory before the next one is built
    except KeyboardInterrupt:
        interrupted = True
    else:
        interrupted = False
    n = matmul_size(device)
    title = (f"forward latency on {device} ({dtype}, {threads} thread{'s' if threads > 1 else ''}, batch {batch}; "
             f"matmul peak {peak / 1e9:.1f} GFLOP/s)")
    finish(records, fmt, out, title, device=device, dtype=dtype, threads=threads, peak_flops_s=peak,
           peak_measured_with=f"torch.mm of two {n}x{n} {dtype} matrices (2*n^3 FLOP per call), fastest sample")
    _exit_if_interrupted(interrupted)


@app.command("memory")
@handle_errors
def memory_command(
    models: ModelsArg,
    device: DeviceOpt = "cpu",
    batch: BatchOpt = 1,
    seq: SeqOpt = None,
    input: InputOpt = None,
    dtype: DtypeOpt = "float32",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds allowed per model (build + 2 forwards).")] = 600.0,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Peak memory of one forward pass (a fresh process per model), weights bytes, attention score-matrix bytes.

    CPU: peak resident set over the loaded model and inputs; CUDA: max_memory_allocated.
    """
    from rich.console import Console

    from archbench.errors import UserError
    from archbench.measure.memory import measure_memory
    from archbench.models import check_device

    check_output_options(fmt, out)
    if timeout <= 0:
        raise UserError(f"--timeout must be positive, got {timeout:g}")
    check_device(device)
    shape = parse_input(input)
    metas = _validate(models, batch, seq, shape, dtype)
    records = []
    try:
        for meta in metas:
            with Console(stderr=True).status(f"measuring {meta.spec} in a fresh process"):
                records += measure_memory(meta.spec, batch=batch, seq=seq, input_shape=shape, device=device,
                                          dtype=dtype, timeout_s=timeout)
    except KeyboardInterrupt:
        interrupted = True
    else:
        interrupted = False
    title = f"forward peak memory on {device} ({dtype}, batch {batch})"
    finish(records, fmt, out, title, device=device, dtype=dtype)
    _exit_if_interrupted(interrupted)


def _exit_if_interrupted(interrupted: bool) -> None:
    """After Ctrl-C the models finished so far have been rendered; say so and exit 130."""
    if interrupted:
        typer.echo("interrupted: the models above were measured, the rest were not", err=True)
        raise typer.Exit(130)


def _validate(models: list[str], batch: int, seq, shape, dtype: str) -> list:
    """Every model built on the meta device first, so a bad spec fails (exit 2) before anything is measured."""
    from archbench.models import build_model

    return [build_model(spec, device="meta", batch=batch, seq=seq, input_shape=shape, dtype=dtype) for spec in models]


def _build(meta, device: str, batch: int, seq, shape, dtype: str):
    """(built model, None), or (None, a ``latency_s`` record with the error) when it does not fit or fails to build."""
    from archbench.measure.memory import check_fits
    from archbench.models import build_model
    from archbench.results.record import Record

    too_big = check_fits(meta, device)
    if too_big:
        return None, Record(meta.spec, "latency_s", None, "s", dict(meta.point), error=too_big)
    try:
        return build_model(meta.spec, device=device, batch=batch, seq=seq, input_shape=shape, dtype=dtype), None
    except RuntimeError as exc:  # out of memory while allocating the weights
        first_line = (str(exc).strip().splitlines() or [""])[0]
        return None, Record(meta.spec, "latency_s", None, "s", dict(meta.point), error=f"build failed: {first_line}")
