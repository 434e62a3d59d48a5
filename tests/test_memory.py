"""Memory: the fresh-process peak RSS against allocations of known size, analytic sizes by hand, failures as rows."""

import os
import subprocess
import sys

import pytest

from archbench.errors import UserError
from archbench.measure.memory import WORKER_MALLOC_ENV, measure_memory, run_worker, score_matrix, weights_bytes
from archbench.models import build_model

MiB = 2**20
SLACK = 1 * MiB  # resident-set counters are batched per thread: the peak reads to within about a MiB


def test_cpu_peak_of_known_allocations():
    # Both cases run in one fresh Python through cpu_forward_peak (after a warm-up call each), as the worker does.
    # torch.ones(16 * 2**20) is 16,777,216 float32 = 64 MiB, every page written by the fill.
    script = """
import json, torch
from archbench.measure.memory_worker import cpu_forward_peak

def held():
    a = torch.ones(16 * 2**20)  # 64 MiB
    b = torch.ones(8 * 2**20)   # + 32 MiB while a is alive: peak 96 MiB
    return a, b

def freed():
    a = torch.ones(16 * 2**20)  # 64 MiB
    del a
    return torch.ones(8 * 2**20)  # 32 MiB after a is freed: peak 64 MiB, not the 96 MiB sum

for forward in (held, freed):
    cpu_forward_peak(forward)
    print(json.dumps(cpu_forward_peak(forward)["forward_peak_bytes"]))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **WORKER_MALLOC_ENV}, check=True)
    held, freed = map(int, done.stdout.split())
    assert 96 * MiB - SLACK <= held <= 96 * MiB + 4 * MiB
    assert 64 * MiB - SLACK <= freed <= 64 * MiB + 4 * MiB


def test_naive_attention_peak_holds_the_score_matrix_fused_sdpa_does_not():
    # Narrow layers (d_model 64) keep the forward cheap; the score matrix depends only on heads and T.
    naive = {r.metric: r for r in measure_memory("transformer:layers=1,attention=naive,d_model=64,ff=128", seq=2048,
                                                 timeout_s=300)}
    scores = 1 * 8 * 2048**2 * 4  # batch x heads x T^2 x float32 = 134,217,728 bytes
    assert naive["score_matrix_bytes"].value == scores == 134_217_728
    assert naive["peak_memory_bytes"].error is None
    assert naive["peak_memory_bytes"].value >= scores

    # Hugging Face BERT through F.scaled_dot_product_attention (the CPU flash kernel) never holds the scores.
    bert = "bert-base:num_hidden_layers=1,hidden_size=96,intermediate_size=192,vocab_size=1000,attn_implementation=sdpa"
    fused = {r.metric: r for r in measure_memory(bert, seq=2048, timeout_s=300)}
    fused_scores = 1 * 12 * 2048**2 * 4  # 201,326,592 bytes
    assert fused["score_matrix_bytes"].value == fused_scores
    assert fused["peak_memory_bytes"].value < fused_scores / 10


def test_weights_bytes_by_hand():
    mlp = build_model("mlp", device="meta")  # 1x28x28 -> 256 -> 256 -> 10, with biases
    assert weights_bytes(mlp.module) == ((784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)) * 4
    half = build_model("lstm:input=16,hidden=32", device="meta", dtype="bfloat16")
    assert weights_bytes(half.module) == (4 * 32 * (16 + 32) + 2 * 4 * 32) * 2


@pytest.mark.parametrize(
    "spec, kwargs, expected",
    [
        ("transformer:heads=4,d_model=256", {"seq": 100, "batch": 3}, 3 * 4 * 100**2 * 4),
        ("bert-base", {"seq": 128}, 12 * 128**2 * 4),
        ("gpt2", {"seq": 64, "dtype": "float16"}, 12 * 64**2 * 2),
        ("vit_b_16", {}, 12 * (14 * 14 + 1) ** 2 * 4),  # 224/16 = 14 patches a side, plus the class token
        ("vit-base", {}, 12 * 197**2 * 4),
        ("resnet50", {}, None),
        ("lstm", {"seq": 100}, None),
    ],
)
def test_score_matrix_bytes(spec, kwargs, expected):
    found = score_matrix(build_model(spec, device="meta", **kwargs))
    assert (found["bytes"] if found else None) == expected


def test_timeout_is_a_record_with_error():
    records = measure_memory("mlp", timeout_s=0.01)
    peak = records[0]
    assert peak.metric == "peak_memory_bytes" and peak.value is None
    assert "timed out after 0.01 s" in peak.error
    assert {r.metric for r in records} == {"peak_memory_bytes", "weights_bytes"}


def test_weights_that_cannot_fit_are_refused_not_allocated():
    peak = measure_memory("gpt3-175b", seq=8)[0]
    assert peak.value is None and peak.error.startswith("weights need ")


def test_worker_failure_comes_back_as_error():
    result = run_worker({"spec": "mlp", "batch": 1, "seq": None, "input_shape": [2, 28, 28], "device": "cpu",
                         "dtype": "float32"}, timeout_s=120)
    assert "error" in result and "RuntimeError" in result["error"]  # 2x28x28 flattens to 1568, not 784


def test_bad_requests_raise_user_error():
    with pytest.raises(UserError):
        measure_memory("no-such-model")
    with pytest.raises(UserError, match="needs a real device"):
        measure_memory("mlp", device="meta")
    if not __import__("torch").cuda.is_available():
        with pytest.raises(UserError, match="no CUDA GPU"):
            measure_memory("mlp", device="cuda")
