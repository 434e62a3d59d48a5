"""Options shared by the measuring commands, error handling, and the common finish (env + render)."""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import sys
from typing import Annotated, Optional

import typer

from archbench.errors import MachineError, UserError
from archbench.limits import check_points, positive_finite, threads_warning  # noqa: F401  (the option validators)

MODEL_HELP = ("NAME[:key=value,...] (see `archbench list`), FILE.py:ATTR, MODULE:ATTR, hf:MODEL_TYPE, hf:ORG/NAME "
              "or timm:NAME.")
ModelArg = Annotated[str, typer.Argument(help=f"The model: {MODEL_HELP}", show_default=False)]
FormatOpt = Annotated[str, typer.Option(
    "--format", "-f", help="Output format.", metavar="[table|json|csv|markdown]",
    autocompletion=lambda: ["table", "json", "csv", "markdown"])]  # render.FORMATS, without importing the renderers
OutOpt = Annotated[Optional[str], typer.Option("--out", "-o", help="Also write to FILE (.json, .csv, .md, .txt).")]
BatchOpt = Annotated[Optional[int], typer.Option(
    "--batch", "-b", help="Batch size (default 1; a factory's example inputs keep their own unless given).")]
SeqOpt = Annotated[Optional[int], typer.Option("--seq", help="Sequence length T (sequence models).")]
InputOpt = Annotated[Optional[str], typer.Option("--input", help="Input shape without batch, e.g. 3x299x299.")]
DeviceOpt = Annotated[str, typer.Option(
    "--device", help="Where to run.", metavar="[cpu|cuda|cuda:N]", autocompletion=lambda: ["cpu", "cuda", "cuda:0"])]
DtypeOpt = Annotated[str, typer.Option(
    "--dtype", help="float32, bfloat16 or float16.", metavar="[float32|bfloat16|float16]",
    autocompletion=lambda: ["float32", "bfloat16", "float16"])]
PhaseOpt = Annotated[str, typer.Option(
    "--phase", help="prefill: one forward over --seq tokens; decode: one new token after a KV cache of --seq tokens; "
                    "train: one optimizer step (forward, loss, backward, optimizer.step()).",
    metavar="[prefill|decode|train]", autocompletion=lambda: ["prefill", "decode", "train"])]
OptimizerOpt = Annotated[str, typer.Option(
    "--optimizer", help="--phase train: sgd, momentum, adam, adamw or adafactor.",
    metavar="[sgd|momentum|adam|adamw|adafactor]",
    autocompletion=lambda: ["sgd", "momentum", "adam", "adamw", "adafactor"])]
PrecisionOpt = Annotated[str, typer.Option(
    "--precision", help="--phase train: fp32, bf16-mixed or fp16-mixed (autocast; fp32 master weights).",
    metavar="[fp32|bf16-mixed|fp16-mixed]", autocompletion=lambda: ["fp32", "bf16-mixed", "fp16-mixed"])]
CheckpointingOpt = Annotated[bool, typer.Option(
    "--checkpointing", help="--phase train: recompute each block in backward (activation checkpointing).")]
AttentionCountOpt = Annotated[str, typer.Option(
    "--attention-count", help="full: every query-key pair (what the math backend computes); causal: only the pairs "
                              "a causal or sliding-window mask keeps.",
    metavar="[full|causal]", autocompletion=lambda: ["full", "causal"])]
AllowCodeOpt = Annotated[bool, typer.Option(
    "--allow-code", help="Run models that are code (FILE.py:ATTR, MODULE:ATTR) named in the file; refused without it, "
                         "as the file may come from someone else (a pull request).")]
HeadOpt = Annotated[bool, typer.Option(
    "--head", help="Hugging Face models: build with the task head (LM head, classifier) instead of the bare backbone.")]


DEBUG_ENV = "ARCHBENCH_DEBUG"
"""Set (to anything but empty or 0) by ``archbench --debug``: an internal error shows its traceback."""


INTERNAL_ERROR_EXIT = 3
"""Exit status of an unexpected exception (a bug): apart from 1 (regressed, strict failed) and 2 (bad input)."""


def handle_errors(command):
    """The command boundary: a UserError is one line and exit 2, a MachineError (disk full) one line and
    exit 1, Ctrl-C exit 130, and anything else one line and exit 3 (:data:`INTERNAL_ERROR_EXIT`).

    An exception out of the forward of a model from the user's code is that model's failure
    ("MODEL: its forward failed: ..."), exit 2, and ``sys.exit`` called by model code is an error.

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
        except SystemExit as exc:  # archbench exits through typer.Exit: this came from model code
            typer.echo(f"error: the model's code called sys.exit({exc.code!r}); archbench stopped", err=True)
            raise typer.Exit(2) from None
        except Exception as exc:  # noqa: BLE001  (the last line of defence: never a bare traceback)
            import traceback

            failed = _forward_failure(exc)
            if failed:
                typer.echo(f"error: {_one_line(failed)}", err=True)
                raise typer.Exit(2) from None

            text = "".join(traceback.format_exception(exc))
            if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                typer.echo(text.rstrip(), err=True)
            else:
                where = write_traceback(text)
                typer.echo(f"internal error: {type(exc).__name__}: {_one_line(str(exc))} (traceback in {where})",
                           err=True)
            raise typer.Exit(INTERNAL_ERROR_EXIT) from None

    return wrapper


def _forward_failure(exc: BaseException) -> str | None:
    """The failure of a user model's forward (see python_source.forward_failure), if that is what ``exc`` is."""
    source = sys.modules.get("archbench.models.python_source")  # not loaded: no model from user code was built
    return source.forward_failure(exc) if source else None


_STDOUT: list = []  # the stdout of the commands running, while their model code's prints go to stderr


def runs_model_code(command):
    """Decorator (under :func:`handle_errors`) of a command that builds and runs models.

    While it runs, model code's prints go to stderr when stdout carries machine output (``--format``
    json, csv or markdown, or stdout is not a terminal): the command writes its own output inside
    :func:`real_stdout`. With an ``allow_code`` parameter, a model that is code named in the command's
    file (a suite, the claims) is refused unless it is given (``--allow-code``).
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from archbench.models.python_source import code_from_data

        machine = kwargs.get("fmt", "table") != "table" or not getattr(sys.stdout, "isatty", lambda: False)()
        with code_from_data(kwargs.get("allow_code", True)), _prints_to_stderr(machine):
            return command(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def _prints_to_stderr(machine: bool):
    if not machine:
        yield
        return
    _STDOUT.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _STDOUT.pop()


@contextlib.contextmanager
def real_stdout():
    """Inside a :func:`runs_model_code` command: the command's own output goes to the real stdout."""
    if not _STDOUT:
        yield
        return
    with contextlib.redirect_stdout(_STDOUT[-1]):
        yield


@contextlib.contextmanager
def model_progress(number: int, total: int, text: str):
    """Progress of a command measuring ``total`` models while model ``number`` is measured: a spinner on a
    terminal, else (CI logs) one line on stderr per model when there is more than one."""
    from rich.console import Console

    console = Console(stderr=True)
    line = f"[{number}/{total}] {text}" if total > 1 else text
    if console.is_terminal:
        with console.status(line):
            yield
        return
    if total > 1:
        typer.echo(line, err=True)
    yield


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
    with real_stdout():
        emit(document, fmt, out, title)
