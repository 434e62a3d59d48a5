"""What kind of layers a built module has: attention layers and mixture-of-experts layers, and how the latter
are run on the meta device. Read by the measurers and by the decode step alike; nothing here measures."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any


def is_attention_module(module) -> bool:
    """Whether ``module`` is an attention layer, by its class name (``LlamaAttention``, ``BertSelfAttention``,
    ``nn.MultiheadAttention``, ...): its batched products of two activations (bmm, baddbmm) are the score
    and value products QKᵀ and AV of eager attention; its projections are linear layers (mm, addmm)."""
    return "Attention" in type(module).__name__


def first_of(config: Any, *names: str) -> Any:
    """The first of ``names`` that ``config`` sets to something other than None."""
    return next((value for name in names if (value := getattr(config, name, None)) is not None), None)


def attention_shape(config: Any) -> tuple[int, int, int, int] | None:
    """(layers, heads, kv_heads, head_dim) of a transformer's config, None for one without attention heads.

    kv_heads is ``num_key_value_heads`` (grouped-query and multi-query attention), else the number of
    attention heads (GPT-2's ``n_head``); head_dim is ``head_dim``, else hidden / heads.
    """
    layers = first_of(config, "num_hidden_layers", "n_layer", "num_layers")
    heads = first_of(config, "num_attention_heads", "n_head", "num_heads")
    if not layers or not heads:
        return None
    kv_heads = first_of(config, "num_key_value_heads") or (1 if getattr(config, "multi_query", False) else heads)
    head_dim = first_of(config, "head_dim") or first_of(config, "hidden_size", "n_embd", "d_model") // heads
    return layers, heads, kv_heads, head_dim


def layer_windows(config: Any, layers: int) -> list[int | None]:
    """Each layer's sliding window, None for full attention: the ``layer_types`` "sliding_attention" layers, or
    every layer of a config with ``sliding_window`` (none where ``use_sliding_window`` is False)."""
    window = getattr(config, "sliding_window", None)
    if not window or getattr(config, "use_sliding_window", None) is False:
        return [None] * layers
    types = getattr(config, "layer_types", None)
    return [window if not types or types[layer] == "sliding_attention" else None for layer in range(layers)]


def expert_layers(module: Any) -> list[tuple[Any, int]]:
    """Each mixture-of-experts layer of ``module`` as (its experts, top_k: how many experts a token reaches).

    An MoE block is a module with an ``experts`` child that knows ``num_experts`` (transformers' stacked
    experts) or is a list of expert modules; top_k is the block's ``top_k``, its router's (``gate.top_k``),
    or the config's ``num_experts_per_tok``.
    """
    layers = []
    for block in module.modules():
        experts = getattr(block, "experts", None)
        if experts is None or not (hasattr(experts, "num_experts") or hasattr(experts, "__len__")):
            continue
        top_k = (first_of(block, "top_k", "num_experts_per_tok") or first_of(getattr(block, "gate", None), "top_k")
                 or first_of(getattr(experts, "config", None) or getattr(block, "config", None), "num_experts_per_tok"))
        if top_k:
            layers.append((experts, int(top_k)))
    return layers


META_ROUTING = ("meta device: routing cannot be read, each token is taken to reach its top-k experts "
                "(uniform routing), counted with transformers' batched_mm experts path")


@contextmanager
def meta_routing(module, device: str):
    """On the meta device, run transformers' mixture-of-experts layers with the batched_mm path: the default
    grouped_mm fails there on a dtype check and the eager loop on ``nonzero``; batched_mm sends each token
    to its top-k experts, the routing assumed where it cannot be read. Yields whether the model has experts."""
    layers = expert_layers(module)
    model = next((m for m in module.modules() if hasattr(m, "set_experts_implementation")), None)
    if device != "meta" or not layers or model is None:
        yield bool(layers)
        return
    saved = model.get_experts_implementation()  # transformers' public switch, read and restored
    model.set_experts_implementation("batched_mm")
    try:
        yield True
    finally:
        model.set_experts_implementation(saved)
