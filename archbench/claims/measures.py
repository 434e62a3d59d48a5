"""Measurement kinds of ``archbench/claims/claims.yaml``: each turns a definition into named figures plus records.

A kind is a function ``(definition, context) -> Measured`` registered with :func:`kind`. The
figures it returns are named ``<key>`` (the runner prefixes them with the measurement's name,
so a check refers to ``rnn.params`` or ``sweep.latency_s.lstm``); every figure is also a
:class:`Record` in the run document. Failures become records with ``error``, never silence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from archbench.errors import UserError
from archbench.metrics import UNITS, is_known, unit_of
from archbench.results.record import Record

KINDS: dict[str, Callable[[dict, "Context"], "Measured"]] = {}


@dataclass
class Context:
    """What every measurement may use: the run's device and its time budget for timings."""

    device: str = "cpu"
    min_time: float = 0.2


@dataclass
class Measured:
    """Named figures (numbers, lists, booleans, strings) and the records that carry them."""

    figures: dict[str, Any] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)  # timing figure -> confidence interval

    def add(self, key: str, value: Any, unit: str, model: str, point: dict | None = None, *, metric: str | None = None,
            **details) -> None:
        """One figure and its record (metric: the key's last part unless given; the key goes in details.figure). A
        metric of the table takes the table's unit; a claim's own figure (an attribute, a count of modules) ``unit``,
        which must be one of the table's units."""
        self.figures[key] = value
        name = metric or key.rsplit(".", 1)[-1]
        if is_known(name):
            unit = unit_of(name)
        elif unit not in UNITS:
            raise ValueError(f"claim figure {key}: unit {unit!r} is not in archbench/metrics.py's UNITS")
        self.records.append(Record(model, name, value, unit, dict(point or {}), details={"figure": key, **details}))

    def fail(self, key: str, model: str, error: str) -> None:
        """A figure that could not be measured: a record with its error, no figure."""
        name = key.rsplit(".", 1)[-1]
        unit = unit_of(name) if is_known(name) else ""
        self.records.append(Record(model, name, None, unit, details={"figure": key}, error=error))


def kind(name: str):
    """Register a measurement kind under ``name``."""

    def wrap(function):
        KINDS[name] = function
        return function

    return wrap


def measure(definition: dict, context: Context) -> Measured:
    """Run one measurement definition (its ``kind`` picks the function)."""
    return KINDS[definition["kind"]](definition, context)


def _model_options(value: str | dict) -> dict:
    return {"model": value} if isinstance(value, str) else dict(value)


def _recipe(options: dict):
    """What a measurement definition's model options build."""
    from archbench.models.subject import Recipe
    from archbench.spec import parse_shape

    shape = parse_shape(options["input"]) if options.get("input") else None
    return Recipe(options["model"], options.get("batch", 1), options.get("seq"), shape,
                  options.get("dtype", "float32"), head=bool(options.get("head", False)))


def _build(options: dict, device: str):
    return _recipe(options).build(device)


def _settings(context: "Context"):
    from archbench.measure.run import Settings

    return Settings(device=context.device, min_time=context.min_time)


@kind("profile")
def profile(definition: dict, context: Context) -> Measured:
    """Params (with ``without`` variants), MACs, latency, memory, published figures and attributes of models.

    ``published`` reads torchvision's own table (for torchvision models; others have none).

    ``models`` maps an alias to a spec or to ``{model, seq, input, without: {variant: [module
    prefixes]}, attributes: {name: dotted.attribute}}``; ``metrics`` lists what to measure.
    """
    from archbench.measure.params import count_params

    metrics = definition.get("metrics", ["params"])
    out = Measured()
    for alias, value in definition["models"].items():
        options = _model_options(value)
        try:
            built = _build(options, "meta")
        except UserError as exc:
            out.fail(f"{alias}.params", options["model"], str(exc))
            continue
        spec, point = built.label, built.point
        if "params" in metrics:
            out.add(f"{alias}.params", count_params(built.module).total, "count", spec, point)
            for variant, prefixes in options.get("without", {}).items():
                out.add(f"{alias}.params_{variant}", params_without(built.module, prefixes), "count", spec, point,
                        without=list(prefixes))
        for name, path in options.get("attributes", {}).items():
            out.add(f"{alias}.{name}", _attribute(built.module, path), "", spec, point, attribute=path)
        if "active" in metrics:
            from archbench.measure.architecture import active_params

            out.add(f"{alias}.params_active", active_params(built.module), "count", spec, point, metric="params_active")
        if "kv_cache" in metrics:
            from archbench.measure.memory import kv_cache

            out.add(f"{alias}.kv_cache_bytes", kv_cache(built), "bytes", spec, point, metric="kv_cache_bytes")
        if "macs" in metrics:
            _macs(out, alias, options, context)
        if "published" in metrics and built.source == "torchvision":
            _published(out, alias, built.name, spec, point)
        if "latency" in metrics:
            _latency(out, alias, options, context)
        if "memory" in metrics:
            _memory(out, alias, options, context)
    return out


