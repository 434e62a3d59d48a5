"""One training step: what it holds in memory and why, what it computes, how fast it runs.

A step (``--phase train``) is forward, loss, backward and ``optimizer.step()`` of a subject whose module
returns its loss (:mod:`archbench.models.train_step`). Its memory, predicted without running it:

- ``weights_bytes``: the parameters and buffers (16-bit parameters under a mixed recipe);
- ``gradients_bytes``: one gradient per trainable parameter, at the parameters' precision;
- ``optimizer_state_bytes``: the optimizer's fp32 states (:data:`STATES_PER_PARAMETER`; Adafactor keeps a
  row and a column factor per matrix), plus the fp32 master copy under a mixed recipe;
- ``activation_bytes``: the tensors autograd saves for backward, found on the meta device with
  ``torch.autograd.graph.saved_tensors_hooks`` and counted once per storage (parameters, buffers and
  the inputs are not activations); with checkpointing only the checkpointed blocks' inputs and what is
  saved outside the blocks;
- ``predicted_peak_bytes``: all of these, the inputs, and the transient of backward (its largest tensor;
  with checkpointing, one block's recompute).

The measured peak comes from a fresh process (:mod:`archbench.measure.memory_worker`), its ratio to the
prediction in ``details``. Mixed precision is ZeRO's recipe on paper (16-bit weights and gradients, fp32
master and states: 2 + 2 + 12 bytes per parameter for Adam); the run measured is PyTorch's autocast over
fp32 weights (4 + 4 + 8, plus 16-bit casts of the weights), the same 16 bytes per parameter before casts.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Callable

from archbench.errors import UserError
from archbench.models.subject import Recipe, Subject
from archbench.results.record import Record

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "adafactor")
PRECISIONS = ("fp32", "bf16-mixed", "fp16-mixed")
STATES_PER_PARAMETER = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}
"""fp32 tensors of a parameter's size each optimizer keeps (momentum: the velocity; Adam: first and second
moments). Adafactor's are factored: :func:`optimizer_state_elements`. Adam's step counters (one scalar per
parameter tensor) are left out."""
FLOPS_PER_ELEMENT = {"sgd": 2, "momentum": 4, "adam": 13, "adamw": 14, "adafactor": 10}
"""FLOPs ``optimizer.step()`` spends per parameter element, written out from torch.optim's update:
SGD ``p -= lr·g`` (2); momentum ``b = μ·b + g; p -= lr·b`` (4); Adam ``m.lerp_(g)`` (3), ``v = β₂·v + (1-β₂)·g²``
(4), ``√v / √bc₂ + ε`` (3), ``p -= s·m / denom`` (3): 13; AdamW adds the decay ``p *= 1 - lr·λ`` (14);
Adafactor ``g²`` and its row and column means (3), the outer product of the factors (1), its normalisation
and rsqrt (2), ``u = g·r`` (1), ``p -= lr·u`` (2), decay (1): 10."""
HALF = {"bf16-mixed": "bfloat16", "fp16-mixed": "float16"}


def check_training(recipe: Recipe) -> None:
    """UserError for a training step that cannot be set up (an unknown optimizer or precision, a --dtype), or for
    training options on another phase."""
    if recipe.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown --optimizer {recipe.optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")
    if recipe.precision not in PRECISIONS:
        raise UserError(f"unknown --precision {recipe.precision!r}; expected one of {', '.join(PRECISIONS)}")
    if recipe.phase != "train" and (recipe.optimizer, recipe.precision, recipe.checkpointing) != ("adamw", "fp32", False):
        raise UserError("--optimizer, --precision and --checkpointing apply to --phase train")
    if recipe.phase == "train" and recipe.dtype != "float32":
        raise UserError("--phase train keeps fp32 weights; choose 16-bit compute with --precision bf16-mixed or "
                        "fp16-mixed, not --dtype")


# ---- what the step holds --------------------------------------------------------------------------------------

def optimizer_state_elements(shapes: list[tuple[int, ...]], optimizer: str) -> int:
    """fp32 elements of the optimizer's states for parameters of ``shapes`` (Adafactor: a row and a column factor
    per tensor of two dimensions or more, the full second moment of a vector)."""
    if optimizer in STATES_PER_PARAMETER:
        return STATES_PER_PARAMETER[optimizer] * sum(math.prod(s) for s in shapes)
    if optimizer == "adafactor":
        return sum(math.prod(s[:-1]) + math.prod(s[:-2]) * s[-1] if len(s) >= 2 else math.prod(s) for s in shapes)
    raise UserError(f"unknown --optimizer {optimizer!r}; expected one of {', '.join(OPTIMIZERS)}")


@dataclass(frozen=True)
class StepBytes:
    """What a step holds apart from activations, per precision recipe."""

    weights: int
    gradients: int
    optimizer_states: int
    master: int  # of optimizer_states: the fp32 master copy of a mixed recipe
    parameters: int  # trainable parameter elements


def step_bytes(module, optimizer: str, precision: str) -> StepBytes:
    """Weights, gradients and optimizer states of one step of ``module`` (on any device, meta included).

    fp32: weights 4 bytes per element (parameters and buffers), gradients 4 per trainable parameter, states
    4 per state element. A mixed recipe: 16-bit parameters and gradients (2 bytes), buffers kept at their
    size, and an fp32 master copy (4 per trainable parameter) in the optimizer's states.
    """
    params = {id(p): p for p in module.parameters()}.values()
    trainable = [p for p in params if p.requires_grad]
    n = sum(p.numel() for p in trainable)
    buffers = sum(b.numel() * b.element_size() for b in module.buffers())
    states = 4 * optimizer_state_elements([tuple(p.shape) for p in trainable], optimizer)
    if precision == "fp32":
        weights = sum(p.numel() * p.element_size() for p in params) + buffers
        return StepBytes(weights, 4 * n, states, 0, n)
    frozen = sum(p.numel() * p.element_size() for p in params if not p.requires_grad)
    return StepBytes(2 * n + frozen + buffers, 2 * n, states + 4 * n, 4 * n, n)


@dataclass
class Activations:
    """What autograd saves for backward in one forward (bytes counted once per storage)."""

    saved_bytes: int  # every saved storage that is not a parameter, buffer or input
    checkpointed_bytes: int  # with checkpointing: block inputs + what is saved outside the blocks
    largest_block_bytes: int  # the most one block saves beyond what was saved before it (its inputs): its recompute
    largest_tensor_bytes: int  # the largest tensor the forward saves (the transient of backward)
    blocks: int = 0


def fused_attention():
    """A TorchFunctionMode under which ``F.scaled_dot_product_attention`` on the meta device runs as one fused
    kernel (the CPU flash kernel's meta implementation), which saves the query, key, value, its output and the
    log-sum-exp, never the T×T scores: what flash attention holds on a GPU. Elsewhere the call is left alone."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")

    class Fused(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            call = {**dict(zip(names, args)), **kwargs}
            if func is not F.scaled_dot_product_attention or call["query"].device.type != "meta" \
                    or call["query"].dim() != 4:
                return func(*args, **kwargs)
            q, k, v = call["query"], call["key"], call["value"]
            if call.get("enable_gqa") and k.shape[-3] != q.shape[-3]:
                groups = q.shape[-3] // k.shape[-3]
                k, v = (t[:, :, None].expand(-1, -1, groups, -1, -1).flatten(1, 2) for t in (k, v))
            return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                q, k, v, call.get("dropout_p", 0.0), call.get("is_causal", False), attn_mask=call.get("attn_mask"),
                scale=call.get("scale"))[0]

    return Fused()


