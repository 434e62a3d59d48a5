"""MAC/FLOP counting with two engines that share :mod:`archbench.measure.formulas`.

- ``fvcore``: jit tracing through fvcore's public handle API (``FlopCountAnalysis.set_op_handle``);
  needs positional tensor inputs on a real device.
- ``dispatch``: ``torch.utils.flop_counter.FlopCounterMode`` with archbench's formulas in its
  ``custom_mapping``, plus a ledger mode that sees every op actually run; it works on the
  meta device, with keyword inputs (Hugging Face models) and for backward.

``macs`` is multiply-accumulate work (linear, conv, matmul, einsum, attention, recurrent
weights); ``flops`` = 2 × ``macs``. Bias additions, normalisation, softmax, activations,
pooling and other elementwise work go to ``other_flops``, best effort: FLOPs per element of
the largest tensor the op touches (:data:`OTHER_FLOPS_PER_ELEMENT`), and inside fused attention
and recurrent kernels :func:`fused_elementwise_flops` and :func:`recurrent_elementwise_flops`.
An op in neither group and not pure data movement (:data:`DATA_MOVEMENT_OPS`) is *uncounted*:
reported with its call count and modules, never silently zero. :data:`NEGLIGIBLE_OPS` are the uncounted ops
known to be negligible, which ``--strict`` tolerates.

Forward counts run under ``torch.no_grad()`` (inference), so PyTorch's fused fast paths
(``_transformer_encoder_layer_fwd``, ``_native_multi_head_attention``) are taken where it
would take them, and counted by their formulas.

Attention is counted in full (every L×S query–key pair, as the math backend computes it) unless
``attention_count="causal"``: then each ``scaled_dot_product_attention`` call counts the pairs
its mask keeps (:func:`sdpa_kept_pairs`) and the record says how each call was counted.
Mixture-of-experts layers count the experts each token was routed to; on the meta device,
where routing cannot be read, each token is taken to reach its top-k experts.
"""

from __future__ import annotations

import math
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from archbench.errors import UserError
from archbench.measure import formulas
from archbench.measure.closed_form import closed_form_check, disagreement
from archbench.measure.params import module_depth
from archbench.metrics import unit_of
from archbench.results.record import Record

if TYPE_CHECKING:
    from archbench.models.subject import Subject

ENGINES = ("auto", "fvcore", "dispatch")

ATTENTION_COUNTS = ("full", "causal")
ATTENTION_NOTES = {
    "full": "causal or masked attention is counted as the full L×S score matrix, as the math backend computes it",
    "causal": "scaled_dot_product_attention counts only the query–key pairs its mask keeps",
}
META_ROUTING = ("meta device: routing cannot be read, each token is taken to reach its top-k experts "
                "(uniform routing), counted with transformers' batched_mm experts path")

# Elementwise, normalisation, reduction and pooling work: FLOPs per element of the largest
# tensor the op reads or writes. "bias" is the bias addition of addmm/baddbmm/linear/conv.
OTHER_FLOPS_PER_ELEMENT: dict[str, int] = {
    **dict.fromkeys(
        (
            "bias", "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "pow", "sqrt",
            "rsqrt", "exp", "log", "abs", "reciprocal", "erf", "addcmul", "addcdiv", "lerp", "relu", "relu_",
            "relu6", "threshold", "threshold_", "clamp", "clamp_", "clamp_min", "clamp_min_", "hardtanh",
            "hardtanh_", "leaky_relu", "leaky_relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "gelu", "gelu_",
            "silu", "silu_", "hardswish", "hardswish_", "hardsigmoid", "hardsigmoid_", "elu", "elu_", "mish",
            "softplus", "cos", "sin", "sum", "mean", "var", "std", "max_pool1d", "max_pool2d", "max_pool3d",
            "max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d", "avg_pool3d",
            "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "_adaptive_avg_pool2d",
            "adaptive_max_pool2d", "upsample_nearest2d",
            # backward of the above
            "threshold_backward", "gelu_backward", "tanh_backward", "sigmoid_backward", "silu_backward",
            "hardswish_backward", "hardsigmoid_backward", "leaky_relu_backward", "hardtanh_backward", "elu_backward",
            "max_pool2d_with_indices_backward", "avg_pool2d_backward", "_adaptive_avg_pool2d_backward",
        ),
        1,
    ),
    **dict.fromkeys(("linalg_vector_norm", "norm"), 2),
    **dict.fromkeys(("upsample_bilinear2d", "grid_sampler", "grid_sampler_2d"), 4),  # 4 neighbours per output
    **dict.fromkeys(("softmax", "_softmax", "_safe_softmax", "log_softmax", "_log_softmax", "_softmax_backward_data",
                     "_log_softmax_backward_data"), 3),
    **dict.fromkeys(("layer_norm", "native_layer_norm", "group_norm", "native_group_norm", "instance_norm",
                     "native_layer_norm_backward", "native_group_norm_backward", "native_batch_norm_backward"), 5),
    **dict.fromkeys(
        ("batch_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training"), 2
    ),
}

FUSED_ELEMENTWISE = "fused_elementwise"  # other_flops inside fused attention kernels, see fused_elementwise_flops
ATTENTION_PRODUCTS = "attention_products"  # fvcore handles: MACs of attention's score and value products

