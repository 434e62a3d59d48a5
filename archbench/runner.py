"""Run a suite's cases through the measurers, one record at a time into a :class:`RunWriter`.

Each metric of a case is measured on its own: a failure (unknown op, out of memory, a shape
the model refuses) becomes one record with its ``error`` under the metric's main name, and
the run goes on. Every record carries its case id. The writer journals each record as it
comes, so Ctrl-C (which propagates) leaves every finished record on disk; the document
itself is written, with ``meta.complete`` true, only when the last case is done.
"""

from __future__ import annotations

from typing import Any, Callable

from archbench.results.record import Record, RunDocument, RunWriter
from archbench.suite import Case, Suite

PRIMARY_METRIC = {"params": ("params", "count"), "flops": ("macs", "MAC"), "latency": ("latency_s", "s"),
                  "memory": ("peak_memory_bytes", "bytes")}
"""The record (metric, unit) a failure of each suite metric is filed under."""


def new_run_document(suite: Suite, cases: tuple[Case, ...], shard: tuple[int, int] | None) -> RunDocument:
    """An empty run document for ``cases`` of ``suite``: environment plus what the suite and shard were."""
    import sys

    from archbench.results.env import collect_env

    defaults = suite.defaults
    extra: dict[str, Any] = {"dtype": defaults.dtype}
    if defaults.threads:
        extra["threads"] = defaults.threads
    meta = {
        "command": "archbench " + " ".join(sys.argv[1:]),
        "suite": suite.name,
        "suite_file": suite.path,
        "suite_digest": suite.digest,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "cases": [case.describe() for case in cases],
        "suite_case_ids": [case.id for case in suite.cases],
        "complete": False,
    }
    return RunDocument(env=collect_env(defaults.device, **extra), meta=meta)


def run_cases(cases: tuple[Case, ...], writer: RunWriter,
              progress: Callable[[int, int, str], None] | None = None) -> None:
    """Measure every case into ``writer``, then mark the document complete and have the writer finish it.

    On Ctrl-C or any other exception the writer aborts (its journal kept, marked interrupted)
    and the exception propagates.
    """
    with writer:
        for done, case in enumerate(cases):
            if progress:
                progress(done, len(cases), case.id)
            run_case(case, writer)
    writer.document.meta["complete"] = True
    writer.finish()
    if progress:
        progress(len(cases), len(cases), "done")


def run_case(case: Case, writer: RunWriter) -> None:
    """Measure one case's metrics (or its sweep), each record tagged with the case id."""
    tagged = _CaseWriter(writer, case.id)
    if case.sweep:
        _run_sweep(case, tagged)
        return
    earlier: list[Record] = []
    for metric in case.metrics:
        try:
            records = _MEASURERS[metric](case, earlier)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # one failed metric is one row; the other metrics and cases go on
            records = [failure_record(case, metric, exc)]
        earlier.extend(records)
        tagged.add(*records)


def failure_record(case: Case, metric: str, exc: BaseException) -> Record:
    """The record of a metric that could not be measured: value None, the error's first line."""
    from archbench.errors import describe_error

    name, unit = PRIMARY_METRIC.get(metric, (metric, ""))
    return Record(case.model, name, None, unit, dict(case.point), error=describe_error(exc), case=case.id)


class _CaseWriter:
    """Forwards records to the run's writer with the case id set, remembering what it wrote."""

    def __init__(self, writer: RunWriter, case_id: str):
        self.writer = writer
        self.case_id = case_id
        self.written: set[int] = set()

    def add(self, *records: Record) -> None:
        for record in records:
            record.case = self.case_id
            self.written.add(id(record))
        self.writer.add(*records)


def _build(case: Case, device: str):
    from archbench.models import build_model

    return build_model(case.model, device=device, batch=case.settings.batch, input_shape=case.input,
                       seq=case.seq, dtype=case.settings.dtype)


def _params(case: Case, earlier: list[Record]) -> list[Record]:
    """Parameter and buffer counts, on the meta device (nothing allocated)."""
    from archbench.measure.params import param_records

    return param_records(_build(case, "meta"))


def _flops(case: Case, earlier: list[Record]) -> list[Record]:
    """MACs, FLOPs and other FLOPs from the counter, on the meta device."""
    from archbench.measure.flops import flop_records

    return flop_records(_build(case, "meta"))


