"""Pure shape arithmetic for multiply-accumulate work, in one unit: MACs.

One MAC is one multiplication added into an accumulator; FLOPs = 2 × MACs. Every
function here takes shapes (tuples of ints) and plain numbers and returns MACs; none
touches a module or a tensor. Bias additions, normalisation, softmax and other
elementwise work are not MACs and are left out (see ``archbench.measure.flops``).

Conventions:

- attention (``q @ kᵀ`` then ``p @ v``) counts the full L×S score matrix by default, as the
  math backend computes it, also for causal or masked attention; given the query–key pairs a
  mask keeps (:func:`causal_pairs`, or counted from a mask), it counts those only;
- a recurrent layer applies each of its weight matrices once per time step and batch
  element; the gate nonlinearities and the GRU's ``r * (W_hn h)`` product are elementwise.
"""

from __future__ import annotations

import math
from typing import Sequence

Shape = Sequence[int]


def matmul_macs(a: Shape, b: Shape) -> int:
    """``a @ b`` with numpy broadcasting of leading batch dimensions (1-D operands included)."""
    a, b = tuple(a), tuple(b)
    if len(a) == 1:
        a = (1, *a)
    if len(b) == 1:
        b = (*b, 1)
    if a[-1] != b[-2]:
        raise ValueError(f"matmul of incompatible shapes {a} and {b}")
    batch_a, batch_b = a[:-2], b[:-2]
    width = max(len(batch_a), len(batch_b))
    batch_a = (1,) * (width - len(batch_a)) + batch_a
    batch_b = (1,) * (width - len(batch_b)) + batch_b
    batch = math.prod(max(x, y) for x, y in zip(batch_a, batch_b))
    return batch * a[-2] * a[-1] * b[-1]


def linear_macs(input_shape: Shape, weight_shape: Shape) -> int:
    """``x @ Wᵀ`` for a weight of shape (out_features, in_features)."""
    out_features, in_features = weight_shape
    return math.prod(input_shape[:-1]) * in_features * out_features


def conv_macs(input_shape: Shape, weight_shape: Shape, output_shape: Shape, transposed: bool = False) -> int:
    """A convolution of any dimension, grouped and depthwise included.

    The weight is (C_out, C_in/groups, *kernel), or (C_in, C_out/groups, *kernel) when
    transposed. Each output element of an ordinary convolution takes C_in/groups·K MACs;
    each input element of a transposed one is scattered into C_out/groups·K outputs.
    """
    per_element = math.prod(weight_shape[1:])
    return (math.prod(input_shape) if transposed else math.prod(output_shape)) * per_element


def attention_macs(query_shape: Shape, key_shape: Shape, value_shape: Shape, kept: int | None = None) -> int:
    """Scaled dot-product attention: q (..., L, E), k (..., S, E), v (..., S, Ev) → ``pairs·(E + Ev)``.

    Leading dimensions are the query's (batch × heads; grouped-query key/value heads are
    broadcast to the query heads). ``kept`` is the number of query–key pairs a mask keeps,
    summed over the leading dimensions; by default every pair, ``...·L·S``.
    """
    *lead, length, embed = query_shape
    pairs = math.prod(lead) * length * key_shape[-2] if kept is None else kept
    return pairs * (embed + value_shape[-1])


def causal_pairs(queries: int, keys: int, window: int | None = None, offset: int = 0) -> int:
    """Query–key pairs a causal mask keeps for one head: query i sees keys 0 … offset + i, the last ``window``.

    With L = S and offset 0 that is S·(S+1)/2; a sliding window W keeps min(i+1, W) keys for
    query i (Mistral's ``sliding_window``); ``offset`` = S − L puts the queries at the end of the
    keys (a KV cache), so one decoded query keeps min(S, W) of them.
    """
    cap = min(keys, window) if window else keys
    first, last = offset + 1, offset + queries  # keys seen by the first and the last query, before the cap
    below = min(last, cap)
    kept = (first + below) * (below - first + 1) // 2 if first <= below else 0
    return kept + cap * max(0, last - max(first, cap + 1) + 1)


def grouped_mm_macs(a: Shape, b: Shape) -> int:
    """``torch._grouped_mm``: each row (or column) of a ragged operand is multiplied by one group's matrix.

    2-D × 3-D (tokens (S, K) against experts (E, K, N), the MoE forward) is S·K·N; 3-D × 2-D the
    mirror image; 2-D × 2-D (grouped along K, the weight gradient) and 3-D × 3-D an ordinary
    (batched) product.
    """
    if len(a) == 2 and len(b) == 3:
        return a[0] * a[1] * b[2]
    if len(a) == 3 and len(b) == 2:
        return a[1] * a[2] * b[1]
    return matmul_macs(a, b)


