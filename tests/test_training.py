"""Training step: optimizer states, saved activations, checkpointing and ZeRO divisions against closed forms by hand."""

import json

import pytest
from torch import nn

from archbench.errors import UserError
from archbench.measure.sharding import ShardPlan, divided
from archbench.measure.training import breakdown, optimizer_state_elements, saved_activations, step_bytes
from archbench.models.subject import Recipe

# Two Linear layers, 3 -> 5 -> 2: weights 5x3 and 2x5, biases 5 and 2: N = 15 + 5 + 10 + 2 = 32 parameters.
N = 32


def two_linears():
    return nn.Sequential(nn.Linear(3, 5), nn.Linear(5, 2)).to("meta")


@pytest.mark.parametrize("optimizer, states", [
    ("sgd", 0),  # no state
    ("momentum", 4 * N),  # one velocity per parameter, fp32
    ("adam", 2 * 4 * N),  # first and second moments, fp32
    ("adamw", 2 * 4 * N),  # the same two moments; the decay is decoupled and keeps no state
    # Adafactor: a matrix r x c keeps r + c (row and column factors), a vector its own size:
    # 5x3 -> 5 + 3, bias 5 -> 5, 2x5 -> 2 + 5, bias 2 -> 2: 22 elements of 4 bytes.
    ("adafactor", 4 * (8 + 5 + 7 + 2)),
])
def test_optimizer_states_fp32_by_hand(optimizer, states):
    held = step_bytes(two_linears(), optimizer, "fp32")
    assert held.optimizer_states == states
    assert held.weights == 4 * N and held.gradients == 4 * N and held.master == 0


@pytest.mark.parametrize("precision", ["bf16-mixed", "fp16-mixed"])
def test_mixed_precision_adds_the_fp32_master_copy(precision):
    held = step_bytes(two_linears(), "adamw", precision)
    assert held.weights == 2 * N  # 16-bit working weights
    assert held.gradients == 2 * N  # 16-bit gradients
    assert held.optimizer_states == 2 * 4 * N + 4 * N  # Adam's two fp32 moments + the fp32 master copy
    assert held.master == 4 * N
    # ZeRO's count for mixed-precision Adam: 2 + 2 + K bytes per parameter, K = 12
    assert held.weights + held.gradients + held.optimizer_states == (2 + 2 + 12) * N


def test_adafactor_factors_a_3d_tensor_over_its_last_two_sizes():
    # torch.optim.Adafactor keeps row_var of shape[:-1] and col_var of shape[:-2] + shape[-1:]: 2x3x4 -> 6 + 8
    assert optimizer_state_elements([(2, 3, 4)], "adafactor") == 2 * 3 + 2 * 4


def test_unknown_optimizer_is_a_user_error():
    with pytest.raises(UserError):
        optimizer_state_elements([(3,)], "lamb")


def _subject(tmp_path, body: str, shape: str, checkpointing=False, batch=4):
    path = tmp_path / "net.py"
    path.write_text("from torch import nn\n\ndef build():\n    return " + body + "\n")
    dims = tuple(int(s) for s in shape.split("x"))
    return Recipe(f"{path}:build", batch, None, dims, phase="train", checkpointing=checkpointing).build("meta")


def test_linear_relu_stack_saves_each_relu_output_once(tmp_path):
    # Linear(8,16) ReLU Linear(16,32) ReLU, batch B = 4, fp32. Each Linear saves its input (the first one's
    # is the model's input, held anyway), each ReLU its output; the second Linear's input IS the first ReLU's
    # output: one storage, counted once. The mean loss saves nothing. So B x 16 x 4 + B x 32 x 4 bytes.
    subject = _subject(tmp_path, "nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 32), nn.ReLU())", "8")
    acts = saved_activations(subject)
    assert acts.saved_bytes == 4 * 16 * 4 + 4 * 32 * 4
    assert acts.largest_tensor_bytes == 4 * 32 * 4


