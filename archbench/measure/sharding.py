"""A training step past one device, on paper: what each device holds under ZeRO or FSDP, and whether it fits.

Data parallelism over N devices, each with its own micro-batch (``--batch``), divides what the step holds
the way DeepSpeed ZeRO (Rajbhandari et al., 2020, §5) and PyTorch FSDP do:

- ``none``: every device holds the weights W, gradients G and optimizer states S;
- ``zero1`` (P_os): W + G + S/N;
- ``zero2`` (P_os+g): W + (G + S)/N;
- ``zero3`` (P_os+g+p) and ``fsdp`` (FULL_SHARD): (W + G + S)/N, plus the one block whose full weights are
  gathered while it computes.

For mixed-precision Adam W = 2Ψ, G = 2Ψ, S = KΨ with K = 12 (fp32 master, momentum, variance): ZeRO's
(2 + 2 + K)Ψ. Activations are not divided: each device saves its own micro-batch's. With a machine
(``--hardware``) the per-device bytes are set against its memory, and the largest micro-batch that fits
is found from the activations' growth with the batch (counted on the meta device at batch 1 and 2).
Attention is taken as a GPU runs it: one fused (flash) kernel, no T×T scores saved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from archbench.errors import UserError
from archbench.results.record import Record

SHARDS = ("none", "zero1", "zero2", "zero3", "fsdp")

MEMORY_GB = {"h100-sxm": 80, "h100-pcie": 80, "h200": 141, "a100-40gb": 40, "a100-80gb": 80, "l4": 24, "l40s": 48,
             "rtx-4090": 24, "mi300x": 192, "tpu-v5e": 16}
"""Memory per device, in GB (10^9 bytes) as each datasheet prints it, for the machines of
:mod:`archbench.measure.hardware` (whose table has peaks and bandwidths, not capacities: this column belongs
there). ``h100`` is taken as the H100 SXM."""
ALIASES = {"h100": "h100-sxm", "a100": "a100-80gb"}


def machine_memory(name: str) -> tuple[str, int]:
    """The machine's name in the table and its memory in bytes; UserError for a machine without a listed capacity."""
    name = ALIASES.get(name.lower(), name.lower())
    if name not in MEMORY_GB:
        raise UserError(f"unknown --hardware {name!r} for a fit check; expected one of "
                        f"{', '.join([*ALIASES, *MEMORY_GB])}")
    return name, MEMORY_GB[name] * 10**9


@dataclass(frozen=True)
class ShardPlan:
    """How the step is spread: the sharding, the data-parallel devices, the machine (None: no fit check)."""

    shard: str = "none"
    devices: int = 1
    hardware: str | None = None

    @classmethod
    def parse(cls, shard: str | None, devices: int, hardware: str | None) -> "ShardPlan":
        """The plan of the command's options; UserError for an unknown sharding or machine, or devices < 1."""
        shard = shard or "none"
        if shard not in SHARDS:
            raise UserError(f"unknown --shard {shard!r}; expected one of {', '.join(SHARDS)}")
        if not isinstance(devices, int) or devices < 1:
            raise UserError(f"--devices must be a positive integer, got {devices}")
        return cls(shard, devices, machine_memory(hardware)[0] if hardware else None)


def divided(weights: int, gradients: int, states: int, shard: str, devices: int) -> int:
    """Bytes of weights, gradients and optimizer states one of ``devices`` holds under ``shard`` (rounded up)."""
    n = devices
    if shard == "none":
        return weights + gradients + states
    if shard == "zero1":
        return weights + gradients + math.ceil(states / n)
    if shard == "zero2":
        return weights + math.ceil((gradients + states) / n)
    if shard in ("zero3", "fsdp"):
        return math.ceil((weights + gradients + states) / n)
    raise UserError(f"unknown --shard {shard!r}; expected one of {', '.join(SHARDS)}")


def per_device(figures: dict, plan: ShardPlan, gathered: int) -> int:
    """What one device holds at the step's peak: its share of weights, gradients and states, and the larger of its
    forward-backward (activations, inputs, transient and, under ZeRO-3/FSDP, one block's gathered weights) and
    ``optimizer.step()``'s temporaries, as :func:`archbench.measure.training.breakdown` predicts one device."""
    share = divided(figures["weights"], figures["gradients"], figures["optimizer_states"], plan.shard, plan.devices)
    return share + max(_forward_backward(figures, plan, gathered), figures["optimizer_transient"])


