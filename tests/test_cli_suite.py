"""`archbench run`, `merge`, `compare` and `report` end to end: files written, exit codes, one-line errors."""

import json
import textwrap

import pytest

from archbench.results.record import Record, RunDocument, load_run

SUITE = """
    name: clitest
    defaults: {device: cpu}
    cases:
      - {id: a, model: 'mlp:hidden=8', metrics: [params]}
      - {id: b, model: 'mlp:hidden=16', metrics: [params]}
      - {id: c, model: 'lstm:input=4,hidden=8', seq: 5, metrics: [params]}
"""


@pytest.fixture
def suite_file(tmp_path):
    path = tmp_path / "clitest.yaml"
    path.write_text(textwrap.dedent(SUITE).lstrip())
    return path


def one_line_error(result, *fragments):
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_run_writes_the_document_and_prints_the_table(cli, suite_file, tmp_path):
    out = tmp_path / "run.json"
    result = cli("run", str(suite_file), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 12 records, 0 failed" in result.stderr
    document = load_run(out)
    assert document.meta["suite"] == "clitest" and document.meta["complete"] is True
    assert [c["id"] for c in document.meta["cases"]] == ["a", "b", "c"]
    params = {r.case: r.value for r in document.records if r.metric == "params"}
    # mlp: (784 + 1)·h + (h + 1)·10; LSTM: 4·(i·h + h·h + 2·h) with i = 4, h = 8
    assert params == {"a": 785 * 8 + 9 * 10, "b": 785 * 16 + 17 * 10, "c": 4 * (4 * 8 + 8 * 8 + 2 * 8)}
    assert "clitest" in result.stdout


def test_shards_merge_into_the_whole_run(cli, suite_file, tmp_path):
    paths = []
    for i in (1, 2):
        path = tmp_path / f"shard{i}.json"
        assert cli("run", str(suite_file), "--shard", f"{i}/2", "--out", str(path), "--format", "json").exit_code == 0
        paths.append(str(path))
    assert {r.case for r in load_run(paths[0]).records} == {"a", "c"}
    assert cli("run", str(suite_file), "--out", str(tmp_path / "whole.json")).exit_code == 0
    merged = tmp_path / "merged.json"
    result = cli("merge", *paths, "--out", str(merged))
    assert result.exit_code == 0, result.output
    whole, joined = load_run(tmp_path / "whole.json"), load_run(merged)
    assert [r.to_dict() for r in joined.records] == [r.to_dict() for r in whole.records]
    assert joined.meta["complete"] is True and joined.meta["merged_from"] == paths
    # and a merged run compares clean against the whole one
    assert cli("compare", str(tmp_path / "whole.json"), str(merged)).exit_code == 0


def test_merge_refuses_different_suites(cli, suite_file, tmp_path):
    other = tmp_path / "other.yaml"
    other.write_text(suite_file.read_text().replace("name: clitest", "name: other"))
    cli("run", str(suite_file), "--shard", "1/2", "--out", str(tmp_path / "a.json"))
    cli("run", str(other), "--shard", "2/2", "--out", str(tmp_path / "b.json"))
    result = cli("merge", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "m.json"))
    one_line_error(result, "suite 'other'", "refusing to merge")


def test_run_refuses_a_bad_suite_before_running(cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("cases:\n  - model: lenet5\n    metrics: [params]\n  - model: resnet5O\n    metrics: [params]\n")
    out = tmp_path / "never.json"
    one_line_error(cli("run", str(bad), "--out", str(out)), f"{bad}:4: cases[1].model: unknown model 'resnet5O'")
    assert not out.exists()


@pytest.mark.parametrize("args, fragment", [
    (["--shard", "3/2"], "malformed --shard"),
    (["--out", "run.csv"], "give a .json file"),
    (["--format", "xml"], "unknown --format"),
])
def test_run_bad_options(cli, suite_file, args, fragment):
    one_line_error(cli("run", str(suite_file), *args), fragment)


def save(path, records, env=None, **meta):
    document = RunDocument(env=env or {"cpu": "X", "threads": 2, "device": "cpu"}, records=records, meta=meta)
    path.write_text(document.to_json())
    return str(path)


def params(value, case="m"):
    return Record("mlp", "params", value, "count", {"batch": 1, "input": "1x28x28"}, case=case)


def test_compare_exit_codes_and_markdown(cli, tmp_path):
    base = save(tmp_path / "base.json", [params(100)])
    same = save(tmp_path / "same.json", [params(100)])
    more = save(tmp_path / "more.json", [params(150)])
    assert cli("compare", base, same).exit_code == 0
    result = cli("compare", base, more, "--format", "markdown")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "**archbench compare**: FAIL: 1 changed · 0 unchanged"
    assert lines[4].replace(" ", "") == "|changed|m|params|batch=1,input=1x28x28|100|150|+50(+50.00%)||"
    data = json.loads(cli("compare", base, more, "--format", "json").stdout)
    assert data["failed"] is True and data["changes"][0]["current"] == 150
    report = tmp_path / "comment.md"
    assert cli("compare", base, more, "--out", str(report)).exit_code == 1
    assert report.read_text().startswith("**archbench compare**: FAIL")


def test_compare_bad_input_exits_2(cli, tmp_path):
    base = save(tmp_path / "base.json", [params(100)])
    (tmp_path / "junk.json").write_text("{not json")
    (tmp_path / "v9.json").write_text(json.dumps({"schema_version": 9, "records": []}))
    one_line_error(cli("compare", base, str(tmp_path / "missing.json")), "no such file")
    one_line_error(cli("compare", base, str(tmp_path / "junk.json")), "not a JSON run document")
    one_line_error(cli("compare", base, str(tmp_path / "v9.json")), "schema_version 9 is not supported")
    one_line_error(cli("compare", base, base, "--threshold", "latency=fast"), "malformed --threshold")
    one_line_error(cli("compare", base, base, "--format", "html"), "unknown --format")


def sweep_document():
    """A hand-made seq sweep of one case: MACs of one attention-score term, T²·d with d = 64."""
    records = [Record("transformer", "macs", t * t * 64, "MAC", {"batch": 1, "seq": t}, case="sweep")
               for t in (128, 256, 512, 1024)]
    records.append(Record("lenet5", "params", 61_706, "count", {"batch": 1, "input": "1x32x32"}, case="p"))
    records.append(Record("lenet5", "macs", None, "MAC", {"batch": 1, "input": "1x32x32"}, error="boom", case="p"))
    meta = {"suite": "s", "cases": [{"id": "sweep", "sweep": {"axis": "seq", "values": [128, 256, 512, 1024]}},
                                    {"id": "p"}], "complete": True}
    return records, meta


def test_report_markdown_with_plots(cli, tmp_path):
    records, meta = sweep_document()
    run = save(tmp_path / "run.json", records, **meta)
    out = tmp_path / "report" / "run.md"
    result = cli("report", run, "--out", str(out))
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.startswith("# archbench run of suite s\n")
    assert "6 records, 1 failed." in text
    assert "- p · macs: boom" in text
    assert "![sweep](run_plots/sweep.png)" in text
    assert (tmp_path / "report" / "run_plots" / "sweep.png").read_bytes()[:4] == b"\x89PNG"
    assert "61,706" in text


def test_report_html_is_self_contained(cli, tmp_path):
    records, meta = sweep_document()
    run = save(tmp_path / "run.json", records, **meta)
    result = cli("report", run, "--format", "html")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert result.stdout.count("<svg") == 1 and "<?xml" not in result.stdout
    one_line_error(cli("report", run, "--format", "pdf"), "unknown report --format")
