"""The op table: the work of every aten op archbench counts, in one place for both counting engines.

Each entry (:func:`op`) reads one call's arguments by the names in the op's schema (tensors as
their shapes) and returns its :class:`Work`: ``macs``, the MACs of attention's score and value
products (``attention_macs``), ``other_flops`` and, where the kernel's traffic is not the convention,
``bytes_moved``. A new column is one more field of :class:`Work` and one more line in the entries
that have it.

Bytes moved (:func:`moved_bytes`), the convention: every op reads each tensor it takes and writes each
tensor it returns once, at its dtype's size (a broadcast tensor's repeated elements once); views and
allocations move nothing (:data:`NO_TRAFFIC_OPS` and any op whose schema says its outputs alias its
inputs without writing them); lookups read only the rows they gather (:data:`GATHER_OPS`); overwrites
do not read what they overwrite (:data:`OVERWRITE_OPS`). A fused op counts what its kernel moves: the
fused scaled-dot-product kernels read Q, K, V (and a mask) and write the output, never the scores; a
grouped MoE product reads only the experts that got rows; a write of a few rows into a larger tensor (a
static KV cache) moves those rows (:data:`SCATTER_OPS`). Bytes need the tensors' dtypes, which only the
dispatcher sees. The shape arithmetic itself is in
:mod:`archbench.measure.formulas`; :mod:`archbench.measure.flops` adapts the table to jit
tracing (fvcore) and to the dispatcher (FlopCounterMode).

An op is in exactly one of: the table (:data:`OPS`), pure data movement (:data:`DATA_MOVEMENT_OPS`),
or uncounted, reported with its calls (:data:`NEGLIGIBLE_OPS` are those known to be negligible).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

from archbench.measure import formulas

FUSED_ELEMENTWISE = "fused_elementwise"  # other_flops inside fused attention and recurrent kernels
BIAS = "bias"  # other_flops: the bias addition of addmm, baddbmm, addmv, linear and convolution


@dataclass(frozen=True)
class Work:
    """What one op call costs, column by column."""

    macs: int = 0  # multiply-accumulates (FLOPs = 2 × MACs)
    attention_macs: int = 0  # of those, attention's score and value products (QKᵀ and AV)
    other_flops: int = 0  # bias, normalisation, softmax, activation, pooling, losses, elementwise
    bytes_moved: int | None = None  # bytes the kernel reads and writes; None: the convention (:func:`moved_bytes`)


class OpSchemaError(RuntimeError):
    """An op's schema lacks an argument its table entry reads: the entry must follow torch."""


class Call:
    """One call of an op as an entry sees it: ``call["name"]`` is the argument of that schema name (a tensor as
    its shape tuple, a list of tensors as a list of shapes, an unset argument as its default), ``call.out``
    the shape of its first output, :meth:`largest` the most elements of any tensor it reads or writes, and
    ``call.kept`` the query–key pairs the attention call in flight keeps (None: every pair). Where the
    adapter knows the tensors' dtypes (the dispatcher), :meth:`bytes_of` gives an argument's bytes,
    :attr:`written` the bytes of the outputs and :attr:`is_view` whether the outputs only alias the inputs."""

    def __init__(self, op: str, names: tuple[str, ...], values: dict[str, Any], convert: Callable[[Any], Any],
                 sizes: Callable[[], list[int]], out: tuple | None, kept: int | None = None,
                 nbytes: Callable[[Any], int] | None = None, outputs: Any = None, is_view: bool = False):
        self.op, self.names, self._values, self._convert, self._sizes = op, names, values, convert, sizes
        self.out, self.kept = out, kept
        self._nbytes, self._outputs, self.is_view = nbytes, outputs, is_view

    def __getitem__(self, name: str) -> Any:
        if name not in self.names:
            raise OpSchemaError(f"aten.{self.op}: its schema has no argument {name!r} (it has {', '.join(self.names)});"
                                " the op table's entry (archbench/measure/ops.py) must be brought up to date")
        return self._convert(self._values[name]) if name in self._values else None

    def first(self, *names: str) -> Any:
        """The first of ``names`` the schema has (overloads name one argument differently: lstm's input or data)."""
        found = next((n for n in names if n in self.names), None)
        return self[found or names[0]]

    def largest(self) -> int:
        """Elements of the largest tensor the call reads or writes."""
        return max(self._sizes(), default=0)

    def value(self, name: str) -> Any:
        """The argument as the adapter holds it (a tensor on the dispatcher), for an entry that reads its values."""
        self[name]  # the schema must have it
        return self._values.get(name)

    def bytes_of(self, name: str) -> int:
        """Bytes of the tensor(s) passed as ``name`` (0 when unset)."""
        self[name]  # the schema must have it
        return self._nbytes(self._values.get(name))

    @property
    def read(self) -> int:
        """Bytes of every tensor the call takes."""
        return self._nbytes(list(self._values.values()))

    @property
    def knows_bytes(self) -> bool:
        """Whether the adapter gave the tensors' dtypes (the dispatcher does; jit tracing does not)."""
        return self._nbytes is not None

    @property
    def first_written(self) -> int:
        """Bytes of the call's first output."""
        outputs = self._outputs
        return self._nbytes(outputs[0] if isinstance(outputs, (tuple, list)) and outputs else outputs)

    @property
    def written(self) -> int:
        """Bytes of every tensor the call returns."""
        return self._nbytes(self._outputs)


