"""`archbench scaling`: sweep sequence length (or batch, or image resolution) and fit how costs grow."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    AttentionCountOpt, BatchOpt, DeviceOpt, DtypeOpt, FormatOpt, HeadOpt, OutOpt, PhaseOpt, check_output_options,
    check_threads, handle_errors,
)

RangeHelp = "512..10000 (geometric, --points values), 512..10000:512 (step) or 512,1024,4096."


@app.command("scaling")
@handle_errors
def scaling_command(
    model: Annotated[list[str], typer.Option("--model", "-m", help="Registry model (repeat to compare).")],
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
    from archbench.measure.run import Settings, preflight
    from archbench.measure.scaling import METRIC_GROUPS, plan_points
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
    unknown = [m for m in metrics if m not in METRIC_GROUPS]
    if unknown or not metrics:
        raise UserError(f"unknown --metric {metric!r}; expected a comma-separated subset of {', '.join(METRIC_GROUPS)}")
    template = Recipe("", batch, dtype=dtype, phase=phase, head=head)
    settings = Settings(device=device, dtype=dtype, threads=threads, min_time=min_time, timeout_s=timeout,
                        attention_count=attention_count)
    plan = plan_points(model, values, axis, template=template)  # every spec checked before anything is measured
    for point in plan[0]:
        preflight(point.recipe, metrics, settings)  # the smallest point must fit where it runs
    for point in plan[-1]:  # a larger point that cannot fit is its own error row
        preflight(point.recipe, [m for m in metrics if m not in ("latency", "memory")] or ["flops"], settings)
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
    """Print the run: the two sweep tables for ``table``, else the document in ``fmt``."""
    from archbench.report.render import emit

    if fmt != "table":
        emit(document, fmt, None, title)
        return
    _print_tables(document.records, axis, title)


def _print_tables(records, axis: str, title: str) -> None:
    """Per point: each fitted metric with its local exponent; then exponents (R²) and crossovers."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from archbench.measure.scaling import FITTED_METRICS, axis_value
    from archbench.report.render import all_warnings, format_value

    console = Console(emoji=False)
    if not console.is_terminal:
        console.width = max(console.width, 220)
    models = list(dict.fromkeys(r.model for r in records if " vs " not in r.model))
    point_key = "input" if axis == "resolution" else axis
    rows: dict[tuple[str, int], dict] = {}
    for r in records:
        base = r.metric.removesuffix("_local_exponent")
        if base not in FITTED_METRICS or point_key not in r.point:
            continue
        row = rows.setdefault((r.model, axis_value(r.point, axis)), {"point": r.point, "errors": []})
        row[r.metric] = r.value
        if r.error:
            row["errors"].append(f"{r.metric}: {r.error}")
    shown = [m for m in FITTED_METRICS if any(m in row for row in rows.values())]
    units = {r.metric: r.unit for r in records}
    table = Table(title=title, header_style="bold")
    point_columns = list(next(iter(rows.values()))["point"]) if rows else []
    for column in ["model", *point_columns]:
        table.add_column(column)
    for m in shown:
        table.add_column(escape(f"{m} [{units[m]}]"), justify="right", no_wrap=True)
        table.add_column("local k", justify="right", no_wrap=True)
    any_error = any(row["errors"] for row in rows.values())
    if any_error:
        table.add_column("error", overflow="fold")
    for model, value in sorted(rows, key=lambda key: (models.index(key[0]), key[1])):
        row = rows[(model, value)]
        cells = [model, *(format_value(row["point"].get(c)) for c in point_columns)]
        for m in shown:
            cells += [format_value(row.get(m)), format_value(row.get(f"{m}_local_exponent"))]
        if any_error:
            cells.append("; ".join(row["errors"]))
        table.add_row(*map(escape, cells))
    console.print(table)

    summary = Table(title="fitted log-log exponents (y ∝ x^k)", header_style="bold")
    for column in ("model", "metric", "k", "R²", "range", "local k (first → last)"):
        summary.add_column(column, justify="right" if column in ("k", "R²") else "left")
    for r in records:
        if r.metric.endswith("_exponent") and not r.metric.endswith("_local_exponent"):
            of = r.details.get("of", r.metric.removesuffix("_exponent"))
            local = [x.value for x in records if x.model == r.model and x.metric == f"{of}_local_exponent"]
            span = f"{r.details['from']}..{r.details['to']} ({r.details['points']} points)" if r.error is None else r.error
            trend = f"{local[0]:.3g} → {local[-1]:.3g}" if local else "-"
            summary.add_row(escape(r.model), of, format_value(r.value), format_value(r.details.get("r2")), span, trend)
    crossings = Table(title="crossovers (interpolated in log-log space)", header_style="bold")
    for column in ("models", "metric", "crossover", "which is lower"):
        crossings.add_column(column, justify="right" if column == "crossover" else "left")
    for r in records:
        if r.metric.endswith("_crossover"):
            at = f"{r.value:,.0f} {r.unit}" if r.value is not None else "-" if r.error else "none in range"
            if r.error:
                lower = r.error
            elif r.value is None:
                lower = f"{r.details['lower_at_start']} throughout"
            else:
                lower = f"{r.details['lower_at_start']} below, {r.details['lower_at_end']} above"
            crossings.add_row(escape(r.model), r.details.get("of", r.metric.removesuffix("_crossover")), at, escape(lower))
    for extra in (summary, crossings):
        if extra.row_count:
            console.print(extra)
    for warning in all_warnings(records):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)
