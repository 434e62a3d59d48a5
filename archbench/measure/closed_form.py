"""MACs of a Hugging Face transformer derived from its configuration alone, the way the LLM calculators do.

A second derivation, independent of the counters: :func:`config_macs` reads a config's widths, heads, layers,
MLP kind, experts and windows, and writes the forward's multiply-accumulates out by hand. ``flops`` records it
next to the counted figure (``details.closed_form_macs``) and warns when the two differ by more than
:data:`TOLERANCE`; ``--strict`` fails then. Two derivations that must agree catch what either alone would print
silently (a dropped KV cache, a library that moved a computation).

It covers the families whose layers it knows: decoder-only models with a gated MLP (Llama, Mistral, Mixtral,
Qwen2, Qwen3: dense, GQA/MQA, MoE top-k, sliding windows), GPT-2 (plain MLP) and the BERT-style encoders; prefill
and decode, full and causal counts, the bare backbone or a decoder with its LM head; forward only. Elsewhere it
returns None and nothing is compared.
"""

from __future__ import annotations

from typing import Any

from archbench.models.structure import attention_shape, layer_windows

TOLERANCE = 0.001  # relative difference above which the counted MACs and the closed form disagree

GATED_DECODERS = ("llama", "mistral", "mixtral", "qwen2", "qwen3")
PLAIN_DECODERS = ("gpt2",)
ENCODERS = ("bert", "roberta")


def config_macs(config, *, batch: int, tokens: int, cached: int = 0, attention_count: str = "full",
                lm_head: bool = False, pooler: bool = False) -> int | None:
    """MACs of one forward of ``tokens`` new tokens per sequence after ``cached`` tokens in the KV cache.

    Per layer and token: the Q and O projections (d × heads·head_dim), K and V (d × kv_heads·head_dim), the MLP
    (gated 3·d·ff, plain 2·d·ff, or for each of the top-k experts 3·d·ff plus the router's d·experts); per layer
    and query, QKᵀ and AV over its keys (heads · 2·head_dim per key): every key present (``full``) or those its
    causal mask or sliding window keeps (``causal``). ``lm_head`` adds d·vocab per token; ``pooler`` a BERT
    pooler's d² per sequence. None where the config is of no family above.
    """
    kind = config.model_type
    if kind not in GATED_DECODERS + PLAIN_DECODERS + ENCODERS:
        return None
    if kind == "qwen2" and getattr(config, "num_experts", None):
        return None  # qwen2_moe-like shared experts are not written out here
    layers, heads, kv_heads, head_dim = attention_shape(config)
    d = config.hidden_size
    projections = 2 * d * heads * head_dim + 2 * d * kv_heads * head_dim
    mlp = _mlp_macs(config, kind, d)
    windows = [None] * layers if kind in ENCODERS else layer_windows(config, layers)
    macs = 0
    for window in windows:
        keys = _keys_per_query(window, tokens, cached, attention_count if kind not in ENCODERS else "full")
        macs += tokens * (projections + mlp) + heads * 2 * head_dim * keys
    macs *= batch
    if lm_head:
        macs += batch * tokens * d * config.vocab_size
    if pooler:
        macs += batch * d * d
    return macs


def _mlp_macs(config, kind: str, d: int) -> int:
    if kind in PLAIN_DECODERS:
        return 2 * d * (getattr(config, "n_inner", None) or 4 * d)
    if kind in ENCODERS:
        return 2 * d * config.intermediate_size
    experts = getattr(config, "num_local_experts", None) or getattr(config, "num_experts", None)
    if experts:
        return config.num_experts_per_tok * 3 * d * config.intermediate_size + d * experts
    return 3 * d * config.intermediate_size


def _keys_per_query(window: int | None, tokens: int, cached: int, attention_count: str) -> int:
    """Query–key pairs of one layer for one head, summed over the ``tokens`` new queries."""
    if cached:  # decode: the cache holds ``cached`` keys (a window's W − 1), each new query sees them and itself
        present = cached + tokens if window is None else min(cached + tokens, window)
        return tokens * present
    if attention_count == "causal":
        return sum(i + 1 if window is None else min(i + 1, window) for i in range(tokens))
    return tokens * tokens


def closed_form_check(module: Any, *, batch: int, seq: int | None, phase: str, attention_count: str,
                      backward: bool) -> int | None:
    """The closed-form MACs of a built Hugging Face model (its decode step's model in the decode phase), or None
    where there is none: not a transformer of a known family, a task head other than an LM head, backward."""
    model = getattr(module, "model", module) if phase == "decode" else module
    config = getattr(model, "config", None)
    if backward or config is None or not seq or not hasattr(model, "base_model"):
        return None
    bare = model.base_model is model
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not bare and output is None:
        return None  # a classifier or another task head: not written out here
    pooler = bare and config.model_type in ENCODERS and getattr(model, "pooler", None) is not None
    tokens, cached = (1, seq) if phase == "decode" else (seq, 0)
    return config_macs(config, batch=batch, tokens=tokens, cached=cached, attention_count=attention_count,
                       lm_head=not bare, pooler=pooler)


def disagreement(counted: int, closed_form: int) -> str | None:
    """A warning when the counted MACs and the closed form differ by more than TOLERANCE, else None."""
    if closed_form == counted or abs(counted - closed_form) <= TOLERANCE * max(abs(closed_form), 1):
        return None
    apart = (counted - closed_form) / max(abs(closed_form), 1)
    return (f"the counted MACs ({counted:,}) and the closed form from the model's config ({closed_form:,}) differ "
            f"by {apart:+.2%}: one of them is wrong (a dropped cache, a library change, a layer the closed form "
            f"does not know); --strict fails on this")
