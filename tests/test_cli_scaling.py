"""`archbench scaling`: bad input exits 2 with one line, outputs and plots, error rows, Ctrl-C keeps finished points."""

import json
import subprocess
import sys

import pytest

from conftest import stub_group

from archbench.results.record import Record, load_run


def linear_and_quadratic_latency(recipe, settings, earlier):
    """A stand-in timer: 'transformer' costs T² ns, 'lstm' 64·T ns, so they cross at T = 64."""
    t = recipe.seq
    seconds = t * t * 1e-9 if recipe.spec.startswith("transformer") else 64 * t * 1e-9
    return [Record(recipe.spec, "latency_s", seconds, "s", recipe.known_point())]


@pytest.fixture
def stub_latency(monkeypatch):
    stub_group(monkeypatch, "latency", linear_and_quadratic_latency)


def test_help_imports_neither_torch_nor_pandas():
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "archbench", "scaling", "--help"],
                            capture_output=True, text=True, check=True)
    assert "--seq" in result.stdout
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines()]
    assert not [m for m in imported if m.split(".")[0] in ("torch", "pandas")]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seq", "10..5"], "low end 10 is above high end 5"),
        (["--seq", "a..100"], "'a' is not an integer"),
        (["--seq", "0..100"], "must be positive"),
        (["--seq", "10..100:0"], "the step must be positive"),
        (["--seq", "512"], "at least 2 distinct values"),
        (["--seq", "8..64", "--points", "1"], "--points must be at least 2"),
        (["--seq", "8..64", "--metric", "flops,energy"], "unknown --metric"),
        (["--seq", "8..64", "--plot", "curve.pdf"], "use .png or .svg"),
        (["--seq", "8..64", "--out", "run.xlsx"], "unknown extension"),
        (["--seq", "8..64", "--format", "yaml"], "unknown --format"),
        (["--seq", "8..64", "--device", "tpu"], "unknown device"),
        (["--seq", "8..64", "--min-time", "0"], "must be positive"),
        (["--sweep", "batch", "--seq", "1..8"], "use --range"),
        (["--sweep", "batch"], "give the values to sweep"),
        (["--sweep", "batch", "--range", "1..8", "--batch", "2"], "cannot be combined"),
        (["--sweep", "depth", "--range", "1..8"], "unknown --sweep"),
        ([], "give the values to sweep"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, tmp_path, args, message):
    result = cli("scaling", "--model", "lstm", *args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "models, message",
    [(["resnet50"], "resolution or batch"), (["lstmm"], "did you mean lstm"), (["lstm", "lstm"], "given twice"),
     (["transformer:attention=fast"], "expected one of")],
)
def test_bad_models_exit_2_before_anything_is_written(cli, tmp_path, models, message):
    out = tmp_path / "run.json"
    args = [a for m in models for a in ("--model", m)]
    result = cli("scaling", *args, "--seq", "8..64", "--out", str(out))
    assert result.exit_code == 2 and message in result.stderr
    assert not out.exists()