def _latency(case: Case, earlier: list[Record]) -> list[Record]:
    """Timed forward passes on the case's device.

    When the case measured its MACs first, they give the achieved FLOP/s and its fraction of
    the machine's matmul peak (measured once per device, dtype and threads).
    """
    from archbench.measure.latency import measure_latency
    from archbench.measure.peak import measure_peak_flops

    settings = case.settings
    macs = next((r.value for r in earlier if r.metric == "macs" and r.error is None and "module" not in r.point), None)
    peak, peak_warning = None, None
    if macs is not None:
        try:
            peak = measure_peak_flops(settings.device, settings.dtype, settings.threads)
        except Exception as exc:  # the figure goes without its peak fraction, and says why
            peak_warning = f"no peak_fraction: the matmul peak could not be measured ({type(exc).__name__}: {exc})"
    records = measure_latency(_build(case, settings.device), threads=settings.threads, min_time=settings.min_time,
                              macs=macs, peak_flops=peak)
    if peak_warning:
        records[0].warnings.append(peak_warning)
    return records


def _memory(case: Case, earlier: list[Record]) -> list[Record]:
    """Peak memory of one forward pass (a fresh process per case on CPU)."""
    from archbench.measure.memory import measure_memory

    settings = case.settings
    return measure_memory(case.model, batch=settings.batch, seq=case.seq, input_shape=case.input,
                          device=settings.device, dtype=settings.dtype, timeout_s=settings.timeout_s)


_MEASURERS: dict[str, Callable[[Case, list], list]] = {
    "params": _params, "flops": _flops, "latency": _latency, "memory": _memory,
}


def _run_sweep(case: Case, writer: _CaseWriter) -> None:
    """A sweep case through :func:`archbench.measure.scaling.run_sweep`; a sweep that cannot start is one error row."""
    from archbench.measure.scaling import run_sweep

    settings, sweep = case.settings, case.sweep
    try:
        records = run_sweep([case.model], list(sweep.values), list(case.metrics), axis=sweep.axis,
                            batch=settings.batch, device=settings.device, dtype=settings.dtype,
                            min_time=settings.min_time, timeout_s=settings.timeout_s, writer=writer)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        writer.add(failure_record(case, case.metrics[0], exc))
        return
    unwritten = [r for r in records if id(r) not in writer.written]
    if unwritten:
        writer.add(*unwritten)


def merge_runs(documents: list[tuple[str, RunDocument]]) -> tuple[RunDocument, list[str]]:
    """Join shard runs of one suite into one document (records in the suite's case order) and its warnings.

    UserError when the runs are not of the same suite file (name and content digest), are
    not suite runs, or share a case. Warnings name cases of the suite that no shard ran
    and shards that did not finish.
    """
    from archbench.errors import UserError

    if len(documents) < 2:
        raise UserError("merge needs at least two run files")
    first_path, first = documents[0]
    identity = _suite_identity(first_path, first)
    seen: dict[str, str] = {}
    cases: list[dict] = []
    warnings: list[str] = []
    for path, document in documents:
        other = _suite_identity(path, document)
        if other[0] != identity[0]:
            raise UserError(f"{path} is a run of suite {other[0]!r}, {first_path} of {identity[0]!r}: "
                            "refusing to merge")
        if other[1] != identity[1]:
            raise UserError(f"{path} and {first_path} ran different versions of suite {identity[0]!r} "
                            f"(digest {other[1]} vs {identity[1]}): refusing to merge")
        for case in document.meta.get("cases", []):
            if case["id"] in seen:
                raise UserError(f"case {case['id']!r} is in both {seen[case['id']]} and {path}: "
                                "are these the same shard?")
            seen[case["id"]] = path
            cases.append(case)
        if not document.meta.get("complete"):
            warnings.append(f"{path} did not finish (interrupted or still running): its missing records stay missing")
    order = {case_id: i for i, case_id in enumerate(first.meta.get("suite_case_ids", []))}
    cases.sort(key=lambda case: order.get(case["id"], len(order)))
    not_run = [case_id for case_id in order if case_id not in seen]
    if not_run:
        warnings.append(f"{len(not_run)} case(s) of the suite are in no shard: {', '.join(not_run)}")
    records = sorted((r for _, doc in documents for r in doc.records), key=lambda r: order.get(r.case, len(order)))
    meta = {
        **first.meta,
        "shard": None,
        "merged_from": [path for path, _ in documents],
        "shard_envs": [doc.env for _, doc in documents],
        "cases": cases,
        "complete": not not_run and all(doc.meta.get("complete") for _, doc in documents),
    }
    return RunDocument(env=first.env, records=records, meta=meta), warnings


def _suite_identity(path: str, document: RunDocument) -> tuple[str, str]:
    from archbench.errors import UserError

    if "suite" not in document.meta:
        raise UserError(f"{path}: not a suite run (no meta.suite); only `archbench run` shards can be merged")
    return document.meta["suite"], document.meta.get("suite_digest")
