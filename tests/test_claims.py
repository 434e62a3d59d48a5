"""The claims framework: expressions, check rules, the claims file, the runner, and `archbench claims`."""

import json
import textwrap

import pytest

from archbench.claims.checks import CAVEAT, HOLDS, NOT_MEASURED, REFUTED, run_check, verdict
from archbench.claims.expressions import evaluate
from archbench.claims.suite import load_claims, select
from archbench.errors import UserError


def test_expressions_evaluate_closed_forms_and_figures():
    figures = {"a.x": [1, 2, 3], "b.y": 4, "c.z": None}
    assert evaluate("4*(256*(100+256) + 2*256)", {}) == 4 * (256 * (100 + 256) + 2 * 256)
    assert list(evaluate("a.x ** 2 * b.y", figures)) == [4, 16, 36]
    assert evaluate("1 < b.y <= 4 and c.z is None", figures) is True
    assert evaluate("all(ratio(a.x)[1:] > 1)", figures) is True
    assert evaluate("max(a.x) == 3", figures)


@pytest.mark.parametrize("text", ["__import__('os')", "a.x.__class__()", "lambda: 1", "open('f')"])
def test_expressions_refuse_anything_else(text):
    with pytest.raises(UserError):
        evaluate(text, {"a.x": 1})


def test_near_check_within_and_outside_tolerance():
    figures = {"m.params": 25_557_032}
    assert run_check({"kind": "near", "says": "", "figure": "m.params", "stated": 25.5e6, "tol": 0.01}, figures).status == HOLDS
    assert run_check({"kind": "near", "says": "", "figure": "m.params", "stated": 23e6, "tol": 0.05}, figures).status == REFUTED
    caveat = {"kind": "near", "says": "", "figure": "m.params", "stated": 23e6, "tol": 0.05, "on_fail": "caveat", "note": "n"}
    assert run_check(caveat, figures).status == CAVEAT


def test_readings_check_names_the_reading_that_matches():
    check = {"kind": "readings", "says": "", "stated": 23e6, "tol": 0.05,
             "readings": {"full": "m.params", "without head": "m.params_head"}}
    result = run_check(check, {"m.params": 25_557_032, "m.params_head": 23_508_032})
    assert result.status == CAVEAT and "without head" in result.note
    assert run_check({**check, "stated": 25.5e6}, {"m.params": 25_557_032, "m.params_head": 23_508_032}).status == HOLDS
    assert run_check({**check, "stated": 10e6}, {"m.params": 25_557_032, "m.params_head": 23_508_032}).status == REFUTED


def test_ranking_check_lists_contradictions():
    check = {"kind": "ranking", "says": "", "levels": {"f.a": 1, "f.b": 2, "f.c": 3}}
    assert run_check(check, {"f.a": 1, "f.b": 2, "f.c": 3}).status == HOLDS
    result = run_check(check, {"f.a": 1, "f.b": 5, "f.c": 3})
    assert result.status == REFUTED and "b (5) ≥ c (3)" in result.figures


def test_missing_figure_and_when():
    assert run_check({"kind": "true", "says": "", "figure": "gone.x > 1"}, {}).status == NOT_MEASURED
    skipped = run_check({"kind": "true", "says": "", "figure": "x.y > 1", "when": "has_gpu"}, {"has_gpu": False})
    assert skipped.status == "skipped"
    assert verdict([skipped]) == HOLDS


def test_verdict_is_the_worst_outcome():
    def result(status):
        return run_check({"kind": "true", "says": "", "figure": "x.ok", "on_fail": "caveat" if status == CAVEAT else "refuted"},
                         {"x.ok": status == HOLDS})

    assert verdict([result(HOLDS), result(HOLDS)]) == HOLDS
    assert verdict([result(HOLDS), result(CAVEAT)]) == CAVEAT
    assert verdict([result(CAVEAT), result(REFUTED)]) == REFUTED


def test_the_claims_file_has_all_29_claims():
    claims = load_claims()
    assert [c.id for c in claims if c.source != "archbench"] == [f"C{i:02d}" for i in range(1, 30)]
    assert [c.id for c in claims if c.source == "archbench"] == ["A01", "A02", "A03", "A04", "A05"]  # archbench's own
    assert {c.table for c in claims if c.table} == {"cnn-fcn", "rnn-transformer"}
    assert [c.id for c in select(claims, "c13, C15")] == ["C13", "C15"]
    with pytest.raises(UserError, match="did you mean"):
        select(claims, "C1")


