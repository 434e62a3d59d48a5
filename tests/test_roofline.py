"""Bytes moved, the table of machines and the roofline: closed forms written out by hand."""

import pytest
import torch
from torch import nn

from archbench.measure.flops import count_flops
from archbench.measure.hardware import MACHINES, load_machines
from archbench.measure.roofline import roofs
from archbench.models.subject import Recipe

F32 = 4  # bytes per float32 element


def moved(model, inputs, **options):
    return count_flops(model, inputs, engine="dispatch", **options).bytes_moved


def test_linear_reads_input_weight_bias_and_writes_output_once():
    b, n_in, n_out = 3, 5, 7
    assert moved(nn.Linear(n_in, n_out), torch.randn(b, n_in)) == F32 * (b * n_in + b * n_out + n_in * n_out + n_out)


def test_conv_reads_input_weight_bias_and_writes_output():
    b, c_in, c_out, k, side = 2, 3, 4, 3, 8
    out_side = side - k + 1
    expected = b * c_in * side * side + c_out * c_in * k * k + c_out + b * c_out * out_side * out_side
    assert moved(nn.Conv2d(c_in, c_out, k), torch.randn(b, c_in, side, side)) == F32 * expected


def test_views_move_nothing():
    class Views(nn.Module):
        def forward(self, x):
            return x.view(6, 4).t().unsqueeze(0).expand(3, 4, 6)

    assert moved(Views(), torch.randn(4, 6)) == 0


def test_lstm_step():
    """One step of a one-layer LSTM on the CPU: h0 and c0 written as zeros; the fused layer reads x, W_ih (4H×I),
    W_hh (4H×H), both biases, h0 and c0 and writes the output, h and c; h and c are stacked (read and written)."""
    b, n_in, h = 2, 3, 4
    count = count_flops(nn.LSTM(n_in, h, batch_first=True), torch.randn(b, 1, n_in), engine="dispatch")
    layer = [c for c in count.calls if c.macs]
    assert len(layer) == 1
    weights = 4 * h * n_in + 4 * h * h + 2 * 4 * h
    assert layer[0].bytes_moved == F32 * (b * n_in + weights + 2 * b * h + 3 * b * h)
    assert count.bytes_moved == F32 * (2 * b * h + b * n_in + weights + 2 * b * h + 3 * b * h + 2 * 2 * b * h)


class Fused(nn.Module):
    def forward(self, q, k, v):
        return nn.functional.scaled_dot_product_attention(q, k, v)


class Naive(nn.Module):
    def forward(self, q, k, v):
        return (q @ k.transpose(-2, -1)).softmax(-1) @ v


def test_fused_attention_never_moves_the_scores_and_naive_does():
    """Fused: Q, K, V read, the output written. Naive: QKᵀ writes the B·H·T² scores, softmax reads and writes them,
    the value product reads them: four passes over the score matrix on top of the same Q, K, V and output."""
    b, heads, t, e = 2, 3, 16, 8
    q, k, v = (torch.randn(b, heads, t, e) for _ in range(3))
    fused = moved(Fused(), (q, k, v))
    assert fused == F32 * 4 * b * heads * t * e
    assert moved(Naive(), (q, k, v)) - fused == F32 * 4 * b * heads * t * t


def gpt2_weight_bytes(layers: int, d: int) -> int:
    """Every block's weights (c_attn d×3d, c_proj d×d, c_fc d×4d, mlp c_proj 4d×d and their biases, two layer
    norms) and the final layer norm; the token and position embeddings read one row each."""
    block = d * 3 * d + 3 * d + d * d + d + d * 4 * d + 4 * d + 4 * d * d + d + 2 * 2 * d
    return F32 * (layers * block + 2 * d + 2 * d)


def test_gpt2_decode_step_reads_the_weights_and_the_kv_cache():
    """A decode step reads every weight once and the K and V cache of T + 1 tokens (the fused kernel); transformers'
    cache grows by concatenation, which also reads T and writes T + 1 tokens of K and of V: per extra cached token
    each layer moves 3 × 2 × d floats more. The activations of one token are the rest: under 2% at d = 768
    (GPT-2's tanh GELU alone is 8 elementwise ops)."""
    layers, d = 1, 768
    counts = {t: count_flops(Recipe("gpt2:n_layer=1", seq=t, phase="decode").build("meta")).bytes_moved
              for t in (64, 96)}
    assert counts[96] - counts[64] == (96 - 64) * layers * 3 * 2 * d * F32
    t = 64
    closed = gpt2_weight_bytes(layers, d) + layers * 2 * d * F32 * ((t + 1) + t + (t + 1))
    assert closed <= counts[t] <= closed * 1.02


MIXTRAL = ("hf:mixtral:hidden_size=64,num_hidden_layers=1,num_attention_heads=4,intermediate_size=128,"
           "vocab_size=100,num_key_value_heads=2,num_local_experts=8,num_experts_per_tok=2")


@pytest.mark.parametrize("device", ("cpu", "meta"))
def test_moe_decode_step_reads_only_the_routed_experts(device):
    """One token routed to 2 of 8 experts: the experts' products read 2 experts' gate-up (2·ff×d) and down (d×ff)
    weights, never the other 6."""
    d, ff, top_k = 64, 128, 2
    count = count_flops(Recipe(MIXTRAL, seq=16, phase="decode").build(device))
    experts = [c for c in count.calls if c.module.endswith("mlp.experts") and c.macs]
    weights = F32 * top_k * (2 * ff * d + d * ff)
    activations = F32 * top_k * (d + 2 * ff + ff + d)  # each expert's input and output rows of both products
    offsets = 2 * 8 * 4 if device == "cpu" else 0  # the grouped kernel (real routing) reads 8 int32 group ends
    assert sum(c.bytes_moved for c in experts) == weights + activations + offsets


