"""Sweeps of one input axis (sequence length, batch or image resolution) through the measurers.

:func:`run_sweep` measures every (point, model, metric group) in turn, hands each finished
record to a :class:`~archbench.results.record.RunWriter`, and ends with
:func:`sweep_summary`: per (model, metric) a log–log exponent with its R², the local
exponent between neighbouring points (a Transformer layer moves from ~1 towards 2 as T
grows), and where several models are swept the crossover of each metric.

A point that fails (out of memory, timeout, an op that breaks) becomes a record with its
error; the larger points of that model and metric group are then skipped, each as a
record saying so, and the sweep goes on with the others.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Callable

from archbench.errors import UserError
from archbench.measure.run import GROUPS, Settings, check_groups, failure_record, measure_group
from archbench.models.subject import Recipe
from archbench.results.record import Record

AXES = ("seq", "batch", "resolution")
FITTED_METRICS = ("macs", "latency_s", "peak_memory_bytes", "score_matrix_bytes", "kv_cache_bytes")
"""Per-point metrics that get exponents and crossovers (``flops`` is 2 × ``macs``: same exponent)."""


@dataclass(frozen=True)
class SweepPoint:
    """One model at one value of the swept axis: the label records carry and the recipe that builds it."""

    label: str  # the model as the sweep names it in every record
    axis: str
    value: int
    recipe: Recipe  # its spec differs from the label when the resolution sets an image_size option

    @property
    def point(self) -> dict:
        """The record point (what :attr:`Subject.point` will say, known before building)."""
        return self.recipe.known_point()

    @property
    def spec(self) -> str:
        return self.recipe.spec

    @property
    def seq(self) -> int | None:
        return self.recipe.seq

    @property
    def batch(self) -> int:
        return self.recipe.batch

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        return self.recipe.input_shape


def plan_points(models: list[str], values: list[int], axis: str = "seq", batch: int | None = None,
                template: Recipe = Recipe("")) -> list[list[SweepPoint]]:
    """The sweep's points, one list per axis value (smallest first), each with every model.

    ``template`` gives what every point shares (batch, dtype, phase...), ``batch`` overrides its
    batch. UserError for an unknown model or option, a model repeated, or a model the axis does
    not apply to.
    """
    if batch is not None:
        template = template.with_(batch=batch)
    from archbench.models import default_input
    from archbench.models.registry import resolve
    from archbench.spec import parse_model_spec

    if axis not in AXES:
        raise UserError(f"unknown sweep axis {axis!r}; expected one of {', '.join(AXES)}")
    if not models:
        raise UserError("give at least one --model")
    if len(values) < 2:
        raise UserError(f"a sweep needs at least 2 distinct values of {axis}, got {values}")
    if template.batch is not None and template.batch < 1:
        raise UserError(f"--batch must be a positive integer, got {template.batch}")
    labels = [str(parse_model_spec(m)) for m in models]
    for label in labels:
        resolve(label)
    repeated = {label for label in labels if labels.count(label) > 1}
    if repeated:
        raise UserError(f"model {sorted(repeated)[0]!r} given twice")
    defaults = {label: default_input(label) for label in labels}
    return [[_point(label, defaults[label], axis, value, template) for label in labels] for value in sorted(values)]


def preflight_sweep(models: list[str], values: list[int], metrics: list[str], axis: str, template: Recipe,
                    settings: Settings) -> list[list[SweepPoint]]:
    """The sweep's plan, every spec checked before anything is measured (UserError otherwise): each model
    builds at the first point and fits there; a larger point that cannot fit is its own error row."""
    from archbench.measure.run import preflight

    plan = plan_points(models, values, axis, template=template)
    for point in plan[0]:
        preflight(point.recipe, metrics, settings)
    for point in plan[-1]:
        preflight(point.recipe, [m for m in metrics if m not in ("latency", "memory")] or ["flops"], settings)
    return plan


def _point(label: str, default, axis: str, value: int, template: Recipe) -> SweepPoint:
    recipe = template.with_(spec=label)
    if default is None:  # a user's model: its factory's inputs, repeated to each batch size
        if axis != "batch":
            raise UserError(f"{label}: archbench does not know its input's {axis} axis; sweep it with --sweep batch "
                            "(its factory returns (module, example_inputs)), or give a registry, hf: or timm: model")
        return SweepPoint(label, axis, value, recipe.with_(batch=value))
    sequence = default.kind in ("tokens", "sequence")
    if axis == "seq":
        if not sequence:
            raise UserError(f"{label} takes {default.describe()}: sweep it with --sweep resolution or batch, not seq")
        return SweepPoint(label, axis, value, recipe.with_(seq=value))
    if axis == "batch":
        if sequence:
            return SweepPoint(label, axis, value, recipe.with_(batch=value, seq=default.seq))
        return SweepPoint(label, axis, value, recipe.with_(batch=value, input_shape=default.shape))
    if default.kind != "image":
        raise UserError(f"{label} takes {default.describe()}: --sweep resolution applies to image models")
    shape = (default.shape[0], value, value)
    from archbench.models.build import sized_for_image
    from archbench.spec import parse_model_spec

    sized = str(sized_for_image(parse_model_spec(label), shape))
    return SweepPoint(label, axis, value, recipe.with_(spec=sized, input_shape=shape))


def run_sweep(
    models: list[str],
    values: list[int],
    metrics: list[str],
    *,
    axis: str = "seq",
    template: Recipe = Recipe(""),
    settings: Settings = Settings(),
    writer=None,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[Record]:
    """Measure ``metrics`` (the metric groups a sweep measures, :func:`archbench.measure.run.group_names`) of every
    model at every value of ``axis``.

    Every point goes through :func:`archbench.measure.run.measure_group`, as every other
    caller's. Returns the per-point records followed by :func:`sweep_summary`'s. Each
    finished record goes to ``writer.add`` at once; ``progress(done, total, description)`` is
    called before each step and once at the end. Ctrl-C propagates, with every finished point written.
    """
    check_groups(metrics, sweeps=True)
    plan = plan_points(models, values, axis, template=template)
    total = sum(len(row) for row in plan) * len(metrics)
    records: list[Record] = []
    failed_at: dict[tuple[str, str], int] = {}  # (model, group) -> the axis value it first failed at
    done = 0
    for row in plan:
        for point in row:
            point_records: list[Record] = []
            for group in metrics:
                if progress:
                    progress(done, total, f"{point.label} {axis}={point.value}: {group}")
                new = _measure_step(point, group, settings, point_records, failed_at.get((point.label, group)))
                if any(r.error for r in new if r.metric == GROUPS[group].primary):
                    failed_at.setdefault((point.label, group), point.value)
                point_records.extend(new)
                records.extend(new)
                if writer is not None:
                    writer.add(*new)
                done += 1
    summary = sweep_summary(records, axis)
    records.extend(summary)
    if writer is not None:
        writer.add(*summary)
    if progress:
        progress(total, total, "done")
    return records


def _measure_step(point: SweepPoint, group: str, settings: Settings, earlier: list[Record],
                  failed_at: int | None) -> list[Record]:
    """The records of one metric group at one point; a failure or a skip becomes one error record."""
    if failed_at is not None:
        new = [failure_record(point.recipe, group, f"skipped: {group} already failed at {point.axis}={failed_at}")]
    else:  # OOM, an op without a kernel, a bad size: a row with its error, and the sweep goes on
        new = measure_group(group, point.recipe, settings, earlier)
    for record in new:
        record.model = point.label
    return new


_POINT_KEY = {"seq": "seq", "batch": "batch", "resolution": "input"}
"""The record point entry each axis moves."""


def axis_value(point: dict, axis: str) -> int:
    """The swept value of a record point: its seq, its batch, or its image side."""
    if axis == "resolution":
        return int(str(point["input"]).split("x")[-1])
    return int(point[axis])


def fit_loglog(xs, ys) -> tuple[float, float]:
    """Least-squares slope of log y against log x (the exponent k of y ∝ x^k) and its R²."""
    slope, _, r2 = _regression(xs, ys)
    return slope, r2


def fitted_values(xs, ys, at) -> list[float]:
    """The fitted power law of ``ys`` over ``xs``, evaluated at the points ``at`` (for plots)."""
    slope, intercept, _ = _regression(xs, ys)
    return [math.exp(intercept) * x**slope for x in at]


def _regression(xs, ys) -> tuple[float, float, float]:
    """Ordinary least squares of log y on log x: slope, intercept and R² (written out: scipy's import costs seconds)."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError(f"a fit needs at least 2 (x, y) pairs, got {len(xs)} x and {len(ys)} y")
    if min(xs) <= 0 or min(ys) <= 0:
        raise ValueError("a log-log fit needs positive values")
    if len(set(ys)) == 1:  # a constant: exponent 0, fitted exactly (linregress would give R² = 0/0)
        return 0.0, math.log(ys[0]), 1.0
    u, v = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mean_u, mean_v = sum(u) / len(u), sum(v) / len(v)
    suu = sum((a - mean_u) ** 2 for a in u)
    svv = sum((b - mean_v) ** 2 for b in v)
    suv = sum((a - mean_u) * (b - mean_v) for a, b in zip(u, v))
    if suu == 0:
        raise ValueError("a log-log fit needs at least two different x values")
    slope = suv / suu
    return slope, mean_v - slope * mean_u, suv * suv / (suu * svv)


def local_exponents(xs, ys) -> list[float]:
    """The slope of log y against log x between each pair of neighbouring points."""
    return [math.log(y1 / y0) / math.log(x1 / x0) for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:])]


