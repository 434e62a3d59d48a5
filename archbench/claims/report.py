"""The claims report: one Markdown row per claim, the details of each check, and the two tables.

Markdown: the machine and library versions the figures were measured on, the verdict table
(id, short claim, source, measured figures, verdict, condition or deciding figure), the CNN vs
FCN parameter table and the RNN vs Transformer scaling table (with its log-log plot), then
each claim's checks. The same rows go to CSV/JSON through the run document.
"""

from __future__ import annotations

from pathlib import Path

from archbench.claims.checks import CAVEAT, HOLDS, NOT_MEASURED, REFUTED
from archbench.claims.runner import ClaimOutcome
from archbench.results.record import RunDocument

_ENV_SHOWN = ("device", "cpu", "cpu_count", "threads", "gpu", "torch", "torchvision", "transformers", "fvcore",
              "python", "platform", "archbench", "git_commit")
_MARK = {HOLDS: "✅ holds", CAVEAT: "⚠️ holds with caveat", REFUTED: "❌ refuted", NOT_MEASURED: "⛔ not measured"}


def decision(outcome: ClaimOutcome) -> str:
    """The condition (caveat), the refuting figure, or for a claim that holds its first check's figures."""
    if outcome.verdict == HOLDS:
        return "; ".join(r.figures for r in outcome.checks if r.status == HOLDS)[:600]
    deciding = [r for r in outcome.checks if r.status == outcome.verdict]
    return " ".join(f"{r.says}: {r.figures}" + (f" — {r.note.rstrip('.')}." if r.note else ".") for r in deciding)


def summary_rows(outcomes: list[ClaimOutcome]) -> list[dict[str, str]]:
    """One row per claim: id, claim, source, measured, verdict, condition / deciding figure."""
    return [
        {"id": o.claim.id, "claim": o.claim.claim, "source": o.claim.source, "measured": o.measured,
         "verdict": o.verdict, "condition / deciding figure": decision(o)}
        for o in outcomes
    ]


def markdown(document: RunDocument, outcomes: list[ClaimOutcome], plots: dict[str, str] | None = None) -> str:
    """The whole report as Markdown; ``plots`` maps a claim id to a plot path relative to the report."""
    counts = {v: sum(o.verdict == v for o in outcomes) for v in _MARK}
    parts = [
        "# archbench claims report",
        "",
        f"{len(outcomes)} claims of `shared/claims.md` measured in this run: "
        + ", ".join(f"{n} {v}" for v, n in counts.items() if n) + ". "
        "Every verdict is computed from the figures below by the rule in `suites/claims.yaml`.",
        "",
        f"Command: `{document.meta.get('command', 'archbench claims')}`; run time {document.meta.get('elapsed_s', 0):.0f} s.",
        "",
        "| measured on | |",
        "|---|---|",
        *(f"| {key} | {document.env[key]} |" for key in _ENV_SHOWN if document.env.get(key) is not None),
        *([] if document.env.get("gpu") else ["| gpu | none: no CUDA device, so GPU figures are not measured |"]),
        "",
        "## Verdicts",
        "",
        "| id | claim | source | measured | verdict | condition / deciding figure |",
        "|---|---|---|---|---|---|",
    ]
    for row in summary_rows(outcomes):
        cells = [row["id"], row["claim"], row["source"], row["measured"], _MARK[row["verdict"]],
                 row["condition / deciding figure"]]
        parts.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    for outcome in outcomes:
        if outcome.claim.table:
            parts += ["", f"## Table {outcome.claim.table} (from {outcome.claim.id})", "", table_markdown(outcome)]
            if plots and outcome.claim.id in plots:
                parts += ["", f"![{outcome.claim.table}]({plots[outcome.claim.id]})"]
    parts += ["", "## Checks", ""]
    for outcome in outcomes:
        parts.append(f"**{outcome.claim.id}** ({_MARK[outcome.verdict]}): {outcome.claim.claim}")
        parts.append("")
        for result in outcome.checks:
            mark = {HOLDS: "✓", CAVEAT: "⚠", REFUTED: "✗", NOT_MEASURED: "⛔"}.get(result.status, "–")
            parts.append(f"- {mark} {result.says}: {result.figures}" + (f" — {result.note}" if result.note else ""))
        for error in outcome.errors:
            parts.append(f"- error: {error}")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


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
