"""A project's history: each figure's series over the stored runs, and the steps where it changed.

The runs come from a store (:mod:`archbench.results.store`) in history order. Every step is
found by :func:`archbench.report.compare.compare_runs`, the comparison ``archbench compare``
makes, so a step is what ``compare`` would report between the two runs:

- counts and analytic figures: each run against the one before it, whatever the machine;
  a ``changed`` figure is a step;
- timings and measured memory: each run against the one before it **on an equivalent
  machine** (the same :func:`~archbench.results.env.env_id`); a ``regressed`` or ``improved``
  figure (past its threshold, and for timings significant by the Mann–Whitney test on the raw
  samples) is a step. Moves past the threshold that are not significant are only counted.

Figures that appear, disappear, start or stop failing, or cannot be measurements are listed
as events beside the steps. A timing is shown with the interquartile range of the samples
behind it (:func:`spread`).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Any

from archbench.report.compare import (DEFAULT_ALPHA, Change, Comparison, change_rows, compare_runs, figure_key,
                                      metric_kind)
from archbench.results.record import Record, RunDocument
from archbench.results.store import Entry

STEP_STATUSES = ("changed", "regressed", "improved")
EVENT_STATUSES = ("newly failing", "fixed", "new", "missing", "invalid")


@dataclass
class Step:
    """A figure that changed at ``entry``'s commit, against the run of ``previous`` (its ``compare`` change)."""

    entry: Entry
    previous: Entry
    change: Change


@dataclass
class Point:
    """One run's value of one figure (its error instead when it failed), with the IQR of a timing."""

    run: int
    value: Any
    error: str | None = None
    machine: str | None = None
    spread: tuple[float, float] | None = None


@dataclass
class Series:
    """One figure (case or model, metric, input point) over the runs."""

    case: str
    metric: str
    unit: str
    point: dict[str, Any]
    kind: str
    points: list[Point] = field(default_factory=list)


@dataclass
class History:
    """The runs in order, each figure's series, the steps and the other events."""

    runs: list[Entry]
    series: dict[tuple, Series]
    steps: list[Step]
    events: list[Step]
    not_significant: int
    machines: dict[str, str]  # machine id -> a short description


def build_history(runs: list[tuple[Entry, RunDocument]], *, thresholds: dict[str, float] | None = None,
                  alpha: float = DEFAULT_ALPHA, case: str | None = None, metric: str | None = None) -> History:
    """The history of ``runs`` (in order), restricted to cases matching ``case`` and metrics matching ``metric``
    (shell patterns)."""
    from archbench.results.env import env_id

    def wanted(change_or_record) -> bool:
        name = change_or_record.case or change_or_record.model
        return (case is None or fnmatch.fnmatchcase(name, case)) and \
            (metric is None or fnmatch.fnmatchcase(change_or_record.metric, metric))

    series: dict[tuple, Series] = {}
    machines: dict[str, str] = {}
    for index, (entry, document) in enumerate(runs):
        machines.setdefault(entry.machine, _describe_machine(document.env))
        by_key = {figure_key(r): r for r in document.records}
        for record in document.records:
            if not wanted(record):
                continue
            key = figure_key(record)
            kind = metric_kind(record.metric)
            line = series.setdefault(key, Series(record.case or record.model, record.metric, record.unit,
                                                 dict(record.point), kind))
            env = document.env_of(record)
            line.points.append(Point(index, record.value, record.error, env_id(env) if env else None,
                                     spread(record, by_key) if kind == "timing" else None))
    steps: list[Step] = []
    events: list[Step] = []
    not_significant = 0
    last_on: dict[str, int] = {}
    for index, (entry, document) in enumerate(runs):
        if index:
            previous, before = runs[index - 1]
            counts = compare_runs(before, document, deterministic_only=True)
            for change in counts.changes:
                target = steps if change.status in STEP_STATUSES else events
                if change.status in STEP_STATUSES + EVENT_STATUSES and wanted(change):
                    target.append(Step(entry, previous, change))
        same = last_on.get(entry.machine)
        if same is not None:
            previous, before = runs[same]
            measured = compare_runs(before, document, thresholds=thresholds, alpha=alpha)
            for change in measured.changes:
                if metric_kind(change.metric) == "deterministic" or not wanted(change):
                    continue
                if change.status in ("regressed", "improved"):
                    steps.append(Step(entry, previous, change))
                elif change.status in EVENT_STATUSES:
                    events.append(Step(entry, previous, change))
                elif change.status == "not significant":
                    not_significant += 1
        last_on[entry.machine] = index
    return History([entry for entry, _ in runs], series, steps, events, not_significant, machines)


