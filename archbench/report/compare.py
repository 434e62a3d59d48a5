"""Compare two run documents the way a CI gate needs: exact for counts, statistical for timings.

Figures are matched by :func:`figure_key` (case or model, claim, metric, input point).

- Deterministic figures (params, buffers, macs, flops, other_flops, analytic bytes...) must be
  equal (integers exactly, derived floats such as fitted exponents up to round-off): any
  difference is ``changed``, with its size.
- Timings (latency, throughput, achieved FLOP/s, compile time) compare the ratio of the
  current value to the baseline's against a threshold (``latency=10%``), and count as
  ``regressed`` only when the raw samples (``details.samples``, or those of the ``latency_s``
  record at the same point) also say so: a one-sided Mann–Whitney U test at ``alpha``.
  Beyond the threshold but not significant (or with no samples) is ``not significant``.
- Measured memory (``peak_memory_bytes``) has no samples: beyond its threshold is ``regressed``.
- A timing or measured memory figure is compared only with one measured on an equivalent
  machine: each record's own machine (its ``env`` among the document's ``envs``; else the
  document's ``env``) must have the same :func:`fingerprint`. Any other is ``not comparable``,
  with the machines' difference, and the summary names it. Counts compare whatever the machine.
- A figure only in the current run is ``new``, only in the baseline ``missing``; an error that
  appears is ``newly failing``, one that disappears ``fixed``.
- A figure whose unit differs between the runs (MAC against FLOP) is ``changed``; a run that
  holds one figure twice with different contents is refused (UserError, exit 2).
- A value that cannot be a measurement (NaN, an infinity, a negative timing or memory figure,
  or such a raw sample) on either side is ``invalid``: it is not compared.

Kinds (exact, timing, memory) and which direction is better come from :mod:`archbench.metrics`.
``invalid``, ``newly failing``, ``regressed``, ``changed`` and ``missing`` fail the comparison
(exit 1). :func:`check_comparable` refuses (exit 2) runs of different suites and runs that
did not finish.

``to_json`` is strict JSON: a NaN or an infinity is written as the string ``"NaN"``,
``"Infinity"`` or ``"-Infinity"``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from archbench.errors import UserError
from archbench.metrics import METRICS, kind_of
from archbench.results.record import Record, RunDocument, unfinished

STATUSES = ("invalid", "newly failing", "regressed", "changed", "missing", "not significant", "not comparable",
            "improved", "fixed", "new", "still failing")
"""Every status a listed change can have, worst first."""
FAILING = frozenset({"invalid", "newly failing", "regressed", "changed", "missing"})

DEFAULT_THRESHOLDS = {"latency": 0.10, "memory": 0.10}
DEFAULT_ALPHA = 0.05


def metric_kind(metric: str) -> str:
    """``timing``, ``memory`` (measured, noisy) or ``deterministic`` (counts and analytic figures: exact)."""
    kind = kind_of(metric)
    return "deterministic" if kind in ("count", "analytic") else kind


def check_comparable(runs: list[tuple[str, RunDocument]], allow_incomplete: bool = False) -> None:
    """UserError for a (path, run) pair of different suites, or one that did not finish unless allowed."""
    (base_path, base), (cur_path, cur) = runs
    if base.meta.get("suite") != cur.meta.get("suite"):
        raise UserError(f"{base_path} is a run of suite {base.meta.get('suite')!r}, {cur_path} of "
                        f"{cur.meta.get('suite')!r}: refusing to compare runs of different suites")
    for path, document in runs:
        reason = unfinished(document)
        if reason and not allow_incomplete:
            raise UserError(f"{path}: {reason}; its missing figures would pass for changes "
                            "(use --allow-incomplete to compare it anyway)")


def parse_thresholds(items: list[str]) -> dict[str, float]:
    """``["latency=10%", "peak_memory_bytes=0.2"]`` -> fractions by ``latency``/``memory`` or a metric name."""
    thresholds = dict(DEFAULT_THRESHOLDS)
    for item in items:
        key, eq, text = item.partition("=")
        key, text = key.strip(), text.strip()
        try:
            value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            value = -1.0
        if not eq or not key or value < 0 or math.isnan(value):
            raise UserError(f"malformed --threshold {item!r}: expected NAME=PERCENT, e.g. latency=10%")
        if key not in DEFAULT_THRESHOLDS and metric_kind(key) == "deterministic":
            raise UserError(f"--threshold {item!r}: thresholds apply to latency, memory or a timing/memory metric; "
                            f"{key!r} would be compared exactly")
        thresholds[key] = value
    return thresholds


@dataclass
class Change:
    """One figure that differs between the runs (or exists in only one of them)."""

    status: str
    case: str | None
    model: str
    metric: str
    point: dict[str, Any]
    baseline: Any = None
    current: Any = None
    unit: str = ""
    relative: float | None = None  # (current - baseline) / baseline
    p_value: float | None = None
    note: str = ""

    @property
    def failing(self) -> bool:
        return self.status in FAILING

    def size(self) -> float:
        """How big the change is, for ordering within a status."""
        if self.relative is None:
            return math.inf if self.status in ("changed", "regressed") else 0.0
        return abs(self.relative)


@dataclass
class Comparison:
    """The changes (worst first) and what was compared without a change."""

    changes: list[Change]
    unchanged: int
    timings_comparable: bool
    not_comparable: int = 0
    skipped: int = 0
    machine_difference: list[str] = field(default_factory=list)
    thresholds: dict[str, float] = field(default_factory=dict)
    alpha: float = DEFAULT_ALPHA

    @property
    def failed(self) -> bool:
        return any(change.failing for change in self.changes)

    def counts(self) -> dict[str, int]:
        """How many changes of each status, in :data:`STATUSES` order."""
        counts = {status: 0 for status in STATUSES}
        for change in self.changes:
            counts[change.status] += 1
        return {status: n for status, n in counts.items() if n}


def compare_runs(baseline: RunDocument, current: RunDocument, *, thresholds: dict[str, float] | None = None,
                 alpha: float = DEFAULT_ALPHA, deterministic_only: bool = False,
                 names: tuple[str, str] = ("baseline", "current")) -> Comparison:
    """Every difference between ``baseline`` and ``current``, classified as in the module docstring.

    UserError when either run holds one figure twice with different values (``names`` say which run).
    """
    thresholds = dict(DEFAULT_THRESHOLDS if thresholds is None else thresholds)
    old = _by_key(baseline.records, names[0])
    new = _by_key(current.records, names[1])
    other_machines: list[tuple] = []
    failed_in_current = {_site(r) for r in current.records if r.error}
    changes: list[Change] = []
    only_old: list[Record] = []
    unchanged = skipped = 0
    for key, before in old.items():
        after = new.get(key)
        kind = metric_kind(before.metric)
        if deterministic_only and kind != "deterministic":
            skipped += 1
            continue
        if after is None:
            if _site(before) not in failed_in_current:  # figures of a failed metric are shown by its error row
                only_old.append(before)
            continue
        if before.unit != after.unit:
            changes.append(_change("changed", after, before.value, after.value,
                                   note=f"unit {before.unit} -> {after.unit}: not the same figure"))
            continue
        if before.error or after.error:
            status = "still failing" if before.error and after.error else ("newly failing" if after.error else "fixed")
            changes.append(_change(status, after, before.value, after.value, note=after.error or before.error or ""))
            continue
        problem = _invalid(before, _samples(before, old), kind, "baseline") or \
            _invalid(after, _samples(after, new), kind, "current")
        if problem:
            changes.append(Change("invalid", after.case, after.model, after.metric, dict(after.point), before.value,
                                  after.value, after.unit, note=problem))
            continue
        if kind == "deterministic":
            if _equal(before.value, after.value):
                unchanged += 1
            else:
                note = f"model {before.model} -> {after.model}" if before.model != after.model else ""
                changes.append(_change("changed", after, before.value, after.value, note=note))
            continue
        machines = (_machine(baseline, before), _machine(current, after))
        if None in machines or machines[0] != machines[1]:
            other_machines.append(machines)
            changes.append(Change("not comparable", after.case, after.model, after.metric, dict(after.point),
                                  before.value, after.value, after.unit, note="; ".join(_machine_difference([machines]))))
            continue
        change = _measured_change(kind, before, after, old, new, thresholds, alpha)
        if change is None:
            unchanged += 1
        else:
            changes.append(change)
    only_new = [after for key, after in new.items()
                if key not in old and not (deterministic_only and metric_kind(after.metric) != "deterministic")]
    changes += _one_sided(only_old, current.records, "missing")
    changes += _one_sided([r for r in only_new if r.error is None], baseline.records, "new")
    changes += [_change("newly failing", r, None, None, note=r.error) for r in only_new if r.error]
    changes.sort(key=lambda c: (STATUSES.index(c.status), -c.size()))
    return Comparison(changes, unchanged, not other_machines, len(other_machines), skipped,
                      _machine_difference(other_machines), thresholds, alpha)


def _one_sided(records: list[Record], other_run: list[Record], status: str) -> list[Change]:
    """``missing`` (or ``new``) figures: one row per figure, or one per case when the other run lacks the whole case."""
    cases_there = {r.case for r in other_run}
    by_case: dict[str | None, list[Record]] = {}
    for record in records:
        by_case.setdefault(record.case, []).append(record)
    changes = []
    for case, group in by_case.items():
        if case is not None and case not in cases_there and len(group) > 1:
            first = group[0]
            before, after = (len(group), None) if status == "missing" else (None, len(group))
            changes.append(Change(status, case, first.model, f"whole case ({len(group)} figures)", dict(first.point),
                                  before, after, "figures"))
        else:
            changes += [_change(status, r, r.value, None) if status == "missing" else _change(status, r, None, r.value)
                        for r in group]
    return changes


def figure_key(record: Record, metric: str | None = None) -> tuple:
    """What identifies a figure across runs: its case (else its model), claim, metric and input point.

    Within a suite case the model spec may change between runs (that is what a PR does);
    the figure is still the same one, and a different value is a change.
    """
    model = record.model if record.case is None else None
    return (record.case, record.claim, model, metric or record.metric, json.dumps(record.point, sort_keys=True))


def _by_key(records: list[Record], name: str) -> dict[tuple, Record]:
    """The records by :func:`figure_key`; UserError for a figure held twice with different contents."""
    by_key: dict[tuple, Record] = {}
    for record in records:
        key = figure_key(record)
        other = by_key.setdefault(key, record)
        if other is not record and other.to_dict() != record.to_dict():
            raise UserError(f"{name}: figure {record.metric} of {record.case or record.model} at "
                            f"{json.dumps(record.point, sort_keys=True)} is recorded twice with different contents "
                            f"({other.value!r} {other.unit}, {record.value!r} {record.unit}): "
                            "a run holds each figure once")
    return by_key


def _site(record: Record) -> tuple:
    """Where a record was measured: its figure key without the metric."""
    key = figure_key(record)
    return key[:3] + key[4:]


UNKNOWN_MACHINE = "machine unknown (a record naming no machine of its run, or an old merge of mixed shards)"


def _machine(document: RunDocument, record: Record) -> tuple | None:
    """The fingerprint of the machine ``record`` was measured on, or None when the document cannot say."""
    from archbench.results.env import fingerprint

    if record.env is None and not document.envs:  # an older document: a merge of shards lists their envs in meta
        shards = {fingerprint(env) for env in [document.env, *(document.meta.get("shard_envs") or [])]}
        if len(shards) > 1:
            return None
    env = document.env_of(record)
    return None if env is None else fingerprint(env)


def _machine_difference(pairs: list[tuple]) -> list[str]:
    """What differs between the machines of (baseline, current) fingerprint pairs: ``cpu: A vs B``, ..."""
    from archbench.results.env import FINGERPRINT_KEYS

    prints = list(dict.fromkeys(p for pair in pairs for p in pair))
    differences = [UNKNOWN_MACHINE] if None in prints else []
    prints = [p for p in prints if p is not None]
    for i, key in enumerate(FINGERPRINT_KEYS):
        values = list(dict.fromkeys(str(p[i]) for p in prints))
        if len(values) > 1:
            differences.append(f"{key}: {' vs '.join(values)}")
    return differences


FLOAT_TOLERANCE = 1e-9
"""Relative round-off allowed between derived floats (fitted exponents, ratios) of two machines' BLAS."""