def _forward_backward(figures: dict, plan: ShardPlan, gathered: int) -> int:
    """What one device's forward and backward hold beyond its share of W, G and S: grows with the batch."""
    extra = gathered if plan.shard in ("zero3", "fsdp") and plan.devices > 1 else 0
    return figures["activations"] + figures["inputs"] + figures["transient"] + extra


def largest_block_weights(meta) -> int:
    """Bytes of the largest block's parameters (what ZeRO-3/FSDP gathers for one block's compute)."""
    from archbench.models.train_step import blocks

    model = getattr(meta.module, "model", meta.module)
    return max((sum(p.numel() * p.element_size() for p in b.parameters()) for b in blocks(model)), default=0)


def shard_records(meta, plan: ShardPlan) -> list[Record]:
    """``per_device_bytes`` of a train-phase subject (built on meta) under ``plan``; with a machine, whether it fits
    (details) and ``max_batch``, the largest micro-batch that fits."""
    from archbench.measure.training import breakdown

    figures = breakdown(meta, fused=True)
    gathered = largest_block_weights(meta)
    if figures["precision"] != "fp32":
        gathered //= 2  # the gathered copy is the 16-bit one
    value = per_device(figures, plan, gathered)
    point = {**meta.point, "shard": plan.shard, "devices": plan.devices}
    details = {"shard": plan.shard, "devices": plan.devices, "weights": figures["weights"],
               "gradients": figures["gradients"], "optimizer_states": figures["optimizer_states"],
               "activations": figures["activations"], "inputs": figures["inputs"], "transient": figures["transient"],
               "gathered_block_weights": gathered if plan.shard in ("zero3", "fsdp") and plan.devices > 1 else 0,
               "attention": figures["attention"],
               "formula": FORMULAS[plan.shard]}
    records = [Record.of(meta.label, "per_device_bytes", value, point, details=details)]
    if plan.hardware is None:
        return records
    from archbench.measure.hardware import MACHINES

    _, memory = machine_memory(plan.hardware)
    details.update(hardware=plan.hardware, memory_bytes=memory, fits=value <= memory,
                   machine=MACHINES[plan.hardware].source if plan.hardware in MACHINES else plan.hardware)
    records.append(_max_batch(meta, plan, figures, gathered, memory, point))
    return records


FORMULAS = {
    "none": "W + G + S + activations",
    "zero1": "W + G + S/N + activations (ZeRO stage 1, P_os)",
    "zero2": "W + (G + S)/N + activations (ZeRO stage 2, P_os+g)",
    "zero3": "(W + G + S)/N + one block's gathered weights + activations (ZeRO stage 3, P_os+g+p)",
    "fsdp": "(W + G + S)/N + one block's gathered weights + activations (FSDP FULL_SHARD)",
}


def _max_batch(meta, plan: ShardPlan, figures: dict, gathered: int, memory: int, point: dict) -> Record:
    """The largest micro-batch whose step fits ``memory``: the batch-dependent bytes (activations, inputs,
    transient) counted at batch 1 and 2 on meta and taken as linear in the batch."""
    from archbench.measure.training import breakdown

    one, two = (breakdown(meta.recipe.with_(batch=b).build("meta"), fused=True) for b in (1, 2))
    fixed = per_device(one, plan, gathered)
    first = _forward_backward(one, plan, gathered)
    slope = _forward_backward(two, plan, gathered) - first
    share = fixed - max(first, one["optimizer_transient"])
    largest = 0 if fixed > memory else (1 + (memory - share - first) // slope if slope > 0 else None)
    details = {"memory_bytes": memory, "bytes_at_batch_1": fixed, "bytes_per_extra_example": slope,
               "method": "per-device bytes at batch 1 and 2 (activations counted on meta), linear in the batch"}
    warnings = [] if largest != 0 else [f"batch 1 needs {fixed:,} bytes per device: more than the {memory:,} "
                                        f"of {plan.hardware}; the step does not fit"]
    return Record.of(meta.label, "max_batch", largest, point, warnings=warnings, details=details)