def spread(record: Record, records: dict[tuple, Record]) -> tuple[float, float] | None:
    """The first and third quartiles of a timing: of its own raw samples, or, for a rate derived from
    ``latency_s`` (``c / latency``: throughput, achieved FLOP/s, peak fraction), of the latency samples mapped
    through it. None without samples."""
    import numpy as np

    from archbench.report.compare import _samples

    samples = _samples(record, records)
    if not samples or not isinstance(record.value, (int, float)):
        return None
    q1, q3 = (float(q) for q in np.quantile(samples, [0.25, 0.75]))
    if record.details.get("samples") or record.metric == "latency_s":
        return q1, q3
    latency = records.get(figure_key(record, "latency_s"))
    if latency is None or not latency.value or not q1:
        return None
    scale = record.value * latency.value  # the rate is scale / latency
    return scale / q3, scale / q1


def _describe_machine(env: dict[str, Any]) -> str:
    threads = env.get("threads")
    parts = [env.get("gpu") or env.get("cpu"), env.get("device"), _plural(threads, "thread") if threads else None,
             f"torch {env.get('torch')}", env.get("dtype")]
    return ", ".join(str(p) for p in parts if p)


# ---- text ----------------------------------------------------------------------------------------

def format_history(history: History, title: str) -> str:
    """The history as plain text: a summary, the steps, the events, then each figure's series."""
    from archbench.report.render import format_value

    runs = history.runs
    lines = [_summary(history, title), ""]
    lines.append(f"steps ({len(history.steps)}):" if history.steps else "steps: none")
    if history.steps:
        lines += _indent(_aligned(step_rows(history.steps), right={"before", "after", "change"}))
    if history.events:
        lines += ["", f"other changes ({len(history.events)}):"]
        lines += _indent(_aligned(step_rows(history.events), right={"before", "after", "change"}))
    step_at = {(s.entry.file, figure_key_of(s.change)) for s in history.steps}
    counts: dict[tuple, list[tuple[tuple, Series]]] = {}
    for key, line in history.series.items():
        if line.kind == "deterministic":  # a case's counts at one point share a table, one column per metric
            counts.setdefault((line.case, json.dumps(line.point, sort_keys=True)), []).append((key, line))
    for key, line in history.series.items():
        if line.kind == "deterministic":
            group = counts.pop((line.case, json.dumps(line.point, sort_keys=True)), None)
            if group:
                lines += ["", _heading(line.case, line.point)] + _indent(_count_table(group, runs, step_at))
            continue
        unit = f" [{line.unit}]" if line.unit else ""
        lines += ["", _heading(line.case, line.point, f"{line.metric}{unit}")]
        rows = []
        for p in line.points:
            entry = runs[p.run]
            rows.append({"#": str(p.run + 1), "commit": entry.short, "date": (entry.commit_date or "")[:10],
                         "value": f"failed: {p.error}" if p.error else format_value(p.value),
                         "IQR": f"{format_value(p.spread[0])}..{format_value(p.spread[1])}" if p.spread else "",
                         "machine": p.machine or "unknown",
                         "step": "step" if (entry.file, key) in step_at else ""})
        lines += _indent(_aligned(rows, right={"value", "IQR"}))
    if len(history.machines) > 1 or any(s.kind != "deterministic" for s in history.series.values()):
        lines += ["", "machines:"] + [f"  {key}: {text}" for key, text in history.machines.items()]
    return "\n".join(lines) + "\n"