def test_json_output_has_points_exponents_local_exponents_and_the_crossover(cli, stub_latency):
    result = cli("scaling", "-m", "transformer", "-m", "lstm", "--seq", "16..256", "--points", "5",
                 "--metric", "latency", "--format", "json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    records = document["records"]
    assert document["meta"]["sweep"]["values"] == [16, 32, 64, 128, 256]
    points = [(r["model"], r["point"]["seq"]) for r in records if r["metric"] == "latency_s"]
    assert points == [(m, t) for t in (16, 32, 64, 128, 256) for m in ("transformer", "lstm")]
    exponents = {r["model"]: r for r in records if r["metric"] == "latency_s_exponent"}
    assert exponents["transformer"]["value"] == pytest.approx(2.0) and exponents["lstm"]["value"] == pytest.approx(1.0)
    assert exponents["lstm"]["details"]["r2"] == pytest.approx(1.0)
    assert len([r for r in records if r["metric"] == "latency_s_local_exponent"]) == 8
    (cross,) = [r for r in records if r["metric"] == "latency_s_crossover"]
    assert cross["model"] == "transformer vs lstm" and cross["value"] == pytest.approx(64.0)


def test_table_output_out_file_and_plots(cli, stub_latency, tmp_path):
    out, png, svg = tmp_path / "run.json", tmp_path / "curves.png", tmp_path / "curves.svg"
    result = cli("scaling", "-m", "transformer", "-m", "lstm", "--seq", "16,64,256", "--metric", "latency",
                 "--out", str(out), "--plot", str(png))
    assert result.exit_code == 0, result.output
    for text in ("local k", "fitted log-log exponents", "latency_s", "64 tokens", "transformer below, lstm above"):
        assert text in result.stdout
    assert len(json.loads(out.read_text())["records"]) == 6 + 4 + 2 + 1  # points, local, exponents, crossover
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli("scaling", "-m", "lstm", "--seq", "16,64", "--metric", "latency", "--plot", str(svg)).exit_code == 0
    assert "<svg" in svg.read_text()[:2000]


def test_csv_out_is_tidy(cli, stub_latency, tmp_path):
    out = tmp_path / "run.csv"
    result = cli("scaling", "-m", "lstm", "--seq", "16,64", "--metric", "latency", "--out", str(out), "--format", "csv")
    assert result.exit_code == 0
    header = out.read_text().splitlines()[0].split(",")
    assert {"model", "seq", "metric", "value", "unit"} <= set(header)


def test_a_failing_point_is_a_row_and_the_sweep_goes_on(cli, monkeypatch):
    def memory(recipe, settings, earlier):
        if recipe.spec == "transformer" and recipe.seq >= 64:
            raise RuntimeError("DefaultCPUAllocator: not enough memory")
        return [Record(recipe.spec, "peak_memory_bytes", 1000 * recipe.seq, "bytes", recipe.known_point())]

    stub_group(monkeypatch, "memory", memory)
    result = cli("scaling", "-m", "transformer", "-m", "lstm", "--seq", "16,32,64,128", "--metric", "memory",
                 "--format", "json")
    assert result.exit_code == 0
    errors = {r["point"]["seq"]: r["error"] for r in json.loads(result.stdout)["records"]
              if r["model"] == "transformer" and r["metric"] == "peak_memory_bytes"}
    assert errors == {16: None, 32: None, 64: "RuntimeError: DefaultCPUAllocator: not enough memory",
                      128: "skipped: memory already failed at seq=64"}


def test_ctrl_c_exits_130_and_keeps_every_finished_point(cli, monkeypatch, tmp_path):
    def latency(recipe, settings, earlier):
        if recipe.seq == 64:
            raise KeyboardInterrupt
        return [Record(recipe.spec, "latency_s", 1e-3 * recipe.seq, "s", recipe.known_point())]

    stub_group(monkeypatch, "latency", latency)
    out = tmp_path / "run.json"
    result = cli("scaling", "-m", "lstm", "--seq", "16,32,64,128", "--metric", "latency", "--out", str(out))
    assert result.exit_code == 130
    journal = tmp_path / "run.json.partial.jsonl"
    assert f"finished records kept in {journal}; {out} is unchanged" in result.stderr
    assert not out.exists()  # --out is written only by a sweep that finishes
    document = load_run(journal)
    assert document.meta["interrupted"] is True and document.meta["complete"] is False
    assert [(r.metric, r.point["seq"]) for r in document.records] == [("latency_s", 16), ("latency_s", 32)]
    assert "fitted log-log exponents" in result.stdout  # the finished points are still fitted, on screen


def test_flops_sweep_with_the_real_counter(cli):
    result = cli("scaling", "-m", "transformer:layers=1", "-m", "gru", "--seq", "64..1024", "--points", "3",
                 "--metric", "flops", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    gru = {r["point"]["seq"]: r["value"] for r in records if r["model"] == "gru" and r["metric"] == "macs"}
    # a GRU layer: 3 gates, each an input and a recurrent matmul of 512×512, at each step
    assert gru == {t: 3 * t * (512 * 512 + 512 * 512) for t in (64, 256, 1024)}
    local = [r["value"] for r in records if r["model"] == "transformer:layers=1" and r["metric"] == "macs_local_exponent"]
    assert len(local) == 2 and 1.0 < local[0] < local[1] < 2.0


def test_report_renders_a_sweep_with_the_tables_scaling_prints(cli, stub_latency, tmp_path):
    out = tmp_path / "run.json"
    printed = cli("scaling", "-m", "transformer", "-m", "lstm", "--seq", "16,64,256", "--metric", "latency",
                  "--out", str(out))
    assert printed.exit_code == 0, printed.output
    report = cli("report", str(out))
    assert report.exit_code == 0, report.output
    for text in ("fitted log-log exponents", "crossovers", "64 tokens", "transformer below, lstm above"):
        assert text in printed.stdout and text in report.stdout
    # 16·T² ns against 64·T: k = 2 and 1, the same figures in both
    assert "| transformer | latency_s | 2 " in report.stdout and "| lstm | latency_s | 1 " in report.stdout
