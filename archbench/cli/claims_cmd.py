"""`archbench claims`: measure every claim of the documents and compute its verdict."""

from __future__ import annotations

from typing import Annotated, List, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import AllowCodeOpt, DeviceOpt, FormatOpt, handle_errors, real_stdout, runs_model_code

OnlyOpt = Annotated[Optional[str], typer.Option("--only", help="Claim ids to run, e.g. C13,C15.")]
TableOpt = Annotated[Optional[str], typer.Option("--table", help="Only one table: cnn-fcn or rnn-transformer.")]
OutsOpt = Annotated[Optional[List[str]], typer.Option(
    "--out", "-o", help="Write FILE (.md report with plots, .json run document, .csv, .txt); repeatable.")]
SuiteOpt = Annotated[Optional[str], typer.Option(
    "--suite", help="Claims file (default: archbench/claims/claims.yaml, shipped with archbench).")]
MinTimeOpt = Annotated[float, typer.Option("--min-time", help="Seconds of timing per latency point.")]
ThreadsOpt = Annotated[Optional[int], typer.Option(
    "--threads", help="CPU threads for every timing (default: torch's); 1 is steadiest on a shared machine.")]
FailOpt = Annotated[bool, typer.Option("--fail-on-refuted", help="Exit 1 when a claim is refuted or not measured.")]


@app.command("claims")
@handle_errors
@runs_model_code
def claims_command(
    only: OnlyOpt = None,
    table: TableOpt = None,
    fmt: FormatOpt = "table",
    out: OutsOpt = None,
    device: DeviceOpt = "cpu",
    suite: SuiteOpt = None,
    min_time: MinTimeOpt = 0.2,
    threads: ThreadsOpt = None,
    fail_on_refuted: FailOpt = False,
    allow_code: AllowCodeOpt = False,
) -> None:
    """Judge the claims of shared/claims.md: measure each one's figures and compute its verdict.

    Verdicts (holds, holds with caveat, refuted) come from the rule and tolerance each claim
    states in archbench/claims/claims.yaml, applied to figures measured in this run on --device.
    """
    import time
    from pathlib import Path

    from archbench.claims.measures import Context
    from archbench.claims.runner import ClaimRunner
    from archbench.claims.suite import load_claims, select
    from archbench.cli.common import check_output_options, check_threads, new_document
    from archbench.limits import positive_finite
    from archbench.models import check_device
    from archbench.results.record import RunWriter

    check_output_options(fmt, None)
    outs = [Path(p) for p in out or []]
    for path in outs:
        check_output_options("table", str(path))
    positive_finite("--min-time", min_time)
    if check_threads(threads) is not None:
        import torch

        torch.set_num_threads(threads)
    check_device(device)
    chosen = select(load_claims(suite), only, table)
    _refuse_code(chosen, suite, allow_code)
    document = new_document(device, min_time_s=min_time)
    json_out = next((p for p in outs if p.suffix.lower() == ".json"), None)
    writer = RunWriter(document, json_out)
    runner = ClaimRunner(Context(device=device, min_time=min_time))
    outcomes = []
    started = time.perf_counter()
    try:
        with writer, _progress(len(chosen)) as advance:
            for claim in chosen:
                outcome = runner.judge(claim, progress=advance)
                outcomes.append(outcome)
                writer.add(*outcome.records)
    except KeyboardInterrupt:
        if writer.journal_path:
            typer.echo(f"interrupted: the finished claims are kept in {writer.journal_path}; {json_out} is unchanged",
                       err=True)
        raise
    document.meta.update(elapsed_s=round(time.perf_counter() - started, 1),
                         verdicts={o.claim.id: o.verdict for o in outcomes})
    writer.finish()
    _write_outputs(document, outcomes, outs)
    with real_stdout():
        _print(document, outcomes, fmt, table)
    if fail_on_refuted and any(o.verdict in ("refuted", "not measured") for o in outcomes):
        raise typer.Exit(1)


