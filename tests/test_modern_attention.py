"""Modern decoders counted against closed forms written by hand: causal and windowed attention, decode with a
KV cache, mixture-of-experts, rotary embeddings, Mamba's selective scan, KV-cache bytes, active parameters.

Every model is a tiny transformers model built from its config (nothing downloaded), counted on cpu and meta.
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
tf = pytest.importorskip("transformers")

from archbench.measure.architecture import active_params, attention_share, kv_cache_bytes  # noqa: E402
from archbench.measure.flops import count_flops, flop_records  # noqa: E402
from archbench.models.subject import Subject  # noqa: E402

logging.getLogger("transformers").setLevel(logging.ERROR)

D, LAYERS, HEADS, KV_HEADS, FF, VOCAB, T = 64, 2, 4, 2, 128, 100, 16
HEAD_DIM = D // HEADS
SMALL = dict(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS, num_key_value_heads=KV_HEADS,
             intermediate_size=FF, vocab_size=VOCAB, pad_token_id=0, bos_token_id=1, eos_token_id=2)


@dataclass
class Case:
    """A module and a factory of its keyword inputs (fresh each call: a decode count appends to its cache)."""

    module: object
    inputs: object

    def count(self, **options):
        return count_flops(self.module, self.inputs(), **options)


def build(config, device="cpu", **kwargs):
    torch.manual_seed(0)
    with torch.device(device):
        return tf.AutoModel.from_config(config, **kwargs).eval()


def prefill(config, device="cpu", seq=T, **kwargs) -> Case:
    module = build(config, device, **kwargs)
    return Case(module, lambda: {"input_ids": torch.randint(0, VOCAB, (1, seq), device=device)})


def decode(config, device="cpu", cached=T, **kwargs) -> Case:
    """One new token appended to a cache that holds ``cached`` tokens (the model's own cache class)."""
    module = build(config, device, **kwargs)

    def inputs():
        with torch.no_grad():
            cache = module(input_ids=torch.randint(0, VOCAB, (1, cached), device=device), use_cache=True)
        # transformers 5.24 takes and returns the cache as ``cache``; earlier releases as past_key_values or
        # cache_params: the name the forward's signature has
        key = next(name for name in ("cache", "cache_params", "past_key_values")
                   if name in inspect.signature(module.forward).parameters)
        returned = next(cache[name] for name in ("cache", "cache_params", "past_key_values") if name in cache.keys())
        return {"input_ids": torch.randint(0, VOCAB, (1, 1), device=device), key: returned, "use_cache": True,
                "cache_position": torch.tensor([cached], device=device)}

    return Case(module, inputs)


def llama_projections(tokens: int) -> int:
    """Per layer: Q and O d×d, K and V d×(d·kv/heads), the gated MLP 3·d·ff."""
    return tokens * (2 * D * D + 2 * D * (D * KV_HEADS // HEADS) + 3 * D * FF)


def scores(pairs_per_head: int) -> int:
    """QKᵀ and AV over the kept pairs, every query head: heads·pairs·(head_dim + head_dim)."""
    return HEADS * pairs_per_head * 2 * HEAD_DIM


DEVICES = ("cpu", "meta")


@pytest.mark.parametrize("device", DEVICES)
def test_llama_full_and_causal_prefill_match_their_closed_forms(device):
    subject = prefill(tf.LlamaConfig(**SMALL), device)
    full = subject.count()
    causal = subject.count(attention_count="causal")
    assert full.macs == LAYERS * (llama_projections(T) + scores(T * T))
    assert causal.macs == LAYERS * (llama_projections(T) + scores(T * (T + 1) // 2))
    assert causal.attention_macs == LAYERS * scores(T * (T + 1) // 2)
    assert causal.details["attention_calls"] == {"causal (is_causal)": LAYERS}


@pytest.mark.parametrize("device", DEVICES)
def test_gpt2_causal_is_kaplans_forward_cost(device):
    """Kaplan et al. 2020, Table 1: C_forward = 2N + 2·n_layer·n_ctx·d_attn FLOPs per token, i.e. per token
    N + n_layer·n_ctx·d MACs; exactly, over T tokens with a causal mask: T·12·L·d² + L·d·T·(T+1)."""
    config = tf.GPT2Config(n_embd=D, n_layer=LAYERS, n_head=HEADS, vocab_size=VOCAB)
    count = prefill(config, device).count(attention_count="causal")
    non_embedding = 12 * LAYERS * D * D
    assert count.macs == T * non_embedding + LAYERS * D * T * (T + 1)


@pytest.mark.parametrize("device", DEVICES)
def test_sliding_window_keeps_min_i_plus_1_w_keys_per_query(device):
    window = 5
    subject = prefill(tf.MistralConfig(**SMALL, sliding_window=window), device)
    count = subject.count(attention_count="causal")
    kept = sum(min(i + 1, window) for i in range(T))  # 1 + 2 + 3 + 4 + 5·12 = 70
    assert kept == 70
    assert count.macs == LAYERS * (llama_projections(T) + scores(kept))
    assert subject.count().macs == LAYERS * (llama_projections(T) + scores(T * T))
    (how,) = count.details["attention_calls"]
    assert ("mask" in how) if device == "cpu" else ("sliding window 5" in how)


@pytest.mark.parametrize("device", DEVICES)
def test_decode_one_token_attends_the_cache_and_itself(device):
    subject = decode(tf.LlamaConfig(**SMALL), device)
    expected = LAYERS * (llama_projections(1) + scores(T + 1))
    assert subject.count().macs == expected
    assert subject.count(attention_count="causal").macs == expected  # one query: causal = full


def test_sliding_window_decode_attends_the_window():
    """transformers' sliding cache keeps W − 1 past tokens; the new token attends those and itself."""
    window = 5
    subject = decode(tf.MistralConfig(**SMALL, sliding_window=window))
    assert subject.count(attention_count="causal").macs == LAYERS * (llama_projections(1) + scores(window))


def test_attention_count_is_on_the_record_and_unknown_counts_exit_2():
    from archbench.errors import UserError

    case = prefill(tf.LlamaConfig(**SMALL))
    records = flop_records(Subject.from_module(case.module, case.inputs()), attention_count="causal")
    assert records[0].details["attention_count"] == "causal"
    assert "mask keeps" in records[0].details["attention"]
    with pytest.raises(UserError):
        prefill(tf.LlamaConfig(**SMALL)).count(attention_count="half")


def test_eager_attention_has_the_same_products_as_sdpa():
    """Eager attention's QKᵀ and AV are bmm calls inside the attention module: the same MACs, the same share."""
    eager = prefill(tf.LlamaConfig(**SMALL), attn_implementation="eager").count()
    assert eager.attention_macs == LAYERS * scores(T * T)
    assert eager.macs == LAYERS * (llama_projections(T) + scores(T * T))
    assert attention_share(eager) == pytest.approx(scores(T * T) / (llama_projections(T) + scores(T * T)))


E, TOP_K = 4, 2
MIXTRAL = dict(**SMALL, num_local_experts=E, num_experts_per_tok=TOP_K)


def mixtral_macs(tokens: int, pairs_per_head: int) -> int:
    """Per layer: attention projections, scores, the router d·E per token, top_k experts of 3·d·ff per token."""
    attention = tokens * (2 * D * D + 2 * D * (D * KV_HEADS // HEADS)) + scores(pairs_per_head)
    return LAYERS * (attention + tokens * D * E + tokens * TOP_K * 3 * D * FF)


@pytest.mark.parametrize("experts", ("grouped_mm", "eager", "batched_mm"))
@pytest.mark.parametrize("device", DEVICES)
def test_mixtral_counts_the_experts_each_token_reaches(device, experts):
    subject = prefill(tf.MixtralConfig(**MIXTRAL), device, experts_implementation=experts)
    count = subject.count()
    assert count.macs == mixtral_macs(T, T * T)
    assert count.significant_uncounted == {}
    assert subject.module.config._experts_implementation == experts  # restored after a meta count
    if device == "meta":
        assert "top-k experts" in count.details["routing"]
        assert any("uniform routing" in w for w in count.warnings)


def test_qwen2_moe_counts_routed_and_shared_experts():
    moe_ff, shared_ff = 32, 64
    config = tf.Qwen2MoeConfig(**SMALL, num_experts=E, num_experts_per_tok=TOP_K, moe_intermediate_size=moe_ff,
                               shared_expert_intermediate_size=shared_ff)
    per_layer = (T * (2 * D * D + 2 * D * (D * KV_HEADS // HEADS)) + scores(T * T)  # q, k, v carry biases: addmm
                 + T * D * E + T * TOP_K * 3 * D * moe_ff + T * 3 * D * shared_ff + T * D)  # router, experts, shared
    for device in DEVICES:
        assert prefill(config, device).count().macs == LAYERS * per_layer


def test_mixtral_8x7b_active_and_total_parameters_are_the_published_ones():
    """Mixtral of Experts (Jiang et al. 2024): 46.7B parameters, 12.9B active per token."""
    config = tf.MixtralConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                              intermediate_size=14336, vocab_size=32000, num_local_experts=8, num_experts_per_tok=2)
    with torch.device("meta"):
        model = tf.AutoModelForCausalLM.from_config(config)
    d, kv_width, ff = 4096, 8 * 128, 14336
    expert = 3 * d * ff  # 176,160,768
    per_layer = 2 * d * d + 2 * d * kv_width + 8 * expert + 8 * d + 2 * d  # attention, experts, router, 2 norms
    total = 32 * per_layer + 2 * 32000 * d + d  # embedding and LM head untied, final norm
    active = total - 32 * 6 * expert
    assert (total, active) == (46_702_792_704, 12_879_925_248)
    assert sum(p.numel() for p in model.parameters()) == total
    assert active_params(model) == active


def test_active_params_of_a_dense_model_is_its_parameter_count():
    model = build(tf.LlamaConfig(**SMALL))
    assert active_params(model) == sum(p.numel() for p in model.parameters())


def test_mixtral_8x7b_counts_on_meta_in_seconds():
    config = tf.MixtralConfig(hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                              intermediate_size=14336, vocab_size=32000, num_local_experts=8, num_experts_per_tok=2)
    tokens = 128
    subject = prefill(config, "meta", seq=tokens)
    start = time.perf_counter()
    count = subject.count(attention_count="causal")
    elapsed = time.perf_counter() - start
    d, kv_width, ff = 4096, 1024, 14336
    per_layer = (tokens * (2 * d * d + 2 * d * kv_width) + 32 * tokens * (tokens + 1) // 2 * 2 * 128
                 + tokens * d * 8 + tokens * 2 * 3 * d * ff)
    assert count.macs == 32 * per_layer
    assert elapsed < 60


@pytest.mark.parametrize("name", ("Llama", "Mistral", "Qwen2", "Gemma", "Phi3"))
def test_rotary_decoders_leave_no_significant_uncounted_op(name):
    config = getattr(tf, f"{name}Config")(**SMALL, **({"head_dim": HEAD_DIM} if name == "Gemma" else {}))
    for device in DEVICES:
        count = prefill(config, device).count()
        assert count.significant_uncounted == {}
        assert count.other_by_operator["cos"] == count.other_by_operator["sin"] == T * HEAD_DIM  # rotary table


MAMBA_D, STATE, KERNEL = 64, 8, 4
D_INNER, RANK = 2 * MAMBA_D, MAMBA_D // 16  # expand 2, time_step_rank ceil(d / 16)


def mamba_macs(tokens: int, conv_outputs: int) -> int:
    """Per layer: in_proj d→2·d_inner, the depthwise conv (K MACs per output position and channel), x_proj
    d_inner→rank+2N, dt_proj rank→d_inner, the scan's C·h contraction d_inner·N per token (dA·h + dB·x is
    elementwise), out_proj d_inner→d."""
    per_token = MAMBA_D * 2 * D_INNER + D_INNER * (RANK + 2 * STATE) + RANK * D_INNER + D_INNER * STATE + D_INNER * MAMBA_D
    return LAYERS * (tokens * per_token + D_INNER * conv_outputs * KERNEL)


MAMBA = dict(hidden_size=MAMBA_D, num_hidden_layers=LAYERS, state_size=STATE, conv_kernel=KERNEL, vocab_size=VOCAB)


@pytest.mark.parametrize("device", DEVICES)
def test_mamba_prefill_matches_the_selective_scan_closed_form(device):
    count = prefill(tf.MambaConfig(**MAMBA), device).count()
    # the convolution is padded by K − 1 on both sides: T + K − 1 outputs computed, the first T kept
    assert count.macs == mamba_macs(T, T + KERNEL - 1)
    assert count.significant_uncounted == {}
    assert count.attention_macs == 0


@pytest.mark.parametrize("device", DEVICES)
def test_mamba_decode_is_one_step_of_the_recurrence(device):
    count = decode(tf.MambaConfig(**MAMBA), device).count()
    # the cached conv state (K positions) and the new one: K + 1 inputs, 2 outputs computed, the last kept
    assert count.macs == mamba_macs(1, 2)
    assert count.significant_uncounted == {}


def cache_bytes(subject) -> int:
    inputs = subject.inputs()
    cache = next(inputs[name] for name in ("cache", "past_key_values") if name in inputs)
    return sum(t.numel() * t.element_size() for layer in cache.layers for t in (layer.keys, layer.values))


def test_kv_cache_bytes_gqa_mha_sliding_and_none():
    llama = tf.LlamaConfig(**SMALL)
    assert kv_cache_bytes(llama, T, 3, 2) == 2 * LAYERS * KV_HEADS * HEAD_DIM * T * 2 * 3
    assert kv_cache_bytes(llama, T, 1, 4) == cache_bytes(decode(llama))  # what transformers' cache holds
    gpt2 = tf.GPT2Config(n_embd=D, n_layer=LAYERS, n_head=HEADS, vocab_size=VOCAB)
    assert kv_cache_bytes(gpt2, T, 1, 4) == 2 * LAYERS * HEADS * HEAD_DIM * T * 4
    mistral = tf.MistralConfig(**SMALL, sliding_window=5)
    assert kv_cache_bytes(mistral, T, 1, 4) == 2 * LAYERS * KV_HEADS * HEAD_DIM * (5 - 1) * 4
    assert kv_cache_bytes(mistral, T, 1, 4) == cache_bytes(decode(mistral))
    multi_query = SimpleNamespace(num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=1, hidden_size=4096)
    assert kv_cache_bytes(multi_query, 4096, 1, 2) == 2 * 32 * 1 * 128 * 4096 * 2
    assert kv_cache_bytes(tf.MambaConfig(**MAMBA), T, 1, 4) is None


class NaiveAttention(torch.nn.Module):
    """Eager attention written out: projections, then QKᵀ and AV as matmuls of two activations."""

    def __init__(self, d):
        super().__init__()
        self.qkv, self.out = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        return self.out(torch.softmax(q @ k.transpose(-2, -1), dim=-1) @ v)


@pytest.mark.parametrize("engine", ("fvcore", "dispatch"))
def test_attention_share_is_the_score_and_value_products_in_both_engines(engine):
    """QKᵀ and AV: 2·T²·d of the 4·T·d² + 2·T²·d MACs of one head-merged attention layer, eager or fused."""
    x = torch.randn(1, T, D)
    eager = count_flops(NaiveAttention(D).eval(), x, engine=engine)
    assert eager.attention_macs == 2 * T * T * D
    assert attention_share(eager) == pytest.approx(2 * T * T * D / (4 * T * D * D + 2 * T * T * D))
    fused = torch.nn.MultiheadAttention(D, HEADS, batch_first=True).eval()
    assert count_flops(fused, (x, x, x), engine=engine).attention_macs == 2 * T * T * D


def test_causal_count_says_eager_attention_is_counted_in_full():
    count = prefill(tf.LlamaConfig(**SMALL), attn_implementation="eager").count(attention_count="causal")
    assert count.macs == LAYERS * (llama_projections(T) + scores(T * T))
    assert count.details["attention_calls"] == {"full (eager attention: its mask is applied after the bmm)": 2 * LAYERS}


def test_causal_pairs_closed_forms():
    from archbench.measure.formulas import causal_pairs, grouped_mm_macs

    assert causal_pairs(4096, 4096) == 4096 * 4097 // 2
    assert causal_pairs(10, 10, window=3) == 1 + 2 + 3 * 8
    assert causal_pairs(1, 513, offset=512) == 513  # one decoded query sees the whole cache and itself
    assert causal_pairs(1, 513, window=128, offset=512) == 128
    assert causal_pairs(2, 6, offset=4) == 5 + 6
    assert grouped_mm_macs((12, 64), (4, 64, 256)) == 12 * 64 * 256  # 12 token-expert rows, one expert each