def test_checkpointing_keeps_only_the_block_inputs(tmp_path):
    # L = 3 blocks of Linear(16,16) + ReLU, batch 4: a block's output is B x 16 x 4 = 256 bytes.
    body = "nn.Sequential(*[nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(3)])"
    plain = saved_activations(_subject(tmp_path, body, "16"))
    assert plain.saved_bytes == 3 * 256  # each ReLU's output (each next Linear's input is that same storage)
    subject = _subject(tmp_path, body, "16", checkpointing=True)
    assert subject.module.checkpointed == ["0", "1", "2"]
    acts = saved_activations(subject)
    # Checkpointing keeps each block's input: block 0's is the model's input (held anyway), blocks 1 and 2
    # take the outputs of blocks 0 and 1: 2 x 256 bytes. Nothing is saved outside the blocks.
    assert acts.checkpointed_bytes == 2 * 256
    # One block's recompute saves again its Linear's input, which is the block's input (kept already), and its
    # ReLU's output: 256 bytes more.
    assert acts.largest_block_bytes == 256
    figures = breakdown(subject)
    assert figures["activations"] == 2 * 256 and figures["transient"] == 256


def test_predicted_peak_is_the_sum_of_its_parts(tmp_path):
    subject = _subject(tmp_path, "nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 32), nn.ReLU())", "8")
    f = breakdown(subject)
    params = 8 * 16 + 16 + 16 * 32 + 32
    assert (f["weights"], f["gradients"], f["optimizer_states"]) == (4 * params, 4 * params, 8 * params)
    assert f["inputs"] == 4 * 8 * 4
    # AdamW's single-tensor step makes two temporaries of the largest parameter (16 x 32 = 512 elements).
    assert f["optimizer_transient"] == 2 * 4 * 512
    expected = f["weights"] + f["gradients"] + f["optimizer_states"] + max(
        f["activations"] + f["inputs"] + f["transient"], f["optimizer_transient"])
    assert f["predicted_peak"] == expected


# ZeRO paper (Rajbhandari et al. 2020), Figure 1: Ψ = 7.5B parameters, N = 64 devices, K = 12, mixed-precision
# Adam. Baseline (2 + 2 + K)Ψ = 120 GB; P_os 2Ψ + 2Ψ + KΨ/N = 31.4 GB; P_os+g 2Ψ + (2 + K)Ψ/N = 16.6 GB;
# P_os+g+p (2 + 2 + K)Ψ/N = 1.9 GB.
PSI, DEVICES = 7_500_000_000, 64


@pytest.mark.parametrize("shard, expected_gb", [
    ("none", 120.0), ("zero1", 31.4), ("zero2", 16.6), ("zero3", 1.9), ("fsdp", 1.9),
])
def test_zero_divisions_match_the_paper(shard, expected_gb):
    held = divided(2 * PSI, 2 * PSI, 12 * PSI, shard, DEVICES)
    assert round(held / 1e9, 1) == expected_gb


def test_zero_divisions_exact_formulas():
    w, g, s, n = 2 * PSI, 2 * PSI, 12 * PSI, DEVICES
    assert divided(w, g, s, "zero1", n) == 4 * PSI + 12 * PSI // n
    assert divided(w, g, s, "zero2", n) == 2 * PSI + 14 * PSI // n
    assert divided(w, g, s, "zero3", n) == 16 * PSI // n


@pytest.mark.parametrize("args", [("fsdp2", 2, None), ("zero1", 0, None), ("zero1", 2, "tpu9")])
def test_bad_shard_plans_are_user_errors(args):
    with pytest.raises(UserError):
        ShardPlan.parse(*args)


@pytest.mark.parametrize("extra", [
    ["--phase", "train", "--optimizer", "lamb"],
    ["--phase", "train", "--precision", "fp8"],
    ["--checkpointing"],
    ["--phase", "train", "--dtype", "bfloat16"],
])
def test_bad_training_options_exit_2(cli, extra):
    result = cli("flops", "mlp", *extra)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output