@pytest.mark.parametrize("body, message", [
    ("claims: [{id: C01, source: x, claim: y, measure: {m: {kind: nope}}, checks: [{kind: true, says: s, figure: m.x}]}]",
     "C01: measure.m.kind"),
    ("claims: [{id: C01, source: x, claim: y, measure: {m: {kind: peak}}, checks: [{kind: near, says: s, figure: m.x, stated: 1}]}]",
     "needs tol"),
    ("claims: [{id: C01, source: x, claim: y, measure: {m: {kind: peak}}, checks: [{kind: 'true', says: a, b, figure: m.x}]}]",
     "unknown key"),
    ("claims: [{id: C01, source: x, claim: y, measure: {m: {kind: peak}}}]", "missing key 'checks'"),
    ("claims: [{", "not valid YAML"),
])
def test_malformed_claims_file_names_the_claim_and_key(tmp_path, body, message):
    path = tmp_path / "claims.yaml"
    path.write_text(body)
    with pytest.raises(UserError, match=message):
        load_claims(path)


def test_failed_measurement_is_not_measured_with_its_error(tmp_path):
    from archbench.claims.measures import Context
    from archbench.claims.runner import ClaimRunner

    path = tmp_path / "claims.yaml"
    path.write_text(textwrap.dedent("""
        claims:
          - id: C01
            source: "000"
            claim: a claim on a model that does not build
            measure: {m: {kind: layer_count, model: no-such-model, types: [Linear]}}
            checks: [{kind: "true", says: it has layers, figure: m.counted > 0}]
    """))
    outcome = ClaimRunner(Context()).judge(load_claims(path)[0])
    assert outcome.verdict == NOT_MEASURED
    assert any("no-such-model" in (r.error or "") for r in outcome.records)


def test_cli_claims_json_records_carry_claim_and_verdict(cli, tmp_path):
    report = tmp_path / "claims.md"
    result = cli("claims", "--only", "C03,C04", "--format", "json", "--out", str(report))
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    verdicts = {r["claim"]: r["verdict"] for r in records if r["metric"] == "verdict"}
    assert set(verdicts) == {"C03", "C04"}
    assert all(r["claim"] in ("C03", "C04") and r["verdict"] for r in records)
    weights = next(r for r in records if r["claim"] == "C03" and r["metric"] == "weights")
    assert weights["value"] == 224 * 224 * 3 * 1000
    text = report.read_text()
    assert "| C03 |" in text and "| C04 |" in text and "| device | cpu |" in text


@pytest.mark.parametrize("args", [("--only", "C99"), ("--table", "nope"), ("--out", "x.docx"), ("--device", "tpu"),
                                  ("--min-time", "nan"), ("--min-time", "0"), ("--threads", "2000"),
                                  ("--threads", "0")])
def test_cli_claims_bad_input_exits_2_with_one_line(cli, args):
    result = cli("claims", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1


def test_explain_templates_fill_in_figures():
    from archbench.claims.runner import fill

    figures = {"m.params": 25_557_032, "m.lat": 0.1043, "s.xs": [1.0, 2.0]}
    assert fill("{m.params} params, {m.params|si}, {m.lat * 1000|.1f} ms, {s.xs|.2f}, {gone.x}", figures) == \
        "25,557,032 params, 25.56M, 104.3 ms, [1.00, 2.00], n/a"


def test_cli_cnn_fcn_table_on_its_own(cli):
    import io

    import pandas as pd

    result = cli("claims", "--table", "cnn-fcn", "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    conv = frame[(frame.model == "resnet50") & (frame.layer == "conv layers") & (frame.metric == "params")]
    # ResNet-50's conv weights: all parameters minus the fc layer and the batch-norm scales and shifts
    # (stem 64 channels; per bottleneck w + w + 4w; one downsample BN of 4w per stage)
    bn_channels = 64 + sum(blocks * 6 * w + 4 * w for blocks, w in ((3, 64), (4, 128), (6, 256), (3, 512)))
    assert int(conv.value.iloc[0]) == 25_557_032 - (2048 * 1000 + 1000) - 2 * bn_channels
    assert set(frame.claim) == {"C01"}
