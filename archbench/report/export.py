"""One run as the JSON that CI dashboards read: github-action-benchmark and Bencher.

- ``github-action-benchmark``: its ``customSmallerIsBetter`` tool, a list of
  ``{"name", "unit", "value", "range", "extra"}``. The tool takes every value as one where smaller
  is better, so figures where larger is better (throughput, achieved FLOP/s) are left out.
- ``bencher``: the Bencher Metric Format (BMF), ``{benchmark: {measure: {"value", "lower_value",
  "upper_value"}}}``; the benchmark is the case (and its input point where a case has several),
  the measure the archbench metric name (so Bencher's own ``latency`` measure, in nanoseconds,
  is not confused with ``latency_s``); a timing's bounds are the quartiles of its samples.
- ``run``: the run document itself (for ``archbench compare``).

Failed figures and values that are not numbers are left out; each exporter returns its text and
what it left out, for the caller to say.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable

from archbench.report.compare import figure_key, metric_kind
from archbench.results.record import Record, RunDocument


def figure_names(records: list[Record]) -> dict[tuple, str]:
    """A name per figure: its case (or model), with the input point's varying parts where a case has several
    points, then the metric: ``transformer-sweep [seq=256] macs``."""
    points: dict[tuple, list[dict]] = {}
    for record in records:
        points.setdefault((record.case or record.model, record.metric), []).append(record.point)
    names = {}
    for record in records:
        case = record.case or record.model
        seen = points[(case, record.metric)]
        varying = [k for k in record.point if len({json.dumps(p.get(k)) for p in seen}) > 1]
        where = f" [{', '.join(f'{k}={record.point[k]}' for k in varying)}]" if varying else ""
        names[figure_key(record)] = f"{case}{where} {record.metric}"
    return names


def _exportable(document: RunDocument) -> tuple[list[Record], list[str]]:
    kept, left_out = [], []
    for record in document.records:
        number = isinstance(record.value, (int, float)) and not isinstance(record.value, bool)
        if record.error:
            left_out.append(f"{record.case or record.model} {record.metric}: failed ({record.error})")
        elif not number or not math.isfinite(record.value):
            left_out.append(f"{record.case or record.model} {record.metric}: {record.value!r} is not a number")
        else:
            kept.append(record)
    return kept, left_out


def _quartiles(record: Record, document: RunDocument) -> tuple[float, float] | None:
    from archbench.report.history import spread

    if metric_kind(record.metric) != "timing":
        return None
    return spread(record, {figure_key(r): r for r in document.records})


def to_github_action_benchmark(document: RunDocument) -> tuple[str, list[str]]:
    """The run for github-action-benchmark's ``customSmallerIsBetter`` tool, and what was left out."""
    from archbench.metrics import METRICS

    records, left_out = _exportable(document)
    names = figure_names(records)
    commit = (document.env.get("project_commit") or "")[:7]
    benches = []
    higher = []
    for record in records:
        if record.metric in METRICS and METRICS[record.metric].better == "higher":
            higher.append(names[figure_key(record)])
            continue
        bench: dict[str, Any] = {"name": names[figure_key(record)], "unit": record.unit, "value": record.value}
        quartiles = _quartiles(record, document)
        if quartiles:
            bench["range"] = f"IQR {quartiles[0]:.4g} to {quartiles[1]:.4g}"
        bench["extra"] = f"commit {commit}, model {record.model}" if commit else f"model {record.model}"
        benches.append(bench)
    if higher:
        left_out.append(f"{len(higher)} figures where larger is better (customSmallerIsBetter cannot show them): "
                        + ", ".join(higher))
    return json.dumps(benches, indent=2) + "\n", left_out


def to_bencher(document: RunDocument) -> tuple[str, list[str]]:
    """The run in the Bencher Metric Format, and what was left out."""
    records, left_out = _exportable(document)
    names = figure_names(records)
    bmf: dict[str, dict[str, dict[str, float]]] = {}
    for record in records:
        benchmark = names[figure_key(record)].removesuffix(f" {record.metric}")
        metric: dict[str, float] = {"value": record.value}
        quartiles = _quartiles(record, document)
        if quartiles:
            metric.update(lower_value=quartiles[0], upper_value=quartiles[1])
        bmf.setdefault(benchmark, {})[record.metric] = metric
    return json.dumps(bmf, indent=2) + "\n", left_out


def to_run(document: RunDocument) -> tuple[str, list[str]]:
    """The run document itself."""
    return document.to_json() + "\n", []


EXPORTERS: dict[str, Callable[[RunDocument], tuple[str, list[str]]]] = {
    "github-action-benchmark": to_github_action_benchmark,
    "bencher": to_bencher,
    "run": to_run,
}