def _heading(case: str, point: dict[str, Any], metric: str = "") -> str:
    where = ", ".join(f"{k}={v}" for k, v in point.items())
    return " · ".join(part for part in (case, metric, where) if part)


def _count_table(group: list[tuple[tuple, Series]], runs: list[Entry], step_at: set) -> list[str]:
    """One row per run (consecutive runs with the same figures folded into one), one column per metric."""
    from archbench.report.render import format_value

    cells: dict[int, dict[str, str]] = {}
    stepped: set[int] = set()
    for key, line in group:
        column = f"{line.metric} [{line.unit}]" if line.unit and line.unit != "count" else line.metric
        for p in line.points:
            cells.setdefault(p.run, {})[column] = f"failed: {p.error}" if p.error else format_value(p.value)
            if (runs[p.run].file, key) in step_at:
                stepped.add(p.run)
    columns = list(dict.fromkeys(c for row in cells.values() for c in row))
    rows = []
    for run in sorted(cells):
        entry = runs[run]
        rows.append({"#": str(run + 1), "commit": entry.short, "date": (entry.commit_date or "")[:10],
                     **{c: cells[run].get(c, "") for c in columns}, "step": "step" if run in stepped else ""})
    return _aligned(_fold_unchanged(rows, columns), right=set(columns))


def figure_key_of(change: Change) -> tuple:
    """The :func:`figure_key` of the figure a change is about."""
    model = change.model if change.case is None else None
    return (change.case, None, model, change.metric, json.dumps(change.point, sort_keys=True))


def _summary(history: History, title: str) -> str:
    runs = history.runs
    if not runs:
        return f"{title}: no runs"
    commits = len({entry.commit for entry in runs})
    dates = [entry.commit_date[:10] for entry in runs if entry.commit_date]
    span = f", {dates[0]} to {dates[-1]}" if dates else ""
    text = f"{title}: {_plural(len(runs), 'run')} of {_plural(commits, 'commit')}{span}, " \
           f"{_plural(len(history.machines), 'machine')}"
    n = history.not_significant
    if n:
        text += f"; {_plural(n, 'timing figure')} past {'its' if n == 1 else 'their'} threshold but not significant"
    return text


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def step_rows(steps: list[Step]) -> list[dict[str, str]]:
    """The steps as display rows (strings): commit, date, the commit compared with, then compare's columns."""
    rows = change_rows(Comparison([s.change for s in steps], 0, True))
    out = []
    for step, row in zip(steps, rows):
        out.append({"commit": step.entry.short, "date": (step.entry.commit_date or "")[:10],
                    "since": step.previous.short, "status": row["status"], "case": row["case"],
                    "metric": row["metric"], "point": row["point"], "before": row["baseline"], "after": row["current"],
                    "change": row["change"], "note": row["note"]})
    return out


def _fold_unchanged(rows: list[dict[str, str]], columns: list[str]) -> list[dict[str, str]]:
    """Consecutive runs with the same ``columns`` and no step are one row: ``#`` ``1-4``, the first commit."""
    folded: list[dict[str, str]] = []
    for row in rows:
        last = folded[-1] if folded else None
        if last is not None and not row["step"] and all(last[c] == row[c] for c in columns):
            last["#"] = f"{last['#'].split('-')[0]}-{row['#']}"
            continue
        folded.append(dict(row))
    return folded


def _aligned(rows: list[dict[str, str]], right: set[str] = frozenset()) -> list[str]:
    """Rows of strings as aligned text columns under a header (numbers to the right)."""
    if not rows:
        return []
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}

    def cell(column: str, text: str) -> str:
        return text.rjust(widths[column]) if column in right else text.ljust(widths[column])

    return ["  ".join(cell(c, c) for c in columns).rstrip()] + \
        ["  ".join(cell(c, r[c]) for c in columns).rstrip() for r in rows]


def _indent(lines: list[str]) -> list[str]:
    return ["  " + line for line in lines]
