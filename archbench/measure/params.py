"""Parameter counts: totals, per module, and the dense (fully connected) equivalent of each layer."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from archbench.models.subject import Subject
from archbench.results.record import Record

_LAYER_TYPES = ("Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "Linear")


@dataclass(frozen=True)
class ParamCounts:
    """Totals of a module, and ``by_module``: each submodule's own total (name -> count, "" is the whole)."""

    total: int
    trainable: int
    frozen: int
    buffers: int
    by_module: dict[str, int] = field(default_factory=dict, compare=False, repr=False)


def count_params(model, *, per_module: bool = False) -> ParamCounts:
    """Unique parameters (a shared tensor counts once), trainable and frozen, and buffer elements.

    ``model`` is an ``nn.Module`` or a subject. With ``per_module``, ``by_module`` gives every
    submodule's total (a tensor shared by two submodules counts in each).
    """
    module = model.module if isinstance(model, Subject) else model
    params = list(module.parameters())  # nn.Module.parameters() yields each shared tensor once
    trainable = sum(p.numel() for p in params if p.requires_grad)
    total = sum(p.numel() for p in params)
    buffers = sum(b.numel() for b in module.buffers())
    by_module = {name: sum(p.numel() for p in sub.parameters()) for name, sub in module.named_modules()} \
        if per_module else {}
    return ParamCounts(total, trainable, total - trainable, buffers, by_module)


def _active_records(built: Subject, point: dict) -> list[Record]:
    """``params_active`` for a mixture-of-experts model: the parameters one token touches (its top-k experts)."""
    from archbench.measure.architecture import active_params
    from archbench.models.structure import expert_layers

    layers = expert_layers(built.module)
    if not layers:
        return []
    routing = sorted({f"top-{k} of {getattr(e, 'num_experts', None) or len(e)} experts" for e, k in layers})
    return [Record.of(built.label, "params_active", active_params(built.module), point,
                   details={"moe_layers": len(layers), "routing": ", ".join(routing),
                            "what": "params less, in each MoE layer, the experts a token is not routed to"})]


def module_depth(name: str) -> int:
    """Depth of a submodule name: ``layer1`` is 1, ``layer1.0.conv1`` is 3."""
    return name.count(".") + 1 if name else 0


def param_records(built: Subject, depth: int | None = None) -> list[Record]:
    """Totals (params, params_trainable, params_frozen, buffers) and, with ``depth``, one row per module."""
    counts = count_params(built.module, per_module=bool(depth))
    point = dict(built.point)
    records = [
        Record.of(built.label, "params", counts.total, point, warnings=list(built.warnings)),
        Record.of(built.label, "params_trainable", counts.trainable, point),
        Record.of(built.label, "params_frozen", counts.frozen, point),
        Record.of(built.label, "buffers", counts.buffers, point, details={"what": "buffer elements"}),
    ]
    records += _active_records(built, point)
    if depth:
        for name, sub in built.module.named_modules():
            if 0 < module_depth(name) <= depth:
                records.append(
                    Record.of(built.label, "params", counts.by_module[name], {**point, "module": name},
                           details={"type": type(sub).__name__})
                )
    return records


def dense_equivalent(in_numel: int, out_numel: int, bias: bool) -> int:
    """Parameters of a fully connected layer mapping ``in_numel`` values to ``out_numel`` values."""
    return in_numel * out_numel + (out_numel if bias else 0)


def dense_equivalent_records(built: Subject) -> list[Record]:
    """For each conv and linear layer, run on the model's input, the dense equivalent (build on ``meta``: no allocation).

    One row per layer call: its own params, the params of the dense layer with the same input
    and output volumes (weights + biases, biases when the layer has them), the ratio and its
    order of magnitude; then the totals. Parameters outside conv/linear layers are a warning.
    """
    import torch

    module = built.module
    layer_classes = _layer_classes()
    calls: list[tuple[str, object, tuple, tuple]] = []
    handles = [
        sub.register_forward_hook(
            lambda m, inputs, output, name=name: calls.append((name, m, tuple(inputs[0].shape), tuple(output.shape)))
        )
        for name, sub in module.named_modules()
        if isinstance(sub, layer_classes)
    ]
    args, kwargs = built.example_inputs()
    try:
        with torch.no_grad():
            module(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()

    point = dict(built.point)
    records: list[Record] = []
    own_total = dense_total = 0
    covered: set[int] = set()
    for name, layer, in_shape, out_shape in calls:
        own = sum(p.numel() for p in layer.parameters(recurse=False))
        in_numel, out_numel = math.prod(in_shape[1:]), math.prod(out_shape[1:])
        dense = dense_equivalent(in_numel, out_numel, getattr(layer, "bias", None) is not None)
        if id(layer) not in covered:
            own_total += own
            covered.add(id(layer))
        dense_total += dense
        layer_point = {**point, "layer": name}
        details = {"type": type(layer).__name__, "in_shape": list(in_shape[1:]), "out_shape": list(out_shape[1:])}
        records += _ratio_records(built.label, layer_point, own, dense, details)
    total_point = {**point, "layer": "TOTAL (conv + linear)"}
    records += _ratio_records(built.label, total_point, own_total, dense_total, {"layers": len(calls)})
    outside = count_params(module).total - own_total
    if outside:
        records[-1].warnings.append(
            f"{outside:,} parameters lie outside conv/linear layer calls (normalisation, embeddings, "
            f"attention in-projections) and have no dense equivalent in this table"
        )
    return records


def _ratio_records(model: str, point: dict, own: int, dense: int, details: dict) -> list[Record]:
    ratio = dense / own if own else None
    orders = math.log10(ratio) if ratio else None
    return [
        Record.of(model, "params", own, point, details=details),
        Record.of(model, "params_dense_equivalent", dense, point),
        Record.of(model, "dense_ratio", ratio, point),
        Record.of(model, "dense_ratio_orders", orders, point),
    ]


def _layer_classes() -> tuple:
    from torch import nn

    return tuple(getattr(nn, n) for n in _LAYER_TYPES)
