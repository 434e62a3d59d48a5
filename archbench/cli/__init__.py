"""The command-line interface: one module per group of commands, all registered on one Typer app.

Command modules import torch and the measurers inside the commands, so ``--help`` stays fast.
"""

import sys

from archbench.cli import models_cmd  # noqa: F401  (registers list, params)
from archbench.cli import flops_cmd  # noqa: F401  (registers flops)
from archbench.cli import summary_cmd  # noqa: F401  (registers summary)
from archbench.cli import perf_cmd  # noqa: F401  (registers latency, memory)
from archbench.cli import scaling_cmd  # noqa: F401  (registers scaling)
from archbench.cli import roofline_cmd  # noqa: F401  (registers hardware, roofline)
from archbench.cli import claims_cmd  # noqa: F401  (registers claims)
from archbench.cli import suite_cmd  # noqa: F401  (registers run, merge, compare, report)
from archbench.cli import history_cmd  # noqa: F401  (registers history add, show, export)
from archbench.cli.app import app


def main() -> None:
    """Entry point of the ``archbench`` console script: a usage error (bad option, bad value) is one line, exit 2;
    an exception outside any command (a bug) one line, exit 3."""
    try:
        code = app(standalone_mode=False)
    except Exception as exc:  # the option parser's usage errors: typer's own click exceptions, duck-typed
        if not (hasattr(exc, "format_message") and hasattr(exc, "exit_code")):
            from archbench.cli.common import INTERNAL_ERROR_EXIT, report_internal_error

            report_internal_error(exc)
            sys.exit(INTERNAL_ERROR_EXIT)
        if type(exc).__name__ == "NoArgsIsHelpError":  # `archbench` alone: the help, as typer shows it
            exc.show()
            sys.exit(exc.exit_code)
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        message = " ".join(exc.format_message().split())
        print(f"error: {message}{hint}", file=sys.stderr)
        sys.exit(exc.exit_code)
    sys.exit(code or 0)


__all__ = ["app", "main"]
