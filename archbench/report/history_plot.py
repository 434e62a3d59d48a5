"""Charts of a history: one small chart per case and metric over the runs, the steps marked.

Each input point of the case (each machine, for a timing) is one line; a timing's IQR is a
shaded band. A step is a red dotted vertical at its run, labelled with its commit. The figure
is drawn with matplotlib's Agg canvas and saved as PNG or SVG; ``.html`` is a page that embeds
the SVG and lists the steps.
"""

from __future__ import annotations

import html
import io
from pathlib import Path

from archbench.errors import UserError
from archbench.report.history import History

PLOT_SUFFIXES = (".png", ".svg", ".html")
_COLUMNS = 3


def check_history_plot_path(path: str | Path) -> None:
    """UserError unless ``path`` ends in .png, .svg or .html, and can be written."""
    from archbench.results.atomic import check_writable

    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(f"--plot {path}: unknown extension {Path(path).suffix!r}; use .png, .svg or .html")
    check_writable(path)


def plot_history(history: History, path: str | Path, title: str | None = None) -> Path:
    """Write the charts of ``history`` to ``path`` (.png, .svg or .html); returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from archbench.results.atomic import write_atomic

    check_history_plot_path(path)
    path = Path(path)
    charts: dict[tuple[str, str], list] = {}
    for line in history.series.values():
        charts.setdefault((line.case, line.metric), []).append(line)
    columns = min(_COLUMNS, len(charts))
    rows = -(-len(charts) // columns)
    figure = Figure(figsize=(4.2 * columns, 3.0 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    commits = [entry.short for entry in history.runs]
    for index, ((case, metric), lines) in enumerate(charts.items()):
        ax = figure.add_subplot(rows, columns, index + 1)
        colour = 0
        for line in lines:
            point = ", ".join(f"{k}={v}" for k, v in line.point.items())
            machines = list(dict.fromkeys(p.machine for p in line.points))
            for machine in machines:
                points = [p for p in line.points if p.machine == machine and p.error is None
                          and isinstance(p.value, (int, float))]
                if not points:
                    continue
                label = point + (f" ({machine})" if line.kind != "deterministic" and len(machines) > 1 else "")
                xs = [p.run for p in points]
                ax.plot(xs, [p.value for p in points], marker="o", markersize=3, color=f"C{colour}", label=label,
                        drawstyle="steps-post" if line.kind == "deterministic" else "default")
                spread = [p for p in points if p.spread]
                if spread:
                    ax.fill_between([p.run for p in spread], [p.spread[0] for p in spread],
                                    [p.spread[1] for p in spread], color=f"C{colour}", alpha=0.2, linewidth=0)
                colour += 1
        for step in history.steps:
            if (step.change.case or step.change.model, step.change.metric) == (case, metric):
                at = history.runs.index(step.entry)
                ax.axvline(at, color="red", linestyle=":", linewidth=1)
                ax.annotate(step.entry.short, (at, 0.98), xycoords=("data", "axes fraction"), fontsize=6,
                            color="red", rotation=90, ha="right", va="top")
        every = max(1, len(commits) // 10)
        ax.set_xticks(range(0, len(commits), every), commits[::every], rotation=60, fontsize=6, family="monospace")
        ax.set_xlim(-0.5, len(commits) - 0.5)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"{case} · {metric}", fontsize=8)
        unit = lines[0].unit
        if unit:
            ax.set_ylabel(unit, fontsize=7)
        ax.grid(True, alpha=0.3)
        if colour > 1:
            ax.legend(fontsize=6)
    if title:
        figure.suptitle(title, fontsize=9)
    image = io.BytesIO()
    suffix = path.suffix.lower()
    figure.savefig(image, format="svg" if suffix == ".html" else suffix.lstrip("."))
    content = image.getvalue()
    if suffix == ".html":
        content = _page(history, content.decode(), title or "archbench history").encode()
    write_atomic(path, content)
    return path


def _page(history: History, svg: str, title: str) -> str:
    """An HTML page: the title, the steps as a list, and the SVG inline."""
    from archbench.report.history import step_rows

    svg = svg[svg.index("<svg"):]  # drop the XML prolog and DOCTYPE, which do not belong inside HTML
    items = "".join(
        f"<li><code>{html.escape(row['commit'])}</code> {html.escape(row['case'])} {html.escape(row['metric'])}: "
        f"{html.escape(row['before'])} &rarr; {html.escape(row['after'])} ({html.escape(row['change'])})</li>"
        for row in step_rows(history.steps))
    steps = f"<ul>{items}</ul>" if items else "<p>No steps.</p>"
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1><h2>Steps</h2>{steps}\n{svg}</body></html>\n")