def crossings(xs, ya, yb) -> list[float]:
    """Every x where curve a passes curve b, interpolated linearly in log–log space between points.

    Touching without passing is no crossing; equal at points between a lead and a lag, the
    crossing is the first of those points.
    """
    gaps = [math.log(a) - math.log(b) for a, b in zip(ya, yb)]
    found: list[float] = []
    last = None  # index of the last point where the curves differ
    for i, gap in enumerate(gaps):
        if gap == 0:
            continue
        if last is not None and (gaps[last] > 0) != (gap > 0):
            if i == last + 1:
                fraction = gaps[last] / (gaps[last] - gap)
                found.append(math.exp(math.log(xs[last]) + fraction * (math.log(xs[i]) - math.log(xs[last]))))
            else:
                found.append(float(xs[last + 1]))
        last = i
    return found


def crossover(xs, ya, yb) -> float | None:
    """The first x where curve a passes curve b (interpolated in log space), or None in range."""
    found = crossings(xs, ya, yb)
    return found[0] if found else None


def sweep_summary(records: list[Record], axis: str = "seq") -> list[Record]:
    """Exponents (with R²), local exponents and crossovers of the per-point records of a sweep."""
    series = _series(records, axis)
    summary: list[Record] = []
    for (model, metric), points in series.items():
        summary += _exponent_records(model, metric, points, axis)
    models = list(dict.fromkeys(model for model, _ in series))
    for metric in FITTED_METRICS:
        for a, b in itertools.combinations(models, 2):
            if (a, metric) in series and (b, metric) in series:
                summary.append(_crossover_record(a, b, metric, series[(a, metric)], series[(b, metric)], axis))
    if axis == "seq":
        summary += _attention_half_lengths(records)
    return summary


