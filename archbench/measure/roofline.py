"""The roofline: how fast a model can run on a machine, from the FLOPs and bytes of each op it runs.

Every op call the dispatch engine counted (:class:`~archbench.measure.flops.OpCall`) takes
``max(FLOPs / peak, bytes / bandwidth)`` on a machine (:mod:`archbench.measure.hardware`), its
FLOPs being all its arithmetic: 2 × MACs + other FLOPs. A module's or an operator's predicted time
is the sum over its calls, the model's the sum over all of them (ops run one after another, none
overlapping). Arithmetic intensity is FLOPs per byte moved; a group whose intensity is below the
machine's ridge point (peak ÷ bandwidth) is memory-bound there, above it compute-bound.

The prediction is an ideal: every kernel at the datasheet's peak or bandwidth, nothing reused from
cache, no launch overhead. ``measured ÷ predicted`` (from the one latency path) says how far from it
the machine at hand runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archbench.measure.flops import FlopCount, OpCall, module_names
from archbench.measure.hardware import Machine
from archbench.results.record import Record

FLOPS_DEFINITION = "2 x macs + other_flops"


@dataclass(frozen=True)
class Roof:
    """One op, module or model on one machine."""

    name: str
    flops: int  # 2 × MACs + other FLOPs
    bytes_moved: int
    time_s: float  # predicted: the sum of its calls' max(flops / peak, bytes / bandwidth)
    memory_s: float  # the sum of its calls' bytes / bandwidth
    ridge: float

    @property
    def intensity(self) -> float | None:
        """FLOPs per byte moved (None when it moves nothing)."""
        return self.flops / self.bytes_moved if self.bytes_moved else None

    @property
    def bound(self) -> str:
        """``memory`` or ``compute``: which limit sets its time here (intensity against the ridge point)."""
        intensity = self.intensity
        return "compute" if intensity is None or intensity >= self.ridge else "memory"


def call_time(call: OpCall, peak: float, bandwidth: float) -> float:
    """Predicted seconds of one op call: max(FLOPs / peak, bytes / bandwidth)."""
    return max(call.flops / peak, call.bytes_moved / bandwidth)


def roofs(calls: list[OpCall], machine: Machine, dtype: str, by: str | None = None,
          names: list[str] | None = None) -> list[Roof]:
    """The model's roof (``by=None``), or one per module or operator (``by``), on ``machine`` at ``dtype``."""
    peak, bandwidth = machine.peak(dtype), machine.bandwidth
    if by is None:
        members = {"": calls}
    elif by == "operator":
        members = {}
        for c in calls:
            members.setdefault(c.op, []).append(c)
    else:
        members = {name: [c for c in calls if not name or c.module == name or c.module.startswith(name + ".")]
                   for name in (module_names(calls) if names is None else names)}
    return [Roof(name, sum(c.flops for c in inside), sum(c.bytes_moved for c in inside),
                 sum(call_time(c, peak, bandwidth) for c in inside),
                 sum(c.bytes_moved for c in inside) / bandwidth, machine.ridge(dtype))
            for name, inside in members.items()]


