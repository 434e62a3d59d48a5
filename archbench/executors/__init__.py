"""Where a suite's cases run: ``local`` (this process, one case after another) or ``ray`` (Ray tasks on a cluster).

Both run each case through :func:`archbench.runner.run_case` and write every record through the
same :class:`~archbench.results.record.RunWriter` as it arrives.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from archbench.errors import UserError

EXECUTORS = ("local", "ray")


@contextmanager
def open_executor(name: str, address: str | None = None) -> Iterator:
    """``run(cases, writer, defaults, progress)`` for executor ``name``, connected (Ray) for the ``with`` block.

    UserError, before anything runs, for an unknown executor, an ``address`` without Ray, Ray
    not installed, or a cluster that cannot be reached.
    """
    if name not in EXECUTORS:
        raise UserError(f"unknown --executor {name!r}; expected {' or '.join(EXECUTORS)}")
    if address and name != "ray":
        raise UserError("--address names a Ray cluster; give it with --executor ray")
    if name == "local":
        from archbench.runner import run_cases

        yield lambda cases, writer, defaults, progress=None: run_cases(cases, writer, progress)
        return
    from archbench.executors.ray_executor import ray_cluster

    with ray_cluster(address) as cluster:
        yield cluster.run_cases
