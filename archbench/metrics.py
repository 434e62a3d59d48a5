"""The one table of metrics: for every figure archbench writes, its unit, its kind and which way is better.

Records, the renderers, ``compare``, ``scaling`` and the claims read it; nobody types a unit
or a metric kind anywhere else. Kinds:

- ``count``: exact, deterministic counts (params, MACs, FLOPs): equal or changed.
- ``analytic``: deterministic figures derived by formula (bytes of weights, KV cache, ratios).
- ``timing``: measured times and rates, noisy: compared statistically on raw samples.
- ``memory``: measured bytes, noisy but without samples: compared against a threshold.

Sweep results are named after the metric they fit: ``<metric>_exponent``,
``<metric>_local_exponent`` (no unit) and ``<metric>_crossover`` (the unit of the swept axis); their kind
is the kind of the metric they fit, so a latency exponent is noisy and a MAC exponent exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["count", "analytic", "timing", "memory"]
Better = Literal["lower", "higher", None]


@dataclass(frozen=True)
class Metric:
    """One metric: its unit (spelled one way), kind, which direction is better, and what it is."""

    name: str
    unit: str
    kind: Kind
    better: Better = None
    description: str = ""

    @property
    def deterministic(self) -> bool:
        """Counts and analytic figures must match exactly between runs of the same code."""
        return self.kind in ("count", "analytic")


UNITS = ("count", "MAC", "FLOP", "s", "items/s", "tokens/s", "FLOP/s", "FLOP/byte", "fraction", "bytes", "x", "log10",
         "tokens", "items", "pixels", "steps", "norm", "layers", "")
"""Every unit archbench writes. ``""`` is a pure number (an exponent, a flag, a shape)."""

_TABLE = (
    Metric("params", "count", "count", None, "parameters (each shared tensor once)"),
    Metric("params_trainable", "count", "count", None, "parameters with requires_grad"),
    Metric("params_frozen", "count", "count", None, "parameters without requires_grad"),
    Metric("params_active", "count", "count", None, "parameters one token touches (MoE: the routed experts only)"),
    Metric("buffers", "count", "count", None, "buffer elements"),
    Metric("params_dense_equivalent", "count", "count", None, "params of the dense layer with the same in/out volumes"),
    Metric("dense_ratio", "x", "analytic", None, "params_dense_equivalent / params"),
    Metric("dense_ratio_orders", "log10", "analytic", None, "log10 of dense_ratio"),
    Metric("macs", "MAC", "count", "lower", "multiply-accumulates"),
    Metric("flops", "FLOP", "count", "lower", "2 x macs"),
    Metric("other_flops", "FLOP", "count", "lower", "bias, normalisation, softmax, activation, elementwise"),
    Metric("bytes_moved", "bytes", "count", "lower",
           "bytes every op reads and writes: each tensor once at its dtype's size, views 0, fused kernels their own"),
    Metric("arithmetic_intensity", "FLOP/byte", "analytic", None, "(2 x macs + other_flops) / bytes_moved"),
    Metric("predicted_latency_s", "s", "analytic", "lower",
           "roofline: the sum over op calls of max(FLOPs / peak, bytes / bandwidth) on a listed machine"),
    Metric("predicted_items_s", "items/s", "analytic", "higher", "batch / predicted_latency_s"),
    Metric("predicted_tokens_s", "tokens/s", "analytic", "higher", "decode: batch tokens / predicted_latency_s"),
    Metric("roofline_ratio", "x", "timing", None, "measured latency_s / predicted_latency_s on this-cpu"),
    Metric("attention_share", "fraction", "analytic", None, "share of macs in attention's score and value products"),
    Metric("attention_half_length", "tokens", "analytic", None,
           "sequence length from which attention's share of macs passes one half (interpolated in log T)"),
    Metric("latency_s", "s", "timing", "lower", "median seconds per call"),
    Metric("compile_time_s", "s", "timing", "lower", "first call of the torch.compile'd module"),
    Metric("throughput_items_s", "items/s", "timing", "higher", "batch / latency_s"),
    Metric("achieved_flops_s", "FLOP/s", "timing", "higher", "flops / latency_s"),
    Metric("peak_fraction", "fraction", "timing", "higher", "achieved_flops_s / the measured matmul peak"),
    Metric("peak_memory_bytes", "bytes", "memory", "lower", "peak memory one call adds"),
    Metric("weights_bytes", "bytes", "analytic", "lower", "(parameters + buffers) x element size"),
    Metric("score_matrix_bytes", "bytes", "analytic", "lower", "one layer's attention scores: batch x heads x T^2"),
    Metric("kv_cache_bytes", "bytes", "analytic", "lower", "2 x layers x kv_heads x head_dim x T x element size x batch"),
    # the claims' own figures
    Metric("grad_norm", "norm", "analytic", None, "norm of the gradient reaching each step or layer (claims)"),
    Metric("steps", "steps", "analytic", None, "recurrent steps back-propagated through (claims)"),
    Metric("depths", "layers", "analytic", None, "depths of a layer stack (claims)"),
)
METRICS: dict[str, Metric] = {m.name: m for m in _TABLE}

AXIS_UNITS = {"seq": "tokens", "batch": "items", "resolution": "pixels"}
"""The unit of each swept axis (a crossover is a value of the axis)."""

_DERIVED_SUFFIXES = ("_local_exponent", "_exponent", "_crossover")


def metric(name: str, axis: str = "seq") -> Metric:
    """The table's entry for ``name``, sweep results included (a crossover is a value of the swept ``axis``);
    KeyError for a name that is in no table."""
    if name in METRICS:
        return METRICS[name]
    for suffix in _DERIVED_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in METRICS:
            base = METRICS[name[: -len(suffix)]]
            kind: Kind = "analytic" if base.deterministic else base.kind
            unit = "" if suffix != "_crossover" else AXIS_UNITS[axis]
            return Metric(name, unit, kind, None, f"{suffix[1:].replace('_', ' ')} of {base.name}")
    raise KeyError(name)


def unit_of(name: str, axis: str = "seq") -> str:
    """The unit records of ``name`` carry (a crossover's: the unit of the swept ``axis``)."""
    return metric(name, axis).unit


def kind_of(name: str) -> Kind:
    """The kind of ``name``; a figure outside the table (a claim's own figure) is analytic: deterministic."""
    try:
        return metric(name).kind
    except KeyError:
        return "analytic"


def is_known(name: str) -> bool:
    """Whether ``name`` is a metric of the table (or a sweep result of one)."""
    try:
        metric(name)
    except KeyError:
        return False
    return True
