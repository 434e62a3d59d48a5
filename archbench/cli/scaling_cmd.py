"""`archbench scaling`: sweep sequence length (or batch, or image resolution) and fit how costs grow."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    AttentionCountOpt, BatchOpt, DeviceOpt, DtypeOpt, FormatOpt, HeadOpt, OutOpt, PhaseOpt, check_output_options,
    MODEL_HELP, check_threads, handle_errors, real_stdout, runs_model_code,
)

RangeHelp = "512..10000 (geometric, --points values), 512..10000:512 (step) or 512,1024,4096."


@app.command("scaling")
@handle_errors
@runs_model_code
def scaling_command(
    model: Annotated[list[str], typer.Option(
        "--model", "-m", help=f"A model to sweep (repeat to compare): {MODEL_HELP}")],
    seq: Annotated[Optional[str], typer.Option("--seq", help=f"Sequence lengths: {RangeHelp}")] = None,
    sweep: Annotated[str, typer.Option("--sweep", help="Axis to sweep: seq, batch or resolution (image side).")] = "seq",
    range_: Annotated[Optional[str], typer.Option("--range", help=f"Values of a batch or resolution sweep: {RangeHelp}")] = None,
    points: Annotated[int, typer.Option("--points", help="Number of geometric points of a LO..HI range.")] = 8,
    metric: Annotated[str, typer.Option("--metric", help="Comma-separated: flops, latency, memory.")] = "flops,latency",
    batch: BatchOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timing per latency point.")] = 1.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds before a memory point is stopped.")] = 300.0,
    threads: Annotated[Optional[int], typer.Option("--threads", help="Torch threads for latency (default: torch's).")] = None,
    phase: PhaseOpt = "prefill",
    attention_count: AttentionCountOpt = "full",
    head: HeadOpt = False,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Write a log-log plot (.png or .svg).")] = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Measure models over a range of sequence lengths: log-log exponents, local exponents, crossovers.

    FLOPs are counted on the meta device (seconds even at T=10000); latency is timed; memory is measured
    in a fresh subprocess per point.

    Each finished point is written to a .json --out at once; Ctrl-C stops and keeps them.

    Example: archbench scaling -m transformer:layers=1 -m lstm --seq 512..8192 --plot scaling.png
    """
    from archbench.errors import UserError
    from archbench.limits import positive_finite
    from archbench.measure.run import Settings, check_groups
    from archbench.measure.scaling import preflight_sweep
    from archbench.models.subject import Recipe
    from archbench.spec import parse_range

    check_output_options(fmt, out)
    if plot:
        from archbench.report.plot import check_plot_path

        check_plot_path(plot)
    axis, text = _axis_and_range(sweep, seq, range_)
    if axis == "batch" and batch is not None:
        raise UserError("--batch fixes the batch size; it cannot be combined with --sweep batch")
    positive_finite("--min-time", min_time)
    positive_finite("--timeout", timeout)
    check_threads(threads)
    values = parse_range(text, points)
    metrics = list(dict.fromkeys(m.strip() for m in metric.split(",") if m.strip()))
    check_groups(metrics, sweeps=True, what="--metric")
    template = Recipe("", batch, dtype=dtype, phase=phase, head=head)
    settings = Settings(device=device, dtype=dtype, threads=threads, min_time=min_time, timeout_s=timeout,
                        attention_count=attention_count)
    preflight_sweep(model, values, metrics, axis, template, settings)
    _run(model, values, metrics, axis, template, settings, plot, fmt, out)


def _axis_and_range(sweep: str, seq: str | None, range_: str | None) -> tuple[str, str]:
    """The swept axis and its range text, from --sweep, --seq and --range."""
    from archbench.errors import UserError
    from archbench.measure.scaling import AXES

    if sweep not in AXES:
        raise UserError(f"unknown --sweep {sweep!r}; expected one of {', '.join(AXES)}")
    if seq is not None and range_ is not None:
        raise UserError("give the values once: --seq RANGE, or --sweep AXIS --range RANGE")
    if seq is not None and sweep != "seq":
        raise UserError(f"--seq sweeps the sequence length; use --range with --sweep {sweep}")
    text = seq if seq is not None else range_
    if text is None:
        raise UserError("give the values to sweep: --seq RANGE (or --sweep batch|resolution --range RANGE)")
    return sweep, text


def _run(models, values, metrics, axis: str, template, settings, plot, fmt, out) -> None:
    """Sweep with a progress bar, journalling each finished point; --out is written when the sweep is done.

    After Ctrl-C the finished points are shown and kept in the journal, --out and --plot are left
    as they were, and the exit code is 130.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from archbench.cli.common import new_document
    from archbench.measure.scaling import run_sweep, sweep_summary
    from archbench.report.render import format_for_path, to_text
    from archbench.results.record import RunWriter

    device, dtype = settings.device, settings.dtype
    threads = {"threads": settings.threads} if settings.threads else {}  # the env's default is torch's count
    document = new_document(device, dtype=dtype, **threads)
    document.meta["sweep"] = {"values": values, "models": models, "metrics": metrics, "axis": axis,
                              "batch": template.batch, "phase": template.phase, "head": template.head,
                              "device": device, "dtype": dtype, "min_time": settings.min_time,
                              "timeout_s": settings.timeout_s, "threads": settings.threads,
                              "attention_count": settings.attention_count}
    writer = RunWriter(document, out, lambda run: to_text(run, format_for_path(out)))
    title = f"scaling over {axis} {values[0]}..{values[-1]} ({len(values)} points, {device}, {dtype})"
    interrupted = False
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("sweep", total=None)

        def progress(done: int, total: int, description: str) -> None:
            bar.update(task, completed=done, total=total, description=description)

        try:
            with writer:
                run_sweep(models, values, metrics, axis=axis, template=template, settings=settings, writer=writer,
                          progress=progress)
        except KeyboardInterrupt:
            interrupted = True
    if interrupted:
        finished = len(document.records)
        document.records.extend(sweep_summary(document.records, axis))  # shown, not journaled
        title += ", interrupted"
    else:
        writer.finish()
    with real_stdout():
        _render(document, axis, fmt, title)
    if plot and not interrupted and any(r.error is None for r in document.records):
        from archbench.report.plot import plot_sweep

        plot_sweep(document.records, plot, axis, title)
        typer.echo(f"plot written to {plot}", err=True)
    if interrupted:
        where = f"kept in {writer.journal_path}; {out} is unchanged" if out else "shown above"
        typer.echo(f"interrupted: {finished} finished records {where}", err=True)
        raise typer.Exit(130)


def _render(document, axis: str, fmt: str, title: str) -> None:
    """Print the run: the sweep's tables for ``table``, else the document in ``fmt``."""
    from archbench.report.render import emit
    from archbench.report.sweep import print_sweep

    if fmt != "table":
        emit(document, fmt, None, title)
        return
    print_sweep(document.records, axis, title)
