"""The claims report: a verdict table that reads like a paper's, then a section per claim.

The table has one row per claim: its id, its title, the verdict and the finding in plain words
(the claim's ``finding`` filled in from the run, then whether that supports or contradicts the
claim). Each claim's section gives the claim's text, the verdict, the measured figures (figure,
value, unit, model and point), the caveat, and last the rule: each check's expression with its
inputs. The JSON and CSV come from the run document and are not shaped here.
"""

from __future__ import annotations

from pathlib import Path

from archbench.claims.checks import CAVEAT, HOLDS, INCONCLUSIVE, NOT_MEASURED, REFUTED
from archbench.claims.runner import ClaimOutcome
from archbench.results.record import Record, RunDocument

_ENV_SHOWN = ("device", "cpu", "cpu_count", "threads", "gpu", "torch", "torchvision", "transformers", "fvcore",
              "python", "platform", "archbench", "git_commit")
_MARK = {HOLDS: "✅ holds", CAVEAT: "⚠️ holds with caveat", REFUTED: "❌ refuted", INCONCLUSIVE: "❔ inconclusive",
         NOT_MEASURED: "⛔ not measured"}
_CHECK_MARK = {HOLDS: "✓", CAVEAT: "⚠", REFUTED: "✗", INCONCLUSIVE: "?", NOT_MEASURED: "⛔"}
_CONCLUSION = {HOLDS: "this supports the claim", CAVEAT: "this supports the claim with a caveat",
               REFUTED: "this contradicts the claim",
               INCONCLUSIVE: "the timings are too noisy to decide (see the intervals below)"}
_COLUMNS = ("id", "claim", "verdict", "finding")


def finding(outcome: ClaimOutcome) -> str:
    """What was measured, in plain words, then whether that supports or contradicts the claim."""
    from archbench.claims.runner import fill

    found = fill(outcome.claim.finding, outcome.figures)
    if outcome.verdict == NOT_MEASURED:
        missing = [r.figures for r in outcome.checks if r.status == NOT_MEASURED]
        return f"{found} — not measured ({'; '.join(missing)}), so no verdict."
    return f"{found} — {_CONCLUSION[outcome.verdict]}."


def summary_rows(outcomes: list[ClaimOutcome]) -> list[dict[str, str]]:
    """One row per claim: id, claim (its title), verdict, finding."""
    return [{"id": o.claim.id, "claim": o.claim.title, "verdict": o.verdict, "finding": finding(o)} for o in outcomes]


OWN_SOURCE = "archbench"
"""The ``source`` of archbench's own claims: measured and judged like the others, but not from the documents."""


def split_own(outcomes: list[ClaimOutcome]) -> tuple[list[ClaimOutcome], list[ClaimOutcome]]:
    """(the documents' claims, archbench's own claims)."""
    return ([o for o in outcomes if o.claim.source != OWN_SOURCE], [o for o in outcomes if o.claim.source == OWN_SOURCE])


def _counts(outcomes: list[ClaimOutcome]) -> str:
    counts = {v: sum(o.verdict == v for o in outcomes) for v in _MARK}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n)


def _summary_table(outcomes: list[ClaimOutcome]) -> list[str]:
    return ["| " + " | ".join(_COLUMNS) + " |", "|---|---|---|---|",
            *("| " + " | ".join(_cell(_MARK[row[c]] if c == "verdict" else row[c]) for c in _COLUMNS) + " |"
              for row in summary_rows(outcomes))]


def markdown(document: RunDocument, outcomes: list[ClaimOutcome], plots: dict[str, str] | None = None) -> str:
    """The whole report as Markdown; ``plots`` maps a claim id to a plot path relative to the report."""
    documents, own = split_own(outcomes)
    parts = [
        "# archbench claims report",
        "",
        f"{len(documents)} claims of `shared/claims.md` measured in this run: {_counts(documents)}. "
        "Every verdict is computed from figures measured in this run by the rule in `archbench/claims/claims.yaml`; "
        "each claim's section below gives the figures and, last, the rule with its inputs.",
        "",
        *_summary_table(documents),
        *inconclusive_note(outcomes),
    ]
    if own:
        parts += ["", "## archbench's own claims (not from the documents)", "",
                  f"{len(own)} claims archbench makes about today's models, measured and judged the same way: "
                  f"{_counts(own)}.", "", *_summary_table(own)]
    parts += [
        "",
        "## Measured on",
        "",
        f"Command: `{document.meta.get('command', 'archbench claims')}`; run time {document.meta.get('elapsed_s', 0):.0f} s.",
        "",
        "| measured on | |",
        "|---|---|",
        *(f"| {key} | {document.env[key]} |" for key in _ENV_SHOWN if document.env.get(key) is not None),
        *([] if document.env.get("gpu") else ["| gpu | none: no CUDA device, so GPU figures are not measured |"]),
    ]
    for outcome in documents + own:
        if outcome is (own[0] if own else None):
            parts += ["", "# archbench's own claims (not from the documents)"]
        parts += ["", claim_section(outcome, (plots or {}).get(outcome.claim.id))]
    return "\n".join(parts).rstrip() + "\n"


