"""Reading run documents back (schema checks naming the record and field) and what compare says about them.

compare refuses runs that did not finish and runs of different suites, marks NaN, infinite
and negative figures invalid, writes strict JSON, and takes kinds and directions from
archbench/metrics.py.
"""

import json
import math

import pytest

from archbench.errors import UserError
from archbench.metrics import METRICS, kind_of
from archbench.report.compare import compare_runs, metric_kind, to_json
from archbench.results.record import Record, RunDocument, RunWriter, load_run

POINT = {"batch": 1, "input": "1x28x28"}
ENV = {"cpu": "X", "threads": 2, "device": "cpu"}


def good_record(**changes):
    record = {"model": "mlp", "metric": "latency_s", "value": 0.01, "unit": "s", "point": dict(POINT), "error": None,
              "warnings": [], "details": {"samples": [0.01, 0.011]}, "case": "m"}
    record.update(changes)
    return record


def good_document(records=None, **changes):
    document = {"schema_version": 1, "env": dict(ENV), "meta": {"suite": "s", "complete": True},
                "records": [good_record(), good_record()] if records is None else records}
    document.update(changes)
    return document


def write(tmp_path, document, name="run.json"):
    path = tmp_path / name
    path.write_text(document if isinstance(document, str) else json.dumps(document))
    return path


@pytest.mark.parametrize("record, message", [
    (good_record(details={"samples": ["0.01", "0.02"]}), "record 2: field 'details.samples' must be an array of numbers"),
    (good_record(point="batch=1"), "record 2: field 'point' must be an object, got string"),
    (good_record(point={"batch": [1]}), "record 2: field 'point.batch' must be a string, number, boolean or null, "
                                        "got array"),
    (good_record(warnings=None), "record 2: field 'warnings' must be an array of strings, got null"),
    (good_record(model=5), "record 2: field 'model' must be a string, got number"),
    (good_record(value={"a": 1}), "record 2: field 'value' must be a number, string, boolean, array or null, got object"),
    (good_record(error=3), "record 2: field 'error' must be a string or null, got number"),
    (good_record(details=[]), "record 2: field 'details' must be an object, got array"),
    ({k: v for k, v in good_record().items() if k != "unit"}, "record 2: field 'unit' is missing"),
    ("a string", "record 2: must be an object, got string"),
])
def test_a_wrong_record_is_named_with_its_field(tmp_path, record, message):
    path = write(tmp_path, good_document([good_record(), record]))
    with pytest.raises(UserError) as caught:
        load_run(path)
    assert str(caught.value) == f"{path}: {message}"


@pytest.mark.parametrize("changes, message", [
    ({"env": "cpu"}, "field 'env' must be an object, got string"),
    ({"meta": ["suite"]}, "field 'meta' must be an object, got array"),
    ({"records": {"a": 1}}, "field 'records' must be an array, got object"),
    ({"meta": {"cases": [{"id": "s", "sweep": {"values": [1, 2]}}]}},
     "meta.cases 1 ('s'): 'sweep' must be an object with an 'axis' string"),
    ({"meta": {"sweep": {"values": [1]}}}, "field 'meta.sweep' must be an object with an 'axis' string"),
    ({"meta": {"shard_envs": ["x"]}}, "field 'meta.shard_envs' must be an array of objects, got array"),
    ({"meta": {"complete": "yes"}}, "field 'meta.complete' must be a boolean, got string"),
])
def test_a_wrong_header_is_named(tmp_path, changes, message):
    path = write(tmp_path, good_document(**changes))
    with pytest.raises(UserError) as caught:
        load_run(path)
    assert str(caught.value) == f"{path}: {message}"