def params_without(module, prefixes: list[str]) -> int:
    """Parameters outside the submodules whose names start with any of ``prefixes`` (e.g. ``fc``)."""
    total = 0
    for name, parameter in module.named_parameters():
        if not any(name == p or name.startswith(p + ".") for p in prefixes):
            total += parameter.numel()
    return total


def _attribute(module, path: str):
    value = module
    for part in path.split("."):
        value = value[int(part)] if part.isdigit() else getattr(value, part)
    return len(value) if hasattr(value, "__len__") and not isinstance(value, str) else value


def _macs(out: Measured, alias: str, options: dict, context: "Context") -> None:
    from archbench.measure.run import measure

    macs = measure(_recipe(options), ["flops"], _settings(context))[0]
    if macs.error:  # a missing counter or a failed count is a record, not a crash
        out.fail(f"{alias}.macs", macs.model, macs.error)
        return
    out.add(f"{alias}.macs", macs.value, "MAC", macs.model, macs.point)
    out.records[-1].warnings.extend(macs.warnings)  # each uncounted op is already one of these warnings
    out.add(f"{alias}.flops", 2 * macs.value, "FLOP", macs.model, macs.point)


def _published(out: Measured, alias: str, name: str, spec: str, point: dict) -> None:
    """torchvision's own table for its models: num_params and GMACs (``_ops``) of the default weights."""
    from torchvision.models import get_model_weights

    try:
        meta = get_model_weights(name).DEFAULT.meta
    except (ValueError, KeyError, AttributeError) as exc:
        out.fail(f"{alias}.published_params", spec, f"no published torchvision figures: {exc}")
        return
    out.add(f"{alias}.published_params", meta["num_params"], "count", spec, point, source="torchvision weights meta")
    out.add(f"{alias}.published_macs", round(meta["_ops"] * 1e9), "MAC", spec, point, source="torchvision weights meta (_ops GMACs)")


def _latency(out: Measured, alias: str, options: dict, context: Context) -> None:
    from archbench.measure.run import measure

    for record in measure(_recipe(options), ["latency"], _settings(context)):
        record.details.setdefault("device", context.device)
        out.records.append(record)
        if record.metric == "latency_s":
            if record.error is None:
                out.figures[f"{alias}.latency_s"] = record.value
            else:
                record.details["figure"] = f"{alias}.latency_s"


def _memory(out: Measured, alias: str, options: dict, context: Context) -> None:
    from archbench.measure.run import measure

    for record in measure(_recipe(options), ["memory"], _settings(context)):
        out.records.append(record)
        if record.error is None and record.metric in ("peak_memory_bytes", "weights_bytes", "score_matrix_bytes"):
            out.figures[f"{alias}.{record.metric}"] = record.value


@kind("layer")
def layer(definition: dict, context: Context) -> Measured:
    """One ``torch.nn`` layer (``layer: Linear``, ``args: {...}``) on meta: params, weights, output shapes.

    With ``inputs`` (shapes without batch), the layer runs on each: ``out_shapes`` and the
    ``area_ratio`` of input to output (product of the last two sizes).
    """
    import torch
    from torch import nn

    name = definition["layer"]
    if not hasattr(nn, name):
        raise UserError(f"layer {name!r} is not a torch.nn module")
    with torch.device("meta"):
        module = getattr(nn, name)(**definition.get("args", {}))
    label = f"nn.{name}(" + ", ".join(f"{k}={v}" for k, v in definition.get("args", {}).items()) + ")"
    out = Measured()
    out.add("params", sum(p.numel() for p in module.parameters()), "count", label)
    weight = getattr(module, "weight", None)
    if weight is not None:
        out.add("weights", weight.numel(), "count", label)
    inputs = definition.get("inputs", [])
    if inputs:
        shapes = [list(module(torch.empty(1, *shape, device="meta")).shape[1:]) for shape in inputs]
        out.add("in_shapes", [list(s) for s in inputs], "", label)
        out.add("out_shapes", shapes, "", label)
        out.add("area_ratio", [math.prod(i[-2:]) / math.prod(o[-2:]) for i, o in zip(inputs, shapes)], "x", label)
    return out


