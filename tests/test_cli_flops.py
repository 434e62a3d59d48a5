"""`archbench flops` end to end: figures against closed forms, breakdowns, --strict, bad input."""

import json
import subprocess
import sys

import pytest


def records_of(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["records"]


def totals(records):
    return {r["metric"]: r for r in records if "module" not in r["point"] and "operator" not in r["point"]}


def test_transformer_layer_json(cli):
    t, d = 256, 512
    records = records_of(cli("flops", "transformer:layers=1", "--seq", str(t), "--format", "json"))
    figures = totals(records)
    expected = 12 * t * d * d + 2 * t * t * d
    assert (figures["macs"]["value"], figures["macs"]["unit"]) == (expected, "MAC")
    assert (figures["flops"]["value"], figures["flops"]["unit"]) == (2 * expected, "FLOP")
    assert figures["macs"]["point"] == {"batch": 1, "seq": t}
    assert "full L×S" in figures["macs"]["details"]["attention"]


def test_by_module_with_depth_and_by_operator(cli):
    records = records_of(cli("flops", "resnet18", "--depth", "1", "--format", "json"))
    modules = {r["point"]["module"]: r["value"] for r in records if "module" in r["point"] and r["metric"] == "macs"}
    assert set(modules) >= {"conv1", "layer1", "layer4", "fc"} and all("." not in m for m in modules)
    assert modules["fc"] == 512 * 1000
    assert sum(modules.values()) == totals(records)["macs"]["value"]
    records = records_of(cli("flops", "lenet5", "--by", "operator", "--engine", "dispatch", "--format", "json"))
    operators = {r["point"]["operator"]: r["value"] for r in records if "operator" in r["point"] and r["metric"] == "macs"}
    assert operators == {"aten.convolution": 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25,
                         "aten.addmm": 400 * 120 + 120 * 84 + 84 * 10}


def test_table_output_and_out_file(cli, tmp_path):
    out = tmp_path / "flops.json"
    result = cli("flops", "bert-base:num_hidden_layers=1", "--seq", "600", "--device", "meta", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "macs [MAC]" in result.stdout and "flops [FLOP]" in result.stdout
    assert "position table was extended" in result.stdout
    document = json.loads(out.read_text())
    assert document["env"]["device"] == "meta" and totals(document["records"])["macs"]["value"] > 0


def test_backward(cli):
    t, d = 64, 512
    records = records_of(cli("flops", "transformer:layers=1", "--seq", str(t), "--backward", "--format", "json"))
    forward = 12 * t * d * d + 2 * t * t * d
    backward = 3 * t * d * d + 2 * 9 * t * d * d + 4 * t * t * d  # see test_flops.test_backward_closed_forms
    macs = totals(records)["macs"]
    assert macs["value"] == forward + backward
    assert macs["details"]["pass"] == "forward+backward" and macs["details"]["engine"] == "dispatch"


def test_strict_passes_with_only_negligible_uncounted_ops(cli):
    result = cli("flops", "t5-small:num_layers=1,num_decoder_layers=1", "--seq", "32", "--device", "meta", "--strict")
    assert result.exit_code == 0, result.output
    assert "known negligible" in result.stdout


def test_strict_fails_on_an_op_without_formula(cli, monkeypatch):
    from archbench.models import registry

    def spectral():
        import torch
        from torch import nn

        class Spectral(nn.Module):
            def forward(self, x):
                return torch.fft.rfft(x).abs()

        return Spectral()

    registry.all_entries()
    entry = registry.ModelEntry("spectral-test", "test", "test", spectral,
                                lambda o: registry.InputSpec("vector", (64,)))
    monkeypatch.setitem(registry._REGISTRY, "spectral-test", entry)
    assert cli("flops", "spectral-test").exit_code == 0
    result = cli("flops", "spectral-test", "--strict")
    assert result.exit_code == 1
    assert "strict: ops without a formula" in result.stderr and "fft" in result.stderr


@pytest.mark.parametrize("args,message", [
    (["resnet18", "--by", "layer"], "unknown --by"),
    (["resnet18", "--depth", "0"], "--depth must be a positive integer"),
    (["resnet18", "--by", "operator", "--depth", "2"], "--depth applies to --by module"),
    (["resnet18", "--engine", "thop"], "unknown --engine"),
    (["bert-base", "--engine", "fvcore", "--seq", "8"], "keyword inputs"),
    (["resnet18", "--seq", "128"], "--seq applies to sequence models"),
    (["resnt50"], "did you mean"),
    (["resnet18", "--format", "xml"], "unknown --format"),
])
def test_bad_input_is_one_line_and_exit_2(cli, args, message):
    result = cli("flops", *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]


def test_help_does_not_import_torch():
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "archbench", "flops", "--help"],
                         capture_output=True, text=True, check=True)
    imported = [line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")]
    assert "torch" not in imported and "pandas" not in imported
    assert "--backward" in run.stdout
