"""The one way to measure a model for a group of metrics: every caller goes through :func:`measure`.

The commands, suites, ``scaling``, the claims and the Python API all hand a
:class:`~archbench.models.subject.Recipe` (what to build) and :class:`Settings` (how to
measure) to :func:`measure`, which builds the subject on the device each group needs:

- ``params``: on the meta device (nothing allocated);
- ``flops``: on the counting device (:func:`counting_device`: meta, or the CPU for the fvcore engine;
  recurrent layers are counted at the call there, :mod:`archbench.measure.recurrent`);
- ``latency``: on the real device, after checking that weights, inputs and the largest
  intermediate tensor fit; MACs from an earlier ``flops`` group of the same point, else
  counted, give the achieved FLOP/s and its fraction of the measured matmul peak;
- ``memory``: in a fresh process built from the recipe.

:data:`GROUPS` is the one table of metric groups: each group's primary metric (a failure is
one record with its error under it, and the other groups go on), its measurer, the settings it
reads and whether a sweep measures it at each point. Suites, sweeps, claims, the commands and
the API read it, and a test stubs a group's measurer there, in one place. "Add X to latency" belongs in
:mod:`archbench.measure.latency`; "add a model source" in :mod:`archbench.models`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from archbench.errors import UserError, describe_error
from archbench.models.subject import Recipe, Subject
from archbench.results.record import Record



@dataclass(frozen=True)
class Settings:
    """How every group is measured (each caller sets what it exposes; the rest keep these defaults)."""

    device: str = "cpu"  # where latency and memory run
    dtype: str = "float32"
    threads: int | None = None  # latency: torch threads (None: torch's current count)
    min_time: float = 1.0  # latency: seconds of timed calls
    compile: bool = False  # latency: torch.compile first
    peak: bool = True  # latency: attach the fraction of the measured matmul peak
    timeout_s: float | None = None  # memory: seconds for the fresh process; latency: seconds of timing
    engine: str = "auto"  # flops: auto, fvcore or dispatch
    counting_device: str = "auto"  # flops: auto, cpu, meta or cuda
    backward: bool = False  # flops: forward + backward of one training step
    attention_count: str = "full"  # flops: full L×S scores, or only the pairs a causal/window mask keeps
    by: str | None = None  # flops: also per "module" or per "operator"
    depth: int | None = None  # params and flops --by module: module rows down to this depth
    hardware: str = "all"  # roofline: a machine of archbench.measure.hardware, a comma-separated list, or all
    machines_file: str | None = None  # roofline: a YAML file of more machines


def measure(recipe: Recipe | str, groups: list[str] | tuple[str, ...], settings: Settings = Settings(),
            earlier: list[Record] | None = None, failures: str = "row", meta: Subject | None = None) -> list[Record]:
    """Records of every group in ``groups`` for the model ``recipe``; ``earlier`` records of the same point
    (a ``flops`` group measured before) are reused. ``failures="raise"`` lets a group's exception propagate
    instead of becoming a row (a command measuring one figure has nothing else to show). ``meta`` is the
    recipe already built on the meta device (:func:`preflight`'s); the groups share one such build."""
    builds = Builds(Recipe(recipe) if isinstance(recipe, str) else recipe, meta)
    records: list[Record] = list(earlier or [])
    start = len(records)
    for group in groups:
        records += _measure_group(group, builds, settings, records, failures)
    return records[start:]


def measure_group(group: str, recipe: Recipe, settings: Settings, earlier: list[Record],
                  failures: str = "row") -> list[Record]:
    """The records of one group; a failure is one record with its error under the group's primary metric."""
    return _measure_group(group, Builds(recipe), settings, earlier, failures)


class Builds:
    """One recipe's subjects within one measurement (what a group's measurer is handed): ``recipe``, and
    :meth:`on` a device, built on the meta device at most once and that build reused by each real device's
    fits check."""

    def __init__(self, recipe: Recipe, meta: Subject | None = None):
        self.recipe = recipe
        self._meta = meta

    def on(self, device: str) -> Subject:
        """The recipe built on ``device``."""
        if self._meta is None:
            self._meta = self.recipe.build("meta")
        return self._meta if device == "meta" else self.recipe.build(device, self._meta)


def _measure_group(group: str, builds: Builds, settings: Settings, earlier: list[Record],
                   failures: str) -> list[Record]:
    check_groups([group])
    try:
        return GROUPS[group].measure(builds, settings, earlier)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # an op that breaks, out of memory, a model too big: a row, and the rest go on
        if failures == "raise":
            if raised_in_forward(exc):  # an input the model refuses (channels, smaller than its kernels)
                point = ", ".join(f"{k}={v}" for k, v in builds.recipe.known_point().items())
                raise UserError(f"{builds.recipe.spec}: its forward failed: {describe_error(exc)} (at {point})") from None
            raise
        return [failure_record(builds.recipe, group, exc)]


def raised_in_forward(exc: BaseException) -> bool:
    """Whether torch raised ``exc`` inside a module's ``forward`` (the model refused its input), not archbench."""
    import os
    import traceback

    from torch import nn

    import archbench

    frames = [frame for frame, _ in traceback.walk_tb(exc.__traceback__)]
    if not frames or frames[-1].f_code.co_filename.startswith(os.path.dirname(archbench.__file__)):
        return False
    return any(frame.f_code.co_name == "forward" and isinstance(frame.f_locals.get("self"), nn.Module)
               for frame in frames)


def failure_record(recipe: Recipe, group: str, exc: BaseException | str) -> Record:
    """The record of a group that could not be measured: value None, the error in one line."""
    metric = GROUPS[group].primary
    error = exc if isinstance(exc, str) else describe_error(exc)
    return Record.of(recipe.spec, metric, None, recipe.known_point(), error=error)


def preflight(recipe: Recipe, groups, settings: Settings) -> Subject:
    """Check before measuring anything that the model builds and the request makes sense (UserError otherwise).

    Returns the subject built on the meta device. Timing or measuring memory on meta, or
    inputs and intermediate tensors that could never fit on the device, are refused here.
    """
    from archbench.models.build import check_device

    check_device(settings.device)
    on_device = [g for g in groups if g in GROUPS and GROUPS[g].on_device]
    if settings.device == "meta" and on_device:
        raise UserError("latency and memory need a real device (cpu or cuda); the meta device computes nothing")
    from archbench.measure.flops import check_count_options
    from archbench.measure.training import check_training

    check_count_options(settings.engine, settings.attention_count, settings.by, settings.depth)
    check_training(recipe)
    meta = recipe.build("meta")
    if on_device:
        from archbench.measure.latency import DEFAULT_TIMEOUT_S, TimingTimeout, deadline

        seconds = settings.timeout_s or DEFAULT_TIMEOUT_S
        try:
            with deadline(seconds):  # a meta forward sizes the largest tensor: one that hangs is refused
                check_inputs_fit(meta, settings.device)
        except TimingTimeout:
            raise UserError(f"{meta.label}: one forward on the meta device did not finish within {seconds:g} s "
                            "(the limit of --timeout-s)") from None
    if recipe.phase == "train" and "latency" in groups:  # timed steps run in this process: refuse what cannot fit
        from archbench.measure.training import check_step_fits

        check_step_fits(meta, settings.device)
    return meta


def check_inputs_fit(meta: Subject, device: str) -> None:
    """UserError when the inputs plus the largest intermediate tensor of one forward cannot fit on ``device``."""
    from archbench.measure.memory import largest_activation_bytes
    from archbench.models.footprint import available_memory_bytes
    from archbench.models.subject import input_bytes

    available = available_memory_bytes(device)
    if available is None:
        return
    inputs = input_bytes(meta)
    if inputs > available:
        raise UserError(f"{meta.label}: its inputs alone need {inputs:,} bytes but only {available:,} bytes are "
                        f"available on {device}; refused before allocating")
    largest = largest_activation_bytes(meta)
    if largest and inputs + largest > available:
        raise UserError(f"{meta.label}: one forward makes a {largest:,}-byte tensor (plus {inputs:,} bytes of "
                        f"inputs) but only {available:,} bytes are available on {device}; refused before allocating "
                        "(count it with `archbench flops`, which runs on the meta device)")


def counting_device(settings: Settings) -> str:
    """Where MACs are counted: meta (fast, any size), except for the fvcore engine (cpu: jit tracing)."""
    if settings.counting_device != "auto":
        return settings.counting_device
    return "cpu" if settings.engine == "fvcore" else "meta"


def _params(builds: Builds, settings: Settings, earlier: list[Record]) -> list[Record]:
    from archbench.measure.params import param_records

    return param_records(builds.on("meta"), settings.depth)


def _flops(builds: Builds, settings: Settings, earlier: list[Record]) -> list[Record]:
    from archbench.measure.flops import flop_records

    if builds.recipe.phase == "train":  # one optimizer step: forward, loss, backward, recompute, optimizer
        from archbench.measure import training

        return training.flop_records(_counting_subject(builds, settings), by=settings.by, depth=settings.depth,
                                     engine=settings.engine, attention_count=settings.attention_count)
    if settings.backward and not builds.recipe.train:
        builds = Builds(builds.recipe.with_(train=True))
    subject = _counting_subject(builds, settings)
    options = dict(backward=settings.backward, by=settings.by, depth=settings.depth, engine=settings.engine,
                   attention_count=settings.attention_count)
    try:
        return flop_records(subject, **options)
    except UserError:
        raise
    except Exception as exc:
        if subject.device != "meta" or settings.counting_device == "meta":
            raise
        # a forward that needs real data (BART's padding mask calls .item()): count it on the cpu, and say so
        records = flop_records(builds.on("cpu"), **options)
        records[0].warnings.append(f"counted on cpu: its forward cannot run on the meta device ({describe_error(exc)})")
        return records


def _counting_subject(builds: Builds, settings: Settings) -> Subject:
    return builds.on(counting_device(settings))


def count_macs(builds: Builds, settings: Settings) -> tuple[int | None, list[str]]:
    """The MACs of one forward at the recipe's point and what a reader must know about them.

    When counting fails the MACs are None and the warning says why, so the achieved FLOP/s
    rows are missing visibly; ops without a formula make achieved FLOP/s a lower bound.
    """
    from archbench.measure.flops import count_flops
    from archbench.measure.latency import TimingTimeout

    try:
        count = count_flops(_counting_subject(builds, replace(settings, backward=False)),
                            attention_count=settings.attention_count)
    except TimingTimeout:  # the latency's time is up: that is its answer
        raise
    except Exception as exc:  # an op the counter cannot trace: the latency still stands
        return None, [f"MACs not counted ({describe_error(exc)}): no achieved FLOP/s"]
    if count.significant_uncounted:
        ops = ", ".join(sorted(count.significant_uncounted))
        return count.macs, [f"achieved FLOP/s is a lower bound: no MAC formula for {ops}"]
    return count.macs, []


def _latency(builds: Builds, settings: Settings, earlier: list[Record]) -> list[Record]:
    from archbench.measure.latency import DEFAULT_TIMEOUT_S, deadline

    with deadline(settings.timeout_s or DEFAULT_TIMEOUT_S):  # a forward that hangs: an error row
        return _timed_latency(builds, settings, earlier)


def _timed_latency(builds: Builds, settings: Settings, earlier: list[Record]) -> list[Record]:
    from archbench.measure.latency import measure_latency

    check_inputs_fit(builds.on("meta"), settings.device)  # a point of a sweep that cannot fit: its error row
    if builds.recipe.phase == "train":  # whole optimizer steps, through the same latency path
        from archbench.measure.training import step_latency_records

        return step_latency_records(builds.on(settings.device), _counting_subject(builds, settings), settings,
                                    *(_peak(settings) if settings.peak else (None, [])))
    macs = next((r.value for r in earlier if r.metric == "macs" and r.error is None
                 and not {"module", "operator"} & set(r.point)), None)
    mac_warnings: list[str] = []
    if macs is None:
        macs, mac_warnings = count_macs(builds, settings)
    peak, peak_warnings = _peak(settings) if settings.peak and macs is not None else (None, [])
    subject = builds.on(settings.device)
    records = measure_latency(subject, threads=settings.threads, min_time=settings.min_time,
                              compile=settings.compile, macs=macs, peak_flops=peak)
    by_metric = {r.metric: r for r in records}
    by_metric.get("achieved_flops_s", by_metric["latency_s"]).warnings.extend(mac_warnings + peak_warnings)
    return records


def _peak(settings: Settings) -> tuple[float | None, list[str]]:
    import torch

    from archbench.measure.peak import measure_peak_flops

    try:
        return measure_peak_flops(settings.device, settings.dtype, settings.threads or torch.get_num_threads()), []
    except Exception as exc:  # the figure goes without its peak fraction, and says why
        return None, [f"no peak_fraction: the matmul peak could not be measured ({describe_error(exc)})"]


def _memory(builds: Builds, settings: Settings, earlier: list[Record]) -> list[Record]:
    from archbench.measure.memory import measure_memory

    check_inputs_fit(builds.on("meta"), settings.device)
    return measure_memory(builds.recipe, device=settings.device, timeout_s=settings.timeout_s, meta=builds.on("meta"))


def _roofline(builds: Builds, settings: Settings, earlier: list[Record]) -> list[Record]:
    """Predicted time on each machine of ``settings.hardware`` from every op's FLOPs and bytes (the dispatch
    engine's count); a latency measured earlier in the same measurement gives measured ÷ predicted on this-cpu."""
    from archbench.measure.flops import count_flops
    from archbench.measure.hardware import machines
    from archbench.measure.roofline import roofline_records

    chosen = machines(settings.hardware, settings.machines_file, settings.threads, settings.dtype)
    subject = _counting_subject(builds, settings)
    count = count_flops(subject, engine="dispatch", attention_count=settings.attention_count)
    measured = next((r.value for r in earlier if r.metric == "latency_s" and r.error is None
                     and r.details.get("device") == "cpu" and not {"module", "operator"} & set(r.point)), None)
    return roofline_records(subject.label, dict(subject.point), count, chosen, settings.dtype, batch=subject.batch,
                            decode=subject.phase == "decode", by=settings.by, depth=settings.depth,
                            measured_s=measured)


@dataclass(frozen=True)
class Group:
    """One metric group: its name, the metric its failure is filed under, its measurer, the :class:`Settings`
    fields it reads, whether a sweep measures it at each point (params do not depend on the swept axis) and
    whether it runs on the real device (timing and memory: a whole device to itself, never meta)."""

    name: str
    primary: str
    measure: Callable[[Builds, Settings, list], list[Record]]  # (builds, settings, records of this point so far)
    reads: tuple[str, ...]
    sweeps: bool
    on_device: bool = False


GROUPS: dict[str, Group] = {g.name: g for g in (
    Group("params", "params", _params, ("depth",), sweeps=False),
    Group("flops", "macs", _flops, ("engine", "counting_device", "backward", "attention_count", "by", "depth"),
          sweeps=True),
    Group("latency", "latency_s", _latency, ("device", "dtype", "threads", "min_time", "compile", "peak", "timeout_s",
                                             "engine", "counting_device", "attention_count"),  # + MACs for FLOP/s
          sweeps=True, on_device=True),
    Group("memory", "peak_memory_bytes", _memory, ("device", "timeout_s"), sweeps=True, on_device=True),
    Group("roofline", "predicted_latency_s", _roofline, ("dtype", "threads", "attention_count", "by", "depth",
                                                         "hardware", "machines_file"), sweeps=True),
)}
"""Metric group name -> :class:`Group`: the one table every caller reads (and the one seam a test stubs)."""


def group_names(sweeps: bool = False) -> tuple[str, ...]:
    """The metric groups, in table order; with ``sweeps``, those a sweep measures at each point."""
    return tuple(name for name, group in GROUPS.items() if group.sweeps or not sweeps)


def check_groups(groups, sweeps: bool = False, what: str = "metric") -> None:
    """UserError naming the first of ``groups`` that is not a metric group (of a sweep, with ``sweeps``)."""
    allowed = group_names(sweeps)
    unknown = [g for g in groups if g not in allowed]
    if unknown or not groups:
        raise UserError(f"unknown {what} {(unknown or [''])[0]!r}; expected "
                        f"{'some' if len(groups) != 1 else 'one'} of {', '.join(allowed)}")
