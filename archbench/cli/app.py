"""The Typer application object; command modules register on it."""

import os
from typing import Annotated

import typer

app = typer.Typer(
    name="archbench",
    help="Measure neural-network architectures: parameters, MACs/FLOPs, latency, memory, scaling, claims.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", envvar="ARCHBENCH_DEBUG",
        help="Show an internal error's full traceback instead of writing it to a log file.")] = False,
) -> None:
    """Options for every command."""
    if debug:
        os.environ["ARCHBENCH_DEBUG"] = "1"  # read by cli.common.handle_errors, inherited by worker processes