@kind("dense_vs_conv")
def dense_vs_conv(definition: dict, context: Context) -> Measured:
    """A K×K conv (same padding) and the dense layer with its input and output volumes, per resolution.

    Both are real modules on meta; the conv runs on each resolution. Figures: ``resolutions``,
    ``conv_params``, ``dense_params`` (lists) and ``conv_runs`` (every resolution ran).
    """
    import torch
    from torch import nn

    cin, cout, k = definition["in_channels"], definition["out_channels"], definition["kernel"]
    bias = definition.get("bias", True)
    conv_params, dense_params, runs = [], [], True
    for size in definition["resolutions"]:
        with torch.device("meta"):
            conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias)
            output = conv(torch.empty(1, cin, size, size))
            runs = runs and tuple(output.shape) == (1, cout, size, size)
            dense = nn.Linear(cin * size * size, cout * size * size, bias=bias)
        conv_params.append(sum(p.numel() for p in conv.parameters()))
        dense_params.append(sum(p.numel() for p in dense.parameters()))
    label = f"Conv2d({cin}, {cout}, {k}) vs Linear"
    out = Measured()
    out.add("resolutions", list(definition["resolutions"]), "pixels", label)
    out.add("conv_params", conv_params, "count", label)
    out.add("dense_params", dense_params, "count", label)
    out.add("conv_runs", runs, "", label)
    return out


@kind("dense_equivalent")
def dense_equivalent(definition: dict, context: Context) -> Measured:
    """For each model, its conv + linear params against their dense equivalents (the CNN vs FCN table).

    Figures per alias: ``params``, ``dense``, ``orders`` (log10 of the ratio) over conv and linear
    layers, and ``conv_params``, ``conv_dense``, ``conv_orders`` over the conv layers alone.
    """
    from archbench.measure.params import dense_equivalent_records

    out = Measured()
    for alias, spec in definition["models"].items():
        built = _build(_model_options(spec), "meta")
        records = dense_equivalent_records(built)
        totals = [r for r in records if str(r.point.get("layer", "")).startswith("TOTAL")]
        values = {r.metric: r.value for r in totals}
        out.records.extend(totals)
        out.figures.update({f"{alias}.params": values["params"], f"{alias}.dense": values["params_dense_equivalent"],
                            f"{alias}.orders": values["dense_ratio_orders"]})
        conv_layers = {r.point["layer"] for r in records if r.details.get("type", "").startswith("Conv")}
        own = sum(r.value for r in records if r.point.get("layer") in conv_layers and r.metric == "params")
        dense = sum(r.value for r in records if r.point.get("layer") in conv_layers and r.metric == "params_dense_equivalent")
        point = {**built.point, "layer": "conv layers"}
        for metric, key, value in (("params", "conv_params", own), ("params_dense_equivalent", "conv_dense", dense),
                                   ("dense_ratio", None, dense / own),
                                   ("dense_ratio_orders", "conv_orders", math.log10(dense / own))):
            out.records.append(Record.of(built.label, metric, value, point))
            if key:
                out.figures[f"{alias}.{key}"] = value
    return out


