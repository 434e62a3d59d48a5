"""Options shared by the measuring commands, error handling, and the common finish (env + render)."""

from __future__ import annotations

import errno
import functools
import os
import sys
from typing import Annotated, Optional

import typer

from archbench.errors import MachineError, UserError
from archbench.limits import check_points, positive_finite, threads_warning  # noqa: F401  (the option validators)

ModelArg = Annotated[str, typer.Argument(help="Registry model: NAME or NAME:key=value,... (see `archbench list`).")]
FormatOpt = Annotated[str, typer.Option("--format", "-f", help="table, json, csv or markdown.")]
OutOpt = Annotated[Optional[str], typer.Option("--out", "-o", help="Also write to FILE (.json, .csv, .md, .txt).")]
BatchOpt = Annotated[Optional[int], typer.Option(
    "--batch", "-b", help="Batch size (default 1; a factory's example inputs keep their own unless given).")]
SeqOpt = Annotated[Optional[int], typer.Option("--seq", help="Sequence length T (sequence models).")]
InputOpt = Annotated[Optional[str], typer.Option("--input", help="Input shape without batch, e.g. 3x299x299.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32, bfloat16 or float16.")]
PhaseOpt = Annotated[str, typer.Option(
    "--phase", help="prefill: one forward over --seq tokens; decode: one new token after a KV cache of --seq tokens.")]
AttentionCountOpt = Annotated[str, typer.Option(
    "--attention-count", help="full: every query-key pair (what the math backend computes); causal: only the pairs "
                              "a causal or sliding-window mask keeps.")]
HeadOpt = Annotated[bool, typer.Option(
    "--head", help="Hugging Face models: build with the task head (LM head, classifier) instead of the bare backbone.")]


DEBUG_ENV = "ARCHBENCH_DEBUG"
"""Set (to anything but empty or 0) by ``archbench --debug``: an internal error shows its traceback."""


def handle_errors(command):
    """The command boundary: a UserError is one line and exit 2, a MachineError (disk full) one line and
    exit 1, Ctrl-C exit 130, and anything else one line and exit 1.

    An unexpected exception prints ``internal error: Type: message (traceback in PATH)``, its
    traceback written to a log file (see :func:`write_traceback`), or shown in full when
    debugging is on (``archbench --debug`` or ARCHBENCH_DEBUG=1).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return _machine_faults(command, args, kwargs)
        except UserError as exc:
            typer.echo(f"error: {_one_line(str(exc))}", err=True)
            raise typer.Exit(2) from None
        except MachineError as exc:
            typer.echo(f"error: {_one_line(str(exc))}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001  (the last line of defence: never a bare traceback)
            import traceback

            text = "".join(traceback.format_exception(exc))
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                typer.echo(text.rstrip(), err=True)
            else:
                where = write_traceback(text)
                typer.echo(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (traceback in {where})",
                           err=True)
            raise typer.Exit(1) from None

    return wrapper


MACHINE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG})
"""OSErrors that are the machine's state wherever they come from (a full disk, a failing one): MachineError."""


def _machine_faults(command, args, kwargs):
    """``command(*args, **kwargs)``, a full or failing disk (stdout on /dev/full too) raised as MachineError."""
    try:
        return command(*args, **kwargs)
    except OSError as exc:
        if exc.errno not in MACHINE_ERRNOS:
            raise
        _silence_stdout()
        where = f" {exc.filename}" if exc.filename else " the output"
        raise MachineError(f"cannot write{where}: {exc.strerror}") from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush of what could not be written fails no more."""
    try:
        sys.stdout.flush()
    except OSError:
        pass
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError):  # no real stdout (captured in tests)
        pass


def write_traceback(text: str) -> str:
    """Write an internal error's traceback to a new log file; its path.

    The file is ``internal-error-YYYYmmdd-HHMMSS-PID.log`` in ``$XDG_STATE_HOME/archbench/``
    (default ``~/.local/state/archbench/``), or in the temporary directory when that folder
    cannot be written.
    """
    import tempfile
    import time

    from archbench.results.atomic import write_atomic

    name = f"internal-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    for folder in (lambda: os.path.join(state, "archbench"), tempfile.gettempdir):
        try:  # the last resort must not raise: no temporary folder at all is FileNotFoundError
            path = os.path.join(folder(), name)
            write_atomic(path, f"archbench {' '.join(sys.argv[1:])}\n{text}")
            return path
        except Exception:  # noqa: BLE001  (this folder cannot be written: the next one)
            continue
    return "no log file: none could be written; rerun with --debug"


def _one_line(message: str, limit: int = 500) -> str:
    """The first line of a message, cut to ``limit`` characters."""
    lines = message.strip().splitlines()
    return (lines[0] if lines else "")[:limit]


def check_threads(threads: int | None) -> int | None:
    """A --threads value: UserError below 1 or above MAX_THREADS; a warning on stderr above this machine's cores."""
    if threads is not None:
        warning = threads_warning(threads)
        if warning:
            typer.echo(f"warning: {warning}", err=True)
    return threads


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
