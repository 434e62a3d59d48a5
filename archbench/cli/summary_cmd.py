"""`archbench summary`: one tree of a model's modules with their output shapes, parameters, MACs and share."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import (
    BatchOpt, FormatOpt, HeadOpt, InputOpt, ModelArg, SeqOpt, handle_errors, parse_input, real_stdout, runs_model_code,
)


@app.command("summary")
@handle_errors
@runs_model_code
def summary_command(
    model: ModelArg,
    depth: Annotated[Optional[int], typer.Option("--depth", help="Rows down to this module depth (0: the model only).")]
    = 3,
    seq: SeqOpt = None,
    input: InputOpt = None,
    batch: BatchOpt = None,
    head: HeadOpt = False,
    fmt: FormatOpt = "table",
) -> None:
    """One tree of the model: per module its type, output shape, parameters, MACs, other FLOPs and share of the MACs.

    Repeated blocks fold ("12 × GPT2Block", the group's sum; the rows under it are its first block's).
    The first row is the model's totals: the same figures as `archbench params` and `archbench flops`.
    """
    from archbench.errors import UserError
    from archbench.measure.run import Settings, counting_device, preflight
    from archbench.measure.summary import summarize
    from archbench.models.subject import Recipe
    from archbench.report.render import check_format

    check_format(fmt)
    if depth is not None and depth < 0:
        raise UserError(f"--depth must be 0 or more, got {depth}")
    recipe = Recipe(model, batch, seq, parse_input(input), head=head)
    settings = Settings(device="meta")
    meta = preflight(recipe, ["flops"], settings)
    where = counting_device(meta, settings)
    tree = summarize(meta if where == "meta" else recipe.build(where, meta), depth)
    with real_stdout():
        if fmt == "json":
            typer.echo(tree.to_json(), nl=False)
        elif fmt == "table":
            typer.echo(str(tree))
        else:
            frame = tree.to_dataframe()
            typer.echo(frame.to_csv(index=False) if fmt == "csv" else frame.to_markdown(index=False))
    for warning in tree.warnings:
        typer.echo(f"warning: {warning}", err=True)
