"""compare on hand-made run documents: exact counts, timings with threshold and significance, machines, cases."""

import copy
import json

import pytest

from archbench.errors import UserError
from archbench.report.compare import compare_runs, metric_kind, parse_thresholds, summary_line, to_json, to_markdown
from archbench.results.record import Record, RunDocument

ENV = {"cpu": "Test CPU 3000", "gpu": None, "device": "cpu", "threads": 2, "torch": "2.14.1", "dtype": "float32"}
POINT = {"batch": 1, "input": "3x224x224"}
# 20 per-call times around 10 ms, spread ±0.5 ms: the baseline's samples
BASE_SAMPLES = [0.0100 + 0.0005 * ((i * 7) % 11 - 5) / 5 for i in range(20)]


def latency(case, samples, model="resnet50"):
    median = sorted(samples)[len(samples) // 2]
    return [
        Record(model, "latency_s", median, "s", POINT, details={"samples": samples}, case=case),
        Record(model, "throughput_items_s", 1 / median, "items/s", POINT, case=case),
    ]


def document(records, env=ENV):
    return RunDocument(env=dict(env), records=records, meta={"suite": "t"})


def baseline():
    return document([
        Record("resnet50", "params", 25_557_032, "count", POINT, case="resnet50"),
        Record("resnet50", "macs", 4_089_184_256, "MAC", POINT, case="resnet50"),
        Record("resnet50", "flops", 8_178_368_512, "FLOP", POINT, case="resnet50"),
        *latency("resnet50", BASE_SAMPLES),
        Record("lstm", "params", 2_101_248, "count", {"batch": 1, "seq": 512}, case="lstm"),
    ])


def current(mutate=None, env=ENV):
    doc = baseline()
    doc.env = dict(env)
    if mutate:
        mutate(doc.records)
    return doc


def statuses(comparison):
    return [(c.status, c.case, c.metric) for c in comparison.changes]


def test_identical_runs_have_no_changes():
    comparison = compare_runs(baseline(), baseline())
    assert comparison.changes == [] and not comparison.failed
    assert comparison.unchanged == 6
    assert summary_line(comparison) == "OK: nothing regressed · 6 unchanged"


def test_a_changed_param_count_fails_with_its_size():
    def add_params(records):
        records[0].value += 1_000

    comparison = compare_runs(baseline(), current(add_params))
    assert comparison.failed
    (change,) = comparison.changes
    assert (change.status, change.metric) == ("changed", "params")
    assert (change.baseline, change.current) == (25_557_032, 25_558_032)
    assert change.relative == pytest.approx(1_000 / 25_557_032)
    assert "+1,000 (+0.0039%)" in to_markdown(comparison)  # small changes keep two significant digits


def test_fewer_macs_are_a_change_too():
    def fewer(records):
        records[1].value -= 4_089_184_256 // 2

    comparison = compare_runs(baseline(), current(fewer))
    assert statuses(comparison) == [("changed", "resnet50", "macs")] and comparison.failed
    assert comparison.changes[0].relative == pytest.approx(-0.5)


def slower(factor, samples=None):
    def mutate(records):
        new = samples if samples is not None else [t * factor for t in BASE_SAMPLES]
        records[3:5] = latency("resnet50", new)

    return mutate


def test_significantly_slower_is_a_regression():
    comparison = compare_runs(baseline(), current(slower(1.25)))
    assert statuses(comparison)[:1] == [("regressed", "resnet50", "latency_s")]
    change = comparison.changes[0]
    assert change.relative == pytest.approx(0.25) and change.p_value < 1e-6
    # throughput falls by the same factor and is judged on the same (latency) samples
    assert ("regressed", "resnet50", "throughput_items_s") in statuses(comparison)
    assert comparison.failed


def test_slower_within_the_threshold_is_unchanged():
    comparison = compare_runs(baseline(), current(slower(1.05)))
    assert comparison.changes == [] and comparison.unchanged == 6
    comparison = compare_runs(baseline(), current(slower(1.05)), thresholds=parse_thresholds(["latency=2%"]))
    assert ("regressed", "resnet50", "latency_s") in statuses(comparison)


def test_a_slower_median_without_significance_is_not_a_regression():
    # bimodal calls, 10 ms or 13 ms: one more slow call moves the median by 30%, yet the samples overlap
    base = [0.010, 0.010, 0.010, 0.013, 0.013]
    noisy = [0.010, 0.010, 0.013, 0.013, 0.013]
    comparison = compare_runs(current(slower(1, base)), current(slower(1, noisy)))
    change = next(c for c in comparison.changes if c.metric == "latency_s")
    assert change.status == "not significant" and change.relative == pytest.approx(0.3)
    assert change.p_value >= 0.05
    assert not comparison.failed


def test_faster_and_significant_is_an_improvement():
    comparison = compare_runs(baseline(), current(slower(0.5)))
    assert ("improved", "resnet50", "latency_s") in statuses(comparison)
    assert not comparison.failed


def test_timings_from_another_machine_are_not_comparable():
    other = {**ENV, "cpu": "Other CPU 9000", "threads": 16}
    comparison = compare_runs(baseline(), current(slower(3.0), env=other))
    assert statuses(comparison) == [("not comparable", "resnet50", "latency_s"),
                                    ("not comparable", "resnet50", "throughput_items_s")]
    assert not comparison.failed
    assert not comparison.timings_comparable and comparison.not_comparable == 2
    assert comparison.machine_difference == ["cpu: Test CPU 3000 vs Other CPU 9000", "threads: 2 vs 16"]
    assert "timings not comparable" in summary_line(comparison)


def test_counts_are_still_compared_across_machines():
    def change(records):
        records[0].value = 1

    comparison = compare_runs(baseline(), current(change, env={**ENV, "cpu": "Other"}))
    assert statuses(comparison)[0] == ("changed", "resnet50", "params")
    assert {status for status, _, _ in statuses(comparison)[1:]} == {"not comparable"}


def test_merged_shards_from_two_machines_make_timings_not_comparable():
    merged = current()
    merged.meta["shard_envs"] = [ENV, {**ENV, "cpu": "Other"}]
    assert not compare_runs(baseline(), merged).timings_comparable


def test_new_missing_failing_and_fixed_cases():
    base = baseline()
    base.records.append(Record("gru", "params", None, "count", {"batch": 1, "seq": 512}, error="boom", case="gru"))

    def mutate(records):
        records[:] = [r for r in records if r.case != "lstm"]  # missing
        records.append(Record("vit", "params", 86_567_656, "count", POINT, case="vit"))  # new
        records.append(Record("gru", "params", 1_575_936, "count", {"batch": 1, "seq": 512}, case="gru"))  # fixed
        records[1] = Record("resnet50", "macs", None, "MAC", POINT, error="RuntimeError: no kernel", case="resnet50")

    comparison = compare_runs(base, current(mutate))
    assert statuses(comparison) == [
        ("newly failing", "resnet50", "macs"),
        ("missing", "lstm", "params"),
        ("fixed", "gru", "params"),
        ("new", "vit", "params"),
    ]
    assert comparison.changes[0].note == "RuntimeError: no kernel"
    assert comparison.failed


def test_figures_of_a_failed_metric_are_not_listed_as_missing_again():
    def fail_flops(records):
        records[1] = Record("resnet50", "macs", None, "MAC", POINT, error="boom", case="resnet50")
        del records[2]  # the flops figure is gone with it

    comparison = compare_runs(baseline(), current(fail_flops))
    assert statuses(comparison) == [("newly failing", "resnet50", "macs")]


def test_deterministic_only_skips_timings():
    comparison = compare_runs(baseline(), current(slower(3.0)), deterministic_only=True)
    assert comparison.changes == [] and comparison.skipped == 2 and comparison.unchanged == 4


def test_memory_beyond_its_threshold_regresses():
    base = document([Record("t", "peak_memory_bytes", 1_000_000, "bytes", POINT, case="t"),
                     Record("t", "score_matrix_bytes", 4_096, "bytes", POINT, case="t")])
    more = copy.deepcopy(base)
    more.records[0].value = 1_200_000
    assert statuses(compare_runs(base, more)) == [("regressed", "t", "peak_memory_bytes")]
    more.records[0].value = 1_050_000
    assert compare_runs(base, more).changes == []
    more.records[1].value = 4_097  # analytic bytes: exact
    assert statuses(compare_runs(base, more)) == [("changed", "t", "score_matrix_bytes")]


def test_metric_kinds():
    assert [metric_kind(m) for m in ("params", "macs", "flops", "other_flops", "buffers", "weights_bytes")] == \
        ["deterministic"] * 6
    assert [metric_kind(m) for m in ("latency_s", "throughput_items_s", "achieved_flops_s", "latency_s_exponent")] == \
        ["timing"] * 4
    assert metric_kind("peak_memory_bytes") == "memory"


@pytest.mark.parametrize("bad", ["latency", "latency=", "latency=fast", "=10%", "latency=-5%"])
def test_malformed_thresholds(bad):
    with pytest.raises(UserError, match="malformed --threshold"):
        parse_thresholds([bad])


def test_thresholds_only_for_noisy_figures():
    with pytest.raises(UserError, match="'params' would be compared exactly"):
        parse_thresholds(["params=1%"])
    with pytest.raises(UserError, match="would be compared exactly"):
        parse_thresholds(["lantency=10%"])  # a typo is not silently ignored


def test_thresholds_in_percent_or_fraction():
    assert parse_thresholds(["latency=5%", "peak_memory_bytes=0.2"]) == {
        "latency": 0.05, "memory": 0.10, "peak_memory_bytes": 0.2}


def test_markdown_is_a_summary_line_then_a_table_worst_first():
    def mutate(records):
        records[0].value += 10  # changed
        slower(1.5)(records)  # regressed
        records.append(Record("vit", "params", 1, "count", POINT, case="vit"))  # new

    text = to_markdown(compare_runs(baseline(), current(mutate)))
    lines = text.splitlines()
    assert lines[0].startswith("**archbench compare**: FAIL: 2 regressed, 1 changed · 1 new · 3 unchanged")
    assert lines[1] == ""
    header, _, *body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert header == ["status", "case", "metric", "point", "baseline", "current", "change", "note"]
    rows = body
    assert [row[0] for row in rows] == ["regressed", "regressed", "changed", "new"]
    assert rows[0][2] == "latency_s" and rows[0][6].endswith("(+50.00%)")


def test_json_report_carries_the_changes():
    data = json.loads(to_json(compare_runs(baseline(), current(slower(2.0)))))
    assert data["failed"] is True
    assert data["counts"] == {"regressed": 2}
    assert data["changes"][0]["metric"] == "latency_s" and data["changes"][0]["relative"] == pytest.approx(1.0)


def test_a_whole_missing_case_is_one_row():
    def drop_resnet(records):
        records[:] = [r for r in records if r.case != "resnet50"]

    comparison = compare_runs(baseline(), current(drop_resnet))
    assert statuses(comparison) == [("missing", "resnet50", "whole case (5 figures)")]
    assert comparison.changes[0].baseline == 5 and comparison.failed
    comparison = compare_runs(current(drop_resnet), baseline())
    assert statuses(comparison) == [("new", "resnet50", "whole case (5 figures)")] and not comparison.failed


def test_derived_floats_compare_up_to_round_off():
    base = document([Record("t", "macs_exponent", 1.1180339887, "", {"batch": 1}, case="sweep")])
    same = copy.deepcopy(base)
    same.records[0].value *= 1 + 1e-12  # another BLAS, last bits
    assert compare_runs(base, same).changes == []
    same.records[0].value = 1.1181
    assert statuses(compare_runs(base, same)) == [("changed", "sweep", "macs_exponent")]


def test_a_case_whose_model_changed_compares_its_figures():
    def deeper(records):
        for r in records:
            if r.case == "lstm":
                r.model, r.value = "lstm:layers=2", 2_101_248 + 2_101_248  # a second layer with input = hidden

    comparison = compare_runs(baseline(), current(deeper))
    assert statuses(comparison) == [("changed", "lstm", "params")]
    assert comparison.changes[0].note == "model lstm -> lstm:layers=2"
