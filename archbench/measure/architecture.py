"""Facts read from a built module and its configuration: KV-cache bytes, active parameters, attention's share.

Configurations are Hugging Face ones (``config.num_hidden_layers`` or GPT-2's ``n_layer``, ...);
modules are plain ``torch.nn.Module`` trees. Nothing here runs a model.
"""

from __future__ import annotations

from typing import Any

from archbench.models.structure import attention_shape, expert_layers, layer_windows


def kv_cache_bytes(config: Any, seq: int, batch: int, dtype_bytes: int) -> int | None:
    """Bytes of the keys and values a decoder caches for ``seq`` tokens: 2·layers·kv_heads·head_dim·T·bytes·batch.

    kv_heads is ``num_key_value_heads`` (grouped-query and multi-query attention), else the number of
    attention heads (GPT-2's ``n_head``); head_dim is ``head_dim``, else hidden / heads. A sliding-window
    layer (``layer_types`` "sliding_attention", or every layer of a config with ``sliding_window``) holds
    min(T, W − 1) tokens, as transformers' sliding cache does. None for a model without attention heads
    (a state-space model such as Mamba has no KV cache).
    """
    shape = attention_shape(config)
    if shape is None:
        return None
    layers, _, kv_heads, head_dim = shape
    tokens = sum(seq if window is None else min(seq, window - 1) for window in layer_windows(config, layers))
    return 2 * kv_heads * head_dim * tokens * dtype_bytes * batch


def active_params(module: Any) -> int:
    """Parameters one token touches: all of them less, in each MoE layer, the experts it is not routed to.

    A layer of E experts with top-k routing keeps k/E of its experts' parameters (the router and any
    shared expert stay whole). Equal to the parameter count for a dense model. Shared tensors count once.
    """
    total = sum(p.numel() for p in module.parameters())
    for experts, top_k in expert_layers(module):
        count = getattr(experts, "num_experts", None) or len(experts)
        expert_params = sum(p.numel() for p in experts.parameters())
        total -= expert_params * (count - top_k) // count
    return total


def attention_share(count: Any) -> float:
    """The share of a FlopCount's MACs spent in attention's score and value products (QKᵀ and AV).

    Those are the fused attention kernels (scaled_dot_product_attention in every backend, their pairs as
    counted: full or causal) and the attention part of the fused nn.MultiheadAttention and encoder-layer
    fast paths, plus, for eager attention, the batched products (bmm, baddbmm) run inside a module whose
    class name contains "Attention" (see :func:`archbench.models.structure.is_attention_module`). Projections
    are linear layers and do not count. 0.0 for a count without MACs.
    """
    return count.attention_macs / count.macs if count.macs else 0.0