def _attention_half_lengths(records: list[Record]) -> list[Record]:
    """Per model, the sequence length where attention's share of the MACs passes one half (linear in log T)."""
    summary = []
    for (model, _), points in _series(records, "seq", ("attention_share",)).items():
        xs, ys = _xy(_measured(points), "seq")
        if not xs:  # every point failed: those rows say so
            continue
        found = next((math.exp(math.log(x0) + (0.5 - y0) / (y1 - y0) * math.log(x1 / x0))
                      for x0, x1, y0, y1 in zip(xs, xs[1:], ys, ys[1:]) if y0 < 0.5 <= y1), None)
        details = {"from": xs[0], "to": xs[-1], "shares": ys, "interpolation": "linear in log T between neighbours"}
        if found is None:
            side = "above" if ys and ys[0] >= 0.5 else "below"
            details["result"] = f"{side} one half over {xs[0]}..{xs[-1]}"
        summary.append(Record.of(model, "attention_half_length", found, _fixed_point(points, "seq"),
                              details=details))
    return summary


def measured_series(records: list[Record], axis: str = "seq") -> dict[tuple[str, str], tuple[list[int], list[float]]]:
    """(axis values, measured values) of each (model, fitted metric), failed points left out."""
    return {key: _xy(_measured(points), axis) for key, points in _series(records, axis).items()}


