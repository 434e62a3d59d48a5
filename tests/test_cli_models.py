"""`archbench list` and `archbench params` through typer's test runner: formats, files, error paths."""

import json
import subprocess
import sys

import pytest


def test_help_does_not_import_torch():
    code = (
        "import sys; from typer.testing import CliRunner; from archbench.cli import app;"
        "r = CliRunner().invoke(app, sys.argv[1:]); assert r.exit_code == 0, r.output;"
        "assert 'torch' not in sys.modules and 'pandas' not in sys.modules, 'heavy import'"
    )
    for args in (["--help"], ["list", "--help"], ["params", "--help"]):
        subprocess.run([sys.executable, "-c", code, *args], check=True)


def test_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "archbench", "--help"], capture_output=True, text=True, check=True)
    assert "params" in out.stdout


def test_list_with_pattern(cli):
    result = cli("list", "bert*", "--format", "json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert {r["name"] for r in rows} == {"bert-base", "bert-large"}
    assert all(r["source"] == "huggingface" and r["default_input"].startswith("tokens") for r in rows)


def test_list_table(cli):
    result = cli("list", "lstm")
    assert result.exit_code == 0 and "lstm" in result.stdout and "rnn" in result.stdout


def test_params_json_document(cli):
    result = cli("params", "lenet5", "--format", "json")
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["schema_version"] == 1
    for key in ("python", "torch", "torchvision", "transformers", "archbench", "cpu", "threads", "device"):
        assert key in doc["env"]
    params = next(r for r in doc["records"] if r["metric"] == "params")
    assert params == {**params, "model": "lenet5", "value": 61706, "unit": "count", "error": None}
    assert params["point"] == {"batch": 1, "input": "1x32x32"}


@pytest.mark.parametrize("fmt, marker", [("csv", "metric,value,unit"), ("markdown", "| model"), ("table", "lenet5")])
def test_params_formats(cli, fmt, marker):
    result = cli("params", "lenet5", "--format", fmt)
    assert result.exit_code == 0
    assert marker in result.stdout


@pytest.mark.parametrize("suffix, check", [
    (".json", lambda text: json.loads(text)["records"]),
    (".csv", lambda text: text.splitlines()[0].startswith("model,")),
    (".md", lambda text: text.startswith("| model")),
])
def test_params_out_file_format_from_extension(cli, tmp_path, suffix, check):
    path = tmp_path / f"out{suffix}"
    result = cli("params", "autoencoder", "--out", str(path))
    assert result.exit_code == 0
    assert check(path.read_text())


def test_params_depth_table(cli):
    result = cli("params", "lenet5", "--depth", "1", "--format", "json")
    modules = {r["point"]["module"]: r["value"] for r in json.loads(result.stdout)["records"] if "module" in r["point"]}
    assert modules["0"] == 5 * 5 * 6 + 6 and modules["9"] == 120 * 84 + 84


def test_params_vs_fcn(cli):
    result = cli("params", "lenet5", "--vs", "fcn", "--format", "json")
    records = json.loads(result.stdout)["records"]
    total = [r for r in records if r["point"].get("layer", "").startswith("TOTAL") and r["metric"] == "params_dense_equivalent"]
    assert len(total) == 1 and total[0]["value"] > 61706


def test_params_vs_another_model(cli):
    result = cli("params", "lstm", "--vs", "gru", "--format", "json")
    totals = {r["model"]: r["value"] for r in json.loads(result.stdout)["records"] if r["metric"] == "params"}
    h = i = 512
    assert totals == {"lstm": 4 * (h * i + h * h + 2 * h), "gru": 3 * (h * i + h * h + 2 * h)}


def test_gpt3_counts_without_allocating(cli):
    result = cli("params", "gpt3-175b", "--format", "json")
    value = next(r["value"] for r in json.loads(result.stdout)["records"] if r["metric"] == "params")
    assert 174e9 < value < 176e9


@pytest.mark.parametrize("args, message", [
    (["params", "resnet5"], "did you mean resnet50"),
    (["params", "resnet50", "--input", "3x22a"], "malformed --input"),
    (["params", "lstm:foo=1"], "unknown option 'foo'"),
    (["params", "lenet5", "--format", "xml"], "unknown --format"),
    (["params", "lenet5", "--out", "x.xlsx"], "unknown extension"),
    (["params", "lenet5", "--depth", "0"], "--depth"),
    (["params", "lenet5", "--batch", "0"], "--batch"),
    (["params", "resnet50", "--seq", "12"], "--seq applies"),
    (["list", "--format", "xml"], "unknown --format"),
])
def test_user_errors_exit_2_with_one_line(cli, args, message):
    result = cli(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
