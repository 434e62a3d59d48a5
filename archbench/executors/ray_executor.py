"""Run a suite's cases as Ray tasks, on an existing cluster or on a local one started for the run.

Each task runs :func:`archbench.runner.run_case` (the code of a local run) into a collecting
writer and returns its records and the environment of the machine it ran on; the driver writes
them through the run's writer as they arrive, each record naming that machine.

Resources are whole devices for what is timed: a case with latency or memory gets one GPU
(``num_gpus=1``) on CUDA, or every CPU of a node on the CPU (as many as the largest node has);
a counting case (params, flops) takes one CPU, and its torch uses one thread. A task whose
worker dies (killed, out of memory, its node lost) is retried once; a second loss is an error
row for each of its metrics. The case's own exceptions are not retried: ``run_case`` already
turns them into rows. Ctrl-C keeps every finished record and ends the Ray job, and Ray stops
the job's running tasks with it (the driver does not ``ray.cancel`` them one by one: in Ray 2.60
cancelling a task as it completes aborts the driver, a failed check in ``task_manager.cc``).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

from archbench.errors import UserError
from archbench.results.record import Record, RunWriter
from archbench.suite import Case, CaseSettings

INSTALL_HINT = "pip install 'archbench[ray]'"
WAIT_S = 0.5
"""How long the driver waits for a result before looking again (and letting Ctrl-C in)."""


def import_ray():
    """The ``ray`` module, or UserError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_cluster(address: str | None) -> Iterator["RayCluster"]:
    """Connected to the cluster at ``address`` (else a local cluster on this machine's CPUs) for the block."""
    import logging

    from archbench.results.env import cpu_count

    ray = import_ray()
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR, "log_to_driver": False}
    if address:
        check_reachable(address)
        target = address
    else:  # a cluster of this machine alone, never one that RAY_ADDRESS may name
        target = "local"
        options["num_cpus"] = cpu_count()
    with _sigterm_as_interrupt():
        try:
            ray.init(address=target, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            from archbench.errors import describe_error

            raise UserError(f"cannot start or reach the Ray cluster at {target}: {describe_error(exc)}") from None
        try:
            yield RayCluster(ray)
        finally:
            ray.shutdown()


REACH_TIMEOUT_S = 5.0
"""How long to wait for a cluster's address to answer before refusing it (ray.init would wait for minutes)."""


def check_reachable(address: str) -> None:
    """UserError, within :data:`REACH_TIMEOUT_S`, when nothing answers at ``address``'s host and port, or when a
    ``ray://`` address lacks Ray's client (``ray[client]``)."""
    import socket

    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (what ray[client] adds to ray)
        except ImportError:
            raise UserError(f"a ray:// address needs Ray's client, which is not installed: "
                            "pip install 'ray[client]'") from None
    host, colon, port = address.split("://", 1)[-1].rpartition(":")
    if not colon or not port.isdigit():
        return  # "auto", a bare host: ray.init says what is wrong
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise UserError(f"cannot reach the Ray cluster at {address}: {reason}") from None


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (what CI's timeout sends) stops the run as Ctrl-C does: journal kept, the Ray job ended."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class RayCluster:
    """A connected Ray cluster that runs suite cases."""

    def __init__(self, ray):
        self.ray = ray

    def run_cases(self, cases: tuple[Case, ...], writer: RunWriter, defaults: CaseSettings,
                  progress: Callable[[int, int, str], None] | None = None) -> None:
        """Run ``cases`` as tasks, writing records as they arrive; then order them as the suite and finish.

        On Ctrl-C (or any exception) the writer aborts (its journal kept) and the exception
        propagates; leaving :func:`ray_cluster` then ends the job and its running tasks.
        """
        ray = self.ray
        with writer:
            pending = self._submit(cases, writer, defaults)
            while pending:
                if progress:
                    progress(len(cases) - len(pending), len(cases), f"{len(pending)} cases on Ray")
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_S)
                for ref in ready:
                    case = pending.pop(ref)
                    writer.add(*self._collect(ref, case, writer))
                    writer.case_done(case.id)
        ids = [case["id"] for case in writer.document.meta.get("cases", [])] or [case.id for case in cases]
        order = {case_id: i for i, case_id in enumerate(ids)}  # the suite's order, resumed cases included
        writer.document.records.sort(key=lambda record: order.get(record.case, len(order)))
        writer.document.meta["complete"] = True
        writer.finish()
        if progress:
            progress(len(cases), len(cases), "done")

    def _submit(self, cases: tuple[Case, ...], writer: RunWriter, defaults: CaseSettings) -> dict:
        """Start a task per case; a case no node can take (a GPU on a cluster without one) is error rows at once."""
        ray = self.ray
        node_cpus = max(int(node["Resources"].get("CPU", 0)) for node in ray.nodes() if node["Alive"])
        gpus = ray.cluster_resources().get("GPU", 0)
        task = ray.remote(measure_case)
        pending = {}
        for case in cases:
            resources = case_resources(case, node_cpus)
            if resources.get("num_gpus", 0) > gpus:
                writer.add(*lost_case_records(case, "the Ray cluster has no GPU for this CUDA case"))
                writer.case_done(case.id)
                continue
            ref = task.options(**resources, max_retries=1, retry_exceptions=False).remote(
                case, defaults, resources["num_cpus"])
            pending[ref] = case
        return pending

    def _collect(self, ref, case: Case, writer: RunWriter) -> list[Record]:
        """A finished task's records, each naming its machine; or error rows when its worker was lost."""
        try:
            records, env = self.ray.get(ref)
        except self.ray.exceptions.RayError as exc:
            return lost_case_records(case, exc)
        machine = writer.add_env(env)
        for record in records:
            record.env = machine
        return records


def case_resources(case: Case, node_cpus: int) -> dict[str, int]:
    """Ray resources for ``case``: a whole GPU or every CPU of a node when it is timed, else one CPU."""
    from archbench.measure.run import GROUPS

    if not any(GROUPS[metric].on_device for metric in case.metrics):  # none needs a whole device to itself
        return {"num_cpus": 1}
    if case.settings.device.startswith("cuda"):
        return {"num_cpus": 1, "num_gpus": 1}
    return {"num_cpus": node_cpus}


def measure_case(case: Case, defaults: CaseSettings, cpus: int) -> tuple[list[Record], dict[str, Any]]:
    """The Ray task: ``case`` measured by :func:`archbench.runner.run_case` with ``cpus`` threads; records and env."""
    import torch

    from archbench.results.env import env_id
    from archbench.results.record import RunDocument
    from archbench.runner import machine_env, run_case

    torch.set_num_threads(cpus)
    env = machine_env(defaults)
    collected = RunWriter(RunDocument(env=env))
    run_case(case, collected, env_id(env))
    return collected.document.records, env


def lost_case_records(case: Case, cause: BaseException | str) -> list[Record]:
    """One error row per metric of a case that never came back (its worker or node lost, or no node could run it)."""
    from archbench.measure.run import failure_record
    from archbench.runner import case_recipe

    error = cause if isinstance(cause, str) else _describe_lost(cause)
    records = []
    for metric in case.metrics:
        record = failure_record(case_recipe(case), metric, error)
        record.point, record.case = dict(case.point), case.id
        records.append(record)
    return records


def _describe_lost(exc: BaseException) -> str:
    """One line for a task that failed in Ray: the underlying cause of a task error, else Ray's error type."""
    from archbench.errors import describe_error

    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return describe_error(cause)
    return f"the Ray worker was lost (retried once): {describe_error(exc)}"
