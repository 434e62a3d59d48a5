"""`archbench list` and `archbench params`."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    BatchOpt, FormatOpt, HeadOpt, InputOpt, ModelArg, OutOpt, SeqOpt, check_output_options, finish, handle_errors, parse_input,
    runs_model_code,
)


@app.command("list")
@handle_errors
def list_command(
    pattern: Annotated[Optional[str], typer.Argument(
        help="Glob (resnet*, *bert*) or substring to filter names; 'hf:' or 'hf:llama*' lists Hugging Face model "
             "types, 'timm:convnext*' timm models.")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """List the models: the registry (name, family, source, default input), or hf: and timm: names."""
    import json

    from rich.console import Console
    from rich.table import Table

    from archbench.models.listing import COLUMNS, listing
    from archbench.report.render import check_format

    check_format(fmt)
    rows = listing(pattern)
    if fmt == "json":
        typer.echo(json.dumps(rows, indent=2))
    elif fmt in ("csv", "markdown"):
        import pandas as pd

        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        typer.echo(frame.to_csv(index=False) if fmt == "csv" else frame.to_markdown(index=False))
    else:
        table = Table(title=f"{len(rows)} models", header_style="bold")
        for column in COLUMNS:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row.values())
        Console(emoji=False).print(table)
    if not rows:
        typer.echo(f"no model matches {pattern!r}", err=True)
    elif not pattern:
        typer.echo("also: hf:MODEL_TYPE for any transformers architecture (archbench list hf:), timm:NAME "
                   "(archbench list 'timm:*'), and your own FILE.py:ATTR or MODULE:ATTR", err=True)


@app.command("params")
@handle_errors
@runs_model_code
def params_command(
    model: ModelArg,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Also list modules down to this depth.")] = None,
    vs: Annotated[Optional[str], typer.Option("--vs", help="'fcn' for dense equivalents, or a second model.")] = None,
    batch: BatchOpt = None,
    seq: SeqOpt = None,
    input: InputOpt = None,
    head: HeadOpt = False,
    fmt: FormatOpt = "table",
    out: OutOpt = None,
) -> None:
    """Count parameters: total, trainable, frozen, buffers; per module; against a dense net or another model.

    Models are built on the meta device, so nothing is allocated (gpt3-175b answers in seconds).
    """
    from archbench.errors import UserError
    from archbench.measure.params import dense_equivalent_records
    from archbench.measure.run import Settings, measure, preflight
    from archbench.models.subject import Recipe

    check_output_options(fmt, out)
    if depth is not None and depth < 1:
        raise UserError(f"--depth must be a positive integer, got {depth}")
    recipe = Recipe(model, batch, seq, parse_input(input), head=head)
    settings = Settings(device="meta", depth=depth)
    built = preflight(recipe, ["params"], settings)
    if vs == "fcn":
        records = dense_equivalent_records(built)
        title = f"{built.label}: parameters against the dense (fully connected) equivalent of each layer"
    else:
        records = measure(recipe, ["params"], settings, failures="raise", meta=built)
        title = f"{built.label}: parameters"
        if vs:
            other = Recipe(vs, batch, head=head)
            records += measure(other, ["params"], settings, failures="raise", meta=preflight(other, ["params"], settings))
            title = f"{built.label} vs {other.spec}: parameters"
    finish(records, fmt, out, title, device="meta")
