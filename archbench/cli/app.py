"""The Typer application object; command modules register on it."""

import os
from typing import Annotated

import typer

app = typer.Typer(
    name="archbench",
    help="Measure neural-network architectures: parameters, MACs/FLOPs, latency, memory, scaling, claims.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

VERSIONED = ("archbench", "torch", "transformers", "timm", "fvcore")
"""The distributions `archbench --version` names: archbench and the libraries whose counts it relies on."""


def versions() -> str:
    """One line: archbench's version and those of the libraries it measures with, from the installed distributions'
    metadata (nothing is imported, so this is instant)."""
    from importlib import metadata

    import archbench

    found = {"archbench": archbench.__version__}
    for name in VERSIONED[1:]:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return " ".join(f"{name} {version}" if name == "archbench" else f"({name} {version})" for name, version
                    in found.items()).replace(") (", ", ")


def _show_version(value: bool) -> None:
    if value:
        typer.echo(versions())
        raise typer.Exit()


@app.callback()
def global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", envvar="ARCHBENCH_DEBUG",
        help="Show an internal error's full traceback instead of writing it to a log file.")] = False,
    version: Annotated[bool, typer.Option(
        "--version", callback=_show_version, is_eager=True,
        help="Print archbench's version and those of torch, transformers, timm and fvcore, and exit.")] = False,
) -> None:
    """Options for every command."""
    if debug:
        os.environ["ARCHBENCH_DEBUG"] = "1"  # read by cli.common.handle_errors, inherited by worker processes
