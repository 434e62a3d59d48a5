"""The Typer application object; command modules register on it."""

import typer

app = typer.Typer(
    name="archbench",
    help="Measure neural-network architectures: parameters, MACs/FLOPs, latency, memory, scaling, claims.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