def claim_section(outcome: ClaimOutcome, plot: str | None = None) -> str:
    """One claim's section: its text, verdict and finding, the figures, the caveat, then the rule."""
    claim = outcome.claim
    parts = [
        f"## {claim.id}: {claim.title}",
        "",
        f"> {claim.claim} (source: {claim.source})",
        "",
        f"**{_MARK[outcome.verdict]}.** {finding(outcome)}",
        "",
        f"Measured: {outcome.measured}",
        "",
        "| figure | value | unit | model / point |",
        "|---|---|---|---|",
        *("| " + " | ".join(_cell(c) for c in row) + " |" for row in figure_rows(outcome)),
    ]
    if claim.table:
        parts += ["", f"Table `{claim.table}` (`archbench claims --table {claim.table}`):", "", table_markdown(outcome)]
        if plot:
            parts += ["", f"![{claim.table}]({plot})"]
    reasons = caveats(outcome)
    if reasons:
        parts += ["", f"**{'Caveat' if outcome.verdict == CAVEAT else 'Why ' + outcome.verdict}:**", "",
                  *(f"- {reason}" for reason in reasons)]
    parts += ["", "**Rule** (every check must hold; a failed caveat check gives *holds with caveat*):", ""]
    for result in outcome.checks:
        mark = _CHECK_MARK.get(result.status, "–")
        parts.append(f"- {mark} {result.status}: {result.says} — `{result.figures}`")
    return "\n".join(parts)


def inconclusive_note(outcomes: list[ClaimOutcome]) -> list[str]:
    """A paragraph counting the checks timing noise left open, and what to do about it (none when there are none)."""
    open_ = sum(r.status == INCONCLUSIVE for o in outcomes for r in o.checks)
    if not open_:
        return []
    return ["", f"{open_} check{'s' if open_ > 1 else ''} inconclusive: the timings were too noisy to decide "
            "within their 95% bootstrap intervals. Rerun on a quieter machine, or with a larger `--min-time`."]


def caveats(outcome: ClaimOutcome) -> list[str]:
    """Why each check that did not simply hold decided as it did, in the words of its note."""
    reasons = []
    for check, result in zip(outcome.claim.checks, outcome.checks):
        if result.status == NOT_MEASURED:
            reasons.append(f"{_CHECK_MARK[result.status]} “{result.says}”: {result.figures}.")
        elif result.status == INCONCLUSIVE:
            reasons.append(f"{_CHECK_MARK[result.status]} “{result.says}”: {result.note}.")
        elif result.status in (CAVEAT, REFUTED):
            why = result.note or (result.figures if check["kind"] in ("ranking", "readings") else "see the rule below")
            reasons.append(f"{_CHECK_MARK[result.status]} “{result.says}”: {'' if result.passed else 'not so in this run; '}"
                           f"{why.rstrip('.')}.")
    reasons += [f"error: {error}" for error in outcome.errors]
    return reasons


def figure_names(outcome: ClaimOutcome) -> list[str]:
    """Every figure the finding, the measured line and the checks read, in order, each once."""
    from archbench.claims.expressions import names
    from archbench.claims.runner import placeholders

    expressions = placeholders(outcome.claim.finding) + placeholders(outcome.claim.explain)
    for check in outcome.claim.checks:
        expressions += [check[key] for key in ("figure", "stated", "when") if key in check]
        expressions += list(check.get("readings", {}).values()) + list(check.get("levels", {}))
    return list(dict.fromkeys(name for expression in expressions for name in names(expression)))