@dataclass(frozen=True)
class Entry:
    """One op of the table: its work, where its ``other_flops`` are filed (``other``), whether its work is MACs
    (``macs``: a product, whose per-module breakdown FlopCounterMode keeps), whether only jit tracing sees it
    whole (``traced_only``: composite ops the dispatcher decomposes) and, for fused attention, which pairs it
    counts (``attention``: "forward" the pairs its call keeps, "backward" those of its forward call)."""

    name: str
    work: Callable[[Call], Work]
    other: str
    macs: bool = True
    traced_only: bool = False
    attention: str | None = None


OPS: dict[str, Entry] = {}
"""aten op base name (``addmm``) -> its entry."""


def op(*names: str, other: str | None = None, macs: bool = True, traced_only: bool = False,
       attention: str | None = None) -> Callable:
    """Register the decorated ``work(call) -> Work`` for each aten op in ``names``; a name registered twice is
    refused. ``other`` names where its other FLOPs are filed (default: the op's own name)."""

    def register(work: Callable[[Call], Work]) -> Callable[[Call], Work]:
        for name in names:
            if name in OPS:
                raise ValueError(f"aten.{name} is already in the op table")
            OPS[name] = Entry(name, work, other or name, macs, traced_only, attention)
        return work

    return register


def _numel(shape) -> int:
    return math.prod(shape) if shape is not None else 0


# ---------------------------------------------------------------- products (MACs)


@op("mm", "bmm")
def _mm(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["self"], call["mat2"]))


@op("_scaled_mm")
def _scaled_mm(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["self"], call["mat2"]))


@op("matmul", traced_only=True)
def _matmul(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["self"], call["other"]))


@op("mv")
def _mv(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["self"], call["vec"]))


@op("dot")
def _dot(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["self"], call["tensor"]))


@op("addmm", other=BIAS)
def _addmm(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["mat1"], call["mat2"]), other_flops=_numel(call.out))


@op("baddbmm", other=BIAS)
def _baddbmm(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["batch1"], call["batch2"]), other_flops=_numel(call.out))


@op("addmv", other=BIAS)
def _addmv(call: Call) -> Work:
    return Work(macs=formulas.matmul_macs(call["mat"], call["vec"]), other_flops=_numel(call.out))


@op("linear", other=BIAS, traced_only=True)
def _linear(call: Call) -> Work:
    bias = _numel(call.out) if call["bias"] is not None else 0
    return Work(macs=formulas.linear_macs(call["input"], call["weight"]), other_flops=bias)


@op("convolution", "_convolution", other=BIAS)
def _convolution(call: Call) -> Work:
    macs = formulas.conv_macs(call["input"], call["weight"], call.out, call["transposed"])
    return Work(macs=macs, other_flops=_numel(call.out) if call["bias"] is not None else 0)


@op("convolution_backward")
def _convolution_backward(call: Call) -> Work:
    """The input gradient (a transposed convolution of the output gradient) and the weight gradient (the
    input against the output gradient) each cost the forward's MACs, grouped convolutions included."""
    forward = formulas.conv_macs(call["input"], call["weight"], call["grad_output"], call["transposed"])
    wanted = call["output_mask"]
    return Work(macs=forward * (bool(wanted[0]) + bool(wanted[1])))