# No arithmetic: views, copies, allocation, indexing and lookups (embedding), masks, random draws.
DATA_MOVEMENT_OPS = frozenset(
    (
        "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "t", "transpose", "transpose_",
        "permute", "expand", "expand_as", "unsqueeze", "unsqueeze_", "squeeze", "squeeze_", "select", "slice",
        "narrow", "flatten", "unflatten", "clone", "detach", "detach_", "alias", "contiguous", "cat", "stack",
        "split", "split_with_sizes", "unsafe_split", "chunk", "unbind", "zeros", "zeros_like", "ones",
        "ones_like", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "new_zeros",
        "new_ones", "new_full", "full", "full_like", "fill_", "zero_", "arange", "copy_", "_to_copy", "to",
        "type_as", "lift_fresh", "lift_fresh_copy", "scalar_tensor", "embedding", "gather", "index_select",
        "index", "repeat", "tril", "triu", "masked_fill", "masked_fill_", "where", "constant_pad_nd", "pad",
        "roll", "flip", "dropout", "feature_dropout", "native_dropout", "bernoulli_", "bernoulli", "Int",
        "ScalarImplicit", "size", "numel", "dim", "item", "_local_scalar_dense", "_assert_async",
        "resize_", "set_", "_has_compatible_shallow_copy_type", "rand", "randn", "uniform_",
        "normal_", "channel_shuffle", "pixel_shuffle", "as_strided_", "select_backward", "slice_backward",
    )
)

# Uncounted ops known to be negligible next to the MAC work (comparisons, integer and index
# arithmetic, small reductions). Reported like every uncounted op; ``--strict`` tolerates them.
NEGLIGIBLE_OPS = frozenset(
    (
        "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and",
        "bitwise_or", "bitwise_not", "__and__", "__or__", "argmax", "argmin", "max", "min", "amax", "amin",
        "topk", "sort", "cumsum", "floor", "floor_divide", "remainder", "round", "any", "all", "scatter",
        "scatter_add", "scatter_", "index_put_", "index_put", "index_add", "index_add_", "sign", "isnan", "isinf",
        "nonzero", "maximum", "minimum", "aminmax", "histc", "bincount", "embedding_dense_backward",
    )
)


@dataclass
class FlopCount:
    """What one count found: MACs (and FLOPs = 2 × MACs), other FLOPs, their breakdowns, uncounted ops."""

    macs: int
    other_flops: int
    by_operator: dict[str, int]  # op -> MACs
    by_module: dict[str, int]  # module name ("" is the whole model) -> MACs
    uncounted: dict[str, int]  # op -> calls
    warnings: list[str] = field(default_factory=list)
    engine: str = ""
    uncounted_modules: dict[str, list[str]] = field(default_factory=dict)  # op -> modules that ran it
    other_by_operator: dict[str, int] = field(default_factory=dict)  # op -> FLOPs
    attention_macs: int = 0  # MACs of attention's score and value products (QKᵀ and AV), see is_attention_module
    other_by_module: dict[str, int] = field(default_factory=dict)  # module name -> other FLOPs (dispatch engine)
    details: dict[str, Any] = field(default_factory=dict)  # how attention and routing were counted

    @property
    def flops(self) -> int:
        """FLOPs of the multiply-accumulate work: 2 × MACs."""
        return 2 * self.macs

    @property
    def significant_uncounted(self) -> dict[str, int]:
        """Uncounted ops that are not on the documented list of negligible ones."""
        return {op: n for op, n in self.uncounted.items() if base_name(op) not in NEGLIGIBLE_OPS}


def fused_elementwise_flops(op: str, query: tuple, key: tuple, heads: int = 1, feedforward: int = 0) -> int:
    """Best-effort other FLOPs inside a fused attention kernel, where no op of its own reports them.

    Softmax (3 per score) for scaled dot-product attention, whose query (..., L, E) already carries
    its heads; plus the four projections' bias adds for ``_native_multi_head_attention`` (query and
    key (B, L|S, E), ``heads`` heads); plus, for ``_transformer_encoder_layer_fwd``, the feed-forward's
    bias adds and activation, two residual adds and two layer norms (5 per element).
    """
    rows, source, width = math.prod(query[:-1]), key[-2], query[-1]
    softmax = 3 * rows * heads * source
    if "multi_head" not in op and "transformer_encoder_layer" not in op:
        return softmax
    projection_biases = 2 * rows * width + 2 * math.prod(key)  # q and out on the query side, k and v on the key side
    if "multi_head" in op:
        return softmax + projection_biases
    return softmax + projection_biases + rows * (2 * feedforward + 13 * width)  # ff bias+act, d: bias, 2 adds, 2 norms


# Elementwise FLOPs of one recurrent cell step per hidden unit, by number of gates (LSTM 4, GRU 3, RNN 1):
# each gate pre-activation element takes two bias adds, the input + hidden add and its activation (4), then
# the state update: LSTM 5 (c = f*c + i*g, o * tanh(c)), GRU 4 (r * n_h, n add, (1 - z) * n + z * h), RNN 0.
RECURRENT_CELL_FLOPS_PER_HIDDEN = {4: 4 * 4 + 5, 3: 4 * 3 + 4, 1: 4 * 1}