@kind("shape_check")
def shape_check(definition: dict, context: Context) -> Measured:
    """Build each model at its own input, then run it at ``second`` (a shape per alias): does it still run?

    Figures ``<alias>.runs_default``, ``<alias>.runs_second`` and ``<alias>.error`` (the caught
    error's first line, empty when it ran).
    """
    import torch

    from archbench.models import make_inputs
    from archbench.models.registry import InputSpec
    from archbench.spec import parse_shape

    out = Measured()
    for alias, spec in definition["models"].items():
        built = _build(_model_options(spec), "meta")
        second = InputSpec(built.input.kind, parse_shape(definition["second"][alias]), built.input.extra)
        results = {}
        for label, input_spec in (("default", built.input), ("second", second)):
            args, kwargs = make_inputs(input_spec, 1, "meta")
            try:
                with torch.no_grad():
                    built.module(*args, **kwargs)
                results[label] = ""
            except RuntimeError as exc:
                results[label] = str(exc).splitlines()[0]
        for label in ("default", "second"):
            shape = built.input.shape if label == "default" else second.shape
            out.add(f"{alias}.runs_{label}", not results[label], "", built.label, {"input": "x".join(map(str, shape))},
                    error_caught=results[label] or None)
        out.figures[f"{alias}.error"] = results["second"]
    return out


@kind("layer_count")
def layer_count(definition: dict, context: Context) -> Measured:
    """Count modules of ``types`` in a model; those under a name containing any of ``exclude`` apart.

    Figures: ``<type>`` (all), ``excluded`` and ``counted`` (the layers on the counted path).
    """
    built = _build(_model_options(definition["model"]), "meta")
    types, exclude = definition["types"], definition.get("exclude", [])
    out = Measured()
    counted = excluded = 0
    for type_name in types:
        matching = [name for name, m in built.module.named_modules() if type(m).__name__ == type_name]
        out.add(type_name.lower(), len(matching), "count", built.label)
        off_path = [n for n in matching if any(part in n.split(".") for part in exclude)]
        excluded += len(off_path)
        counted += len(matching) - len(off_path)
    out.add("excluded", excluded, "count", built.label, rule=f"modules under {', '.join(exclude) or 'nothing'}")
    out.add("counted", counted, "count", built.label, rule=f"{' + '.join(types)} not under {', '.join(exclude)}")
    return out


@kind("recurrent_gradients")
def recurrent_gradients(definition: dict, context: Context) -> Measured:
    """‖∂h_T/∂x_1‖ at initialisation per cell over ``steps`` (see :mod:`archbench.claims.gradients`)."""
    from archbench.claims.gradients import recurrent_gradient_norms

    out = Measured()
    steps = list(definition["steps"])
    out.add("steps", steps, "steps", "recurrent cells")
    for alias, cell in definition["cells"].items():
        cell = {"cell": cell} if isinstance(cell, str) else cell
        norms = recurrent_gradient_norms(cell["cell"], steps, size=definition.get("size", 32),
                                         seeds=definition.get("seeds", 3), forget_bias=cell.get("forget_bias"))
        out.add(f"{alias}.grad_norm", norms, "norm", f"{alias} ({cell['cell']}, size {definition.get('size', 32)})",
                {"steps": steps})
    return out


@kind("depth_gradients")
def depth_gradients(definition: dict, context: Context) -> Measured:
    """First-layer gradient norm at initialisation, plain vs residual stacks, over ``depths``."""
    from archbench.claims.gradients import depth_gradient_norms

    out = Measured()
    depths = list(definition["depths"])
    width = definition.get("width", 64)
    out.add("depths", depths, "layers", "Linear+ReLU stack")
    for alias, residual in (("plain", False), ("residual", True)):
        norms = depth_gradient_norms(depths, residual=residual, width=width, seeds=definition.get("seeds", 3))
        out.add(f"{alias}.grad_norm", norms, "norm", f"{alias} Linear({width})+ReLU stack", {"depths": depths})
    return out


