"""`archbench run`, `merge`, `compare` and `report`: suites, their result files and CI regression reports."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import AllowCodeOpt, FormatOpt, handle_errors, real_stdout, runs_model_code


@app.command("run")
@handle_errors
@runs_model_code
def run_command(
    suite: Annotated[str, typer.Argument(help="Suite file (YAML), e.g. suites/ci.yaml.")],
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Run document to write (.json); "
                                               "default results/<suite>[-shard-I-of-N].json.")] = None,
    shard: Annotated[Optional[str], typer.Option("--shard", help="Only shard I of N (e.g. 2/4).")] = None,
    executor: Annotated[str, typer.Option("--executor", help="local (this process) or ray (Ray tasks; "
                                          "needs archbench's ray extra).")] = "local",
    address: Annotated[Optional[str], typer.Option("--address", help="Ray cluster to run on (e.g. ray://head:10001); "
                                                   "default: a local cluster started for the run.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the unfinished run on --out from its journal: "
                                         "skip the cases it finished, measure the rest.")] = False,
    allow_code: AllowCodeOpt = False,
    fmt: FormatOpt = "table",
) -> None:
    """Run a suite's cases; every finished record is journalled at once (Ctrl-C keeps them).

    The whole suite is validated first: a mistake exits 2 naming the file, line and key.
    A case that fails is a row with its error; the run goes on. --out is replaced only when
    the run finishes; until then the records are in OUT.partial.jsonl, which a stopped run keeps.
    A later run on the same --out keeps that journal aside (OUT.partial.N.jsonl); with --resume it
    also takes over the cases the journal finished and measures only the others.
    With --executor ray the cases run as Ray tasks and each record names the machine it ran on.
    """
    from pathlib import Path

    from archbench.errors import UserError
    from archbench.executors import open_executor
    from archbench.report.render import check_format, emit
    from archbench.results.atomic import safe_file_name
    from archbench.results.record import RunWriter
    from archbench.runner import new_run_document, resume_from
    from archbench.suite import load_suite, parse_shard

    check_format(fmt)
    shard_of = parse_shard(shard) if shard else None
    if out and Path(out).suffix.lower() != ".json":
        raise UserError(f"--out {out}: a run document is JSON; give a .json file")
    spec = load_suite(suite)
    cases = spec.shard(*shard_of) if shard_of else spec.cases
    if not out:
        shard_tag = f"-shard-{shard_of[0]}-of-{shard_of[1]}" if shard_of else ""
        out = f"results/{safe_file_name(spec.name, 'suite')}{shard_tag}.json"  # `name: ../x` stays in results/
    document = new_run_document(spec, cases, shard_of)
    finished = resume_from(document, out) if resume else ()
    with open_executor(executor, address) as run_cases:
        writer = RunWriter(document, out, finished=finished)
        if resume and writer.kept_journal:
            typer.echo(f"resuming: {len(finished)} of {len(cases)} cases finished in {writer.kept_journal}",
                       err=True)
        todo = tuple(case for case in cases if case.id not in finished)
        try:
            _with_progress(lambda progress: run_cases(todo, writer, spec.defaults, progress))
        except KeyboardInterrupt:
            typer.echo(f"interrupted: {len(writer.document.records)} finished records kept in "
                       f"{writer.journal_path}; {out} is unchanged", err=True)
            raise
    title = f"suite {spec.name}" + (f", shard {shard}" if shard else "") + f": {len(cases)} of {len(spec.cases)} cases"
    with real_stdout():
        emit(writer.document, fmt, None, title)
    failed = sum(1 for r in writer.document.records if r.error)
    typer.echo(f"wrote {out}: {len(writer.document.records)} records, {failed} failed", err=True)


def _with_progress(work) -> None:
    """Run ``work(progress)`` under a transient rich progress bar on stderr (none when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task("starting", total=None)

        def progress(done: int, total: int, description: str) -> None:
            bar.update(task, completed=done, total=total, description=description)

        work(progress)


@app.command("merge")
@handle_errors
def merge_command(
    runs: Annotated[list[str], typer.Argument(help="Run documents of shards of one suite.")],
    out: Annotated[str, typer.Option("--out", "-o", help="Merged run document (.json).")],
) -> None:
    """Join the shards of one suite run (refuses runs of different suites, suite versions or schema versions)."""
    import sys
    from pathlib import Path

    from archbench.errors import UserError
    from archbench.results.record import load_run, write_run
    from archbench.runner import merge_runs

    if Path(out).suffix.lower() != ".json":
        raise UserError(f"--out {out}: a run document is JSON; give a .json file")
    merged, warnings = merge_runs([(path, load_run(path)) for path in runs])
    merged.meta["command"] = "archbench " + " ".join(sys.argv[1:])
    write_run(merged, out)
    for warning in warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {out}: {len(merged.records)} records from {len(runs)} runs", err=True)


@app.command("compare")
@handle_errors
def compare_command(
    baseline: Annotated[str, typer.Argument(help="Baseline run document (.json).")],
    current: Annotated[str, typer.Argument(help="Current run document (.json).")],
    threshold: Annotated[Optional[list[str]], typer.Option(
        "--threshold", help="Allowed change before a timing or memory figure counts: latency=10%, memory=10% "
                            "(the defaults) or METRIC=PERCENT; repeatable.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of the test on timing samples.")] = 0.05,
    deterministic_only: Annotated[bool, typer.Option(
        "--deterministic-only", help="Only the exact figures (params, MACs...), not timings or memory.")] = False,
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, markdown (a PR comment), json, or github (a "
                                     "job summary, to $GITHUB_STEP_SUMMARY when set).",
                                     metavar="[table|markdown|json|github]",
                                     autocompletion=lambda: ["table", "markdown", "json", "github"])] = "table",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Also write the report to .md or .json.")] = None,
    allow_incomplete: Annotated[bool, typer.Option(
        "--allow-incomplete", help="Compare a run that did not finish (interrupted, killed, a journal) anyway.")] = False,
) -> None:
    """Compare two runs: exit 0 when nothing regressed, 1 when something did, 2 on bad input.

    Counts (params, MACs, FLOPs...) must match exactly; timings must pass the threshold and a
    significance test on the raw samples; runs from different machines leave timings uncompared.
    Runs of different suites, and runs that did not finish (unless --allow-incomplete), exit 2.
    """
    from pathlib import Path

    from archbench.errors import UserError
    from archbench.report.compare import (check_comparable, compare_runs, parse_thresholds, print_comparison,
                                          summary_line, to_github, to_json, to_markdown)
    from archbench.results.atomic import check_writable, write_atomic
    from archbench.results.record import load_run

    if fmt not in ("table", "markdown", "json", "github"):
        raise UserError(f"unknown --format {fmt!r}; expected table, markdown, json or github")
    writers = {".md": to_markdown, ".json": to_json}
    if out and Path(out).suffix.lower() not in writers:
        raise UserError(f"--out {out}: unknown extension {Path(out).suffix!r}; use .md or .json")
    if not 0 < alpha < 1:
        raise UserError(f"--alpha must lie between 0 and 1, got {alpha}")
    if out:
        check_writable(out)
    thresholds = parse_thresholds(threshold or [])
    runs = [(baseline, load_run(baseline)), (current, load_run(current))]
    check_comparable(runs, allow_incomplete)
    comparison = compare_runs(runs[0][1], runs[1][1], thresholds=thresholds, alpha=alpha,
                              deterministic_only=deterministic_only, names=(baseline, current))
    if out:
        write_atomic(out, writers[Path(out).suffix.lower()](comparison))
    if fmt == "table":
        print_comparison(comparison)
    elif fmt == "github":
        _github_summary(to_github(comparison), summary_line(comparison))
    else:
        typer.echo((to_markdown if fmt == "markdown" else to_json)(comparison), nl=False)
    if comparison.failed:
        raise typer.Exit(1)