def _equal(a: Any, b: Any) -> bool:
    """Counts exactly; floats up to :data:`FLOAT_TOLERANCE` (NaN equals NaN)."""
    if isinstance(a, float) or isinstance(b, float):
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
            return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=FLOAT_TOLERANCE)
    return a == b


def _relative(before: Any, after: Any) -> float | None:
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)) or isinstance(before, bool):
        return None
    if before == 0:
        return None if after == 0 else math.copysign(math.inf, after)
    return (after - before) / abs(before)


def _change(status: str, record: Record, before: Any, after: Any, **extra) -> Change:
    return Change(status, record.case, record.model, record.metric, dict(record.point), before, after,
                  record.unit, _relative(before, after), **extra)


def _threshold(metric: str, kind: str, thresholds: dict[str, float]) -> float:
    if metric in thresholds:
        return thresholds[metric]
    return thresholds.get("latency" if kind == "timing" else "memory", DEFAULT_THRESHOLDS["latency"])


def _direction(metric: str) -> int:
    """+1 when a larger value is better, -1 when smaller is, 0 when neither (fitted exponents, crossovers)."""
    better = METRICS[metric].better if metric in METRICS else None
    return {"higher": 1, "lower": -1}.get(better, 0)


def _not_finite(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _invalid(record: Record, samples: list[float] | None, kind: str, side: str) -> str | None:
    """Why ``record``'s value (or one of the raw samples behind it) cannot be a measurement, or None."""
    values = [("value", record.value)] + [("a sample", s) for s in samples or []]
    for what, value in values:
        if _not_finite(value):
            return f"{side} {what} is {value}: not a measurement"
        if kind != "deterministic" and _is_number(value) and value < 0:
            return f"{side} {what} is negative ({value:g}): not a measurement"
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _samples(record: Record, records: dict[tuple, Record]) -> list[float] | None:
    """The raw per-call times behind a timing: its own, or those of the ``latency_s`` record it derives from."""
    samples = record.details.get("samples")
    if not samples and record.metric != "latency_s":
        sibling = records.get(figure_key(record, "latency_s"))
        samples = sibling.details.get("samples") if sibling else None
    return list(samples) if samples else None


def _measured_change(kind, before: Record, after: Record, old, new, thresholds, alpha) -> Change | None:
    """A timing or memory figure beyond its threshold: regressed, improved or not significant; else None."""
    relative = _relative(before.value, after.value)
    threshold = _threshold(before.metric, kind, thresholds)
    if relative is None or abs(relative) <= threshold:
        return None
    direction = _direction(before.metric)
    if direction == 0:
        return _change("not significant", after, before.value, after.value,
                       note=f"beyond {threshold:.0%}; neither direction is better for this figure")
    worse = relative * direction < 0
    if kind == "memory":
        return _change("regressed" if worse else "improved", after, before.value, after.value,
                       note=f"beyond {threshold:.0%} (measured once, no samples)")
    base_samples, cur_samples = _samples(before, old), _samples(after, new)
    if not base_samples or not cur_samples:
        return _change("not significant", after, before.value, after.value,
                       note=f"beyond {threshold:.0%} but no raw samples to test")
    p_value = _one_sided_p(base_samples, cur_samples, larger=worse)  # samples are times: worse is larger
    significant = p_value < alpha
    status = ("regressed" if worse else "improved") if significant else "not significant"
    note = f"beyond {threshold:.0%}, Mann-Whitney p={p_value:.3g}" + ("" if significant else f" >= {alpha}")
    return _change(status, after, before.value, after.value, p_value=p_value, note=note)


def _one_sided_p(baseline: list[float], current: list[float], *, larger: bool) -> float:
    """p-value that the current samples are stochastically larger (or smaller) than the baseline's."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(current, baseline, alternative="greater" if larger else "less").pvalue)


# ---- rendering ---------------------------------------------------------------------------------

def summary_line(comparison: Comparison) -> str:
    """One line: verdict, counts by status, unchanged figures and what happened to timings."""
    counts = comparison.counts()
    failing = [f"{n} {status}" for status, n in counts.items() if status in FAILING]
    other = [f"{n} {status}" for status, n in counts.items() if status not in FAILING]
    parts = [("FAIL: " + ", ".join(failing)) if failing else "OK: nothing regressed"]
    parts += other
    parts.append(f"{comparison.unchanged} unchanged")
    if comparison.skipped:
        parts.append(f"{comparison.skipped} timing/memory figures not compared (deterministic only)")
    elif not comparison.timings_comparable:
        parts.append(f"timings not comparable ({'; '.join(comparison.machine_difference)})")
    return " · ".join(parts)


def change_rows(comparison: Comparison) -> list[dict[str, str]]:
    """The changes as display rows (strings), worst first."""
    from archbench.report.render import format_value

    rows = []
    for change in comparison.changes:
        unit = f" {change.unit}" if change.unit and change.unit != "count" else ""
        rows.append({
            "status": change.status,
            "case": change.case or change.model,
            "metric": change.metric,
            "point": ", ".join(f"{k}={v}" for k, v in change.point.items()),
            "baseline": format_value(change.baseline) + (unit if change.baseline is not None else ""),
            "current": format_value(change.current) + (unit if change.current is not None else ""),
            "change": _describe_size(change),
            "note": change.note,
        })
    return rows


def _describe_size(change: Change) -> str:
    from archbench.report.render import format_value

    if change.relative is None or change.status == "invalid":
        return ""
    if change.baseline == 0:
        return "from 0"
    delta = change.current - change.baseline
    sign = "+" if delta > 0 else ""
    absolute = f"{sign}{format_value(delta)}" if isinstance(delta, int) else f"{sign}{delta:.4g}"
    percent = 100 * change.relative
    return f"{absolute} ({percent:+.2f}%)" if abs(percent) >= 0.01 or percent == 0 else f"{absolute} ({percent:+.2g}%)"


def to_markdown(comparison: Comparison, title: str = "archbench compare") -> str:
    """A pull-request comment: a bold summary line, then a table of the changes, worst first."""
    import pandas as pd

    lines = [f"**{title}**: {summary_line(comparison)}", ""]
    rows = change_rows(comparison)
    if rows:
        lines.append(pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True))
    else:
        lines.append("_no changes_")
    return "\n".join(lines) + "\n"


def to_github(comparison: Comparison, title: str = "archbench compare") -> str:
    """A GitHub job summary (or PR comment): a heading with the verdict, the summary line, the failing changes in a
    table and the others in a folded one; ``|`` in a cell is escaped so it cannot split the table."""
    verdict = ":x: failed" if comparison.failed else ":white_check_mark: passed"
    lines = [f"### {title}: {verdict}", "", summary_line(comparison), ""]
    rows = change_rows(comparison)
    failing = [row for row, change in zip(rows, comparison.changes) if change.failing]
    others = [row for row, change in zip(rows, comparison.changes) if not change.failing]
    if failing:
        lines += _github_table(failing) + [""]
    if others:
        lines += [f"<details><summary>{len(others)} other changes</summary>", ""] + _github_table(others) + \
            ["", "</details>", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _github_table(rows: list[dict[str, str]]) -> list[str]:
    columns = list(rows[0])
    right = ("baseline", "current", "change")

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")

    return ["| " + " | ".join(columns) + " |", "|" + "|".join("---:" if c in right else "---" for c in columns) + "|"] + \
        ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]


def to_json(comparison: Comparison) -> str:
    """The comparison as JSON: summary, counts, and every change with its raw values."""
    data = {
        "failed": comparison.failed,
        "summary": summary_line(comparison),
        "counts": comparison.counts(),
        "unchanged": comparison.unchanged,
        "timings_comparable": comparison.timings_comparable,
        "machine_difference": comparison.machine_difference,
        "not_comparable": comparison.not_comparable,
        "skipped": comparison.skipped,
        "thresholds": comparison.thresholds,
        "alpha": comparison.alpha,
        "changes": [asdict(change) for change in comparison.changes],
    }
    return json.dumps(_strict(data), indent=2, default=str, allow_nan=False) + "\n"


def _strict(value: Any) -> Any:
    """``value`` with every NaN and infinity spelled as a string, for strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def print_comparison(comparison: Comparison, console=None) -> None:
    """A rich table of the changes under the summary line, failing rows in red."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from archbench.report.render import widen_for_pipe

    console = console or Console(emoji=False)
    style = "bold red" if comparison.failed else "bold green"
    console.print(f"[{style}]{escape(summary_line(comparison))}[/{style}]", highlight=False)
    rows = change_rows(comparison)
    if not rows:
        return
    widen_for_pipe(console, [[column] + [row[column] for row in rows] for column in rows[0]])
    table = Table(header_style="bold")
    for column in rows[0]:
        table.add_column(column, justify="right" if column in ("baseline", "current", "change") else "left",
                         overflow="fold")
    for row, change in zip(rows, comparison.changes):
        table.add_row(*(escape(v) for v in row.values()), style="red" if change.failing else None)
    console.print(table)
