"""A run document as a readable report (Markdown or self-contained HTML), with plots of its sweeps.

Sections: what was run and where (suite, command, environment), the results table (metrics
as columns, as :func:`archbench.report.render.wide_frame` lays them out), the errors and
warnings, and per sweep the tables `archbench scaling` prints (:mod:`archbench.report.sweep`)
and one log–log plot (:func:`archbench.report.plot.plot_sweep`). In
HTML the plots are inline SVG; in Markdown they are PNG files next to the report.
"""

from __future__ import annotations

import html
import tempfile
from dataclasses import dataclass
from pathlib import Path

from archbench.errors import UserError
from archbench.results.record import Record, RunDocument

REPORT_FORMATS = ("markdown", "html")
_ENV_KEYS = ("archbench", "git_commit", "python", "torch", "torchvision", "transformers", "platform", "cpu",
             "cpu_count", "threads", "device", "gpu", "cuda", "dtype")


@dataclass
class Sweep:
    """The records of one swept case (or of a whole `archbench scaling` run) and its axis."""

    title: str
    axis: str
    records: list[Record]


def sweeps(document: RunDocument) -> list[Sweep]:
    """The sweeps of a run: each suite case with a ``sweep``, or the run itself when it is a scaling run."""
    found = []
    for case in document.meta.get("cases") or []:
        if case.get("sweep"):
            records = [r for r in document.records if r.case == case["id"]]
            found.append(Sweep(case["id"], case["sweep"]["axis"], records))
    if document.meta.get("sweep"):
        found.append(Sweep("scaling", document.meta["sweep"]["axis"], list(document.records)))
    return found


def render_report(document: RunDocument, fmt: str, out: str | Path | None = None) -> str:
    """The report text; with ``out`` in Markdown, the plots are written as PNGs in ``<out stem>_plots/``."""
    if fmt not in REPORT_FORMATS:
        raise UserError(f"unknown report --format {fmt!r}; expected one of {', '.join(REPORT_FORMATS)}")
    if fmt == "html":
        return _html(document)
    return _markdown(document, Path(out) if out else None)


def _title(document: RunDocument) -> str:
    meta = document.meta
    if meta.get("suite"):
        shard = f" (shard {meta['shard']})" if meta.get("shard") else ""
        return f"archbench run of suite {meta['suite']}{shard}"
    return meta.get("command") or "archbench records"


def _status_lines(document: RunDocument) -> list[str]:
    """Plain sentences: how many records, failures, whether the run finished."""
    records = document.records
    failed = [r for r in records if r.error]
    lines = [f"{len(records)} records, {len(failed)} failed."]
    if document.meta.get("command") and document.meta.get("suite"):  # otherwise the command is the title
        lines.append(f"Command: `{document.meta['command']}`.")
    if document.meta.get("merged_from"):
        lines.append(f"Merged from {', '.join(document.meta['merged_from'])}.")
    if document.meta.get("complete") is False or document.meta.get("interrupted"):
        lines.append("**The run did not finish**: only the records written before it stopped are here.")
    return lines


def _env_rows(document: RunDocument) -> list[tuple[str, str]]:
    return [(key, str(document.env[key])) for key in _ENV_KEYS if document.env.get(key) is not None]


def _results_frame(document: RunDocument):
    from archbench.report.render import format_value, wide_frame

    return wide_frame(document.records).map(format_value)


def _errors(document: RunDocument) -> list[str]:
    return [f"{r.case or r.model} · {r.metric}: {r.error}" for r in document.records if r.error]


def _markdown(document: RunDocument, out: Path | None) -> str:
    from archbench.report.render import all_warnings, markdown_table, wide_frame
    from archbench.report.sweep import markdown_tables

    parts = [f"# {_title(document)}", "", *_status_lines(document), "", "## Environment", "",
             "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in _env_rows(document)), "", "## Results", ""]
    parts.append(markdown_table(wide_frame(document.records)) if document.records else "_no records_")
    errors, warnings = _errors(document), all_warnings(document.records)
    if errors:
        parts += ["", "## Errors", "", *(f"- {e}" for e in errors)]
    if warnings:
        parts += ["", "## Warnings", "", *(f"- {w}" for w in warnings)]
    found = sweeps(document)
    if found:
        parts += ["", "## Sweeps", ""]
        if out is None:
            parts.append("_Plots are written next to the report when it is saved with --out._")
        for sweep in found:
            parts += [f"### {sweep.title}", "", *markdown_tables(sweep.records, sweep.axis, sweep.title)]
            if out is None:
                continue
            target = out.parent / f"{out.stem}_plots" / f"{_slug(sweep.title)}.png"
            link = target.relative_to(out.parent).as_posix()
            shown = f"![{sweep.title}]({link})" if _plot(sweep, target) else "_nothing to plot: no point was measured_"
            parts += [shown, ""]
    return "\n".join(parts).rstrip() + "\n"


def _html(document: RunDocument) -> str:
    from archbench.report.render import all_warnings
    from archbench.report.sweep import html_tables

    e = html.escape
    body = [f"<h1>{e(_title(document))}</h1>", *(f"<p>{e(line)}</p>" for line in _status_lines(document)),
            "<h2>Environment</h2>", "<table>",
            *(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in _env_rows(document)), "</table>",
            "<h2>Results</h2>"]
    body.append(_results_frame(document).to_html(index=False, border=0) if document.records else "<p>no records</p>")
    for heading, items in (("Errors", _errors(document)), ("Warnings", all_warnings(document.records))):
        if items:
            body += [f"<h2>{heading}</h2>", "<ul>", *(f"<li>{e(item)}</li>" for item in items), "</ul>"]
    found = sweeps(document)
    if found:
        body.append("<h2>Sweeps</h2>")
        with tempfile.TemporaryDirectory(prefix="archbench-report-") as tmp:
            for sweep in found:
                target = Path(tmp) / f"{_slug(sweep.title)}.svg"
                body.append(f"<h3>{e(sweep.title)}</h3>")
                body += html_tables(sweep.records, sweep.axis, sweep.title)
                body.append(_inline_svg(target) if _plot(sweep, target) else "<p>nothing to plot</p>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}svg{max-width:100%;height:auto}")
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{e(_title(document))}</title>"
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


def _plot(sweep: Sweep, target: Path) -> bool:
    """Draw the sweep's plot into ``target``; False when no point of it was measured."""
    from archbench.report.plot import plot_sweep

    try:
        plot_sweep(sweep.records, target, sweep.axis, sweep.title)
    except UserError:  # nothing measured: said in the report instead of a plot
        return False
    return True


def _inline_svg(path: Path) -> str:
    text = path.read_text()
    return text[text.index("<svg"):]  # drop the XML prolog and doctype


def _slug(text: str) -> str:
    from archbench.results.atomic import safe_file_name

    return safe_file_name(text, "sweep")
