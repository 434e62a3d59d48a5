"""The tables of a sweep, laid out once: per point each fitted metric with its local exponent, then the fitted
exponents (with R²), then the crossovers. `archbench scaling` prints them (:func:`print_sweep`) and
`archbench report` writes them into its Markdown and HTML (:func:`sweep_tables`), so both read the same."""

from __future__ import annotations

from dataclasses import dataclass, field

from archbench.results.record import Record


@dataclass
class SweepTable:
    """One table: its title, column names, rows of formatted cells, and the columns aligned right."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    right: set[str] = field(default_factory=set)


def sweep_tables(records: list[Record], axis: str, title: str) -> list[SweepTable]:
    """The point table, and the exponent and crossover tables when they have rows."""
    tables = [_points(records, axis, title), _exponents(records), _crossovers(records)]
    return [tables[0], *(t for t in tables[1:] if t.rows)]


def _points(records: list[Record], axis: str, title: str) -> SweepTable:
    from archbench.measure.scaling import FITTED_METRICS, axis_value
    from archbench.report.render import format_value

    models = list(dict.fromkeys(r.model for r in records if " vs " not in r.model))
    point_key = "input" if axis == "resolution" else axis
    rows: dict[tuple[str, int], dict] = {}
    for r in records:
        base = r.metric.removesuffix("_local_exponent")
        if base not in FITTED_METRICS or point_key not in r.point:
            continue
        row = rows.setdefault((r.model, axis_value(r.point, axis)), {"point": r.point, "errors": []})
        row[r.metric] = r.value
        if r.error:
            row["errors"].append(f"{r.metric}: {r.error}")
    shown = [m for m in FITTED_METRICS if any(m in row for row in rows.values())]
    units = {r.metric: r.unit for r in records}
    point_columns = list(next(iter(rows.values()))["point"]) if rows else []
    columns = ["model", *point_columns]
    for m in shown:
        columns += [f"{m} [{units[m]}]", f"{m} local k"]
    any_error = any(row["errors"] for row in rows.values())
    if any_error:
        columns.append("error")
    table = SweepTable(title, columns, right={c for c in columns if c.endswith("]") or c.endswith("local k")})
    for model, value in sorted(rows, key=lambda key: (models.index(key[0]), key[1])):
        row = rows[(model, value)]
        cells = [model, *(format_value(row["point"].get(c)) for c in point_columns)]
        for m in shown:
            cells += [format_value(row.get(m)), format_value(row.get(f"{m}_local_exponent"))]
        if any_error:
            cells.append("; ".join(row["errors"]))
        table.rows.append(cells)
    return table


def _exponents(records: list[Record]) -> SweepTable:
    from archbench.report.render import format_value

    table = SweepTable("fitted log-log exponents (y ∝ x^k)",
                       ["model", "metric", "k", "R²", "range", "local k (first → last)"], right={"k", "R²"})
    for r in records:
        if r.metric.endswith("_exponent") and not r.metric.endswith("_local_exponent"):
            of = r.details.get("of", r.metric.removesuffix("_exponent"))
            local = [x.value for x in records if x.model == r.model and x.metric == f"{of}_local_exponent"]
            span = r.error or f"{r.details['from']}..{r.details['to']} ({r.details['points']} points)"
            trend = f"{local[0]:.3g} → {local[-1]:.3g}" if local else "-"
            table.rows.append([r.model, of, format_value(r.value), format_value(r.details.get("r2")), span, trend])
    return table


def _crossovers(records: list[Record]) -> SweepTable:
    table = SweepTable("crossovers (interpolated in log-log space)",
                       ["models", "metric", "crossover", "which is lower"], right={"crossover"})
    for r in records:
        if r.metric.endswith("_crossover"):
            at = f"{r.value:,.0f} {r.unit}" if r.value is not None else "-" if r.error else "none in range"
            if r.error:
                lower = r.error
            elif r.value is None:
                lower = f"{r.details['lower_at_start']} throughout"
            else:
                lower = f"{r.details['lower_at_start']} below, {r.details['lower_at_end']} above"
            table.rows.append([r.model, r.details.get("of", r.metric.removesuffix("_crossover")), at, lower])
    return table


def print_sweep(records: list[Record], axis: str, title: str) -> None:
    """The sweep's tables on the terminal (rich), then every warning of its records."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from archbench.report.render import all_warnings

    console = Console(emoji=False)
    if not console.is_terminal:
        console.width = max(console.width, 220)
    for i, sweep_table in enumerate(sweep_tables(records, axis, title)):
        table = Table(title=sweep_table.title, header_style="bold")
        for column in sweep_table.columns:
            shown = "local k" if column.endswith(" local k") else column  # the metric is the column to its left
            right = column in sweep_table.right
            table.add_column(escape(shown), justify="right" if right else "left", no_wrap=right and i == 0,
                             overflow="fold" if column == "error" else "ellipsis")
        for row in sweep_table.rows:
            table.add_row(*map(escape, row))
        console.print(table)
    for warning in all_warnings(records):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)


def markdown_tables(records: list[Record], axis: str, title: str) -> list[str]:
    """The sweep's tables as Markdown lines (the report's)."""
    lines: list[str] = []
    for table in sweep_tables(records, axis, title):
        escape = lambda cell: cell.replace("|", "\\|")  # noqa: E731
        align = ["---:" if c in table.right else "---" for c in table.columns]
        lines += [f"**{table.title}**", "", "| " + " | ".join(map(escape, table.columns)) + " |",
                  "|" + "|".join(align) + "|", *("| " + " | ".join(map(escape, row)) + " |" for row in table.rows), ""]
    return lines


def html_tables(records: list[Record], axis: str, title: str) -> list[str]:
    """The sweep's tables as HTML (the report's)."""
    import html

    e = html.escape
    parts: list[str] = []
    for table in sweep_tables(records, axis, title):
        parts += [f"<table><caption>{e(table.title)}</caption>",
                  "<tr>" + "".join(f"<th>{e(c)}</th>" for c in table.columns) + "</tr>",
                  *("<tr>" + "".join(f"<td>{e(cell)}</td>" for cell in row) + "</tr>" for row in table.rows),
                  "</table>"]
    return parts
