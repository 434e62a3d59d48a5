"""Issue 12 through the commands: decode with a KV cache, causal and windowed counts, MoE, KV-cache bytes, Mamba,
task heads with --backward, --strict, scaling and suites, each against a closed form written by hand here.

Models are tiny ``hf:MODEL_TYPE:options`` shapes built from their configs (nothing downloaded); the
counting device is meta unless a test says otherwise. test_modern_attention.py counts the same models
built directly; here every figure goes through `archbench ...` and its JSON records.
"""

from __future__ import annotations

import json
import textwrap
from fractions import Fraction

import pytest

pytest.importorskip("transformers")

from test_modern_attention import MAMBA, mamba_macs  # noqa: E402  (the selective scan's closed form)

D, LAYERS, HEADS, FF, VOCAB = 64, 2, 4, 128, 100
HEAD_DIM = D // HEADS
GPT2 = f"hf:gpt2:n_layer={LAYERS},n_embd={D},n_head={HEADS},vocab_size={VOCAB}"
DECODER = (f"hidden_size={D},num_hidden_layers={LAYERS},num_attention_heads={HEADS},intermediate_size={FF},"
           f"vocab_size={VOCAB}")


def llama(kv_heads: int) -> str:
    return f"hf:llama:{DECODER},num_key_value_heads={kv_heads}"


