"""`archbench latency` and `archbench memory`: JSON documents with their env, one-line errors, a torch-free --help."""

import json
import subprocess
import sys

import pytest
import torch

NO_GPU = not torch.cuda.is_available()
MLP_WEIGHT_BYTES = ((784 * 256 + 256) + (256 * 256 + 256) + (256 * 10 + 10)) * 4  # 1,077,288


def _one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], result.stderr


def test_latency_json_document(cli, tmp_path):
    out = tmp_path / "latency.json"
    result = cli("latency", "mlp", "lenet5", "--min-time", "0.05", "--threads", "1", "--format", "json",
                 "--out", str(out))
    assert result.exit_code == 0, result.output
    document = json.loads(out.read_text())
    assert json.loads(result.stdout) == document
    env = document["env"]
    assert env["device"] == "cpu" and env["dtype"] == "float32" and env["threads"] == 1
    assert env["cpu"] and "gpu" in env
    assert env["peak_flops_s"] > 0 and "2*n^3" in env["peak_measured_with"]
    latencies = [r for r in document["records"] if r["metric"] == "latency_s"]
    assert [r["model"] for r in latencies] == ["mlp", "lenet5"]
    for record in latencies:
        assert record["error"] is None and record["value"] > 0
        assert record["details"]["samples"] and record["details"]["threads"] == 1


def test_model_too_big_for_memory_is_a_row_not_an_allocation(cli):
    result = cli("latency", "gpt3-175b", "--seq", "8", "--threads", "1", "--format", "json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)["records"]
    assert record["metric"] == "latency_s" and record["value"] is None
    assert record["error"].startswith("weights need ") and "not built" in record["error"]


def test_memory_json_document(cli):
    result = cli("memory", "mlp", "--batch", "2", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    records = {r["metric"]: r for r in document["records"]}
    assert records["weights_bytes"]["value"] == MLP_WEIGHT_BYTES
    peak = records["peak_memory_bytes"]
    assert peak["error"] is None and peak["value"] >= 0 and peak["point"] == {"batch": 2, "input": "1x28x28"}
    assert "score_matrix_bytes" not in records
    assert document["env"]["device"] == "cpu" and document["env"]["dtype"] == "float32"


@pytest.mark.skipif(not NO_GPU, reason="this machine has a GPU")
@pytest.mark.parametrize("command", ["latency", "memory"])
def test_cuda_without_gpu_is_one_line_error(cli, command):
    _one_line_error(cli(command, "mlp", "--device", "cuda"), "no CUDA GPU is available")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("latency", "mlp", "--threads", "0"), "--threads must be a positive integer"),
        (("latency", "mlp", "--min-time", "0"), "--min-time must be positive"),
        (("latency", "mlp", "--dtype", "int8"), "unknown dtype"),
        (("latency", "mlp", "resnet5O"), "resnet5O"),
        (("memory", "mlp", "--timeout", "-1"), "--timeout must be positive"),
        (("memory", "lstm", "--input", "3x224x224"), "lstm"),
        (("memory", "mlp", "--format", "xml"), "unknown --format"),
    ],
)
def test_bad_input_is_one_line_error(cli, args, fragment):
    _one_line_error(cli(*args), fragment)


@pytest.mark.parametrize("command", ["latency", "memory"])
def test_help_does_not_import_torch(command):
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "archbench", command, "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    imported = [line.split("|")[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert not [m for m in imported if m.split(".")[0] in ("torch", "pandas")]