def _series(records: list[Record], axis: str, metrics=FITTED_METRICS) -> dict[tuple[str, str], list[Record]]:
    """Records of each (model, metric of ``metrics``), by increasing axis value."""
    series: dict[tuple[str, str], list[Record]] = {}
    for r in records:
        if r.metric in metrics and _POINT_KEY[axis] in r.point:
            series.setdefault((r.model, r.metric), []).append(r)
    return {key: sorted(rs, key=lambda r: axis_value(r.point, axis)) for key, rs in series.items()}


def _measured(points: list[Record]) -> list[Record]:
    """The records that carry a positive measured value (failed and skipped points left out)."""
    return [r for r in points if r.error is None and isinstance(r.value, (int, float)) and r.value > 0]


def _xy(points: list[Record], axis: str) -> tuple[list[int], list[float]]:
    return [axis_value(r.point, axis) for r in points], [float(r.value) for r in points]


def _fixed_point(points: list[Record], axis: str) -> dict:
    """What stays fixed over the sweep: the point entries every record shares (the batch of a seq sweep...)."""
    first = points[0].point
    return {k: v for k, v in first.items() if k != _POINT_KEY[axis] and all(r.point.get(k) == v for r in points)}


def _exponent_records(model: str, metric: str, points: list[Record], axis: str) -> list[Record]:
    good = _measured(points)
    xs, ys = _xy(good, axis)
    records = [
        Record.of(model, f"{metric}_local_exponent", k, r1.point, details={"from": x0, "to": x1, "axis": axis})
        for k, r1, x0, x1 in zip(local_exponents(xs, ys), good[1:], xs, xs[1:])
    ]
    name, fixed = f"{metric}_exponent", _fixed_point(points, axis)
    if len(xs) < 2:
        error = f"needs at least 2 measured points, got {len(xs)}"
        return records + [Record.of(model, name, None, fixed, error=error, details={"axis": axis})]
    exponent, r2 = fit_loglog(xs, ys)
    details = {"r2": r2, "axis": axis, "from": xs[0], "to": xs[-1], "points": len(xs), "of": metric}
    warnings = [f"{metric}: {len(points) - len(xs)} of {len(points)} points failed and are left out of the fit"] \
        if len(xs) < len(points) else []
    return records + [Record.of(model, name, exponent, fixed, warnings=warnings, details=details)]


def _crossover_record(a: str, b: str, metric: str, points_a: list[Record], points_b: list[Record], axis: str) -> Record:
    xa, ya = _xy(_measured(points_a), axis)
    xb, yb = _xy(_measured(points_b), axis)
    common = sorted(set(xa) & set(xb))
    by_a, by_b = dict(zip(xa, ya)), dict(zip(xb, yb))
    name, model = f"{metric}_crossover", f"{a} vs {b}"
    fixed = _fixed_point(points_a + points_b, axis)
    if len(common) < 2:
        error = f"needs at least 2 points measured for both, got {len(common)}"
        return Record.of(model, name, None, fixed, axis=axis, error=error)
    ya, yb = [by_a[x] for x in common], [by_b[x] for x in common]
    found = crossings(common, ya, yb)

    def lower(i: int) -> str:
        return a if ya[i] < yb[i] else b if yb[i] < ya[i] else "equal"

    details = {"of": metric, "axis": axis, "from": common[0], "to": common[-1], "crossings": found,
               "lower_at_start": lower(0), "lower_at_end": lower(-1)}
    if not found:
        details["result"] = f"none in range {common[0]}..{common[-1]} ({lower(0)} lower throughout)"
    return Record.of(model, name, found[0] if found else None, fixed, axis=axis, details=details)