def test_shard_without_train_phase_exits_2(cli):
    result = cli("memory", "mlp", "--shard", "zero3", "--devices", "8")
    assert result.exit_code == 2, result.output


def test_memory_train_step_end_to_end(cli, tmp_path):
    # One fresh process runs two AdamW steps of a small MLP; the breakdown comes with it, and per device under ZeRO-3.
    path = tmp_path / "net.py"
    path.write_text("from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Linear(256, 512), nn.ReLU(), "
                    "nn.Linear(512, 10))\n")
    out = tmp_path / "run.json"
    result = cli("memory", f"{path}:build", "--input", "256", "--batch", "8", "--phase", "train",
                 "--shard", "zero3", "--devices", "4", "--hardware", "h100", "-f", "json", "-o", str(out))
    assert result.exit_code == 0, result.output
    records = {r["metric"]: r for r in json.loads(out.read_text())["records"]}
    params = 256 * 512 + 512 + 512 * 10 + 10
    assert records["weights_bytes"]["value"] == 4 * params
    assert records["optimizer_state_bytes"]["value"] == 8 * params
    assert records["peak_memory_bytes"]["value"] > 0
    assert "measured_over_predicted" in records["peak_memory_bytes"]["details"]
    assert records["peak_memory_bytes"]["point"]["optimizer"] == "adamw"
    shard = records["per_device_bytes"]
    f = shard["details"]
    # ZeRO-3 over 4 devices: a quarter of W + G + S (16 bytes per parameter), then the larger of the forward-backward
    # (activations, inputs, transient, one gathered block) and AdamW's two temporaries of the largest weight (512x256)
    stepping = f["activations"] + f["inputs"] + f["transient"] + f["gathered_block_weights"]
    assert shard["value"] == -(-(16 * params) // 4) + max(stepping, 2 * 4 * 256 * 512)
    assert shard["details"]["fits"] is True and records["max_batch"]["value"] > 1000


def test_train_step_flops_by_hand(tmp_path):
    # Linear(8,16) ReLU Linear(16,32) ReLU at batch 4. Forward: 4·(8·16 + 16·32) MACs. Backward: each Linear's
    # weight gradient costs its forward again; the input gradient only where the input needs one (the second
    # Linear's: 4·16·32; the model's input needs none). AdamW's update: 14 FLOPs per parameter.
    from archbench.measure.training import flop_records

    subject = _subject(tmp_path, "nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 32), nn.ReLU())", "8")
    records = {r.metric: r for r in flop_records(subject)}
    forward = 4 * (8 * 16 + 16 * 32)
    assert records["macs"].value == forward + forward + 4 * 16 * 32
    params = 8 * 16 + 16 + 16 * 32 + 32
    assert records["macs"].details["optimizer_flops"] == 14 * params
    assert records["macs"].details["loss"].startswith("mean over the output")


def test_checkpointing_adds_the_recomputed_forward(tmp_path):
    # 3 blocks of Linear(16,16) + ReLU at batch 4: each block's forward is 4·16·16 MACs, recomputed once in backward.
    from archbench.measure.training import flop_records

    body = "nn.Sequential(*[nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(3)])"
    plain = {r.metric: r for r in flop_records(_subject(tmp_path, body, "16"))}["macs"].value
    checkpointed = {r.metric: r for r in flop_records(_subject(tmp_path, body, "16", checkpointing=True))}["macs"]
    assert checkpointed.details["recomputed_macs"] == 3 * 4 * 16 * 16
    assert checkpointed.value == plain + 3 * 4 * 16 * 16


def test_a_step_that_cannot_fit_is_refused_before_timing(cli):
    # GPT-2 XL (1.56B parameters) with AdamW in fp32 holds 16 bytes per parameter, about 25 GB, before activations:
    # at batch 64 and T = 1024 they are hundreds of GB more (each layer's 1600-wide tensors for 65,536 tokens).
    result = cli("latency", "gpt2-xl", "--seq", "1024", "--batch", "64", "--phase", "train")
    assert result.exit_code == 2, result.output
    assert "refused before allocating" in result.output