def attention_backward_macs(query_shape: Shape, key_shape: Shape, value_shape: Shape, kept: int | None = None) -> int:
    """Gradients of attention: dV = Pᵀ·dO, dP = dO·Vᵀ, dQ = dS·K, dK = dSᵀ·Q, twice the forward (over the
    ``kept`` pairs of its forward, if given)."""
    return 2 * attention_macs(query_shape, key_shape, value_shape, kept)


def multi_head_attention_macs(query_shape: Shape, key_shape: Shape, value_shape: Shape, embed_dim: int) -> int:
    """``nn.MultiheadAttention`` with its projections: q, k, v in-projections, attention, out-projection.

    Shapes are (B, L, E) for the query and (B, S, E) for key and value (batch first);
    the number of heads does not change the count.
    """
    *lead, length, _ = query_shape
    source = key_shape[-2]
    weight = (embed_dim, embed_dim)
    projections = (
        linear_macs(query_shape, weight) + linear_macs(key_shape, weight) + linear_macs(value_shape, weight)
    )
    heads_merged = attention_macs((*lead, length, embed_dim), (*lead, source, embed_dim), (*lead, source, embed_dim))
    return projections + heads_merged + linear_macs((*lead, length, embed_dim), weight)


def encoder_layer_macs(input_shape: Shape, feedforward: int) -> int:
    """A Transformer encoder layer on (B, T, d): self-attention with projections plus the d→ff→d feed-forward.

    With ff = 4d this is 12·T·d² + 2·T²·d per sequence.
    """
    d_model = input_shape[-1]
    attention = multi_head_attention_macs(input_shape, input_shape, input_shape, d_model)
    hidden_shape = (*input_shape[:-1], feedforward)
    feed_forward = linear_macs(input_shape, (feedforward, d_model)) + linear_macs(hidden_shape, (d_model, feedforward))
    return attention + feed_forward


def recurrent_macs(input_shape: Shape, weight_shapes: Sequence[Shape]) -> int:
    """A stacked (optionally bidirectional, projected) RNN, LSTM or GRU from its input and weight matrices.

    ``input_shape`` is (T, B, i), (B, T, i) with batch_first, or (ΣT, i) for packed
    sequences: either way its leading sizes multiply to steps × batch. ``weight_shapes``
    lists every weight of every layer and direction (``w_ih``, ``w_hh``, biases, ``w_hr``),
    which carry the layers, directions, gates and projection; 1-D biases are skipped.
    Each matrix is applied once per step and batch element, so an LSTM layer of input i,
    hidden h and projection p costs ``T·B·(4h·i + 4h·p + p·h)`` per direction (``p = h``
    and no ``w_hr`` without projection); a GRU ``3h`` and a plain RNN ``h`` in place of ``4h``.
    """
    rows = math.prod(input_shape[:-1])
    return rows * sum(math.prod(shape) for shape in weight_shapes if len(shape) == 2)


def recurrent_backward_macs(input_shape: Shape, weight_shapes: Sequence[Shape]) -> int:
    """Gradients of a recurrent layer: data and weight gradients of each matrix, twice the forward."""
    return 2 * recurrent_macs(input_shape, weight_shapes)


def einsum_macs(equation: str, shapes: Sequence[Shape], path: Sequence[tuple[int, int]] | None = None) -> int:
    """``torch.einsum`` of any number of operands, contracted pairwise along ``path``.

    ``path`` lists pairs of positions in the current operand list (opt_einsum's format);
    by default operands are contracted left to right, as torch does without opt_einsum.
    A pairwise contraction costs the product of the sizes of every index the two operands
    still carry once indices needed by neither the output nor another operand are summed
    out beforehand (sums, not MACs). A single operand (a pure sum or transpose) costs 0.
    """
    equation = equation.replace(" ", "")
    inputs_part, arrow, output = equation.partition("->")
    terms = inputs_part.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum {equation!r} has {len(terms)} operands, got {len(shapes)} shapes")
    if "." in equation:
        raise ValueError("einsum with '...' is not supported by this formula")
    if not arrow:
        counts = {c: inputs_part.count(c) for c in set(inputs_part) if c.isalpha()}
        output = "".join(sorted(c for c, n in counts.items() if n == 1))
    sizes: dict[str, int] = {}
    for term, shape in zip(terms, shapes):
        for letter, size in zip(term, shape):
            sizes[letter] = max(sizes.get(letter, 1), size)
    operands = [set(term) for term in terms]
    steps = len(operands) - 1
    macs = 0
    for step in range(steps if path is None else len(path)):
        # left to right: the running result (appended last) with the next operand (first)
        i, j = path[step] if path is not None else (0, 1 if step == 0 else len(operands) - 1)
        left, right = operands[i], operands[j]
        others = set(output).union(*(op for k, op in enumerate(operands) if k not in (i, j)))
        left = {c for c in left if c in others or c in right}
        right = {c for c in right if c in others or c in left}
        macs += math.prod(sizes[c] for c in left | right)
        result = {c for c in left | right if c in others}
        operands = [op for k, op in enumerate(operands) if k not in (i, j)] + [result]
    return macs