def roofline_records(label: str, point: dict[str, Any], count: FlopCount, machines: list[Machine], dtype: str, *,
                     batch: int, decode: bool = False, by: str | None = None, depth: int | None = None,
                     measured_s: float | None = None) -> list[Record]:
    """Records of the model on each machine: ``predicted_latency_s`` (details: FLOPs, bytes, intensity, bound,
    the machine's figures), ``predicted_tokens_s`` (decode: batch tokens a step) or ``predicted_items_s``, and,
    with ``measured_s`` (the measured latency, on this-cpu), ``roofline_ratio`` = measured ÷ predicted; then with
    ``by`` one ``arithmetic_intensity`` (details: bound) and ``predicted_latency_s`` row per module or operator
    and machine."""
    from archbench.measure.params import module_depth

    records = [Record.of(label, "arithmetic_intensity", roofs_intensity(count.calls), point,
                         warnings=list(count.warnings),
                         details={"flops_definition": FLOPS_DEFINITION, "bytes_moved": count.bytes_moved})]
    rate = "predicted_tokens_s" if decode else "predicted_items_s"
    usable = []
    for machine in machines:
        where = {**point, "hardware": machine.name}
        if dtype not in machine.peaks:
            records.append(Record.of(label, "predicted_latency_s", None, where,
                                     error=f"{machine.name} lists no {dtype} peak (it has {', '.join(machine.peaks)})"))
            continue
        usable.append(machine)
        model = roofs(count.calls, machine, dtype)[0]
        records.append(Record.of(label, "predicted_latency_s", model.time_s, where,
                                 details=_details(model, machine, dtype)))
        records.append(Record.of(label, rate, batch / model.time_s if model.time_s else None, where,
                                 details={"definition": f"batch / predicted_latency_s ({batch} "
                                                        f"{'tokens a decode step' if decode else 'items'})"}))
        if measured_s is not None and machine.name == "this-cpu":
            records.append(Record.of(label, "roofline_ratio", measured_s / model.time_s, where,
                                     details={"measured_latency_s": measured_s, "predicted_latency_s": model.time_s}))
    if by is not None:
        for machine in usable:
            parts = [r for r in roofs(count.calls, machine, dtype, by) if r.name and r.time_s]
            if by == "module":
                parts = [r for r in parts if depth is None or module_depth(r.name) <= depth]
            else:
                parts.sort(key=lambda r: -r.time_s)
            for part in parts:
                where = {**point, "hardware": machine.name, by: part.name}
                records.append(Record.of(label, "arithmetic_intensity", part.intensity, where,
                                         details={"bound": part.bound, "ridge_flop_per_byte": part.ridge}))
                records.append(Record.of(label, "predicted_latency_s", part.time_s, where,
                                         details=_details(part, machine, dtype)))
    return records


def roofs_intensity(calls: list[OpCall]) -> float | None:
    """The model's arithmetic intensity: all its FLOPs (2 × MACs + other) per byte moved."""
    moved = sum(c.bytes_moved for c in calls)
    return sum(c.flops for c in calls) / moved if moved else None


def _details(roof: Roof, machine: Machine, dtype: str) -> dict[str, Any]:
    return {"flops": roof.flops, "flops_definition": FLOPS_DEFINITION, "bytes_moved": roof.bytes_moved,
            "arithmetic_intensity": roof.intensity, "bound": roof.bound, "memory_time_s": roof.memory_s,
            "ridge_flop_per_byte": roof.ridge, "peak_flops_s": machine.peak(dtype),
            "bandwidth_bytes_s": machine.bandwidth,
            "dtype": dtype, "source": machine.source}


def roofline(model, inputs=None, *, hardware: str = "all", dtype: str | None = None, by: str | None = None,
             depth: int | None = None, measure: bool = False, machines_file: str | None = None,
             threads: int | None = None, min_time: float = 1.0) -> list[Record]:
    """The roofline records of ``model`` on ``hardware`` (``archbench.roofline(model, inputs, hardware="h100-sxm")``).

    ``model`` is a model argument or a :class:`~archbench.models.subject.Recipe` (measured through
    :func:`archbench.measure.run.measure`'s roofline group, as the command and suites do), or an ``nn.Module``
    with its example ``inputs``. ``measure`` also times it (the latency group's path) for measured ÷ predicted.
    """
    from archbench.measure.flops import check_count_options, count_flops
    from archbench.measure.hardware import machines
    from archbench.measure.latency import measure_latency
    from archbench.measure.run import Settings
    from archbench.measure.run import measure as measure_groups
    from archbench.models.subject import Recipe, Subject

    by = check_count_options(by=by, depth=depth)
    if isinstance(model, (str, Recipe)):
        recipe = Recipe(model, dtype=dtype or "float32") if isinstance(model, str) else model
        settings = Settings(dtype=recipe.dtype, threads=threads, min_time=min_time, peak=False, by=by, depth=depth,
                            hardware=hardware, machines_file=machines_file)
        return measure_groups(recipe, ["latency", "roofline"] if measure else ["roofline"], settings, failures="raise")
    subject = Subject.from_module(model, inputs)
    chosen = machines(hardware, machines_file, threads, dtype or subject.dtype)
    measured = None
    if measure:
        timed = measure_latency(subject, threads=threads, min_time=min_time)
        measured = next(r.value for r in timed if r.metric == "latency_s")
    return roofline_records(subject.label, dict(subject.point), count_flops(subject, engine="dispatch"), chosen,
                            dtype or subject.dtype, batch=subject.batch, decode=subject.phase == "decode", by=by,
                            depth=depth, measured_s=measured)