def figure_rows(outcome: ClaimOutcome) -> list[tuple[str, str, str, str]]:
    """(figure, value, unit, model / point) for each of :func:`figure_names`; a missing one says so."""
    from archbench.claims.checks import plain

    rows = []
    for name in figure_names(outcome):
        records = _records_of(name, outcome)
        if name in outcome.figures and not isinstance(outcome.figures[name], list):  # one point of a series
            records = [r for r in records if r.value == outcome.figures[name]] or records
        value = plain(outcome.figures[name]) if name in outcome.figures else "not measured"
        where = _where(records) or _model_of(name, outcome) or ("this run" if "." not in name else "")
        rows.append((name, value, records[0].unit if records else "", where))
    return rows


def _records_of(name: str, outcome: ClaimOutcome) -> list[Record]:
    """The records that carry figure ``name``: by its figure key, else by metric and model alias."""
    measurement, _, key = name.partition(".")
    own = [r for r in outcome.records if r.details.get("measurement") == measurement and r.error is None]
    exact = [r for r in own if r.details.get("figure") == key]
    if exact:
        return exact
    parts = key.split(".")
    model = _model_of(name, outcome)
    return [r for r in own if r.metric in parts and (model is None or r.model == model)]


def _model_of(name: str, outcome: ClaimOutcome) -> str | None:
    """The model spec of the alias a figure name mentions (``sweep.macs.lstm`` -> the lstm spec), if any."""
    measurement, _, key = name.partition(".")
    models = outcome.claim.measure.get(measurement, {}).get("models", {})
    for part in key.split("."):
        if part in models:
            spec = models[part]
            return spec if isinstance(spec, str) else spec["model"]
    return None


def _where(records: list[Record]) -> str:
    """The model(s) and input point(s) of records: ``resnet50, batch=1, input=3x224x224``; a range for a sweep."""
    from archbench.report.render import format_value

    if not records:
        return ""
    models = list(dict.fromkeys(r.model for r in records))
    point: dict[str, list] = {}
    for record in records:
        for axis, value in record.point.items():
            if isinstance(value, list):
                point.setdefault(axis, []).extend(value)
            else:
                point.setdefault(axis, []).append(value)
    shown = []
    for axis, values in point.items():
        values = list(dict.fromkeys(map(str, values)))
        text = format_value(_number(values[0]))
        if len(values) > 1:
            text += f"…{format_value(_number(values[-1]))} ({len(values)} points)"
        shown.append(f"{axis}={text}")
    return ", ".join(models + shown)


def _number(text: str):
    return int(text) if text.isdigit() else text


_TABLE_HIDDEN = ("flops", "other_flops", "throughput_items_s", "weights_bytes", "peak_fraction")
"""Per-point metrics left out of the Markdown tables (in the CSV/JSON all the same)."""


def table_markdown(outcome: ClaimOutcome) -> str:
    """A claim's figures as tables: per point (metrics as columns), then the fitted exponents and crossovers."""
    from archbench.report.render import markdown_table, wide_frame

    records = [r for r in outcome.records if r.metric != "verdict" and r.value is not None
               and not isinstance(r.value, list) and r.metric not in _TABLE_HIDDEN]
    summary = [r for r in records if r.metric.endswith(("_exponent", "_crossover"))]
    points = [r for r in records if r not in summary]
    parts = []
    for chosen in (points, [r for r in summary if not r.metric.endswith("_local_exponent")]):
        if chosen:
            frame = wide_frame(chosen).drop(columns=["claim", "verdict"], errors="ignore")
            parts.append(markdown_table(frame.dropna(axis=1, how="all")))
    return "\n\n".join(parts)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_plots(outcomes: list[ClaimOutcome], report_path: Path) -> dict[str, str]:
    """A log-log plot of each table claim's sweep next to the report; claim id -> relative path."""
    from archbench.report.plot import plot_sweep

    plots = {}
    for outcome in outcomes:
        sweep_records = [r for r in outcome.records if "seq" in r.point and r.metric in ("macs", "latency_s", "peak_memory_bytes")]
        if outcome.claim.table and sweep_records:
            path = report_path.with_name(f"{report_path.stem}-{outcome.claim.table}.png")
            plot_sweep([r for r in outcome.records if r.metric != "verdict"], path,
                       title=f"{outcome.claim.id}: {outcome.claim.table} scaling")
            plots[outcome.claim.id] = path.name
    return plots
