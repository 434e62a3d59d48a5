"""Records, run documents, the incremental writer and the renderers."""

import json

import pytest

from archbench.errors import UserError
from archbench.report.render import format_value, tidy_frame, to_text, wide_frame
from archbench.results.record import Record, RunDocument, RunWriter, load_run


def sample_records():
    return [
        Record("lstm", "params", 2_101_248, "count", {"batch": 1, "seq": 512}),
        Record("lstm", "macs", 1_073_741_824, "MAC", {"batch": 1, "seq": 512}, warnings=["a warning"]),
        Record("gru", "macs", None, "MAC", {"batch": 1, "seq": 512}, error="out of memory"),
    ]


def test_record_round_trip_and_optional_fields():
    record = Record("m", "params", 3, "count", claim="C01", verdict="holds")
    data = record.to_dict()
    assert data["claim"] == "C01" and "case" not in data
    assert Record.from_dict(data) == record


def test_writer_journals_every_finished_record_and_writes_the_document_at_the_end(tmp_path):
    path = tmp_path / "run.json"
    writer = RunWriter(RunDocument(env={"cpu": "x"}), path)
    assert not path.exists()
    for record in sample_records():
        writer.add(record)
        on_disk = load_run(writer.journal_path)
        assert on_disk.records[-1] == record and on_disk.meta["complete"] is False
    writer.finish()
    assert len(load_run(path).records) == 3
    assert not writer.journal_path.exists()


def test_load_run_rejects_bad_documents(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_run(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not a JSON"):
        load_run(bad)
    bad.write_text(json.dumps({"schema_version": 99, "records": []}))
    with pytest.raises(UserError, match="schema_version 99"):
        load_run(bad)


def test_tidy_and_wide_views():
    tidy = tidy_frame(sample_records())
    assert list(tidy["metric"]) == ["params", "macs", "macs"]
    wide = wide_frame(sample_records())
    assert set(wide.columns) >= {"model", "batch", "seq", "params [count]", "macs [MAC]", "error"}
    gru = wide[wide["model"] == "gru"].iloc[0]
    assert gru["error"] == "macs: out of memory"


def test_text_exports_carry_warnings_and_errors():
    doc = RunDocument(records=sample_records())
    markdown = to_text(doc, "markdown")
    assert "warning: lstm: a warning" in markdown and "out of memory" in markdown
    assert "a warning" in to_text(doc, "csv")


def test_format_value():
    assert format_value(25_557_032) == "25,557,032"
    assert format_value(0.0123456) == "0.01235"
    assert format_value(None) == "-"
    assert format_value(True) == "true"


def test_csv_keeps_an_integer_beside_an_empty_cell():
    document = RunDocument(records=[Record("lenet5", "params", 61706, "count", {"batch": 1}),
                                    Record("lenet5", "macs", None, "MAC", {"batch": 1}, error="RuntimeError: broke")])
    lines = to_text(document, "csv").splitlines()
    assert lines[1].startswith("lenet5,1,params,61706,count,") and "61706.0" not in lines[1]
