"""Render a run document as a rich table, JSON, CSV or Markdown, on the terminal or into a file.

The CSV export is tidy (one row per record); the table and Markdown views pivot metrics
into columns (``metric [unit]``) with one row per model and input point.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from archbench.errors import UserError
from archbench.results.record import Record, RunDocument

FORMATS = ("table", "json", "csv", "markdown")
_EXTENSIONS = {".json": "json", ".csv": "csv", ".md": "markdown", ".markdown": "markdown", ".txt": "table"}
_ID_COLUMNS = ("case", "claim", "model")


def check_format(fmt: str) -> str:
    """UserError unless ``fmt`` is one of :data:`FORMATS`."""
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt


def format_for_path(path: str | Path) -> str:
    """The output format implied by a file's extension."""
    suffix = Path(path).suffix.lower()
    if suffix not in _EXTENSIONS:
        raise UserError(f"--out {path}: unknown extension {suffix!r}; use .json, .csv, .md or .txt")
    return _EXTENSIONS[suffix]


def tidy_frame(records: list[Record]):
    """One row per record: ids, point columns, metric, value, unit, error, warnings."""
    import pandas as pd

    rows = []
    for r in records:
        row: dict[str, Any] = {"case": r.case, "claim": r.claim, "model": r.model}
        row.update(r.point)
        row.update(metric=r.metric, value=r.value, unit=r.unit, verdict=r.verdict, error=r.error,
                   warnings="; ".join(r.warnings))
        rows.append(row)
    frame = pd.DataFrame(rows, dtype=object)  # an integer stays one beside an empty cell (no float64 column)
    return frame.dropna(axis=1, how="all") if not frame.empty else frame


def wide_rows(records: list[Record]) -> tuple[list[str], list[list[Any]]]:
    """Metrics as columns (``metric [unit]``), one row per id and input point, errors in their own last column:
    the column names and the rows (None where a row has no value), without pandas (the table needs none)."""
    rows: dict[tuple, dict[str, Any]] = {}
    for r in records:
        ids = {k: getattr(r, k) for k in _ID_COLUMNS if getattr(r, k) is not None}
        ids.update(r.point)
        key = tuple(sorted((k, json.dumps(v, default=str)) for k, v in ids.items()))
        row = rows.setdefault(key, dict(ids))
        column = f"{r.metric} [{r.unit}]" if r.unit else r.metric
        row[column] = r.value if r.error is None else None
        if r.verdict is not None:
            row["verdict"] = r.verdict
        if r.error:
            row["error"] = "; ".join(filter(None, [row.get("error"), f"{r.metric}: {r.error}"]))
    columns = list(dict.fromkeys(c for row in rows.values() for c in row if c != "error"))
    columns += ["error"] if any("error" in row for row in rows.values()) else []
    return columns, [[row.get(c) for c in columns] for row in rows.values()]


def wide_frame(records: list[Record]):
    """:func:`wide_rows` as a DataFrame."""
    import pandas as pd

    columns, rows = wide_rows(records)
    return pd.DataFrame(rows, columns=columns)


def format_value(value: Any) -> str:
    """Integers with thousands separators, floats to 4 significant digits, missing as '-'."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) >= 1e3):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def markdown_table(frame) -> str:
    """A DataFrame as a Markdown table, values through :func:`format_value` and kept as written.

    (tabulate would otherwise re-parse '1.285e+07' or '25,557,032' as numbers and re-format them.)
    """
    align = ["right" if "[" in str(column) else "left" for column in frame.columns]
    return frame.map(format_value).to_markdown(index=False, disable_numparse=True, colalign=align)


def all_warnings(records: list[Record]) -> list[str]:
    """Every distinct warning of the run, each with the model it concerns."""
    seen: dict[str, None] = {}
    for r in records:
        for w in r.warnings:
            seen.setdefault(f"{r.model}: {w}", None)
    return list(seen)


def to_text(document: RunDocument, fmt: str) -> str:
    """The document as JSON, CSV or Markdown text (``table`` gives the plain-text table)."""
    if fmt == "json":
        return document.to_json() + "\n"
    if fmt == "csv":
        return tidy_frame(document.records).to_csv(index=False)
    frame = wide_frame(document.records) if document.records else None
    if fmt == "markdown":
        body = markdown_table(frame) if frame is not None else "_no records_"
        warnings = all_warnings(document.records)
        tail = "".join(f"\n- warning: {w}" for w in warnings)
        return body + ("\n" + tail if tail else "") + "\n"
    return (frame.map(format_value).to_string(index=False) if frame is not None else "no records") + "\n"


def widen_for_pipe(console, columns: list[list[str]]) -> None:
    """Piped output (not a terminal): give a table of these column cells its natural width rather than crushing it."""
    if not console.is_terminal:
        console.width = max(console.width, sum(max(map(len, col)) + 3 for col in columns) + 1)


def print_table(document: RunDocument, title: str | None = None, console=None) -> None:
    """A rich table of the wide view, then the warnings in yellow and errors in red."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console or Console(emoji=False)  # model names like hf:llama: are not emoji codes
    if not document.records:
        console.print("no records")
        return
    columns, rows = wide_rows(document.records)
    widen_for_pipe(console, [[str(c)] + [format_value(row[i]) for row in rows] for i, c in enumerate(columns)])
    table = Table(title=title, header_style="bold")
    for column in columns:
        numeric = column not in _ID_COLUMNS and column not in ("error", "verdict") and "[" in column
        table.add_column(escape(str(column)), justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
    for row in rows:
        table.add_row(*(escape(format_value(v)) for v in row))
    console.print(table)
    for warning in all_warnings(document.records):
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False)


def emit(document: RunDocument, fmt: str = "table", out: str | None = None, title: str | None = None) -> None:
    """Print the document in ``fmt`` and, with ``out``, also write it (atomically) in the format of its extension."""
    import sys

    from archbench.results.atomic import write_atomic

    check_format(fmt)
    if out:
        write_atomic(out, to_text(document, format_for_path(out)))
    if fmt == "table":
        print_table(document, title)
    else:
        sys.stdout.write(to_text(document, fmt))
