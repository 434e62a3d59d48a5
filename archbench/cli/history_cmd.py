"""`archbench history add`, `show` and `export`: a project's runs over its commits, their steps, and CI exports."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from archbench.cli.app import app
from archbench.cli.common import handle_errors
from archbench.results.store import DEFAULT_STORE

history_app = typer.Typer(help="A project's history of suite runs over its commits: add, show (with the steps), "
                               "export for CI dashboards.", no_args_is_help=True)
app.add_typer(history_app, name="history")

StoreOpt = Annotated[str, typer.Option("--store", help="The history folder (an index and the run documents).")]


@history_app.command("add")
@handle_errors
def add_command(
    run: Annotated[str, typer.Argument(help="A finished run document of `archbench run` (.json).")],
    store: StoreOpt = DEFAULT_STORE,
) -> None:
    """File a finished suite run under its project commit, date and machine (adding it twice is one entry).

    Refused (exit 2): a run of another suite than the store's, an unfinished run, a shard, and a
    run that names no project commit (env.project_commit: run the suite inside the project's checkout).
    """
    from archbench.results.store import add_run

    entry, added = add_run(store, run)
    what = "added" if added else "already in the store:"
    typer.echo(f"{what} {run} as commit {entry.short} ({(entry.commit_date or 'no date')[:10]}), "
               f"machine {entry.machine}: {store}/{entry.file}")


@history_app.command("show")
@handle_errors
def show_command(
    store: StoreOpt = DEFAULT_STORE,
    case: Annotated[Optional[str], typer.Option("--case", help="Only cases (or models) matching this shell "
                                                "pattern, e.g. 'bert-*'.")] = None,
    metric: Annotated[Optional[str], typer.Option("--metric", help="Only metrics matching this pattern, e.g. macs "
                                                  "or 'latency*'.")] = None,
    threshold: Annotated[Optional[list[str]], typer.Option(
        "--threshold", help="As for compare: latency=10%, memory=10% (the defaults) or METRIC=PERCENT.")] = None,
    alpha: Annotated[float, typer.Option("--alpha", help="Significance level of the test on timing samples.")] = 0.05,
    plot: Annotated[Optional[str], typer.Option("--plot", help="Also draw one chart per case and metric, the "
                                                "steps marked: FILE.png, .svg or .html.")] = None,
) -> None:
    """Each figure's series over the commits, and the steps: the commits where a count changed, or where a
    timing moved past its threshold with significance (between runs on equivalent machines)."""
    from archbench.errors import UserError
    from archbench.report.compare import parse_thresholds
    from archbench.report.history import build_history, format_history
    from archbench.results.store import open_store, ordered_runs

    if not 0 < alpha < 1:
        raise UserError(f"--alpha must lie between 0 and 1, got {alpha}")
    if plot:
        from archbench.report.history_plot import check_history_plot_path

        check_history_plot_path(plot)
    thresholds = parse_thresholds(threshold or [])
    history_store = open_store(store)
    if not history_store.entries:
        raise UserError(f"--store {store}: no runs (add one with `archbench history add RUN.json --store {store}`)")
    history = build_history(ordered_runs(history_store), thresholds=thresholds, alpha=alpha, case=case, metric=metric)
    if not history.series:
        given = " ".join(f"--{name} {value!r}" for name, value in (("case", case), ("metric", metric)) if value)
        raise UserError(f"no figure matches {given} in {store}")
    typer.echo(format_history(history, f"history of suite {history_store.suite}"), nl=False)
    if plot:
        from archbench.report.history_plot import plot_history

        plot_history(history, plot, title=f"suite {history_store.suite}")
        typer.echo(f"wrote {plot}", err=True)


@history_app.command("export")
@handle_errors
def export_command(
    fmt: Annotated[str, typer.Option("--format", "-f", help="github-action-benchmark (customSmallerIsBetter JSON), "
                                     "bencher (Bencher Metric Format) or run (the run document itself).")],
    store: StoreOpt = DEFAULT_STORE,
    commit: Annotated[Optional[str], typer.Option("--commit", help="The run of this commit (a prefix will do); "
                                                  "default the newest run.")] = None,
    out: Annotated[Optional[str], typer.Option("--out", "-o", help="Write to FILE instead of stdout.")] = None,
) -> None:
    """One run of the history in a format CI tools read (the newest, or that of --commit)."""
    from archbench.errors import UserError
    from archbench.report.export import EXPORTERS
    from archbench.results.atomic import check_writable, write_atomic
    from archbench.results.store import open_store, ordered_runs

    if fmt not in EXPORTERS:
        raise UserError(f"unknown --format {fmt!r}; expected one of {', '.join(EXPORTERS)}")
    if out:
        check_writable(out)
    history_store = open_store(store)
    runs = ordered_runs(history_store)
    if commit:
        runs = [(entry, document) for entry, document in runs if entry.commit.startswith(commit.lower())]
    if not runs:
        where = f"of commit {commit} " if commit else ""
        raise UserError(f"--store {store}: no run {where}to export")
    entry, document = runs[-1]
    text, left_out = EXPORTERS[fmt](document)
    for reason in left_out:
        typer.echo(f"note: left out {reason}", err=True)
    if out:
        write_atomic(out, text)
        typer.echo(f"wrote {out}: the run of commit {entry.short}", err=True)
    else:
        typer.echo(text, nl=False)