def test_hardware_table_is_dense():
    """Datasheets print sparse figures first (H100 SXM BF16 1,979 TFLOPS*, A100 BF16 624*, L4 BF16 242*);
    the table holds the dense halves, and the vendors' bandwidths."""
    assert MACHINES["h100-sxm"].peaks["bfloat16"] == 989.5e12 and MACHINES["h100-sxm"].bandwidth == 3.35e12
    assert MACHINES["h100-sxm"].peaks["float8"] == 1979e12
    assert MACHINES["a100-80gb"].peaks["bfloat16"] == 312e12 and MACHINES["a100-80gb"].bandwidth == 2.039e12
    assert MACHINES["l4"].peaks["bfloat16"] == 121e12
    assert MACHINES["mi300x"].peaks["float16"] == 1307.4e12
    assert MACHINES["tpu-v5e"].peaks["bfloat16"] == 197e12 and "float32" not in MACHINES["tpu-v5e"].peaks


def test_decode_is_memory_bound_and_a_large_gemm_compute_bound_everywhere():
    decode = count_flops(Recipe("gpt2:n_layer=2", seq=512, phase="decode").build("meta")).calls
    gemm = count_flops(nn.Linear(8192, 8192, bias=False), torch.randn(8192, 8192, device="meta"),
                       engine="dispatch").calls
    for machine in MACHINES.values():
        dtype = "bfloat16"
        assert roofs(decode, machine, dtype)[0].bound == "memory", machine.name
        assert roofs(gemm, machine, dtype)[0].bound == "compute", machine.name


def test_machines_file_extends_the_table(tmp_path):
    path = tmp_path / "machines.yaml"
    path.write_text("machines:\n  mine: {bandwidth_gbs: 100, peak_tflops: {float32: 2}}\n")
    mine = load_machines(path)["mine"]
    assert (mine.bandwidth, mine.peaks, mine.ridge("float32")) == (100e9, {"float32": 2e12}, 20.0)
    path.write_text("machines:\n  mine: {bandwidth_gbs: -1, peak_tflops: {float32: 2}}\n")
    with pytest.raises(Exception, match="bandwidth_gbs must be a positive number"):
        load_machines(path)


def test_roofline_command(cli, tmp_path):
    import json

    plot = tmp_path / "roof.png"
    result = cli("roofline", "gpt2:n_layer=1", "--phase", "decode", "--seq", "32", "--hardware", "h100-sxm",
                 "--dtype", "bfloat16", "--by", "module", "--depth", "1", "--plot", str(plot), "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    model = next(r for r in records if r["metric"] == "predicted_latency_s" and "module" not in r["point"])
    details = model["details"]
    assert details["bound"] == "memory" and details["flops_definition"] == "2 x macs + other_flops"
    assert model["value"] >= details["bytes_moved"] / 3.35e12
    assert any(r["metric"] == "predicted_tokens_s" for r in records)
    assert any("module" in r["point"] for r in records) and plot.stat().st_size > 0
    bad = cli("roofline", "gpt2:n_layer=1", "--hardware", "nope")
    assert bad.exit_code == 2 and "unknown hardware nope" in bad.output


def test_claim_kind_roofline_judges_a_decode_step_on_every_machine():
    from archbench.claims.measures import Context, measure

    figures = measure({"kind": "roofline", "model": {"model": "gpt2:n_layer=1", "dtype": "bfloat16"},
                       "phase": "decode", "seq": 64}, Context()).figures
    assert figures["seq"] == [64] and figures["intensity"] < min(figures["ridges"])
    assert all(figures[f"memory_bound.{name}"] for name in MACHINES)
    assert figures["ridge.h100-sxm"] == 989.5e12 / 3.35e12


def test_linear_training_step():
    """Forward as above; the loss (archbench's: the output's sum) reads B·out and writes one element, its gradient
    (ones_like) writes one, broadcast to B×out without a copy; the weight gradient reads that one element and the
    input and writes in·out; the bias gradient reads it and writes out (no input gradient: x needs none)."""
    b, n_in, n_out = 3, 5, 7
    forward = b * n_in + b * n_out + n_in * n_out + n_out
    backward = (b * n_out + 1) + 1 + (1 + b * n_in + n_in * n_out) + (1 + n_out)
    assert moved(nn.Linear(n_in, n_out), torch.randn(b, n_in), backward=True) == F32 * (forward + backward)


def test_hardware_command_lists_dense_figures_and_this_cpu(cli, tmp_path):
    import json

    path = tmp_path / "machines.yaml"
    path.write_text("machines:\n  mine: {bandwidth_gbs: 100, peak_tflops: {float32: 2}, source: my sheet}\n")
    result = cli("hardware", "--machines", str(path), "--threads", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    rows = {row["machine"]: row for row in json.loads(result.stdout)["machines"]}
    assert rows["h100-sxm"]["bfloat16_tflops"] == 989.5 and rows["h100-sxm"]["bandwidth_gbs"] == 3350
    assert rows["mine"]["float32_tflops"] == 2 and rows["mine"]["source"] == "my sheet"
    assert rows["this-cpu"]["float32_tflops"] > 0 and rows["this-cpu"]["bandwidth_gbs"] > 0
