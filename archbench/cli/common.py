"""Options shared by the measuring commands, error handling, and the common finish (env + render)."""

from __future__ import annotations

import functools
import sys
from typing import Annotated, Optional

import typer

from archbench.errors import MachineError, UserError

ModelArg = Annotated[str, typer.Argument(help="Registry model: NAME or NAME:key=value,... (see `archbench list`).")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, json, csv or markdown.")]
OutOpt = Annotated[Optional[str], typer.Option("--out", "-o", help="Also write to FILE (.json, .csv, .md, .txt).")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Batch size.")]
SeqOpt = Annotated[Optional[int], typer.Option("--seq", help="Sequence length T (sequence models).")]
InputOpt = Annotated[Optional[str], typer.Option("--input", help="Input shape without batch, e.g. 3x299x299.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32, bfloat16 or float16.")]


def handle_errors(command):
    """A UserError: one line on stderr, exit 2; a MachineError (disk full): one line, exit 1; Ctrl-C: exit 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except UserError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from None
        except MachineError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper


def parse_input(text: str | None) -> tuple[int, ...] | None:
    """The ``--input`` shape, or None."""
    from archbench.spec import parse_shape

    return parse_shape(text) if text else None


def check_output_options(fmt: str, out: str | None) -> None:
    """Validate --format and --out before any measuring starts."""
    from archbench.report.render import check_format, format_for_path
    from archbench.results.atomic import check_writable

    check_format(fmt)
    if out:
        format_for_path(out)
        check_writable(out)


def new_document(device: str = "cpu", **env_extra):
    """An empty run document with the environment fingerprint and the command line."""
    from archbench.results.env import collect_env
    from archbench.results.record import RunDocument

    return RunDocument(env=collect_env(device, **env_extra), meta={"command": "archbench " + " ".join(sys.argv[1:])})


def finish(records, fmt: str, out: str | None, title: str, device: str = "cpu", **env_extra) -> None:
    """Wrap records in a run document and render it."""
    from archbench.report.render import emit

    document = new_document(device, **env_extra)
    document.records.extend(records)
    emit(document, fmt, out, title)
