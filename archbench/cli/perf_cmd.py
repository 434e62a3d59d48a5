"""`archbench latency` and `archbench memory`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    BatchOpt, CheckpointingOpt, DeviceOpt, DtypeOpt, FormatOpt, HeadOpt, InputOpt, OptimizerOpt, OutOpt, PhaseOpt,
    PrecisionOpt, SeqOpt, MODEL_HELP, check_output_options, check_threads, finish, handle_errors, model_progress,
    parse_input, runs_model_code,
)

ModelsArg = Annotated[list[str], typer.Argument(help=f"One or more models: {MODEL_HELP}")]


@app.command("latency")
@handle_errors
@runs_model_code
def latency_command(
    models: ModelsArg,
    device: DeviceOpt = "cpu",
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    input: InputOpt = None,
    threads: Annotated[Optional[int], typer.Option("--threads", help="CPU threads (default: torch's).")] = None,
    dtype: DtypeOpt = "float32",
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed calls per model.")] = 1.0,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile first; compile time reported apart.")] = False,
    timeout_s: Annotated[float, typer.Option(
        "--timeout-s", help="Seconds allowed to time one model; beyond, it is an error row.")] = 600.0,
    phase: PhaseOpt = "prefill",
    head: HeadOpt = False,
    optimizer: OptimizerOpt = "adamw",
    precision: PrecisionOpt = "fp32",
    checkpointing: CheckpointingOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Forward latency (median, IQR, raw samples) with torch.utils.benchmark, throughput, and FLOP/s against the peak.

    The peak is the FLOP/s of a large matmul at the same dtype, device and threads, measured once per run (env.peak_flops_s).
    """
    import torch
    from rich.console import Console

    from archbench.limits import positive_finite
    from archbench.measure.peak import matmul_size, measure_peak_flops
    from archbench.measure.run import Settings, measure

    check_output_options(fmt, out)
    check_threads(threads)
    positive_finite("--min-time", min_time)
    positive_finite("--timeout-s", timeout_s)
    settings = Settings(device=device, dtype=dtype, threads=threads, min_time=min_time, compile=compile,
                        timeout_s=timeout_s)
    training = dict(optimizer=optimizer, precision=precision, checkpointing=checkpointing)
    recipes = _recipes(models, batch, seq, input, dtype, phase, head, ["latency"], settings, training)
    if threads:
        torch.set_num_threads(threads)
    threads = torch.get_num_threads()
    console = Console(stderr=True)  # progress line on stderr; the document goes to stdout
    with console.status(f"timing a {matmul_size(device)}² matmul for the peak FLOP/s"):
        peak = measure_peak_flops(device, dtype, threads)
    records = []
    try:
        for number, (recipe, meta) in enumerate(recipes, 1):
            with model_progress(number, len(recipes), f"timing {recipe.spec}"
                                + (" (compiling first)" if compile else "")):
                records += measure(recipe, ["latency"], settings, meta=meta)
    except KeyboardInterrupt:
        interrupted = True
    else:
        interrupted = False
    n = matmul_size(device)
    title = (f"{'train step' if phase == 'train' else 'forward'} latency on {device} ({dtype}, {threads} thread{'s' if threads > 1 else ''}, batch {batch or 1}; "
             f"matmul peak {peak / 1e9:.1f} GFLOP/s)")
    finish(records, fmt, out, title, device=device, dtype=dtype, threads=threads, peak_flops_s=peak,
           peak_measured_with=f"torch.mm of two {n}x{n} {dtype} matrices (2*n^3 FLOP per call), fastest sample")
    _exit_if_interrupted(interrupted)


@app.command("memory")
@handle_errors
@runs_model_code
def memory_command(
    models: ModelsArg,
    device: DeviceOpt = "cpu",
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    input: InputOpt = None,
    dtype: DtypeOpt = "float32",
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds allowed per model (build + 2 forwards).")] = 600.0,
    phase: PhaseOpt = "prefill",
    head: HeadOpt = False,
    optimizer: OptimizerOpt = "adamw",
    precision: PrecisionOpt = "fp32",
    checkpointing: CheckpointingOpt = False,
    shard: Annotated[Optional[str], typer.Option(
        "--shard", help="--phase train on paper: zero1, zero2, zero3 or fsdp over --devices.")] = None,
    devices: Annotated[int, typer.Option("--devices", help="--shard: data-parallel devices.")] = 1,
    hardware: Annotated[Optional[str], typer.Option(
        "--hardware", help="--phase train: whether the step fits this machine (h100, a100, or a name of "
                           "`archbench hardware`) and its largest batch.")] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Peak memory of one forward pass (a fresh process per model), weights bytes, attention score-matrix bytes.

    CPU: peak resident set over the loaded model and inputs; CUDA: max_memory_allocated.
    With --phase decode: one new token after a KV cache of --seq tokens, next to the cache's bytes.
    With --phase train: a whole optimizer step, next to its predicted weights, gradients, optimizer states and
    activations (counted on the meta device); --shard/--devices divide them as ZeRO or FSDP does, --hardware says
    whether the step fits a machine and the largest batch that does.
    """
    from archbench.errors import UserError
    from archbench.limits import positive_finite
    from archbench.measure.run import Settings, measure

    check_output_options(fmt, out)
    positive_finite("--timeout", timeout)
    settings = Settings(device=device, dtype=dtype, timeout_s=timeout)
    training = dict(optimizer=optimizer, precision=precision, checkpointing=checkpointing)
    plan = None
    if shard or hardware or devices != 1:
        from archbench.measure.sharding import ShardPlan

        if phase != "train":
            raise UserError("--shard, --devices and --hardware apply to --phase train")
        plan = ShardPlan.parse(shard, devices, hardware)
    recipes = _recipes(models, batch, seq, input, dtype, phase, head, ["memory"], settings, training)
    records = []
    try:
        for number, (recipe, meta) in enumerate(recipes, 1):
            with model_progress(number, len(recipes), f"measuring {recipe.spec} in a fresh process"):
                records += measure(recipe, ["memory"], settings, meta=meta)
            if plan is not None:
                from archbench.measure.sharding import shard_records

                records += shard_records(meta, plan)
    except KeyboardInterrupt:
        interrupted = True
    else:
        interrupted = False
    what = {"decode": ", decode", "train": f", train step: {optimizer}, {precision}"
            + (", checkpointing" if checkpointing else "")}.get(phase, "")
    title = f"{'step' if phase == 'train' else 'forward'} peak memory on {device} ({dtype}, batch {batch or 1}{what})"
    finish(records, fmt, out, title, device=device, dtype=dtype)
    _exit_if_interrupted(interrupted)


def _exit_if_interrupted(interrupted: bool) -> None:
    """After Ctrl-C the models finished so far have been rendered; say so and exit 130."""
    if interrupted:
        typer.echo("interrupted: the models above were measured, the rest were not", err=True)
        raise typer.Exit(130)


def _recipes(models, batch, seq, input, dtype, phase, head, groups, settings, training=None) -> list:
    """(recipe, its meta-device build) of every model, each checked (built on meta, inputs sized) before anything
    is measured: exit 2 on a bad one."""
    from archbench.measure.run import preflight
    from archbench.models.subject import Recipe

    shape = parse_input(input)
    recipes = [Recipe(spec, batch, seq, shape, dtype, phase=phase, head=head, **(training or {})) for spec in models]
    return [(recipe, preflight(recipe, groups, settings)) for recipe in recipes]
