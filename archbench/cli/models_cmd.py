"""`archbench list` and `archbench params`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    BatchOpt, FormatOpt, InputOpt, ModelArg, OutOpt, SeqOpt, check_output_options, finish, handle_errors, parse_input,
)


@app.command("list")
@handle_errors
def list_command(
    pattern: Annotated[Optional[str], typer.Argument(help="Glob (resnet*, *bert*) or substring to filter names.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """List the registry: name, family, source and default input."""
    import json

    from rich.console import Console
    from rich.table import Table

    from archbench.models import list_models
    from archbench.report.render import check_format

    check_format(fmt)
    entries = list_models(pattern)
    rows = [
        {"name": e.name, "family": e.family, "source": e.source,
         "default_input": e.default_input(e.resolve_options({})).describe(), "description": e.description}
        for e in entries
    ]
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt in ("csv", "markdown"):
        import pandas as pd

        frame = pd.DataFrame(rows, columns=["name", "family", "source", "default_input", "description"])
        typer.echo(frame.to_csv(index=False) if fmt == "csv" else frame.to_markdown(index=False))
    else:
        table = Table(title=f"{len(rows)} models", header_style="bold")
        for column in ("name", "family", "source", "default_input", "description"):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row.values())
        Console().print(table)
    if not rows:
        typer.echo(f"no model matches {pattern!r}", err=True)


@app.command("params")
@handle_errors
def params_command(
    model: ModelArg,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Also list modules down to this depth.")] = None,
    vs: Annotated[Optional[str], typer.Option("--vs", help="'fcn' for dense equivalents, or a second model.")] = None,
    batch: BatchOpt = 1,
    seq: SeqOpt = None,
    input: InputOpt = None,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Count parameters: total, trainable, frozen, buffers; per module; against a dense net or another model.

    Models are built on the meta device, so nothing is allocated (gpt3-175b answers in seconds).
    """
    from archbench.errors import UserError
    from archbench.measure.params import dense_equivalent_records, param_records
    from archbench.models import build_model

    check_output_options(fmt, out)
    if depth is not None and depth < 1:
        raise UserError(f"--depth must be a positive integer, got {depth}")
    shape = parse_input(input)
    built = build_model(model, device="meta", batch=batch, input_shape=shape, seq=seq)
    if vs == "fcn":
        records = dense_equivalent_records(built)
        title = f"{built.spec}: parameters against the dense (fully connected) equivalent of each layer"
    else:
        records = param_records(built, depth)
        title = f"{built.spec}: parameters"
        if vs:
            other = build_model(vs, device="meta", batch=batch)
            records += param_records(other, depth)
            title = f"{built.spec} vs {other.spec}: parameters"
    finish(records, fmt, out, title, device="meta")
