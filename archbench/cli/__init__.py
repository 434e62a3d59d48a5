"""The command-line interface: one module per group of commands, all registered on one Typer app.

Command modules import torch and the measurers inside the commands, so ``--help`` stays fast.
"""

from archbench.cli import models_cmd  # noqa: F401  (registers list, params)
from archbench.cli import flops_cmd  # noqa: F401  (registers flops)
from archbench.cli import perf_cmd  # noqa: F401  (registers latency, memory)
from archbench.cli import scaling_cmd  # noqa: F401  (registers scaling)
from archbench.cli import claims_cmd  # noqa: F401  (registers claims)
from archbench.cli import suite_cmd  # noqa: F401  (registers run, merge, compare, report)
from archbench.cli.app import app


def main() -> None:
    """Entry point of the ``archbench`` console script."""
    app()


__all__ = ["app", "main"]
