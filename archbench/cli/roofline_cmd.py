"""`archbench hardware` and `archbench roofline`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    AttentionCountOpt, BatchOpt, DtypeOpt, FormatOpt, HeadOpt, InputOpt, ModelArg, OutOpt, PhaseOpt, SeqOpt,
    check_output_options, check_threads, finish, handle_errors, parse_input,
)

MachinesOpt = Annotated[Optional[str], typer.Option(
    "--machines", help="A YAML file of more machines: machines: {NAME: {bandwidth_gbs, peak_tflops: {DTYPE: TF}}}.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="CPU threads (default: torch's).")]


@app.command("hardware")
@handle_errors
def hardware_command(machines_file: MachinesOpt = None, threads: ThreadsOpt = None, fmt: FormatOpt = "table",
                     out: OutOpt = None) -> None:
    """The machines a roofline is drawn against: dense peak TFLOP/s per dtype, memory bandwidth and ridge point.

    Figures are the vendors' datasheets' dense ones (never "with sparsity"); this-cpu is measured now (float32 matmul peak, STREAM-like triad bandwidth).
    """
    from archbench.measure.hardware import DTYPES, machines

    check_output_options(fmt, out)
    check_threads(threads)
    rows = []
    for machine in machines("all", machines_file, threads):
        row = {"machine": machine.name, "bandwidth_gbs": round(machine.bandwidth / 1e9, 1)}
        row.update({d if fmt == "table" else f"{d}_tflops": round(machine.peaks[d] / 1e12, 4) if d in machine.peaks else None for d in DTYPES})
        dense = "bfloat16" if "bfloat16" in machine.peaks else next(iter(machine.peaks))
        row["ridge"] = f"{machine.ridge(dense):,.1f} ({dense})"
        row["source"] = machine.source
        rows.append(row)
    _emit_table(rows, fmt, out, "machines: dense peaks (TFLOP/s; int8 TOP/s), bandwidth (GB/s), ridge (FLOP/byte)")


def _emit_table(rows: list[dict], fmt: str, out: str | None, title: str) -> None:
    """A plain table of rows (not records): rich on a terminal, else JSON, CSV or markdown."""
    import csv
    import io
    import json

    from archbench.results.atomic import write_atomic

    columns = list(dict.fromkeys(k for row in rows for k in row))
    if fmt == "json":
        text = json.dumps({"title": title, "machines": rows}, indent=2) + "\n"
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    else:
        cell = lambda v: "-" if v is None else f"{v:,}" if isinstance(v, (int, float)) else str(v)  # noqa: E731
        lines = [f"**{title}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
        text = "\n".join(lines) + "\n"
        if fmt == "table":
            from rich.console import Console
            from rich.table import Table

            table = Table(title=title, caption="sources: `archbench hardware --format markdown`")
            columns = [c for c in columns if c != "source"]
            for c in columns:
                table.add_column(c, justify="left" if c in ("machine", "source") else "right")
            for row in rows:
                table.add_row(*(cell(row.get(c)) for c in columns))
            Console().print(table)
    if fmt != "table":
        typer.echo(text, nl=False)
    if out:
        write_atomic(out, text.encode())


@app.command("roofline")
@handle_errors
def roofline_command(
    model: ModelArg,
    hardware: Annotated[str, typer.Option(
        "--hardware", help="A machine of `archbench hardware`, a comma-separated list, or all.")] = "all",
    machines_file: MachinesOpt = None,
    dtype: DtypeOpt = "float32",
    seq: SeqOpt = None,
    input: InputOpt = None,
    batch: BatchOpt = None,
    phase: PhaseOpt = "prefill",
    head: HeadOpt = False,
    attention_count: AttentionCountOpt = "full",
    by: Annotated[Optional[str], typer.Option("--by", help="Also one row per 'module' or 'operator'.")] = None,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Module depth of --by module (implies it).")] = None,
    plot: Annotated[Optional[str], typer.Option(
        "--plot", help="Draw the roofline of the first machine to FILE (.png or .svg).")] = None,
    measure_it: Annotated[bool, typer.Option(
        "--measure", help="Also time the model here (the latency command's path) and report measured / predicted "
                          "against this-cpu.")] = False,
    threads: ThreadsOpt = None,
    min_time: Annotated[float, typer.Option("--min-time", help="Seconds of timed calls (--measure).")] = 1.0,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Predicted time on each machine from every op's FLOPs and bytes: max(FLOPs / peak, bytes / bandwidth), summed.

    FLOPs are 2 x MACs + other FLOPs; bytes follow bytes_moved's convention (each op reads its inputs and writes its outputs once; fused attention never writes its scores). An op is memory-bound where its FLOPs per byte fall below the machine's ridge point (peak / bandwidth). The prediction is an ideal (datasheet peaks, no cache reuse, no launch overhead); --measure says how far this machine is from it.
    """
    from archbench.limits import positive_finite
    from archbench.measure.flops import check_count_options
    from archbench.measure.run import Settings, measure, preflight
    from archbench.models.subject import Recipe
    from archbench.report.plot import check_plot_path, plot_roofline

    check_output_options(fmt, out)
    check_threads(threads)
    positive_finite("--min-time", min_time)
    by = check_count_options(attention_count=attention_count, by=by, depth=depth)
    if plot:
        check_plot_path(plot)
    if measure_it and "this-cpu" not in hardware.split(",") and hardware != "all":
        hardware += ",this-cpu"
    settings = Settings(device="cpu", dtype=dtype, threads=threads, min_time=min_time, peak=False,
                        attention_count=attention_count, by=by, depth=depth, hardware=hardware,
                        machines_file=machines_file)
    recipe = Recipe(model, batch, seq, parse_input(input), dtype=dtype, phase=phase, head=head)
    groups = ["latency", "roofline"] if measure_it else ["roofline"]
    meta = preflight(recipe, groups, settings)
    records = measure(recipe, groups, settings, failures="raise", meta=meta)
    if plot:
        plot_roofline(records, plot, title=f"{recipe.spec} ({phase}, {dtype})")
        typer.echo(f"roofline plot: {plot}", err=True)
    finish(records, fmt, out, f"{recipe.spec}: roofline ({phase}, {dtype}; FLOPs = 2 x MACs + other FLOPs)",
           device="cpu", dtype=dtype)