@op("einsum", traced_only=True)
def _einsum(call: Call) -> Work:
    import torch

    equation, shapes = call["equation"], call["tensors"]
    path = None
    if torch.backends.opt_einsum.enabled and torch.backends.opt_einsum.is_available():
        import opt_einsum

        strategy = torch.backends.opt_einsum.strategy or "auto"
        path = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize=strategy)[0]
    return Work(macs=formulas.einsum_macs(equation, shapes, path))


@op("_grouped_mm")
def _grouped_mm(call: Call) -> Work:
    return Work(macs=formulas.grouped_mm_macs(call["self"], call["mat2"]), bytes_moved=_grouped_mm_bytes(call))


def _grouped_mm_bytes(call: Call) -> int | None:
    """The MoE forward (tokens (S, K) against experts (E, K, N), rows grouped by ``offs``) reads only the experts
    that have rows: the routed ones, each once. Other forms, and unreadable offsets (meta): the convention."""
    offs = call.value("offs") if call.knows_bytes else None
    if offs is None or len(call["self"]) != 2 or len(call["mat2"]) != 3 or offs.device.type == "meta":
        return None
    ends = [int(end) for end in offs.tolist()]
    used = sum(1 for start, end in zip([0, *ends], ends) if end > start)
    experts = call["mat2"][0]
    return call.read - call.bytes_of("mat2") + call.bytes_of("mat2") * used // experts + call.written


# ---------------------------------------------------------------- attention


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


SDPA_KERNELS = ("_scaled_dot_product_flash_attention_for_cpu", "_scaled_dot_product_flash_attention",
                "_scaled_dot_product_efficient_attention", "_scaled_dot_product_cudnn_attention")
"""The fused kernels F.scaled_dot_product_attention dispatches to; each takes (query, key, value, ...) as
(B, H, L, E)."""


@op("scaled_dot_product_attention", *SDPA_KERNELS, other=FUSED_ELEMENTWISE, attention="forward")
def _sdpa(call: Call) -> Work:
    q, k, v = call["query"], call["key"], call["value"]
    macs = formulas.attention_macs(q, k, v, call.kept)
    return Work(macs=macs, attention_macs=macs, other_flops=fused_elementwise_flops(call.op, q, k),
                bytes_moved=_fused_attention_bytes(call))


def _fused_attention_bytes(call: Call) -> int | None:
    """A fused kernel reads Q, K, V and its mask and writes the output: the scores never reach memory (the
    log-sum-exp it also keeps for a backward is one float per query row, left out)."""
    if not call.knows_bytes:
        return None
    mask = call.bytes_of("attn_mask") if "attn_mask" in call.names else 0
    return sum(call.bytes_of(n) for n in ("query", "key", "value")) + mask + call.first_written


@op(*(f"{kernel}_backward" for kernel in SDPA_KERNELS), other=FUSED_ELEMENTWISE, attention="backward")
def _sdpa_backward(call: Call) -> Work:
    q, k, v = call["query"], call["key"], call["value"]
    macs = formulas.attention_backward_macs(q, k, v, call.kept)
    return Work(macs=macs, attention_macs=macs, other_flops=fused_elementwise_flops(call.op, q, k))


@op("_native_multi_head_attention", other=FUSED_ELEMENTWISE)
def _multi_head_attention(call: Call) -> Work:
    q, k, v = call["query"], call["key"], call["value"]
    return Work(macs=formulas.multi_head_attention_macs(q, k, v, call["embed_dim"]),
                attention_macs=formulas.attention_macs(q, k, v),
                other_flops=fused_elementwise_flops(call.op, q, k, call["num_head"]))


@op("_transformer_encoder_layer_fwd", other=FUSED_ELEMENTWISE)
def _encoder_layer(call: Call) -> Work:
    src, feedforward = call["src"], call["ffn_weight_1"][0]
    return Work(macs=formulas.encoder_layer_macs(src, feedforward),
                attention_macs=formulas.attention_macs(src, src, src),
                other_flops=fused_elementwise_flops(call.op, src, src, call["num_heads"], feedforward))


# ---------------------------------------------------------------- recurrent layers

