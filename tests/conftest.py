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


def stub_group(monkeypatch, group: str, measure):
    """Stand in for one metric group's measurer at the one seam, archbench.measure.run.GROUPS:
    ``measure(recipe, settings, earlier)`` gets the recipe of the point being measured."""
    from dataclasses import replace

    from archbench.measure import run

    def stand_in(builds, settings, earlier):
        return measure(builds.recipe, settings, earlier)

    stub = replace(run.GROUPS[group], measure=stand_in)
    monkeypatch.setitem(run.GROUPS, group, stub)
