"""Shared test fixtures: a CLI runner and a deterministic torch seed."""

import pytest


@pytest.fixture
def cli():
    """Invoke the archbench CLI in-process; returns typer's Result (exit_code, stdout, stderr)."""
    from typer.testing import CliRunner

    from archbench.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, list(args))

    return invoke


@pytest.fixture(autouse=True)
def _seed():
    import torch

    torch.manual_seed(0)