def _refuse_code(claims, suite: str | None, allowed: bool) -> None:
    """UserError, before anything is measured, when a claim's measurement names a model that is code (FILE.py:ATTR,
    MODULE:ATTR) and --allow-code was not given: a claims file is data."""
    from archbench.errors import UserError
    from archbench.spec import parse_model_spec

    def models(value, key=""):
        if isinstance(value, dict):
            for name, item in value.items():
                if key == "models" and isinstance(item, str):
                    yield item
                yield from models(item, str(name))
        elif isinstance(value, list):
            for item in value:
                yield from models(item, key)
        elif key == "model" and isinstance(value, str):
            yield value

    if allowed:
        return
    for claim in claims:
        for spec in models(claim.measure):
            try:
                is_code = parse_model_spec(spec).source == "python"
            except UserError:
                continue  # malformed: the measurement says so when it runs
            if is_code:
                raise UserError(f"{claim.id}: model {spec!r} is code and runs only with --allow-code; "
                                f"{suite or 'the claims file'} names it, and a claims file never executes code by itself")


def _write_outputs(document, outcomes, outs) -> None:
    from archbench.claims.report import markdown, write_plots
    from archbench.report.render import format_for_path, to_text
    from archbench.results.atomic import write_atomic

    for path in outs:
        kind = format_for_path(path)
        if kind == "markdown":
            write_atomic(path, markdown(document, outcomes, write_plots(outcomes, path)))
        elif kind != "json":  # the JSON run document is written by the RunWriter when the claims are done
            write_atomic(path, to_text(document, kind))


def _print(document, outcomes, fmt: str, table: str | None) -> None:
    import sys

    from archbench.claims.report import markdown, summary_rows, table_markdown
    from archbench.report.render import to_text

    if fmt in ("json", "csv"):
        sys.stdout.write(to_text(document, fmt))
        return
    if fmt == "markdown":
        sys.stdout.write("\n\n".join(table_markdown(o) for o in outcomes) + "\n" if table else markdown(document, outcomes))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console(emoji=False)
    if table:
        from dataclasses import replace

        from archbench.report.render import print_table
        from archbench.results.record import RunDocument

        for outcome in outcomes:
            records = [replace(r, claim=None, verdict=None) for r in outcome.records
                       if r.metric != "verdict" and not isinstance(r.value, list)]
            print_table(RunDocument(document.env, records), title=f"{table} ({outcome.claim.id}) on {document.env['device']}",
                        console=console)
        return
    if not console.is_terminal:  # piped: the width of a 100-column terminal rather than rich's 80
        console.width = 100
    from archbench.claims.report import inconclusive_note, split_own

    documents, own = split_own(outcomes)
    colours = {"holds": "green", "holds with caveat": "yellow", "refuted": "red", "inconclusive": "yellow",
               "not measured": "red"}
    for title, group in ((f"claims on {document.env['device']}", documents),
                         ("archbench's own claims (not from the documents)", own)):
        if not group:
            continue
        view = Table(title=title, header_style="bold", show_lines=True,
                     caption="each claim's figures, caveat and rule: --out report.md")
        view.add_column("id", no_wrap=True)
        view.add_column("claim", max_width=22)
        view.add_column("verdict", no_wrap=True)
        view.add_column("finding")
        for row in summary_rows(group):
            view.add_row(row["id"], escape(row["claim"]), f"[{colours[row['verdict']]}]{row['verdict']}[/]",
                         escape(row["finding"]))
        console.print(view)
    for line in inconclusive_note(outcomes)[1:]:
        console.print(escape(line), highlight=False)


def _progress(total: int):
    """A rich progress bar on stderr; yields a callback taking the step's description."""
    import contextlib

    from rich.console import Console
    from rich.progress import Progress

    @contextlib.contextmanager
    def bar():
        with Progress(console=Console(stderr=True), transient=True) as progress:
            task = progress.add_task("claims", total=total)
            seen: set[str] = set()

            def advance(description: str) -> None:
                claim_id = description.split(":")[0]
                if claim_id not in seen and seen:
                    progress.advance(task)
                seen.add(claim_id)
                progress.update(task, description=description)

            yield advance

    return bar()