def records_of(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["records"]


def figures(result) -> dict[str, dict]:
    """The whole-model records of a one-model command, by metric."""
    return {r["metric"]: r for r in records_of(result) if "operator" not in r["point"]}


def flops(cli, model: str, *options: str) -> dict[str, dict]:
    return figures(cli("flops", model, *options, "--format", "json"))


# ---------------------------------------------------------------- decode with a KV cache


def gpt2_decode_macs(layers: int, d: int, cached: int) -> int:
    """One new token after ``cached`` tokens: 12·L·d² for the projections and MLP, 2·L·(T+1)·d for QKᵀ and AV over
    the cache and itself (the issue's closed form)."""
    return 12 * layers * d * d + 2 * layers * (cached + 1) * d


@pytest.mark.parametrize("cached", (1, 16, 100, 1000))
def test_gpt2_decode_is_one_token_against_the_cache(cli, cached):
    figure = flops(cli, GPT2, "--phase", "decode", "--seq", str(cached))
    macs = figure["macs"]
    assert macs["value"] == gpt2_decode_macs(LAYERS, D, cached)
    assert figure["flops"]["value"] == 2 * macs["value"]
    assert macs["point"] == {"batch": 1, "seq": cached, "phase": "decode"}
    assert macs["details"]["attention_count"] == "full"
    share = Fraction(2 * (cached + 1) * D, 12 * D * D + 2 * (cached + 1) * D)
    assert figure["attention_share"]["value"] == pytest.approx(float(share), rel=1e-12)


def test_gpt2_decode_batch_3_is_three_tokens(cli):
    macs = flops(cli, GPT2, "--phase", "decode", "--seq", "16", "--batch", "3")["macs"]
    assert macs["value"] == 3 * gpt2_decode_macs(LAYERS, D, 16)
    assert macs["point"] == {"batch": 3, "seq": 16, "phase": "decode"}


def test_decode_on_the_cpu_goes_to_the_dispatch_engine_without_a_failed_trace(cli):
    macs = flops(cli, GPT2, "--phase", "decode", "--seq", "16", "--device", "cpu")["macs"]
    assert macs["value"] == gpt2_decode_macs(LAYERS, D, 16)
    assert macs["details"]["engine"] == "dispatch" and macs["warnings"] == []
    result = cli("flops", GPT2, "--phase", "decode", "--seq", "16", "--device", "cpu", "--engine", "fvcore")
    assert result.exit_code == 2 and "decode step" in result.stderr


def test_decode_at_the_position_limit_runs_on_a_real_device(cli):
    macs = flops(cli, f"{GPT2},n_positions=16", "--phase", "decode", "--seq", "16", "--device", "cpu")["macs"]
    assert macs["value"] == gpt2_decode_macs(LAYERS, D, 16)


def test_named_gpt2_decodes_too(cli):
    macs = flops(cli, "gpt2:n_layer=2", "--phase", "decode", "--seq", "16")["macs"]
    assert macs["value"] == gpt2_decode_macs(2, 768, 16) == 14_208_000


def test_decode_under_a_causal_count_is_the_same_single_query(cli):
    """One query after T cached tokens keeps all T + 1 keys: causal and full agree."""
    full = flops(cli, GPT2, "--phase", "decode", "--seq", "100")["macs"]
    causal = flops(cli, GPT2, "--phase", "decode", "--seq", "100", "--attention-count", "causal")["macs"]
    assert causal["value"] == full["value"] == gpt2_decode_macs(LAYERS, D, 100)
    assert causal["details"]["attention_count"] == "causal"


# ---------------------------------------------------------------- causal and windowed counts


def llama_projections(tokens: int, kv_heads: int) -> int:
    """Per layer: Q and O d×d, K and V d×(kv_heads·head_dim), the gated MLP 3·d·ff (no biases)."""
    return tokens * (2 * D * D + 2 * D * kv_heads * HEAD_DIM + 3 * D * FF)


def scores(pairs_per_head: int) -> int:
    """QKᵀ and AV over the kept pairs of every query head: heads·pairs·2·head_dim."""
    return HEADS * pairs_per_head * 2 * HEAD_DIM


def test_llama_causal_keeps_t_t_plus_1_over_2_pairs_per_head(cli):
    t = 16
    full = flops(cli, llama(2), "--seq", str(t))
    causal = flops(cli, llama(2), "--seq", str(t), "--attention-count", "causal")
    assert full["macs"]["value"] == LAYERS * (llama_projections(t, 2) + scores(t * t))
    assert causal["macs"]["value"] == LAYERS * (llama_projections(t, 2) + scores(t * (t + 1) // 2))
    assert causal["attention_share"]["details"]["attention_macs"] == LAYERS * scores(t * (t + 1) // 2)
    assert full["macs"]["details"]["attention_count"] == "full"
    assert "full L×S" in full["macs"]["details"]["attention"]
    assert causal["macs"]["details"]["attention_count"] == "causal"
    assert causal["macs"]["details"]["attention_calls"] == {"causal (is_causal)": LAYERS}
    assert [f["attention_share"]["details"]["attention_count"] for f in (full, causal)] == ["full", "causal"]


@pytest.mark.parametrize("device", ("meta", "cpu"))
def test_mistral_sliding_window_keeps_min_i_plus_1_w_keys(cli, device):
    t, window = 16, 5
    model = f"hf:mistral:{DECODER},num_key_value_heads=2,sliding_window={window}"
    causal = flops(cli, model, "--seq", str(t), "--attention-count", "causal", "--device", device)
    kept = sum(min(i + 1, window) for i in range(t))
    assert kept == 1 + 2 + 3 + 4 + 5 * 12
    assert causal["macs"]["value"] == LAYERS * (llama_projections(t, 2) + scores(kept))
    assert causal["macs"]["details"]["attention_count"] == "causal"
    (how,) = causal["macs"]["details"]["attention_calls"]
    assert f"sliding window {window}" in how if device == "meta" else "mask" in how


def test_mistral_decode_past_its_window_attends_the_window_and_repeats(cli):
    """transformers' sliding cache keeps W − 1 past tokens: the new token attends those and itself, W keys. The
    step is cut back after each call, so timing it many times (with a cache already past its window) works."""
    t, window = 16, 8
    model = f"hf:mistral:{DECODER},num_key_value_heads=2,sliding_window={window}"
    for device in ("meta", "cpu"):
        macs = flops(cli, model, "--seq", str(t), "--phase", "decode", "--attention-count", "causal",
                     "--device", device)["macs"]
        assert macs["value"] == LAYERS * (llama_projections(1, 2) + scores(window))
    timed = figures(cli("latency", model, "--seq", str(t), "--phase", "decode", "--min-time", "0.05",
                        "--threads", "1", "--format", "json"))
    assert timed["latency_s"]["error"] is None and timed["latency_s"]["value"] > 0


def test_causal_backward_counts_the_kept_pairs_three_times(cli):
    """The gradients of QKᵀ and AV are twice the forward products over the same kept pairs: a training step of
    attention is 3 × its causal forward, as every matmul's (the embedding lookup has no MACs)."""
    t = 16
    step = flops(cli, llama(2), "--seq", str(t), "--attention-count", "causal", "--backward")
    forward = LAYERS * (llama_projections(t, 2) + scores(t * (t + 1) // 2))
    assert step["macs"]["value"] == 3 * forward
    assert step["attention_share"]["details"]["attention_macs"] == 3 * LAYERS * scores(t * (t + 1) // 2)


@pytest.mark.parametrize("model, layers, d, d_ff, t", [
    (GPT2, LAYERS, D, 4 * D, 16),
    (f"{GPT2},n_inner=96", LAYERS, D, 96, 32),
    ("gpt2:n_layer=2", 2, 768, 3072, 128),
])
def test_gpt2_causal_is_kaplans_per_token_forward_cost(cli, model, layers, d, d_ff, t):
    """Kaplan et al. 2020, Table 1: C_forward = 2N + 2·n_layer·n_ctx·d_attn FLOPs per token, where
    N = 2·d_model·n_layer·(2·d_attn + d_ff) counts only the weight matrices of attention (QKV and the output
    projection) and the feed-forward: no embeddings, biases or layer norms (those are other_flops or lookups,
    and the bare backbone has no de-embedding). Kaplan's 2·n_layer·n_ctx·d_attn is QKᵀ and AV over the causal
    mask's mean of n_ctx/2 keys; exactly, query i keeps i + 1 keys, whose mean is (T + 1)/2, so T tokens cost
    T·(2N + 2·n_layer·(T + 1)·d_attn) FLOPs."""
    n = 2 * d * layers * (2 * d + d_ff)
    causal = flops(cli, model, "--seq", str(t), "--attention-count", "causal")
    assert causal["flops"]["value"] == t * (2 * n + 2 * layers * (t + 1) * d)
    assert causal["macs"]["details"]["attention_count"] == "causal"


# ---------------------------------------------------------------- mixture-of-experts

EXPERTS, TOP_K = 4, 2
MIXTRAL = f"hf:mixtral:{DECODER},num_key_value_heads=2,num_local_experts={EXPERTS},num_experts_per_tok={TOP_K}"


@pytest.mark.parametrize("device", ("meta", "cpu"))
def test_mixtral_counts_the_top_k_experts_of_each_token(cli, device):
    t = 16
    figure = flops(cli, MIXTRAL, "--seq", str(t), "--device", device)
    attention = llama_projections(t, 2) - t * 3 * D * FF + scores(t * t)
    router, experts = t * D * EXPERTS, t * TOP_K * 3 * D * FF  # the gate d×E; each token's k SwiGLU experts
    assert figure["macs"]["value"] == LAYERS * (attention + router + experts)
    assert "significant_uncounted" not in figure["macs"]["details"]
    routing = figure["macs"]["details"]["routing"]
    assert ("uniform routing" in routing) if device == "meta" else ("router chose" in routing)


@pytest.mark.parametrize("device", ("meta", "cpu"))
def test_mixtral_decode_counts_one_token_through_its_top_k_experts(cli, device):
    """The cache's prefill runs the experts the way the count does (on meta: the batched path, uniform top-k)."""
    t = 16
    macs = flops(cli, MIXTRAL, "--seq", str(t), "--phase", "decode", "--device", device)["macs"]
    attention = 2 * D * D + 2 * D * 2 * HEAD_DIM + scores(t + 1)
    assert macs["value"] == LAYERS * (attention + D * EXPERTS + TOP_K * 3 * D * FF)


def test_mixtral_params_and_params_active(cli):
    result = figures(cli("params", MIXTRAL, "--format", "json"))
    kv_width = 2 * HEAD_DIM
    expert = 3 * D * FF
    per_layer = 2 * D * D + 2 * D * kv_width + EXPERTS * expert + D * EXPERTS + 2 * D  # attention, experts, gate, norms
    total = VOCAB * D + LAYERS * per_layer + D  # embedding, layers, final norm (the backbone has no LM head)
    assert result["params"]["value"] == total == 228_416
    assert result["params_active"]["value"] == total - LAYERS * (EXPERTS - TOP_K) * expert == 130_112
    assert result["params_active"]["details"]["routing"] == f"top-{TOP_K} of {EXPERTS} experts"


# ---------------------------------------------------------------- KV-cache bytes


def kv_bytes(layers: int, kv_heads: int, head_dim: int, cached: int, element: int, batch: int) -> int:
    return 2 * layers * kv_heads * head_dim * cached * element * batch


def test_kv_cache_bytes_mha_gqa_mqa(cli):
    t = 32
    mha = figures(cli("memory", GPT2, "--phase", "decode", "--seq", str(t), "--format", "json"))
    assert mha["kv_cache_bytes"]["value"] == kv_bytes(LAYERS, HEADS, HEAD_DIM, t, 4, 1) == 32_768
    assert mha["kv_cache_bytes"]["point"] == {"batch": 1, "seq": t, "phase": "decode"}
    assert mha["peak_memory_bytes"]["error"] is None
    records = records_of(cli("memory", llama(2), llama(1), "--phase", "decode", "--seq", str(t), "--batch", "3",
                             "--dtype", "bfloat16", "--format", "json"))
    cache = {r["model"]: r["value"] for r in records if r["metric"] == "kv_cache_bytes"}
    assert cache == {llama(2): kv_bytes(LAYERS, 2, HEAD_DIM, t, 2, 3), llama(1): kv_bytes(LAYERS, 1, HEAD_DIM, t, 2, 3)}


# ---------------------------------------------------------------- Mamba

MAMBA_SPEC = "hf:mamba:" + ",".join(f"{key}={value}" for key, value in MAMBA.items())


def test_mamba_prefill_and_decode_through_the_cli(cli):
    t, kernel = 16, MAMBA["conv_kernel"]
    prefill = flops(cli, MAMBA_SPEC, "--seq", str(t))["macs"]
    decode = flops(cli, MAMBA_SPEC, "--seq", str(t), "--phase", "decode")["macs"]
    assert prefill["value"] == mamba_macs(t, t + kernel - 1)  # the conv padded by K − 1 on both sides
    assert decode["value"] == mamba_macs(1, 2)  # one step: the cached conv window and the new input
    assert decode["point"]["phase"] == "decode"
    assert "attention_count" not in prefill["details"]  # no attention to count


def test_mamba_decode_is_the_same_for_every_cache_length(cli):
    short, long = (flops(cli, MAMBA_SPEC, "--seq", str(t), "--phase", "decode")["macs"]["value"] for t in (4, 400))
    assert short == long == mamba_macs(1, 2)


# ---------------------------------------------------------------- task heads and Megatron's training FLOPs


def megatron_training_flops(batch: int, seq: int, layers: int, hidden: int, vocab: int) -> Fraction:
    """Narayanan et al. 2021 (Megatron-LM), §5.1, no activation recomputation: 72·B·s·l·h²·(1 + s/(6h) + V/(12·l·h)).

    It is 3 × the forward (backward = 2 × forward for every matmul) of 24·B·s·l·h² (QKV, output projection, an
    h→4h→h MLP), 4·B·s²·l·h (QKᵀ and AV over every pair: full attention) and 2·B·s·h·V (the LM head); embedding
    lookups, biases, norms and softmax are not in it (archbench files those under other_flops)."""
    return 72 * batch * seq * layers * hidden**2 * (1 + Fraction(seq, 6 * hidden) + Fraction(vocab, 12 * layers * hidden))


@pytest.mark.parametrize("model, batch, seq, layers, hidden, vocab", [
    (GPT2, 2, 16, LAYERS, D, VOCAB),
    ("gpt2:n_layer=2", 1, 128, 2, 768, 50257),
])
def test_gpt2_with_its_lm_head_and_backward_is_megatrons_formula(cli, model, batch, seq, layers, hidden, vocab):
    """Exact: archbench counts the LM head tied to wte as its matmul (forward B·s·h·V MACs, backward twice that: the
    input and the weight gradients); the wte/wpe lookups' backward (embedding_dense_backward, a scatter-add) has no
    MACs, as in Megatron's formula; the first layer's input gradient is computed (the embeddings require grad)."""
    expected = megatron_training_flops(batch, seq, layers, hidden, vocab)
    assert expected.denominator == 1
    step = flops(cli, model, "--head", "--backward", "--seq", str(seq), "--batch", str(batch))
    assert step["flops"]["value"] == 2 * step["macs"]["value"] == expected
    assert step["macs"]["details"]["pass"] == "forward+backward"
    forward = flops(cli, model, "--head", "--seq", str(seq), "--batch", str(batch))
    assert 3 * forward["flops"]["value"] == expected


def test_head_adds_the_lm_head_and_no_parameters_when_tied(cli):
    t = 16
    bare = flops(cli, GPT2, "--seq", str(t))["macs"]["value"]
    head = flops(cli, GPT2, "--seq", str(t), "--head")["macs"]["value"]
    assert head - bare == t * D * VOCAB
    params = [figures(cli("params", GPT2, *flag, "--format", "json"))["params"]["value"] for flag in ((), ("--head",))]
    assert params[0] == params[1]  # lm_head.weight is wte.weight


# ---------------------------------------------------------------- --strict on rotary decoders


@pytest.mark.parametrize("model", (llama(2), f"hf:mistral:{DECODER},num_key_value_heads=2,sliding_window=8",
                                   f"hf:qwen2:{DECODER},num_key_value_heads=2"))
def test_strict_passes_on_rotary_decoders(cli, model):
    for options in ((), ("--attention-count", "causal"), ("--phase", "decode")):
        result = cli("flops", model, "--seq", "16", "--strict", *options)
        assert result.exit_code == 0, result.output


# ---------------------------------------------------------------- scaling


GPT2_ONE_LAYER = f"hf:gpt2:n_layer=1,n_embd={D},n_head={HEADS},vocab_size={VOCAB}"


def test_decode_sweep_records_carry_the_phase_and_follow_the_closed_form(cli):
    result = cli("scaling", "-m", GPT2_ONE_LAYER, "--phase", "decode", "--seq", "64..1024", "--points", "5",
                 "--metric", "flops", "--format", "json")
    records = records_of(result)
    assert all(r["point"]["phase"] == "decode" for r in records)
    macs = {r["point"]["seq"]: r["value"] for r in records if r["metric"] == "macs"}
    assert macs == {t: gpt2_decode_macs(1, D, t) for t in (64, 128, 256, 512, 1024)}
    # 2·(T+1)·d of 12·d² + 2·(T+1)·d: half at T + 1 = 6·d
    (half,) = [r["value"] for r in records if r["metric"] == "attention_half_length"]
    assert half == pytest.approx(6 * D - 1, rel=0.05)


def test_prefill_sweep_attention_passes_half_near_6d(cli):
    """A GPT-2 layer over T tokens: 12·T·d² + 2·T²·d MACs, share T/(6d + T), one half at T = 6·d."""
    records = records_of(cli("scaling", "-m", GPT2_ONE_LAYER, "--seq", "64..4096", "--points", "7",
                             "--metric", "flops", "--format", "json"))
    shares = {r["point"]["seq"]: r["value"] for r in records if r["metric"] == "attention_share"}
    assert shares == pytest.approx({t: t / (6 * D + t) for t in shares}, rel=1e-12)
    (half,) = [r for r in records if r["metric"] == "attention_half_length"]
    assert half["value"] == pytest.approx(6 * D, rel=0.05)
    assert "phase" not in half["point"]


# ---------------------------------------------------------------- suites

SUITE = f"""
    name: modern-attention
    defaults: {{device: cpu}}
    cases:
      - {{id: gpt2-decode, model: '{GPT2}', seq: 16, phase: decode, metrics: [flops]}}
      - {{id: llama-causal, model: '{llama(2)}', seq: 16, attention_count: causal, metrics: [flops]}}
      - {{id: gpt2-head, model: '{GPT2}', seq: 16, head: true, metrics: [params, flops]}}
"""


def test_a_suite_with_phase_attention_count_and_head_cases(cli, tmp_path):
    suite = tmp_path / "modern.yaml"
    suite.write_text(textwrap.dedent(SUITE).lstrip())
    out = tmp_path / "run.json"
    result = cli("run", str(suite), "--out", str(out))
    assert result.exit_code == 0, result.output
    macs = {r["case"]: r for r in json.loads(out.read_text())["records"] if r["metric"] == "macs"}
    assert macs["gpt2-decode"]["value"] == gpt2_decode_macs(LAYERS, D, 16)
    assert macs["gpt2-decode"]["point"]["phase"] == "decode"
    assert macs["llama-causal"]["value"] == LAYERS * (llama_projections(16, 2) + scores(16 * 17 // 2))
    assert macs["llama-causal"]["details"]["attention_count"] == "causal"
    bare = 16 * 12 * LAYERS * D * D + LAYERS * 2 * 16 * 16 * D
    assert macs["gpt2-head"]["value"] == bare + 16 * D * VOCAB
    assert macs["gpt2-head"]["point"]["head"] is True