def _github_summary(text: str, summary: str) -> None:
    """Append ``text`` to the job summary file $GITHUB_STEP_SUMMARY when it is set (atomically: the file is
    replaced by its old content and ``text``), and print ``summary`` for the job's log; print ``text`` otherwise."""
    import os
    from pathlib import Path

    from archbench.errors import UserError
    from archbench.results.atomic import write_atomic

    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if not path:
        typer.echo(text, nl=False)
        return
    try:
        before = Path(path).read_text(encoding="utf-8") if os.path.exists(path) else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"GITHUB_STEP_SUMMARY={path}: cannot read it ({exc})") from None
    write_atomic(path, before + ("\n" if before and not before.endswith("\n") else "") + text)
    typer.echo(summary)
    typer.echo(f"appended the summary to {path}", err=True)


@app.command("report")
@handle_errors
def report_command(
    run: Annotated[str, typer.Argument(help="Run document (.json) from run, merge, scaling or any --out.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="markdown or html.", metavar="[markdown|html]",
                                     autocompletion=lambda: ["markdown", "html"])] = "markdown",
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Write to FILE (plots next to it).")] = None,
) -> None:
    """Render a run as a readable Markdown or HTML report, with a plot of each sweep."""
    from archbench.report.document import render_report
    from archbench.results.atomic import check_writable, write_atomic
    from archbench.results.record import load_run

    if out:
        check_writable(out)
    text = render_report(load_run(run), fmt, out)
    if out:
        write_atomic(out, text)
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(text, nl=False)