@kind("score_matmul")
def score_matmul(definition: dict, context: Context) -> Measured:
    """MACs of the attention-score product Q·Kᵀ ((T, d) × (d, T)) per T, counted by torch's FlopCounterMode on meta."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    d = definition["d"]
    macs = []
    for t in definition["seq"]:
        q = torch.empty(t, d, device="meta")
        with FlopCounterMode(display=False) as counter:
            torch.matmul(q, q.T)
        macs.append(counter.get_total_flops() // 2)
    out = Measured()
    out.add("seq", list(definition["seq"]), "tokens", f"Q·K^T, d={d}")
    out.add("macs", macs, "MAC", f"Q·K^T, d={d}", counter="torch.utils.flop_counter.FlopCounterMode")
    return out


@kind("sweep")
def sweep(definition: dict, context: Context) -> Measured:
    """A sequence-length sweep of ``models`` (alias -> spec) through :func:`run_sweep`, with its summary.

    ``metrics`` are run_sweep's groups (flops, latency, memory) plus ``params`` (meta builds).
    Figures: ``seq``; per point ``<metric>.<alias>`` (``macs``, ``latency_s``, ``peak_memory_bytes``,
    ``score_matrix_bytes``, ``params``); from the summary ``<metric>_exponent.<alias>`` (log-log
    fit over all points), ``<metric>_local_exponent.<alias>`` (between the last two points) and
    ``<metric>_crossover`` (first two models; None when they don't cross in range).
    """
    from archbench.measure.params import count_params
    from archbench.measure.scaling import FITTED_METRICS, run_sweep
    from archbench.models import build_model
    from archbench.spec import parse_model_spec

    models = {alias: str(parse_model_spec(spec)) for alias, spec in definition["models"].items()}
    values = list(definition["seq"])
    groups = [m for m in definition["metrics"] if m != "params"]
    out = Measured()
    out.add("seq", values, "tokens", "sweep")
    if "params" in definition["metrics"]:
        for alias, spec in models.items():
            counts = [count_params(build_model(spec, device="meta", seq=t).module).total for t in values]
            out.add(f"params.{alias}", counts, "count", spec, {"seq": values}, metric="params")
    from archbench.models.subject import Recipe

    template = Recipe("", phase=definition.get("phase", "prefill"))
    records = run_sweep(list(models.values()), values, groups, axis="seq", template=template,
                        settings=_settings(context)) if groups else []
    out.records.extend(records)
    found = {(r.model, r.metric, r.point.get("seq")): r.value for r in records if r.error is None}
    for alias, spec in models.items():
        for metric in FITTED_METRICS:
            series = [found.get((spec, metric, t)) for t in values]
            if all(v is not None for v in series):
                out.figures[f"{metric}.{alias}"] = series
            if (spec, f"{metric}_exponent", None) in found:
                out.figures[f"{metric}_exponent.{alias}"] = found[(spec, f"{metric}_exponent", None)]
            if (spec, f"{metric}_local_exponent", values[-1]) in found:
                out.figures[f"{metric}_local_exponent.{alias}"] = found[(spec, f"{metric}_local_exponent", values[-1])]
        _exponent_intervals(out, alias, spec, values, records)
        shares = [found.get((spec, "attention_share", t)) for t in values]
        if all(v is not None for v in shares):
            out.figures[f"attention_share.{alias}"] = shares
        if (spec, "attention_half_length", None) in found:
            out.figures[f"attention_half_length.{alias}"] = found[(spec, "attention_half_length", None)]
    if len(models) >= 2:
        first, second = list(models.values())[:2]
        for r in records:
            if r.model == f"{first} vs {second}" and r.metric.endswith("_crossover") and r.error is None:
                out.figures[r.metric] = r.value
    return out


def _exponent_intervals(out: Measured, alias: str, spec: str, values: list, records: list[Record]) -> None:
    """Bootstrap intervals of ``alias``'s latency exponents (all points, last two) from each point's raw samples."""
    from archbench.claims.uncertainty import exponent_interval

    samples = {r.point.get("seq"): r.details.get("samples") for r in records
               if r.model == spec and r.metric == "latency_s" and r.error is None}
    if not all(samples.get(t) for t in values):
        return
    for name, points in ((f"latency_s_exponent.{alias}", values), (f"latency_s_local_exponent.{alias}", values[-2:])):
        interval = exponent_interval(points, [samples[t] for t in points])
        if name in out.figures and interval:
            out.intervals[name] = interval


@kind("peak")
def peak(definition: dict, context: Context) -> Measured:
    """The machine's measured matmul peak (FLOP/s) on the run's device."""
    from archbench.measure.peak import measure_peak_flops

    out = Measured()
    out.add("flops_s", measure_peak_flops(context.device), "FLOP/s", f"matmul peak on {context.device}")
    return out


@kind("roofline")
def roofline(definition: dict, context: Context) -> Measured:
    """A model's roofline (:mod:`archbench.measure.roofline`) through the one measurement path, at each ``seq``.

    Figures: ``intensity`` (FLOP per byte, the first point), ``ridge.<machine>`` and ``memory_bound.<machine>`` for
    each machine of ``hardware`` (default: every listed one); with ``measure: true`` (this-cpu, timed here) per
    point ``seq``, ``latency_s`` (measured), ``memory_s`` (bytes ÷ measured bandwidth) and ``compute_s``
    (FLOPs ÷ measured matmul peak).
    """
    from dataclasses import replace

    from archbench.measure.hardware import MACHINES
    from archbench.measure.run import measure as measure_groups

    options = _model_options(definition["model"])
    timed = bool(definition.get("measure", False))
    hardware = definition.get("hardware", "this-cpu" if timed else ",".join(MACHINES))
    dtype = options.get("dtype", "float32")
    settings = replace(_settings(context), dtype=dtype, hardware=hardware, peak=False)
    seqs = definition["seq"] if isinstance(definition["seq"], list) else [definition["seq"]]
    out = Measured()
    series: dict[str, list] = {"latency_s": [], "memory_s": [], "compute_s": []}
    for index, t in enumerate(seqs):
        recipe = replace(_recipe({**options, "seq": t}), phase=definition.get("phase", "prefill"))
        records = measure_groups(recipe, ["latency", "roofline"] if timed else ["roofline"], settings)
        out.records.extend(records)
        failed = next((r for r in records if r.error), None)
        if failed is not None:
            out.fail("latency_s" if failed.metric == "latency_s" else "intensity", recipe.spec, failed.error)
            return out
        machines = [r for r in records if r.metric == "predicted_latency_s" and "hardware" in r.point]
        if index == 0:
            intensity = next(r.value for r in records if r.metric == "arithmetic_intensity")
            out.figures["intensity"] = intensity
            for r in machines:
                out.figures[f"ridge.{r.point['hardware']}"] = r.details["ridge_flop_per_byte"]
                out.figures[f"memory_bound.{r.point['hardware']}"] = r.details["bound"] == "memory"
        if timed:
            cpu = next(r for r in machines if r.point["hardware"] == "this-cpu")
            series["latency_s"].append(next(r.value for r in records if r.metric == "latency_s"))
            series["memory_s"].append(cpu.details["memory_time_s"])
            series["compute_s"].append(cpu.details["flops"] / cpu.details["peak_flops_s"])
    out.figures["seq"] = seqs
    out.figures["ridges"] = [v for k, v in out.figures.items() if k.startswith("ridge.")]
    if timed:
        out.figures.update(series)
    return out


@kind("train_memory")
def train_memory(definition: dict, context: Context) -> Measured:
    """What one training step holds (:func:`archbench.measure.training.breakdown`, on the meta device): weights,
    gradients, optimizer states and activations, with and without checkpointing, each one's share of the four,
    and the batch from which activations pass the other three. ``models`` as in ``profile`` (``batch``, ``seq``,
    ``head``); ``optimizer`` and ``precision`` for every model; ``attention: fused`` counts attention as a fused
    (flash) kernel saves it, as on a GPU."""
    from archbench.measure.training import BREAKDOWN_METRICS, activations_pass_batch, breakdown

    out = Measured()
    step = {"optimizer": definition.get("optimizer", "adamw"), "precision": definition.get("precision", "fp32")}
    fused = definition.get("attention", "fused") == "fused"
    for alias, value in definition["models"].items():
        options = _model_options(value)
        for variant, checkpointing in (("", False), ("checkpointed.", True)):
            recipe = _recipe(options).with_(phase="train", checkpointing=checkpointing, **step)
            key = f"{alias}.{variant}"
            try:
                meta = recipe.build("meta")
                figures = breakdown(meta, fused=fused)
                passes, how = activations_pass_batch(recipe, fused=fused)
            except UserError as exc:
                out.fail(f"{key}activation_bytes", options["model"], str(exc))
                continue
            total = sum(figures[p] for p in ("weights", "gradients", "optimizer_states", "activations"))
            for metric, part in BREAKDOWN_METRICS.items():
                if part != "predicted_peak":
                    out.add(f"{key}{metric}", figures[part], "bytes", meta.label, meta.point, metric=metric)
                    out.add(f"{key}{part}_share", figures[part] / total, "fraction", meta.label, meta.point)
            out.add(f"{key}activations_pass_batch", passes, "items", meta.label, meta.point, **how)
    return out