def test_nesting_100000_deep_is_refused_cleanly(tmp_path):
    deep = write(tmp_path, '{"schema_version": 1, "records": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(UserError, match="nested too deep"):
        load_run(deep)
    fairly_deep = good_document([good_record(details={"x": json.loads("[" * 200 + "]" * 200)})])
    with pytest.raises(UserError, match="nested deeper than 64 levels"):
        load_run(write(tmp_path, fairly_deep, "fairly.json"))


def test_a_good_document_reads_back(tmp_path):
    document = load_run(write(tmp_path, good_document()))
    assert [r.value for r in document.records] == [0.01, 0.01] and document.meta["complete"] is True


def test_bad_documents_through_the_cli_are_one_line_and_exit_2(cli, tmp_path):
    good = write(tmp_path, good_document(), "good.json")
    bad = write(tmp_path, good_document([good_record(), good_record(point="p")]), "bad.json")
    for command in (("compare", str(good), str(bad)), ("report", str(bad)), ("merge", str(good), str(bad), "--out",
                                                                              str(tmp_path / "m.json"))):
        result = cli(*command)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == f"error: {bad}: record 2: field 'point' must be an object, got string"


# ---- compare: what it is given ----------------------------------------------------------------

def run_file(tmp_path, name, records, **meta):
    document = RunDocument(env=dict(ENV), records=records, meta={"suite": "s", **meta})
    path = tmp_path / name
    path.write_text(document.to_json())
    return str(path)


def params(value, case="m"):
    return Record("mlp", "params", value, "count", dict(POINT), case=case)


@pytest.mark.parametrize("meta, reason", [
    ({"complete": False}, "the run did not finish (meta.complete is false)"),
    ({"interrupted": True}, "the run was interrupted"),
])
def test_compare_refuses_an_unfinished_run_unless_allowed(cli, tmp_path, meta, reason):
    base = run_file(tmp_path, "base.json", [params(100), params(7, "n")], complete=True)
    partial = run_file(tmp_path, "partial.json", [params(100)], **meta)
    for args in ((base, partial), (partial, base)):
        result = cli("compare", *args)
        assert result.exit_code == 2
        assert result.stderr.strip() == (f"error: {partial}: {reason}; its missing figures would pass for changes "
                                         "(use --allow-incomplete to compare it anyway)")
    allowed = cli("compare", base, partial, "--allow-incomplete")
    assert allowed.exit_code == 1 and "1 missing" in allowed.stdout  # what it lacks is said, not hidden


def test_compare_refuses_a_journal_unless_allowed(cli, tmp_path):
    base = run_file(tmp_path, "base.json", [params(100)], complete=True)
    writer = RunWriter(RunDocument(env=dict(ENV), meta={"suite": "s"}), tmp_path / "cur.json")
    writer.add(params(100))
    journal = writer.abort()
    result = cli("compare", base, str(journal))
    assert result.exit_code == 2 and "it is the journal of a run that did not finish" in result.stderr
    assert cli("compare", base, str(journal), "--allow-incomplete").exit_code == 0


def test_compare_refuses_runs_of_different_suites(cli, tmp_path):
    base = run_file(tmp_path, "base.json", [params(100)])
    other = run_file(tmp_path, "other.json", [params(100, "x")], suite="t")
    result = cli("compare", base, other)
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {base} is a run of suite 's', {other} of 't': "
                                     "refusing to compare runs of different suites")


# ---- compare: values that cannot be measurements ---------------------------------------------

def latency(value, samples, case="m"):
    return Record("mlp", "latency_s", value, "s", dict(POINT), details={"samples": samples}, case=case)


@pytest.mark.parametrize("before, after, note", [
    (latency(0.01, [0.01] * 5), latency(math.inf, [0.01] * 5), "current value is inf: not a measurement"),
    (latency(math.nan, [0.01] * 5), latency(0.01, [0.01] * 5), "baseline value is nan: not a measurement"),
    (latency(0.01, [0.01] * 5), latency(-0.02, [0.01] * 5), "current value is negative (-0.02): not a measurement"),
    (latency(0.01, [0.01] * 5), latency(0.02, [0.02, math.nan]), "current a sample is nan: not a measurement"),
    (params(100), params(math.inf), "current value is inf: not a measurement"),
])
def test_nan_infinite_and_negative_figures_are_invalid_rows(before, after, note):
    comparison = compare_runs(RunDocument(env=ENV, records=[before]), RunDocument(env=ENV, records=[after]))
    [change] = comparison.changes
    assert (change.status, change.note) == ("invalid", note)
    assert comparison.failed


def test_compare_json_is_strict(cli, tmp_path):
    base = run_file(tmp_path, "base.json", [latency(0.01, [0.01] * 5)])
    cur = run_file(tmp_path, "cur.json", [latency(math.nan, [0.01] * 5)])
    result = cli("compare", base, cur, "--format", "json")
    assert result.exit_code == 1

    def refuse(constant):
        raise AssertionError(f"bare {constant} in the JSON")

    data = json.loads(result.stdout, parse_constant=refuse)
    assert data["changes"][0]["status"] == "invalid" and data["changes"][0]["current"] == "NaN"
    text = to_json(compare_runs(RunDocument(env=ENV, records=[params(1)]),
                                RunDocument(env=ENV, records=[params(-math.inf)])))
    assert json.loads(text, parse_constant=refuse)["changes"][0]["current"] == "-Infinity"


def test_a_timing_from_zero_says_so():
    from archbench.report.compare import change_rows

    before = Record("mlp", "compile_time_s", 0.0, "s", dict(POINT))
    after = Record("mlp", "compile_time_s", 2.0, "s", dict(POINT))
    [row] = change_rows(compare_runs(RunDocument(env=ENV, records=[before]), RunDocument(env=ENV, records=[after])))
    assert row["status"] == "not significant" and row["change"] == "from 0"


def test_kinds_and_directions_come_from_the_metric_table():
    for name, entry in METRICS.items():
        expected = "deterministic" if entry.kind in ("count", "analytic") else entry.kind
        assert metric_kind(name) == expected == ("deterministic" if entry.deterministic else kind_of(name))
    # throughput is better higher: 20% fewer items/s with clearly slower samples is a regression
    slow = [0.0125 + 0.0001 * i for i in range(10)]
    fast = [0.0100 + 0.0001 * i for i in range(10)]
    before = [latency(0.01, fast), Record("mlp", "throughput_items_s", 100.0, "items/s", dict(POINT), case="m")]
    after = [latency(0.0125, slow), Record("mlp", "throughput_items_s", 80.0, "items/s", dict(POINT), case="m")]
    statuses = {c.metric: c.status for c in compare_runs(RunDocument(env=ENV, records=before),
                                                          RunDocument(env=ENV, records=after)).changes}
    assert statuses == {"latency_s": "regressed", "throughput_items_s": "regressed"}