# Elementwise FLOPs of one recurrent cell step per hidden unit, by number of gates (LSTM 4, GRU 3, RNN 1):
# each gate pre-activation element takes two bias adds, the input + hidden add and its activation (4), then
# the state update: LSTM 5 (c = f*c + i*g, o * tanh(c)), GRU 4 (r * n_h, n add, (1 - z) * n + z * h), RNN 0.
RECURRENT_CELL_FLOPS_PER_HIDDEN = {4: 4 * 4 + 5, 3: 4 * 3 + 4, 1: 4 * 1}


def recurrent_elementwise_flops(input_shape: tuple, gate_rows: int, hidden: int, cells: int = 1) -> int:
    """Best-effort other FLOPs inside a fused recurrent op: ``cells`` (layers × directions) cells of ``hidden``
    units whose input-to-gates weight has ``gate_rows`` rows, over every step and batch element of the input."""
    rows = math.prod(input_shape[:-1])
    return rows * cells * RECURRENT_CELL_FLOPS_PER_HIDDEN.get(gate_rows // hidden, 0) * hidden


def _recurrent(gates: int) -> Callable[[Call], Work]:
    def work(call: Call) -> Work:  # padded (.input) or packed (.data) overloads
        data, weights = call.first("input", "data"), call["params"]
        cells = call["num_layers"] * (2 if call["bidirectional"] else 1)
        gate_rows = weights[0][0]
        return Work(macs=formulas.recurrent_macs(data, weights),
                    other_flops=recurrent_elementwise_flops(data, gate_rows, gate_rows // gates, cells))

    return work


for _name, _gates in (("lstm", 4), ("gru", 3), ("rnn_tanh", 1), ("rnn_relu", 1)):
    op(_name, other=FUSED_ELEMENTWISE, traced_only=True)(_recurrent(_gates))


@op("_cudnn_rnn", other=FUSED_ELEMENTWISE)
def _cudnn_rnn(call: Call) -> Work:
    data, weights = call["input"], call["weight"]
    cells = call["num_layers"] * (2 if call["bidirectional"] else 1)
    return Work(macs=formulas.recurrent_macs(data, weights),
                other_flops=recurrent_elementwise_flops(data, weights[0][0], call["hidden_size"], cells))


@op("mkldnn_rnn_layer", other=FUSED_ELEMENTWISE)
def _mkldnn_rnn_layer(call: Call) -> Work:  # one layer, one direction
    data, weights = call["input"], [call[f"weight{i}"] for i in range(4)]
    return Work(macs=formulas.recurrent_macs(data, weights),
                other_flops=recurrent_elementwise_flops(data, weights[0][0], call["hidden_size"]))


@op("mkldnn_rnn_layer_backward")
def _mkldnn_rnn_layer_backward(call: Call) -> Work:
    return Work(macs=formulas.recurrent_backward_macs(call["input"], [call[f"weight{i}"] for i in range(1, 5)]))


# ---------------------------------------------------------------- per element (other FLOPs)

OTHER_FLOPS_PER_ELEMENT: dict[str, int] = {
    **dict.fromkeys(
        (
            "add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "neg", "pow", "sqrt",
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
"""Elementwise, normalisation, reduction and pooling work: FLOPs per element of the largest tensor the op reads
or writes (best effort)."""


def _per_element(flops: int) -> Callable[[Call], Work]:
    return lambda call: Work(other_flops=flops * call.largest())


for _name, _flops in OTHER_FLOPS_PER_ELEMENT.items():
    op(_name, macs=False)(_per_element(_flops))


# ---------------------------------------------------------------- losses (other FLOPs)


@op("nll_loss_forward", "nll_loss2d_forward", "nll_loss", "nll_loss_nd", "nll_loss2d", macs=False)
def _nll_loss(call: Call) -> Work:
    """N = numel(target) log-probabilities picked and summed: N FLOPs; with class weights each is also
    multiplied by its weight and the weights summed: 3N."""
    return Work(other_flops=_numel(call["target"]) * (3 if call["weight"] is not None else 1))


@op("nll_loss_backward", "nll_loss2d_backward", macs=False)
def _nll_loss_backward(call: Call) -> Work:
    """−grad (× its class weight, ÷ the reduction's count) written at each of the N targets: N FLOPs, 2N with
    class weights."""
    return Work(other_flops=_numel(call["target"]) * (2 if call["weight"] is not None else 1))


@op("cross_entropy_loss", macs=False, traced_only=True)
def _cross_entropy(call: Call) -> Work:
    """log_softmax over the logits (3 per logit) then the NLL of the N targets (N, 3N with class weights)."""
    nll = _numel(call["target"]) * (3 if call["weight"] is not None else 1)
    return Work(other_flops=3 * _numel(call["self"]) + nll)


@op("mse_loss", macs=False)
def _mse_loss(call: Call) -> Work:
    """(x − y)² summed: subtract, square, add: 3 per element of x."""
    return Work(other_flops=3 * _numel(call["self"]))


@op("mse_loss_backward", macs=False)
def _mse_loss_backward(call: Call) -> Work:
    """2(x − y)/N × grad: subtract, scale, multiply: 3 per element of x."""
    return Work(other_flops=3 * _numel(call["self"]))


OTHER_LABELS = frozenset({BIAS, FUSED_ELEMENTWISE, *(e.other for e in OPS.values() if not e.macs)})
"""The names ``other_flops`` are filed under (per operator)."""

# ---------------------------------------------------------------- no arithmetic, or negligible

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
        "roll", "flip", "broadcast_tensors", "dropout", "feature_dropout", "native_dropout", "bernoulli_", "bernoulli",
        "Int",
        "ScalarImplicit", "size", "numel", "dim", "item", "_local_scalar_dense", "_assert_async",
        "resize_", "set_", "_has_compatible_shallow_copy_type", "rand", "randn", "uniform_",
        "normal_", "channel_shuffle", "pixel_shuffle", "as_strided_", "select_backward", "slice_backward",
    )
)
"""No arithmetic: views, copies, allocation, indexing and lookups (embedding), masks, random draws."""

NEGLIGIBLE_OPS = frozenset(
    (
        "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or", "logical_not", "bitwise_and",
        "bitwise_or", "bitwise_not", "__and__", "__or__", "argmax", "argmin", "max", "min", "amax", "amin",
        "topk", "sort", "cumsum", "floor", "floor_divide", "remainder", "round", "any", "all", "scatter",
        "scatter_add", "scatter_", "index_put_", "index_put", "index_add", "index_add_", "sign", "isnan", "isinf",
        "nonzero", "maximum", "minimum", "aminmax", "histc", "bincount", "embedding_dense_backward",
    )
)
"""Uncounted ops known to be negligible next to the MAC work (comparisons, integer and index arithmetic, small
reductions). Reported like every uncounted op; ``--strict`` tolerates them."""


# ---------------------------------------------------------------- bytes moved

NO_TRAFFIC_OPS = frozenset(
    (
        "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "resize_", "set_", "transpose_",
        "t_", "squeeze_", "unsqueeze_", "as_strided_", "detach_", "size", "numel", "dim", "Int", "ScalarImplicit",
        "_has_compatible_shallow_copy_type", "_assert_async", "lift_fresh", "_unsafe_view",
    )
)
"""Ops that move no data besides the views the schema names: allocation, metadata, and views whose schema does not
say so (``_unsafe_view``)."""

OVERWRITE_OPS = {
    "copy_": "src", "fill_": None, "zero_": None, "normal_": None, "uniform_": None, "bernoulli_": None,
    "random_": None, "exponential_": None, **dict.fromkeys(
        ("zeros_like", "ones_like", "full_like", "rand_like", "randn_like", "new_zeros", "new_ones", "new_full"), None),
}
"""Ops that write a tensor without reading the one they take (in place, or only for its shape and dtype) -> the
argument they do read (None: nothing)."""

GATHER_OPS = {"embedding": "indices", "index_select": "index", "gather": "index", "index": "indices"}
"""Lookups: read their index and as many source elements as they write (not the whole table) -> the index."""

SCATTER_OPS = {"index_copy_": ("index", "source"), "index_copy": ("index", "source"),
               "index_put_": ("indices", "values"), "index_put": ("indices", "values")}
"""Writes of a few rows into a larger tensor (a static KV cache): read the index and the values, write as many."""


def moved_bytes(name: str, call: Call, work: Work | None = None) -> int:
    """Bytes one call reads and writes, by the convention of the module docstring (its entry's
    ``bytes_moved`` where the kernel's traffic differs)."""
    if work is not None and work.bytes_moved is not None:
        return work.bytes_moved
    if name in NO_TRAFFIC_OPS or call.is_view:
        return 0
    if name in OVERWRITE_OPS:
        source = OVERWRITE_OPS[name]
        return (call.bytes_of(source) if source else 0) + call.written
    if name in GATHER_OPS:
        index = call.bytes_of(GATHER_OPS[name]) if GATHER_OPS[name] in call.names else 0
        return index + 2 * call.written
    if name in SCATTER_OPS:
        index, values = (call.bytes_of(n) for n in SCATTER_OPS[name])
        return index + 2 * values
    return call.read + call.written


def base_name(op_name: str) -> str:
    """``aten::add`` / ``aten.add`` / ``aten.add.Tensor`` -> ``add``."""
    name = op_name.split("::", 1)[-1]
    if name.startswith("aten."):
        name = name[len("aten."):]
    return name.split(".")[0]


# ---------------------------------------------------------------- binding a call to its schema's names

_SCHEMA_NAMES: dict[Any, tuple[str, ...]] = {}


def _names(overload) -> tuple[str, ...]:
    names = _SCHEMA_NAMES.get(overload)
    if names is None:
        names = _SCHEMA_NAMES[overload] = tuple(a.name for a in overload._schema.arguments)
    return names


@functools.lru_cache(maxsize=None)
def is_view(overload) -> bool:
    """Whether every output of the op (an OpOverload) aliases an input without writing it (view, expand...)."""
    returns = overload._schema.returns
    return bool(returns) and all(r.alias_info is not None and not r.alias_info.is_write for r in returns)


def tensor_bytes(value) -> int:
    """Bytes of the tensors in ``value`` (nested lists and tuples), each element counted once: a broadcast
    (stride 0) dimension's repeats are not read again."""
    import torch
    from torch.utils._pytree import tree_flatten

    total = 0
    for t in tree_flatten(value)[0]:
        if isinstance(t, torch.Tensor):
            try:
                unique = math.prod(n for n, stride in zip(t.shape, t.stride()) if stride != 0)
            except RuntimeError:  # layouts without strides (sparse, nested): every element
                unique = t.numel()
            total += unique * t.element_size()
    return total


def dispatch_call(func, args: tuple, kwargs: dict, out, kept: int | None = None) -> Call:
    """A dispatcher call (``func`` an OpOverload) bound to its schema's argument names."""
    import torch
    from torch.utils._pytree import tree_flatten

    names = _names(func)
    values = {**dict(zip(names, args)), **kwargs}

    def convert(value):
        if isinstance(value, torch.Tensor):
            return tuple(value.shape)
        if isinstance(value, (list, tuple)) and value and all(isinstance(v, torch.Tensor) for v in value):
            return [tuple(v.shape) for v in value]
        return value

    def sizes() -> list[int]:
        return [t.numel() for t in tree_flatten((args, kwargs, out))[0] if isinstance(t, torch.Tensor)]

    first = out if isinstance(out, torch.Tensor) else next(
        (t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)), None)
    return Call(base_name(str(func.overloadpacket)), names, values, convert, sizes,
                tuple(first.shape) if first is not None else None, kept, tensor_bytes, out, is_view(func))


def traced_call(op_name: str, inputs: list, outputs: list) -> Call:
    """A jit node's call (fvcore handle arguments: the node's input and output values) bound to the names of its
    schema."""
    import torch
    from fvcore.nn.jit_handles import get_shape

    node = outputs[0].node()
    schema = node.schema()
    if schema == "(no schema)":
        raise OpSchemaError(f"aten.{op_name}: the traced node carries no schema")
    overload_name = schema.split("(", 1)[0].partition(".")[2] or "default"
    names = _names(getattr(getattr(torch.ops.aten, op_name), overload_name))
    values = dict(zip(names, inputs))

    def convert(value):
        kind = value.type().kind()
        if kind == "TensorType":
            return get_shape(value)
        if kind == "NoneType":
            return None
        if kind == "ListType" and value.type().getElementType().kind() == "TensorType":
            node = value.node()
            items = list(node.inputs()) if node.kind() == "prim::ListConstruct" else []
            return [get_shape(v) for v in items]
        return value.toIValue()

    def sizes() -> list[int]:
        return [math.prod(s) for s in (get_shape(v) for v in (*inputs, *outputs)) if s is not None]

    return Call(op_name, names, values, convert, sizes, get_shape(outputs[0]), None)