def saved_activations(subject: Subject, fused: bool = False) -> Activations:
    """The tensors autograd saves in one forward of ``subject`` (a train-phase subject, best on the meta device).

    Each saved tensor is keyed by its storage (``torch.multiprocessing.reductions.StorageWeakRef``), so a
    tensor saved twice, or a view of one saved before, counts once; parameters, buffers and the inputs are
    held anyway and are left out. Saves made inside a checkpointed block are filed under it, and each block's
    inputs are noted: what checkpointing keeps instead. ``fused``: attention runs as one fused kernel
    (:func:`fused_attention`, as flash attention on a GPU); otherwise as the meta device dispatches it (the math
    backend, which saves the scores, as the CPU does with dropout).
    """
    import torch
    from torch.multiprocessing.reductions import StorageWeakRef
    from torch.utils._pytree import tree_flatten

    from archbench.models.structure import meta_routing

    module = subject.module
    model = getattr(module, "model", module)
    args, kwargs = subject.example_inputs()

    def key(t) -> int:
        return StorageWeakRef(t.untyped_storage()).cdata

    held = {key(t) for t in [*module.parameters(), *module.buffers()]}
    held |= {key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
    saved: dict[int, tuple[int, str | None]] = {}
    block_inputs: dict[int, int] = {}
    keep: list = []  # every tensor noted stays alive, so no storage key is reused within the pass
    running: list[str] = []
    handles = []
    for name in getattr(module, "checkpointed", []):
        block = model.get_submodule(name)

        def enter(mod, inputs, kwargs, name=name):
            running.append(name)
            for t in tree_flatten((inputs, kwargs))[0]:
                if isinstance(t, torch.Tensor) and key(t) not in held:
                    block_inputs[key(t)] = t.untyped_storage().nbytes()
                    keep.append(t)

        handles.append(block.register_forward_pre_hook(enter, with_kwargs=True))
        handles.append(block.register_forward_hook(lambda *_: running.pop() and None))

    def pack(t):
        k = key(t)
        if k not in held and k not in saved:
            saved[k] = (t.untyped_storage().nbytes(), running[-1] if running else None)
        keep.append(t)
        return t

    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), meta_routing(model, subject.device), \
                torch.enable_grad(), fused_attention() if fused else nullcontext():
            module(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    by_block: dict[str, int] = {}
    outside = {}
    for k, (nbytes, block) in saved.items():
        if block is None:
            outside[k] = nbytes
        else:
            by_block[block] = by_block.get(block, 0) + nbytes
    kept = {**outside, **block_inputs}
    return Activations(
        saved_bytes=sum(n for n, _ in saved.values()),
        checkpointed_bytes=sum(kept.values()),
        largest_block_bytes=max(by_block.values(), default=0),
        largest_tensor_bytes=max((n for n, _ in saved.values()), default=0),
        blocks=len(getattr(module, "checkpointed", [])),
    )


def breakdown(meta: Subject, recipe: Recipe | None = None, fused: bool = False) -> dict[str, Any]:
    """The predicted memory of one step of ``meta`` (a train-phase subject on the meta device), every figure in
    bytes: weights, gradients, optimizer_states, activations, inputs, transient, predicted_peak. ``fused``:
    attention as a fused kernel saves it (a GPU's flash attention), else as the meta device's math backend."""
    from archbench.models.subject import input_bytes

    recipe = recipe or meta.recipe
    fixed = step_bytes(meta.module, recipe.optimizer, recipe.precision)
    counted = meta
    if recipe.precision in HALF:  # autocast's activations: counted with the model at 16 bits
        counted = recipe.with_(dtype=HALF[recipe.precision]).build("meta")
    acts = saved_activations(counted, fused)
    checkpointing = bool(getattr(meta.module, "checkpointed", []))
    activations = acts.checkpointed_bytes if checkpointing else acts.saved_bytes
    transient = acts.largest_block_bytes if checkpointing else acts.largest_tensor_bytes
    inputs = input_bytes(meta)
    stepping = optimizer_transient(meta.module, recipe.optimizer)
    peak = fixed.weights + fixed.gradients + fixed.optimizer_states + max(activations + inputs + transient, stepping)
    return {
        "weights": fixed.weights, "gradients": fixed.gradients, "optimizer_states": fixed.optimizer_states,
        "activations": activations, "inputs": inputs, "transient": transient, "predicted_peak": peak,
        "optimizer_transient": stepping,
        "master_copy": fixed.master, "parameters": fixed.parameters, "saved_without_checkpointing": acts.saved_bytes,
        "checkpointed_blocks": acts.blocks, "largest_block": acts.largest_block_bytes,
        "optimizer": recipe.optimizer, "precision": recipe.precision, "checkpointing": checkpointing,
        "attention": "fused (flash: no T×T scores saved)" if fused else "as dispatched (the math backend on meta)",
    }


def check_step_fits(meta: Subject, device: str) -> None:
    """UserError when a step's predicted peak cannot fit in ``device``'s free memory (refused before allocating)."""
    from archbench.models.footprint import available_memory_bytes

    available = available_memory_bytes(device)
    if available is None:
        return
    peak = breakdown(meta, fused=device.startswith("cuda"))["predicted_peak"]
    if peak > available:
        raise UserError(f"{meta.label}: one training step is predicted to need {peak:,} bytes but only {available:,} "
                        f"are available on {device}; refused before allocating (see `archbench memory --phase train`)")


BREAKDOWN_METRICS = {"weights_bytes": "weights", "gradients_bytes": "gradients",
                     "optimizer_state_bytes": "optimizer_states", "activation_bytes": "activations",
                     "predicted_peak_bytes": "predicted_peak"}


def memory_records(meta: Subject, peak: Record, device: str = "cpu") -> list[Record]:
    """The breakdown's records next to the measured ``peak`` (``peak_memory_bytes``), whose details gain the
    measured ÷ predicted ratio. On CUDA attention is predicted fused (flash), on the CPU as the math backend."""
    try:
        figures = breakdown(meta, fused=device.startswith("cuda"))
    except UserError:
        raise
    except Exception as exc:  # a forward the meta device cannot run: the measured peak stands alone, and says why
        from archbench.errors import describe_error

        peak.warnings.append(f"no predicted breakdown: the forward cannot run on the meta device "
                             f"({describe_error(exc)})")
        return []
    point = dict(meta.point)
    peak.details["loss"] = _loss_of(meta)
    peak.details["method"] = (peak.details.get("method", "") + ": the second optimizer step's peak over the memory "
                              "in use before the model was built")
    if figures["precision"] != "fp32":
        peak.details["measured_recipe"] = ("torch.autocast over fp32 weights: 4 + 4 bytes of weights and gradients "
                                           "per parameter and 16-bit casts, where the prediction is 2 + 2 + a master")
    if peak.value is not None and figures["predicted_peak"]:
        peak.details["measured_over_predicted"] = peak.value / figures["predicted_peak"]
        peak.details["predicted_peak_bytes"] = figures["predicted_peak"]
    how = {
        "weights_bytes": "parameters + buffers x element size (16-bit parameters under a mixed recipe)",
        "gradients_bytes": "trainable parameters x 4 bytes (2 under a mixed recipe)",
        "optimizer_state_bytes": f"{meta.recipe.optimizer}: fp32 states, 4 bytes each"
                                 + (" + the fp32 master copy (4 bytes per parameter)" if figures["master_copy"] else ""),
        "activation_bytes": ("checkpointing: the inputs of each checkpointed block + what is saved outside them"
                             if figures["checkpointing"] else "the tensors autograd saves for backward, once per "
                             "storage (saved_tensors_hooks on the meta device)"),
        "predicted_peak_bytes": "weights + gradients + optimizer states + the larger of: activations + inputs + "
                                "backward's transient " + ("(one block's recompute)" if figures["checkpointing"]
                                                           else "(the largest saved tensor)")
                                + ", and optimizer.step()'s temporaries",
    }
    records = []
    for metric, part in BREAKDOWN_METRICS.items():
        details: dict[str, Any] = {"formula": how[metric]}
        if metric == "predicted_peak_bytes":
            details.update({k: figures[k] for k in ("inputs", "transient", "optimizer_transient", "optimizer",
                                                    "precision", "checkpointing", "parameters")})
        if metric == "activation_bytes":
            details["attention"] = figures["attention"]
        if metric == "activation_bytes" and figures["checkpointing"]:
            details.update(saved_without_checkpointing=figures["saved_without_checkpointing"],
                           checkpointed_blocks=figures["checkpointed_blocks"], largest_block=figures["largest_block"])
        records.append(Record.of(meta.label, metric, figures[part], point, details=details))
    return records


# ---- the step itself ------------------------------------------------------------------------------------------

TEMPORARIES_PER_TENSOR = {"sgd": 0, "momentum": 0, "adam": 2, "adamw": 2, "adafactor": 2}
"""Parameter-sized fp32 temporaries torch.optim's single-tensor update makes for one tensor at a time (Adam:
``v.sqrt()`` and its division by √bc₂; Adafactor: ``g²`` and the update); SGD and momentum update in place."""


def optimizer_transient(module, optimizer: str) -> int:
    """Bytes ``optimizer.step()`` holds on top of the states: :data:`TEMPORARIES_PER_TENSOR` × the largest
    trainable parameter at 4 bytes (the single-tensor implementation :func:`make_optimizer` chooses)."""
    largest = max((p.numel() for p in module.parameters() if p.requires_grad), default=0)
    return TEMPORARIES_PER_TENSOR[optimizer] * 4 * largest


def make_optimizer(parameters, name: str):
    """The torch.optim optimizer ``name`` over ``parameters``: torch's defaults (momentum 0.9), and the single-tensor
    implementation (``foreach=False``), whose temporaries :func:`optimizer_transient` predicts."""
    import torch

    params = [p for p in parameters if p.requires_grad]
    makers = {"sgd": lambda: torch.optim.SGD(params, lr=1e-3, foreach=False),
              "momentum": lambda: torch.optim.SGD(params, lr=1e-3, momentum=0.9, foreach=False),
              "adam": lambda: torch.optim.Adam(params, foreach=False),
              "adamw": lambda: torch.optim.AdamW(params, foreach=False),
              "adafactor": lambda: torch.optim.Adafactor(params, foreach=False)}
    if name not in makers:
        raise UserError(f"unknown --optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return makers[name]()


def make_step(subject: Subject) -> Callable[[], None]:
    """One optimizer step of a train-phase ``subject`` on its device, as a call: zero the gradients, forward and
    loss (under autocast for a mixed recipe, with a gradient scaler for fp16), backward, ``optimizer.step()``."""
    import torch

    recipe = subject.recipe or Recipe(subject.label, phase="train")
    optimizer = make_optimizer(subject.module.parameters(), recipe.optimizer)
    device_type = torch.device(subject.device).type
    half = HALF.get(recipe.precision)
    autocast = (lambda: torch.autocast(device_type, dtype=getattr(torch, half))) if half else nullcontext
    scaler = torch.amp.GradScaler(device_type) if recipe.precision == "fp16-mixed" else None
    args, kwargs = subject.example_inputs()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = subject.module(*args, **kwargs)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    return step


# ---- what the step computes -----------------------------------------------------------------------------------

def optimizer_flops(module, optimizer: str) -> int:
    """FLOPs of ``optimizer.step()``: :data:`FLOPS_PER_ELEMENT` × trainable parameter elements."""
    params = {id(p): p for p in module.parameters() if p.requires_grad}.values()
    return FLOPS_PER_ELEMENT[optimizer] * sum(p.numel() for p in params)


def recomputed_macs(subject: Subject, attention_count: str = "full") -> int:
    """MACs checkpointing recomputes: the forward MACs of each checkpointed block (0 without checkpointing)."""
    from archbench.measure.flops import count_flops

    names = getattr(subject.module, "checkpointed", [])
    if not names:
        return 0
    forward = count_flops(subject, attention_count=attention_count)
    return sum(forward.by_module.get(f"model.{name}", 0) for name in names)


def flop_records(subject: Subject, *, by=None, depth=None, engine="auto", attention_count="full") -> list[Record]:
    """``macs``, ``flops`` and ``other_flops`` of one optimizer step: forward + loss + backward counted by the
    dispatch engine, the recomputed forward of checkpointed blocks added to the MACs, the optimizer's
    element-wise work to the other FLOPs; ``model_flops`` in the details: PaLM's for a transformer with a config,
    else the counted forward + backward without recomputation."""
    from archbench.measure.flops import flop_records as counted

    engine = "dispatch" if engine == "auto" else engine
    records = counted(subject, backward=True, by=by, depth=depth, engine=engine, attention_count=attention_count)
    recompute = recomputed_macs(subject, attention_count)
    steps = optimizer_flops(subject.module, subject.recipe.optimizer)
    main = {r.metric: r for r in records if not {"module", "operator"} & set(r.point)}
    main["macs"].value += recompute
    main["flops"].value = 2 * main["macs"].value
    main["other_flops"].value += steps
    model = model_flops(subject)
    if model["value"] is None:  # not a transformer: the model FLOPs are the counted step's, recomputation excluded
        model = {"value": 2 * (main["macs"].value - recompute),
                  "formula": "2 x the counted forward + backward MACs, recomputation excluded (PaLM's formula needs "
                            "a transformer with a config)"}
    main["macs"].details.update({
        "pass": "train step: forward + loss + backward" + (" + recomputed forward" if recompute else "")
                + " + optimizer.step()",
        "loss": _loss_of(subject), "recomputed_macs": recompute, "optimizer_flops": steps,
        "optimizer": subject.recipe.optimizer, "model_flops": model,
    })
    main["other_flops"].details["optimizer_flops"] = steps
    return records


def _loss_of(subject: Subject) -> str:
    from archbench.models.train_step import loss_description

    return loss_description(subject.module)


def model_flops(subject: Subject) -> dict[str, Any]:
    """The step's model FLOPs by PaLM's convention (appendix B): 6·N per token + 12·L·d·T per token for attention,
    N the parameters a token's matmuls use (embedding tables excluded unless tied to the output layer);
    None where the model is not a transformer with a config (no layers, width and T to read)."""
    config = getattr(getattr(subject.module, "model", subject.module), "config", None)
    seq = subject.seq
    layers = _first(config, ("num_hidden_layers", "n_layer", "num_layers"))
    width = _first(config, ("hidden_size", "n_embd", "d_model"))
    if not (seq and layers and width):
        return {"value": None, "why": "not a transformer with a config"}
    n = matmul_parameters(subject.module)
    tokens = subject.batch * seq
    value = 6 * n * tokens + 12 * layers * width * seq * tokens
    return {"value": value, "parameters": n, "tokens": tokens, "layers": layers, "width": width,
            "formula": "6·N·tokens + 12·L·d·T·tokens (PaLM, appendix B)"}


def _first(config, names) -> int | None:
    for name in names:
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    return None


def matmul_parameters(module) -> int:
    """Trainable parameters without the embedding tables a lookup reads (a table tied to a Linear stays)."""
    from torch import nn

    linear = {id(m.weight) for m in module.modules() if isinstance(m, nn.Linear)}
    tables = {id(m.weight): m.weight for m in module.modules() if isinstance(m, nn.Embedding)}
    params = {id(p): p for p in module.parameters() if p.requires_grad}
    return sum(p.numel() for i, p in params.items() if i not in tables or i in linear)


def measure_step_peak(request: dict) -> dict:
    """In the memory worker: the peak of a whole optimizer step over the memory in use before the model was built.

    The recipe is built on meta first (so the libraries it imports are loaded before the baseline), then on the
    device; two steps run (the first also allocates the gradients and optimizer states), each measured as
    the worker measures a forward: CPU, the peak resident set; CUDA, ``max_memory_allocated``. The figure is
    the second step's peak minus the baseline.
    """
    import gc

    import torch

    from archbench.measure.memory_worker import cpu_forward_peak, cuda_forward_peak, status_bytes

    recipe, device = Recipe.from_dict(request), request["device"]
    meta = recipe.build("meta")
    gc.collect()
    cuda = device.startswith("cuda")
    baseline = torch.cuda.memory_allocated(device) if cuda else status_bytes("VmRSS")
    step = make_step(recipe.build(device, meta))
    peak = (lambda: cuda_forward_peak(step, device)) if cuda else (lambda: cpu_forward_peak(step))  # noqa: E731
    first, steady = peak(), peak()
    for measured in (first, steady):
        measured["forward_peak_bytes"] = measured["peak_bytes"] - baseline
        measured["baseline_bytes"] = baseline
    return {"first": first, "steady": steady}


def step_latency_records(subject: Subject, counting: Subject, settings, peak_flops: float | None,
                         peak_warnings: list[str]) -> list[Record]:
    """Latency of whole optimizer steps (:func:`archbench.measure.latency.measure_latency`, the one latency path),
    then ``steps_s``, ``throughput_tokens_s`` for sequence models, and against the peak: the hardware FLOPs
    (the counted step, recomputation included) as ``achieved_flops_s``, ``peak_fraction`` and ``hfu``, the
    model FLOPs (PaLM's convention) as ``mfu``. ``counting`` is the subject on the counting device."""
    from archbench.measure.latency import measure_latency

    if settings.compile:
        raise UserError("--compile with --phase train is not supported: the step is timed eagerly")
    warnings: list[str] = list(peak_warnings)
    try:
        step = {r.metric: r for r in flop_records(counting, attention_count=settings.attention_count)}
        macs = step["macs"].value
        palm = step["macs"].details["model_flops"]
    except Exception as exc:  # the step still times; the utilisation rows say why they are missing
        from archbench.errors import describe_error

        macs, palm = None, {"value": None, "why": f"the step's FLOPs were not counted ({describe_error(exc)})"}
        warnings.append(palm["why"])
    records = measure_latency(subject, threads=settings.threads, min_time=settings.min_time, macs=macs,
                              peak_flops=peak_flops)
    by_metric = {r.metric: r for r in records}
    latency = by_metric["latency_s"]
    by_metric.get("achieved_flops_s", latency).warnings.extend(warnings)
    if latency.value is None:
        return records
    point, seconds = dict(subject.point), latency.value
    records.append(Record.of(subject.label, "steps_s", 1 / seconds, point))
    if subject.seq:
        records.append(Record.of(subject.label, "throughput_tokens_s", subject.batch * subject.seq / seconds, point))
    if peak_flops and macs is not None:
        records.append(Record.of(subject.label, "hfu", 2 * macs / seconds / peak_flops, point, warnings=_above(
                                 2 * macs / seconds / peak_flops),
                              details={"hardware_flops": 2 * macs, "peak_flops_s": peak_flops,
                                       "what": "the counted step's 2 x MACs (recomputation included) / latency_s / "
                                               "the peak; the optimizer's element-wise work is left out"}))
    if peak_flops and palm.get("value"):
        records.append(Record.of(subject.label, "mfu", palm["value"] / seconds / peak_flops, point,
                                 warnings=_above(palm["value"] / seconds / peak_flops),
                              details={**{k: v for k, v in palm.items() if k != "value"}, "model_flops": palm["value"],
                                       "peak_flops_s": peak_flops}))
    elif peak_flops:
        latency.warnings.append(f"no mfu: {palm.get('why')}")
    return records


def _above(fraction: float) -> list[str]:
    """The warning of a utilisation above 1: the peak it is measured against was not the machine's."""
    return [f"{fraction:.2f}x the peak: the matmul peak was measured under other load"] if fraction > 1 else []


def activations_pass_batch(recipe: Recipe, limit: int = 4096, fused: bool = False) -> tuple[int | None, dict[str, Any]]:
    """The smallest batch at which a step's activations (counted on meta) pass its weights + gradients + optimizer
    states; None above ``limit``. Activations grow linearly with the batch: batch 1 and 2 give the line, and
    the counts at the batch found (and the one below it) confirm it."""
    def counted(batch: int) -> dict[str, Any]:
        return breakdown(recipe.with_(batch=batch).build("meta"), fused=fused)

    one, two = counted(1), counted(2)
    rest = one["weights"] + one["gradients"] + one["optimizer_states"]
    slope = two["activations"] - one["activations"]
    if one["activations"] > rest:
        return 1, {"rest_bytes": rest, "activations_at_batch": one["activations"]}
    if slope <= 0:
        return None, {"rest_bytes": rest, "why": "activations do not grow with the batch"}
    batch = max(2, (rest - one["activations"]) // slope + 1 + 1)
    while batch > 2 and counted(batch - 1)["activations"] > rest:  # the line overshot: step down to the first
        batch -= 1
    while batch <= limit and counted(batch)["activations"] <= rest:
        batch += 1
    if batch > limit:
        return None, {"rest_bytes": rest, "why": f"not by batch {limit}"}
    return batch, {"rest_bytes": rest, "activations_at_batch": counted(batch)["activations"]}