def recurrent_elementwise_flops(input_shape: tuple, gate_rows: int, hidden: int, cells: int = 1) -> int:
    """Best-effort other FLOPs inside a fused recurrent op: ``cells`` (layers × directions) cells of ``hidden``
    units whose input-to-gates weight has ``gate_rows`` rows, over every step and batch element of the input."""
    rows = math.prod(input_shape[:-1])
    return rows * cells * RECURRENT_CELL_FLOPS_PER_HIDDEN.get(gate_rows // hidden, 0) * hidden


def base_name(op: str) -> str:
    """``aten::add`` / ``aten.add`` / ``aten.add.Tensor`` -> ``add``."""
    name = op.split("::", 1)[-1]
    if name.startswith("aten."):
        name = name[len("aten."):]
    return name.split(".")[0]


def choose_engine(built: Subject, engine: str = "auto", backward: bool = False,
                  attention_count: str = "full") -> str:
    """The engine that will count ``built``: fvcore where jit tracing can, dispatch elsewhere."""
    if engine not in ENGINES:
        raise UserError(f"unknown --engine {engine!r}; expected one of {', '.join(ENGINES)}")
    if attention_count not in ATTENTION_COUNTS:
        raise UserError(f"unknown --attention-count {attention_count!r}; expected one of {', '.join(ATTENTION_COUNTS)}")
    from archbench.models.decode import DecodeStep

    _, kwargs = built.example_inputs(device="meta")
    why_not_fvcore = (
        "--backward needs the dispatch engine" if backward
        else "a Hugging Face decode step passes its cache object, which jit tracing cannot"
        if isinstance(built.module, DecodeStep)
        else "--attention-count causal reads each attention call's mask, which needs the dispatch engine"
        if attention_count == "causal"
        else "the meta device cannot be traced by jit" if built.device == "meta"
        else f"{built.label} takes keyword inputs, which jit tracing cannot pass" if kwargs
        else None
    )
    if engine == "auto":
        return "dispatch" if why_not_fvcore else "fvcore"
    if engine == "fvcore" and why_not_fvcore:
        raise UserError(f"--engine fvcore cannot count {built.label}: {why_not_fvcore}; use --engine dispatch")
    return engine


def count_flops(model, inputs=None, *, backward: bool = False, engine: str = "auto",
                attention_count: str = "full") -> FlopCount:
    """Count the MACs of one forward pass on the example inputs (forward + backward with ``backward``).

    ``model`` is a subject, or an ``nn.Module`` with its example ``inputs`` (a tensor, a tuple of
    positional inputs or a dict of keyword inputs), as ``archbench.count_flops(model, inputs)``.
    ``attention_count="causal"`` counts only the query–key pairs each attention call's mask keeps.
    """
    from archbench.models.subject import Subject

    built = model if isinstance(model, Subject) else Subject.from_module(model, inputs)
    chosen = choose_engine(built, engine, backward, attention_count)
    notes: list[str] = []
    if chosen == "fvcore":
        try:
            result = _count_fvcore(built)
        except Exception as exc:  # jit tracing failed: a clear line, or the dispatch engine under "auto"
            reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"
            if engine == "fvcore":
                raise UserError(f"fvcore could not trace {built.label} ({reason}); use --engine dispatch") from None
            notes.append(f"fvcore could not trace the model ({reason}); counted with the dispatch engine")
            chosen, result = "dispatch", _count_dispatch(built, backward, attention_count)
    else:
        result = _count_dispatch(built, backward, attention_count)
    result.engine = chosen
    if "routing" in result.details and built.device == "meta":
        notes.append(f"mixture-of-experts: {META_ROUTING}")
    if "attention_unfused" in result.details:
        notes.append(result.details["attention_unfused"])
    result.warnings = list(built.warnings) + notes + _uncounted_warnings(result)
    return result


def flop_records(built: Subject, *, backward: bool = False, by: str | None = None, depth: int | None = None,
                 engine: str = "auto", attention_count: str = "full") -> list[Record]:
    """Records ``macs``, ``flops`` and ``other_flops`` for the model, then per module (``by="module"``,
    down to ``depth``) or per operator (``by="operator"``) ``macs`` rows."""
    if by not in (None, "module", "operator"):
        raise UserError(f"unknown --by {by!r}; expected module or operator")
    count = count_flops(built, backward=backward, engine=engine, attention_count=attention_count)
    point = dict(built.point)
    details: dict[str, Any] = {"engine": count.engine, "pass": "forward+backward" if backward else "forward"}
    if count.attention_macs:
        details["attention"] = ATTENTION_NOTES[attention_count]
        details["attention_count"] = attention_count
    details.update(count.details)
    closed_form = closed_form_check(built.module, batch=built.batch, seq=built.seq, phase=built.phase,
                                    attention_count=attention_count, backward=backward)
    if closed_form is not None:
        details["closed_form_macs"] = closed_form
        if (mismatch := disagreement(count.macs, closed_form)) is not None:
            details["closed_form_mismatch"] = mismatch
            count.warnings.append(mismatch)
    if count.uncounted:
        details["uncounted_ops"] = dict(count.uncounted)
    if count.significant_uncounted:
        details["significant_uncounted"] = count.significant_uncounted
    records = [
        Record(built.label, "macs", count.macs, unit_of("macs"), point, warnings=list(count.warnings), details=details),
        Record(built.label, "flops", count.flops, unit_of("flops"), point, details={"definition": "2 x macs"}),
        Record(built.label, "other_flops", count.other_flops, unit_of("other_flops"), point,
               details={"what": "bias, normalisation, softmax, activation, pooling, elementwise (best effort)"}),
    ]
    if count.attention_macs:
        from archbench.measure.architecture import attention_share

        records.append(Record(built.label, "attention_share", attention_share(count), unit_of("attention_share"), point,
                              details={"attention_macs": count.attention_macs, "macs": count.macs,
                                       "attention_count": attention_count,
                                       "what": "MACs of attention's score and value products (QK^T, AV) / macs"}))
    if by == "module":
        for name, macs in count.by_module.items():
            if name and (depth is None or module_depth(name) <= depth):
                records.append(Record(built.label, "macs", macs, unit_of("macs"), {**point, "module": name}))
    elif by == "operator":
        for op, macs in sorted(count.by_operator.items(), key=lambda item: -item[1]):
            records.append(Record(built.label, "macs", macs, unit_of("macs"), {**point, "operator": op}))
    return records


def _uncounted_warnings(count: FlopCount) -> list[str]:
    warnings = []
    for op, calls in sorted(count.uncounted.items()):
        where = [name or "the model itself" for name in count.uncounted_modules.get(op, [])]
        place = f" in {', '.join(where[:3])}{', ...' if len(where) > 3 else ''}" if where else ""
        kind = "no formula" if op in count.significant_uncounted else "known negligible"
        warnings.append(f"uncounted op {op} ({calls} call{'' if calls == 1 else 's'}{place}): {kind}, "
                        f"its work is not in macs")
    return warnings


# ---------------------------------------------------------------- dispatch engine


def _as_flops(macs_formula: Callable[..., int]) -> Callable[..., int]:
    """FlopCounterMode's formulas return FLOPs (2 × MACs); archbench's return MACs."""

    def formula(*args, **kwargs):  # kwargs carry out_shape, the shape of the op's output
        return 2 * macs_formula(*args, **kwargs)

    return formula


# The fused kernels F.scaled_dot_product_attention dispatches to; each takes (query, key, value, ...) as (B, H, L, E).
SDPA_KERNELS = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")


def is_attention_module(module) -> bool:
    """Whether ``module`` is an attention layer, by its class name (``LlamaAttention``, ``BertSelfAttention``,
    ``nn.MultiheadAttention``, ...): its batched products of two activations (bmm, baddbmm) are the score
    and value products QKᵀ and AV of eager attention; its projections are linear layers (mm, addmm)."""
    return "Attention" in type(module).__name__


def sdpa_kept_pairs(query, key, attn_mask=None, is_causal: bool = False, module=None) -> tuple[int, str]:
    """Query–key pairs one ``scaled_dot_product_attention`` call keeps, summed over batch and heads, and how
    they were found.

    ``is_causal`` keeps keys 0..i for query i (PyTorch's top-left alignment). A mask with values keeps its
    True entries (bool) or those above its dtype's minimum (float: transformers writes finfo.min or -inf),
    broadcast to (batch, heads, L, S). A mask on the meta device has no values: it is taken to be the causal
    mask of the attention ``module`` (its ``is_causal``) with the ``sliding_window`` of the module or its
    config, the mask's queries being the last ones (a KV cache). No mask: every pair.
    """
    import torch

    *lead, length, _ = query.shape
    source = key.shape[-2]
    full = math.prod(lead) * length * source
    if is_causal:
        return math.prod(lead) * formulas.causal_pairs(length, source), "causal (is_causal)"
    if attn_mask is None:
        return full, "full (no mask)"
    if attn_mask.device.type != "meta":
        kept = attn_mask if attn_mask.dtype == torch.bool else attn_mask > torch.finfo(attn_mask.dtype).min
        return int(kept.sum()) * full // attn_mask.numel(), "mask (its kept entries counted)"
    if not getattr(module, "is_causal", False):
        return full, "full (mask on the meta device, attention not causal)"
    config_window = getattr(getattr(module, "config", None), "sliding_window", None)
    window = getattr(module, "sliding_window", config_window)
    queries = attn_mask.shape[-2]
    kept_in_mask = formulas.causal_pairs(queries, source, window, offset=source - queries)
    how = f"sliding window {window}" if window else "causal"
    return kept_in_mask * full // (queries * source), f"{how} (meta device: from the model's config)"


@dataclass
class _AttentionCalls:
    """The scaled_dot_product_attention calls of one count: the pairs the call in flight keeps (for the kernel's
    formula), how each call was counted, the MACs of attention's score and value products."""

    count: str
    pending: int | None = None
    how: Counter = field(default_factory=Counter)
    macs: int = 0
    kept: list = field(default_factory=list)  # pairs of each fused forward call, popped by its backward (LIFO)
    unfused: int = 0  # causal counts that reached no fused kernel (math backend: bmm, counted in full)
    eager: int = 0  # score and value products of eager attention (bmm in attention modules, outside any SDPA call)
    in_call: bool = False  # an SDPA call is running


def _sdpa_interceptor(calls: _AttentionCalls, attention_module: Callable[[], Any]):
    """A TorchFunctionMode that sees each F.scaled_dot_product_attention call with its mask before it is
    dispatched, and on the meta device (where the math backend would decompose it) runs the CPU flash kernel's
    meta implementation, so that every device counts one fused op."""
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    names = ("query", "key", "value", "attn_mask", "dropout_p", "is_causal", "scale", "enable_gqa")

    class SdpaCalls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is not F.scaled_dot_product_attention:
                return func(*args, **kwargs)
            call = {**dict(zip(names, args)), **kwargs}
            q, k, v, mask = call["query"], call["key"], call["value"], call.get("attn_mask")
            if calls.count == "causal":
                calls.pending, how = sdpa_kept_pairs(q, k, mask, call.get("is_causal", False), attention_module())
                calls.how[how] += 1
            if q.device.type == "meta" and q.dim() == 4:
                if call.get("enable_gqa") and k.shape[-3] != q.shape[-3]:
                    groups = q.shape[-3] // k.shape[-3]
                    k, v = (t[:, :, None].expand(-1, -1, groups, -1, -1).flatten(1, 2) for t in (k, v))
                out = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(
                    q, k, v, call.get("dropout_p", 0.0), call.get("is_causal", False), attn_mask=mask,
                    scale=call.get("scale"))[0]
            else:
                calls.in_call = True
                try:
                    out = func(*args, **kwargs)
                finally:
                    calls.in_call = False
            if calls.pending is not None:  # no fused kernel took it: the math backend counted every pair
                calls.unfused += 1
                calls.pending = None
            return out

    return SdpaCalls()


def _dispatch_formulas(calls: _AttentionCalls) -> dict:
    """custom_mapping for FlopCounterMode: archbench's formulas for every MAC op it knows (shapes in, FLOPs out);
    the fused attention kernels count the pairs ``calls`` says the call in flight keeps."""
    import torch

    aten = torch.ops.aten

    def conv(x, w, bias, stride, padding, dilation, transposed, *rest, out_shape, **kwargs):
        return formulas.conv_macs(x, w, out_shape, transposed)

    def encoder_layer(src, embed_dim, heads, *weights, **kwargs):
        ffn_weight_1 = weights[11]  # after qkv/proj weights and biases, use_gelu, norm_first, eps, the norms
        return formulas.encoder_layer_macs(src, ffn_weight_1[0])

    table = {
        aten.mm: lambda a, b, **kw: formulas.matmul_macs(a, b),
        aten.addmm: lambda bias, a, b, **kw: formulas.matmul_macs(a, b),
        aten.bmm: lambda a, b, **kw: formulas.matmul_macs(a, b),
        aten.baddbmm: lambda bias, a, b, **kw: formulas.matmul_macs(a, b),
        aten.mv: lambda a, b, **kw: formulas.matmul_macs(a, b),
        aten.addmv: lambda bias, a, b, **kw: formulas.matmul_macs(a, b),
        aten.dot: lambda a, b, **kw: formulas.matmul_macs(a, b),
        aten.convolution: conv,
        aten._convolution: conv,
        aten._native_multi_head_attention: lambda q, k, v, embed_dim, *rest, **kw: formulas.multi_head_attention_macs(
            q, k, v, embed_dim),
        aten._transformer_encoder_layer_fwd: encoder_layer,
        aten._cudnn_rnn: lambda input, weights, *rest, **kw: formulas.recurrent_macs(input, weights),
        aten.mkldnn_rnn_layer: lambda input, *w, **kw: formulas.recurrent_macs(input, w[:4]),
        aten.mkldnn_rnn_layer_backward: lambda input, *w, **kw: formulas.recurrent_backward_macs(input, w[:4]),
    }
    if hasattr(aten, "_grouped_mm"):
        table[aten._grouped_mm] = lambda a, b, *rest, **kw: formulas.grouped_mm_macs(a, b)
    mapping = {op: _as_flops(f) for op, f in table.items()}

    def fused_attention(q, k, v, *rest, out_val=None, **kwargs):  # raw tensors: the pairs kept come from ``calls``
        kept, calls.pending = calls.pending, None
        calls.kept.append(kept)
        macs = formulas.attention_macs(q.shape, k.shape, v.shape, kept)
        calls.macs += macs
        return 2 * macs

    def fused_attention_backward(grad, q, k, v, *rest, out_val=None, **kwargs):  # the pairs of its forward call
        kept = calls.kept.pop() if calls.kept else None
        macs = formulas.attention_backward_macs(q.shape, k.shape, v.shape, kept)
        calls.macs += macs
        return 2 * macs

    fused_attention._get_raw = fused_attention_backward._get_raw = True  # FlopCounterMode passes tensors
    for name in ("scaled_dot_product_attention", *SDPA_KERNELS):
        if hasattr(aten, name):
            mapping[getattr(aten, name)] = fused_attention
        if hasattr(aten, f"{name}_backward"):
            mapping[getattr(aten, f"{name}_backward")] = fused_attention_backward
    return mapping


def _module_name(tracked: str, root: str) -> str:
    """ModuleTracker's ``Root.layer1.0`` -> ``layer1.0``; the root itself -> ``""``."""
    if tracked == root:
        return ""
    return tracked[len(root) + 1:] if tracked.startswith(root + ".") else tracked


def _attention_products(name: str, args: tuple, in_attention_module: bool) -> int:
    """MACs of attention's score and value products in an op the fused-kernel formula does not already tally."""
    if name == "_native_multi_head_attention":
        return formulas.attention_macs(args[0].shape, args[1].shape, args[2].shape)
    if name == "_transformer_encoder_layer_fwd":
        return formulas.attention_macs(args[0].shape, args[0].shape, args[0].shape)
    if in_attention_module and name in ("bmm", "baddbmm"):
        a, b = args[-2:] if name == "baddbmm" else args[:2]
        return formulas.matmul_macs(a.shape, b.shape)
    return 0


@contextmanager
def meta_routing(module, device: str):
    """On the meta device, run transformers' mixture-of-experts layers with the batched_mm path: the default
    grouped_mm fails there on a dtype check and the eager loop on ``nonzero``; batched_mm sends each token
    to its top-k experts, the routing assumed where it cannot be read. Yields whether the model has experts."""
    from archbench.measure.architecture import expert_layers

    layers = expert_layers(module)
    configs = {id(c): c for experts, _ in layers
               if (c := getattr(experts, "config", None)) is not None and hasattr(c, "_experts_implementation")}
    saved = {key: config._experts_implementation for key, config in configs.items()}
    if device == "meta":
        for config in configs.values():
            config._experts_implementation = "batched_mm"
    try:
        yield bool(layers)
    finally:
        for key, config in configs.items():
            config._experts_implementation = saved[key]


def _count_dispatch(built: Subject, backward: bool, attention_count: str = "full") -> FlopCount:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten
    from torch.utils.flop_counter import FlopCounterMode

    from archbench.measure import recurrent
    from archbench.measure.selective_scan import selective_scans

    calls = _AttentionCalls(attention_count)
    counter = FlopCounterMode(display=False, custom_mapping={  # recurrent calls on meta: at the call, one op each
        **_dispatch_formulas(calls), **recurrent.dispatch_formulas(built.module, built.device)})
    other: Counter[str] = Counter()
    other_tracked: Counter[str] = Counter()  # module name -> other FLOPs of the ops run inside it
    uncounted: Counter[str] = Counter()
    where: dict[str, dict[str, None]] = {}
    module = built.module
    root = type(module).__name__
    modules = dict(module.named_modules())

    def running_modules() -> list:
        """The modules whose forward is running, innermost first."""
        names = sorted((p for p in counter.mod_tracker.parents if p != "Global"), key=len, reverse=True)
        return [modules[n] for n in (_module_name(p, root) for p in names) if n in modules]

    def attention_module():
        return next((m for m in running_modules() if hasattr(m, "is_causal")), None)

    class Ledger(TorchDispatchMode):
        """Sees every op that actually runs (after FlopCounterMode's decompositions) and files it."""

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            before = sum(other.values())
            self.file_op(func, args, kwargs, out)
            added = sum(other.values()) - before
            for parent in counter.mod_tracker.parents if added else ():  # each running module's total includes it
                if parent != "Global":
                    other_tracked[_module_name(parent, root)] += added
            return out

        def file_op(self, func, args, kwargs, out):
            packet = func._overloadpacket
            name = base_name(str(packet))
            if packet in counter.flop_registry:
                innermost = running_modules()[:1]
                products = _attention_products(name, args, bool(innermost) and is_attention_module(innermost[0]))
                calls.macs += products
                calls.eager += bool(products) and name in ("bmm", "baddbmm") and not calls.in_call
                has_bias = name in ("addmm", "baddbmm", "addmv") or (
                    name in ("convolution", "_convolution") and args[2] is not None)
                if has_bias:
                    other["bias"] += _largest_numel(out)
                elif name == "_transformer_encoder_layer_fwd":
                    other[FUSED_ELEMENTWISE] += fused_elementwise_flops(
                        name, args[0].shape, args[0].shape, args[2], args[14].shape[0])
                elif name == "_native_multi_head_attention":
                    other[FUSED_ELEMENTWISE] += fused_elementwise_flops(name, args[0].shape, args[1].shape, args[4])
                elif "attention" in name:
                    other[FUSED_ELEMENTWISE] += fused_elementwise_flops(name, args[0].shape, args[1].shape)
                elif name == "mkldnn_rnn_layer":  # one layer, one direction
                    other[FUSED_ELEMENTWISE] += recurrent_elementwise_flops(args[0].shape, args[1].shape[0], args[10])
                elif (cell_flops := recurrent.elementwise_flops(str(packet), args)) is not None:
                    other[FUSED_ELEMENTWISE] += cell_flops
                elif name == "_cudnn_rnn":
                    cells = args[9] * (2 if args[13] else 1)
                    other[FUSED_ELEMENTWISE] += recurrent_elementwise_flops(
                        args[0].shape, args[1][0].shape[0], args[7], cells)
            elif name in OTHER_FLOPS_PER_ELEMENT:
                tensors = [t for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]
                other[name] += OTHER_FLOPS_PER_ELEMENT[name] * max((t.numel() for t in tensors), default=0)
            elif name not in DATA_MOVEMENT_OPS:
                op = f"aten.{name}"
                uncounted[op] += 1
                running = [p for p in counter.mod_tracker.parents if p != "Global"]
                if running:
                    where.setdefault(op, {})[_module_name(max(running, key=len), root)] = None

    args, kwargs = built.example_inputs()
    # A torch-function mode turns off nn.MultiheadAttention's fast path (it checks has_torch_function): the
    # interceptor runs only where it is needed, to read masks (causal) and on meta (one fused op, as on cpu).
    needs_interceptor = attention_count == "causal" or built.device == "meta"
    interceptor = _sdpa_interceptor(calls, attention_module) if needs_interceptor else nullcontext()
    with meta_routing(module, built.device) as has_experts, interceptor, recurrent.recurrent_calls(module, built.device), \
            selective_scans(module, built.device), Ledger(), counter:
        if backward:
            output = module(*args, **kwargs)
            _first_tensor(output).float().sum().backward()
        else:
            with torch.no_grad():
                module(*args, **kwargs)
    counts = counter.get_flop_counts()
    by_operator = {str(op): flops // 2 for op, flops in counts.get("Global", {}).items()}
    tracked = {_module_name(name, root): sum(ops.values()) // 2 for name, ops in counts.items() if name != "Global"}
    by_module = {name: tracked[name] if name in tracked else _untracked_total(name, tracked) for name in modules}
    details: dict[str, Any] = {}
    if calls.count == "causal" and calls.eager:
        calls.how["full (eager attention: its mask is applied after the bmm)"] += calls.eager
    if calls.how:
        details["attention_calls"] = dict(calls.how)
    if calls.unfused:
        details["attention_unfused"] = (f"{calls.unfused} attention call(s) ran on the math backend "
                                        f"(bmm): their mask could not be applied, every pair counted")
    if has_experts:
        details["routing"] = META_ROUTING if built.device == "meta" else "the experts each token's router chose"
    return FlopCount(
        macs=sum(by_operator.values()),
        other_flops=sum(other.values()),
        by_operator=by_operator,
        by_module=by_module,
        uncounted=dict(uncounted),
        uncounted_modules={op: list(mods) for op, mods in where.items()},
        other_by_operator=dict(other),
        attention_macs=calls.macs,
        details=details,
        other_by_module={name: other_tracked.get(name, _untracked_total(name, other_tracked)) for name in modules},
    )


def _untracked_total(name: str, tracked: dict[str, int]) -> int:
    """MACs of a module that never ran forward itself (a ModuleList): the sum of its outermost tracked descendants."""
    inside = [child for child in tracked if child.startswith(name + ".")]
    outermost = [c for c in inside if not any(c.startswith(other + ".") for other in inside)]
    return sum(tracked[c] for c in outermost)


def _largest_numel(value) -> int:
    import torch
    from torch.utils._pytree import tree_flatten

    return max((t.numel() for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)), default=0)


def _first_tensor(output):
    """The tensor a training step's loss is taken from: the output, or the first tensor in it."""
    import torch
    from torch.utils._pytree import tree_flatten

    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "to_tuple"):  # Hugging Face ModelOutput
        output = output.to_tuple()
    for leaf in tree_flatten(output)[0]:
        if isinstance(leaf, torch.Tensor) and leaf.is_floating_point():
            return leaf
    raise UserError("--backward: the model's output holds no floating-point tensor to take a loss from")


# ---------------------------------------------------------------- fvcore engine


def _jit_shapes(values) -> list:
    from fvcore.nn.jit_handles import get_shape

    return [get_shape(v) for v in values]


def _jit_list(value) -> list:
    """The elements of a jit list value built with prim::ListConstruct."""
    node = value.node()
    return list(node.inputs()) if node.kind() == "prim::ListConstruct" else []


def _jit_recurrent(op: str, gates: int) -> Callable:
    """A handle for aten::lstm / gru / rnn_tanh / rnn_relu, padded (``.input``) or packed (``.data``) overloads."""
    from fvcore.nn.jit_handles import get_shape

    def handle(inputs, outputs):
        packed = inputs[3].type().kind() == "ListType"  # .data: (data, batch_sizes, hx, params, ...)
        rest = inputs[4:] if packed else inputs[3:]  # has_biases, num_layers, dropout, train, bidirectional
        weights = _jit_shapes(_jit_list(inputs[3] if packed else inputs[2]))
        data = get_shape(inputs[0])
        cells = rest[1].toIValue() * (2 if rest[4].toIValue() else 1)
        gate_rows = weights[0][0]
        return Counter({op: formulas.recurrent_macs(data, weights),
                        FUSED_ELEMENTWISE: recurrent_elementwise_flops(data, gate_rows, gate_rows // gates, cells)})

    return handle


def _jit_einsum(inputs, outputs) -> int:
    import torch

    equation = inputs[0].toIValue()
    shapes = _jit_shapes(_jit_list(inputs[1]))
    path = None
    if torch.backends.opt_einsum.enabled and torch.backends.opt_einsum.is_available():
        import opt_einsum

        strategy = torch.backends.opt_einsum.strategy or "auto"
        path = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=strategy)[0]
    return formulas.einsum_macs(equation, shapes, path)


def _jit_conv(inputs, outputs) -> Counter:
    from fvcore.nn.jit_handles import get_shape

    x, w, out = get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0])
    counts = Counter({"convolution": formulas.conv_macs(x, w, out, inputs[6].toIValue())})
    if get_shape(inputs[2]) is not None:
        counts["bias"] = math.prod(out)
    return counts


def _jit_product(op: str, macs: Callable[[list], int], bias_index: int | None) -> Callable:
    """A handle for a matrix product: its MACs under ``op``, and its bias addition (if any) under ``bias``."""
    from fvcore.nn.jit_handles import get_shape

    def handle(inputs, outputs):
        counts = Counter({op: macs(_jit_shapes(inputs))})
        if bias_index is not None and get_shape(inputs[bias_index]) is not None:
            counts["bias"] = math.prod(get_shape(outputs[0]))
        return counts

    return handle


def _jit_other(op: str) -> Callable:
    from fvcore.nn.jit_handles import get_shape

    per_element = OTHER_FLOPS_PER_ELEMENT[op]

    def handle(inputs, outputs):
        sizes = [math.prod(s) for s in (get_shape(v) for v in (*inputs, *outputs)) if s is not None]
        return Counter({op: per_element * max(sizes, default=0)})

    return handle


def _jit_sdpa(inputs, outputs) -> Counter:
    q, k, v = _jit_shapes(inputs[:3])
    name = "scaled_dot_product_attention"
    macs = formulas.attention_macs(q, k, v)
    return Counter({name: macs, ATTENTION_PRODUCTS: macs, FUSED_ELEMENTWISE: fused_elementwise_flops(name, q, k)})


def _jit_multi_head_attention(inputs, outputs) -> Counter:
    q, k, v = _jit_shapes(inputs[:3])
    embed_dim, heads = inputs[3].toIValue(), inputs[4].toIValue()
    name = "_native_multi_head_attention"
    return Counter({name: formulas.multi_head_attention_macs(q, k, v, embed_dim),
                    ATTENTION_PRODUCTS: formulas.attention_macs(q, k, v),
                    FUSED_ELEMENTWISE: fused_elementwise_flops(name, q, k, heads)})


def _jit_encoder_layer(inputs, outputs) -> Counter:
    src, ffn_weight_1 = _jit_shapes([inputs[0], inputs[14]])
    name = "_transformer_encoder_layer_fwd"
    return Counter({name: formulas.encoder_layer_macs(src, ffn_weight_1[0]),
                    ATTENTION_PRODUCTS: formulas.attention_macs(src, src, src),
                    FUSED_ELEMENTWISE: fused_elementwise_flops(name, src, src, inputs[2].toIValue(), ffn_weight_1[0])})


def _fvcore_handles() -> dict[str, Callable]:
    handles: dict[str, Callable] = {
        "aten::addmm": _jit_product("addmm", lambda s: formulas.matmul_macs(s[1], s[2]), 0),
        "aten::baddbmm": _jit_product("baddbmm", lambda s: formulas.matmul_macs(s[1], s[2]), 0),
        "aten::mm": _jit_product("mm", lambda s: formulas.matmul_macs(s[0], s[1]), None),
        "aten::bmm": _jit_product("bmm", lambda s: formulas.matmul_macs(s[0], s[1]), None),
        "aten::matmul": _jit_product("matmul", lambda s: formulas.matmul_macs(s[0], s[1]), None),
        "aten::mv": _jit_product("mv", lambda s: formulas.matmul_macs(s[0], s[1]), None),
        "aten::dot": _jit_product("dot", lambda s: formulas.matmul_macs(s[0], s[1]), None),
        "aten::linear": _jit_product("linear", lambda s: formulas.linear_macs(s[0], s[1]), 2),
        "aten::_convolution": _jit_conv,
        "aten::einsum": lambda i, o: Counter({"einsum": _jit_einsum(i, o)}),
        "aten::scaled_dot_product_attention": _jit_sdpa,
        "aten::_native_multi_head_attention": _jit_multi_head_attention,
        "aten::_transformer_encoder_layer_fwd": _jit_encoder_layer,
    }
    for op, gates in (("lstm", 4), ("gru", 3), ("rnn_tanh", 1), ("rnn_relu", 1)):
        handles[f"aten::{op}"] = _jit_recurrent(op, gates)
    for op in OTHER_FLOPS_PER_ELEMENT:
        if op != "bias":
            handles[f"aten::{op}"] = _jit_other(op)
    return handles


def _count_fvcore(built: Subject) -> FlopCount:
    import warnings

    import torch

    with warnings.catch_warnings():  # fvcore scripts a loss function at import: torch.jit.script's FutureWarning
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*torch.jit.script")
        from fvcore.nn import FlopCountAnalysis

    args, _ = built.example_inputs()
    analysis = FlopCountAnalysis(built.module, args)
    analysis.clear_op_handles().set_op_handle(**_fvcore_handles())  # archbench's formulas only, fvcore's units aside
    analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False).tracer_warnings("none")
    with torch.no_grad():
        per_module = analysis.by_module_and_operator()
        unsupported = analysis.unsupported_ops()
    is_other = lambda op: op in OTHER_FLOPS_PER_ELEMENT or op == FUSED_ELEMENTWISE  # noqa: E731
    is_mac = lambda op: not is_other(op) and op != ATTENTION_PRODUCTS  # noqa: E731
    totals = per_module.get("", Counter())
    by_operator = {op: int(n) for op, n in totals.items() if is_mac(op)}
    by_module = {name: int(sum(n for op, n in ops.items() if is_mac(op))) for name, ops in per_module.items()}
    attention = [name for name, m in built.module.named_modules() if is_attention_module(m)]
    outermost = [a for a in attention if not any(a.startswith(other + ".") for other in attention)]
    eager_products = sum(per_module.get(a, {}).get(op, 0) for a in outermost for op in ("bmm", "baddbmm", "matmul"))
    uncounted = {op: n for op, n in unsupported.items() if base_name(op) not in DATA_MOVEMENT_OPS}
    where: dict[str, list[str]] = {}
    for op in uncounted:
        modules = [name for name in per_module if name and analysis.unsupported_ops(name).get(op)]
        deepest = [m for m in modules if not any(other.startswith(m + ".") for other in modules)]
        where[op] = deepest
    return FlopCount(
        macs=sum(by_operator.values()),
        other_flops=int(sum(n for op, n in totals.items() if is_other(op))),
        by_operator=by_operator,
        by_module=by_module,
        uncounted=uncounted,
        uncounted_modules=where,
        other_by_operator={op: int(n) for op, n in totals.items() if is_other(op)},
        attention_macs=int(totals.get(ATTENTION_PRODUCTS, 0) + eager_products),
    )
