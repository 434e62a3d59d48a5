"""The claims report as a reader sees it: plain-words findings, one row per claim, a section per claim."""

import textwrap
from dataclasses import replace

import numpy as np
import pytest

from archbench.claims.checks import CAVEAT, HOLDS, REFUTED, run_check, verdict
from archbench.claims.expressions import names
from archbench.claims.report import claim_section, finding, summary_rows
from archbench.claims.runner import ClaimOutcome, placeholders
from archbench.claims.suite import DEFAULT_PATH, RUN_FIGURES, load_claims
from archbench.errors import UserError
from archbench.results.record import Record

RULE_SYNTAX = ("min(", "max(", "sum(", "all(", "log10(", "ratio(", ">=", "<=", "==", "!=", " is None", "**", "[:")
"""What the rule language looks like; none of it belongs in a row of the verdict table."""

_CLAIM = textwrap.dedent("""
    claims:
      - id: C05
        source: "000, 001"
        claim: ResNet-50 has 23M parameters (000) / 25.5M (001).
        title: ResNet-50 size
        finding: "ResNet-50 has {models.resnet50.params} params with its fc head; {models.resnet50.params_head} without"
        measure:
          models: {kind: profile, metrics: [params], models: {resnet50: {model: resnet50, without: {head: [fc]}}}}
        checks:
          - {kind: near, says: ResNet-50 has 25.5M parameters, figure: models.resnet50.params, stated: 25.5e6, tol: 0.05}
          - kind: "true"
            says: ResNet-50 has 23M parameters
            figure: "models.resnet50.params <= 23.5e6"
            on_fail: caveat
            note: 23M is the backbone without its fc head
""")


def _outcome(tmp_path, params: int, params_head: int) -> ClaimOutcome:
    """The claim above judged on made-up figures (no model is built)."""
    path = tmp_path / "claims.yaml"
    path.write_text(_CLAIM)
    claim = load_claims(path)[0]
    figures = {"models.resnet50.params": params, "models.resnet50.params_head": params_head}
    results = [run_check(check, figures) for check in claim.checks]
    point = {"batch": 1, "input": "3x224x224"}
    records = [Record("resnet50", key.rsplit(".", 1)[1], value, "count", point,
                      details={"figure": key.split(".", 1)[1], "measurement": "models"})
               for key, value in figures.items()]
    return ClaimOutcome(claim, verdict(results), "", results, records, [], figures)


def test_finding_says_what_was_found_then_whether_it_supports_the_claim(tmp_path):
    outcome = _outcome(tmp_path, 25_557_032, 23_508_032)
    assert outcome.verdict == CAVEAT  # 25.5M holds; 23M only as the backbone: a caveat
    assert finding(outcome) == ("ResNet-50 has 25,557,032 params with its fc head; 23,508,032 without"
                                " — this supports the claim with a caveat.")
    refuted = _outcome(tmp_path, 30_000_000, 28_000_000)  # 30M is not within 5% of 25.5M
    assert refuted.verdict == REFUTED
    assert finding(refuted).endswith("30,000,000 params with its fc head; 28,000,000 without — this contradicts the claim.")
    assert finding(replace(outcome, verdict=HOLDS)).endswith("23,508,032 without — this supports the claim.")
    assert summary_rows([outcome])[0] == {"id": "C05", "claim": "ResNet-50 size", "verdict": CAVEAT,
                                          "finding": finding(outcome)}


def test_section_gives_claim_verdict_figures_caveat_then_rule(tmp_path):
    text = claim_section(_outcome(tmp_path, 25_557_032, 23_508_032))
    lines = text.splitlines()
    assert lines[0] == "## C05: ResNet-50 size"
    assert "> ResNet-50 has 23M parameters (000) / 25.5M (001). (source: 000, 001)" in lines
    assert "| models.resnet50.params | 25,557,032 | count | resnet50, batch=1, input=3x224x224 |" in lines
    assert "| models.resnet50.params_head | 23,508,032 | count | resnet50, batch=1, input=3x224x224 |" in lines
    order = [text.index(part) for part in ("**⚠️ holds with caveat.**", "| figure | value | unit |", "**Caveat:**",
                                           "23M is the backbone without its fc head", "**Rule**")]
    assert order == sorted(order)
    rule = text[text.index("**Rule**"):]
    assert "`models.resnet50.params <= 23.5e6 [models.resnet50.params=25,557,032]`" in rule
    assert "✓ holds: ResNet-50 has 25.5M parameters" in rule


def test_every_claim_has_a_title_and_a_finding_on_its_own_figures():
    import yaml

    entries = yaml.safe_load(DEFAULT_PATH.read_text())["claims"]
    assert len([e for e in entries if e["source"] != "archbench"]) == 29
    for entry in entries:
        assert entry.get("title") and len(entry["title"]) <= 22, entry["id"]
        assert placeholders(entry["finding"]), entry["id"]
        for expression in placeholders(entry["finding"]):
            for name in names(expression):
                assert name in RUN_FIGURES or name.split(".")[0] in entry["measure"], (entry["id"], name)


def test_a_finding_naming_a_figure_of_no_measurement_is_refused(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(_CLAIM.replace("{models.resnet50.params_head}", "{modles.resnet50.params_head}"))
    with pytest.raises(UserError, match="'modles.resnet50.params_head' is not a figure"):
        load_claims(path)


def test_no_row_shows_the_rule_language():
    """Every shipped claim rendered on made-up figures (each a 5-point series): words and numbers only."""
    for claim in load_claims():
        figures = {name: np.arange(1.0, 6.0) for e in placeholders(claim.finding) for name in names(e)}
        figures.update(device="cpu", has_gpu=False)
        results = [run_check(check, figures) for check in claim.checks]
        for row_verdict in (HOLDS, CAVEAT, REFUTED):
            row = summary_rows([ClaimOutcome(claim, row_verdict, "", results, [], [], figures)])[0]
            text = " ".join(row.values())
            assert not [s for s in RULE_SYNTAX if s in text], (claim.id, text)
            assert not [n for n in figures if "." in n and n in text], (claim.id, text)


def test_terminal_table_fits_100_columns_with_the_verdict_on_one_line(cli, tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(textwrap.dedent("""
        claims:
          - id: C03
            source: "000"
            claim: A fully connected layer of 1000 neurons on a 224×224×3 image has about 150M weights.
            title: FC layer on 224×224×3
            finding: "nn.Linear(150528, 1000) has {fc.weights} weights, a long sentence that has to wrap in its column"
            measure: {fc: {kind: layer, layer: Linear, args: {in_features: 150528, out_features: 1000}}}
            checks:
              - {kind: near, says: about 140M weights, figure: fc.weights, stated: 140e6, tol: 0.01, on_fail: caveat}
    """))
    result = cli("claims", "--suite", str(path))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 100
    row = next(line for line in lines if "C03" in line)
    assert "holds with caveat" in row and "FC layer on 224×224×3" in row
    assert "150,528,000" in result.stdout and "140e6" not in result.stdout
