"""Log–log plots of a sweep: each fitted metric against the swept axis, one colour per model.

Measured points are joined by solid lines, the fitted power law is dashed (its exponent
and R² in the legend), and crossovers between models are marked with dotted verticals.
The figure is drawn with matplotlib's Agg canvas (no display needed) and saved as PNG or
SVG according to the file's extension.
"""

from __future__ import annotations

from pathlib import Path

from archbench.errors import UserError
from archbench.results.record import Record

PLOT_SUFFIXES = (".png", ".svg")
_AXIS_LABELS = {"seq": "sequence length T (tokens)", "batch": "batch size", "resolution": "image side (pixels)"}


def check_plot_path(path: str | Path) -> None:
    """UserError unless ``path`` ends in .png or .svg (checked before a long sweep starts)."""
    if Path(path).suffix.lower() not in PLOT_SUFFIXES:
        raise UserError(f"--plot {path}: unknown extension {Path(path).suffix!r}; use .png or .svg")


def plot_sweep(records: list[Record], path: str | Path, axis: str = "seq", title: str | None = None) -> Path:
    """Write the log–log plot of every fitted metric of ``records`` to ``path``; returns the path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import NullLocator

    from archbench.measure.scaling import FITTED_METRICS, fit_loglog, fitted_values, measured_series

    check_plot_path(path)
    series = measured_series(records, axis)
    metrics = [m for m in FITTED_METRICS if any(metric == m and xs for (_, metric), (xs, _) in series.items())]
    if not metrics:
        raise UserError("nothing to plot: no point of the sweep was measured")
    models = list(dict.fromkeys(model for model, _ in series))
    units = {r.metric: r.unit for r in records}
    swept = sorted({x for xs, _ in series.values() for x in xs})
    columns = min(2, len(metrics))
    rows = -(-len(metrics) // columns)
    figure = Figure(figsize=(6.5 * columns, 4.8 * rows), layout="constrained")
    FigureCanvasAgg(figure)
    for index, metric in enumerate(metrics):
        ax = figure.add_subplot(rows, columns, index + 1)
        for colour, model in enumerate(models):
            xs, ys = series.get((model, metric), ([], []))
            if not xs:
                continue
            label = model
            if len(xs) >= 2:
                exponent, r2 = fit_loglog(xs, ys)
                label = f"{model}  (k={exponent:.2f}, R²={r2:.3f})"
                ax.plot(xs, fitted_values(xs, ys, xs), linestyle="--", color=f"C{colour}", alpha=0.7)
            ax.plot(xs, ys, marker="o", color=f"C{colour}", label=label)
        for crossing in _crossings(records, metric):
            ax.axvline(crossing, color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"{crossing:,.0f}", (crossing, 0.02), xycoords=("data", "axes fraction"),
                        fontsize=8, color="grey")
        ax.set_xscale("log")
        ax.set_yscale("log")
        if len(swept) <= 12:  # ticks at the swept values rather than at 2·10³, 3·10³...
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticks(swept, [f"{x:,}" for x in swept], rotation=45 if len(swept) > 6 else 0)
        ax.set_xlabel(_AXIS_LABELS[axis])
        ax.set_ylabel(f"{metric} [{units.get(metric, '')}]")
        ax.set_title(metric)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        figure.suptitle(title)
    return _save(figure, path)


def _save(figure, path: str | Path) -> Path:
    """Write ``figure`` to ``path`` atomically, as PNG or SVG by its extension."""
    import io

    from archbench.results.atomic import write_atomic

    path = Path(path)
    image = io.BytesIO()
    figure.savefig(image, format=path.suffix.lower().lstrip("."))
    write_atomic(path, image.getvalue())
    return path


def _crossings(records: list[Record], metric: str) -> list[float]:
    """Every crossover position the sweep's summary found for ``metric``."""
    return [x for r in records if r.metric == f"{metric}_crossover" and r.error is None
            for x in r.details.get("crossings", [])]


def plot_roofline(records: list[Record], path: str | Path, title: str | None = None) -> Path:
    """Write the log–log roofline of ``records`` (:func:`archbench.measure.roofline.roofline_records`'s, several
    models or phases at once) to ``path``: attainable FLOP/s against arithmetic intensity on the first machine,
    its roof and ridge point, and one dot per module or operator (the model's own where none) at the FLOP/s it
    would reach, sized by its predicted time; one colour per model and point."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    check_plot_path(path)
    rows = [r for r in records if r.metric == "predicted_latency_s" and r.value and r.details.get("bytes_moved")]
    if not rows:
        raise UserError("nothing to plot: no op moved any byte on a machine with this dtype's peak")
    machine = rows[0].point["hardware"]
    rows = [r for r in rows if r.point["hardware"] == machine]
    parts = [r for r in rows if "module" in r.point or "operator" in r.point]
    shown = parts or rows
    peak, bandwidth = rows[0].details["peak_flops_s"], rows[0].details["bandwidth_bytes_s"]
    figure = Figure(figsize=(7.5, 5.5), layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.add_subplot(1, 1, 1)
    intensities = [r.details["arithmetic_intensity"] for r in shown if r.details["arithmetic_intensity"]]
    ridge = peak / bandwidth
    low, high = min([*intensities, ridge]) / 4, max([*intensities, ridge]) * 4
    ax.plot([low, ridge, high], [low * bandwidth, peak, peak], color="black", linewidth=1.5,
            label=f"{machine}: {peak / 1e12:.3g} TFLOP/s, {bandwidth / 1e9:.4g} GB/s")
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=1)
    ax.annotate(f"ridge {ridge:.3g} FLOP/byte", (ridge, 0.03), xycoords=("data", "axes fraction"), fontsize=8,
                color="grey")
    groups: dict[str, list[Record]] = {}
    for r in shown:
        key = f"{r.model} " + " ".join(f"{k}={v}" for k, v in r.point.items()
                                      if k not in ("hardware", "module", "operator"))
        groups.setdefault(key, []).append(r)
    largest = max(r.value for r in shown)
    for colour, (key, members) in enumerate(groups.items()):
        xs = [r.details["arithmetic_intensity"] or low for r in members]
        ys = [r.details["flops"] / r.value for r in members]
        sizes = [10 + 400 * r.value / largest for r in members]
        total = sum(r.value for r in members)
        ax.scatter(xs, ys, s=sizes, color=f"C{colour}", alpha=0.55, label=f"{key} ({total * 1e3:.3g} ms predicted)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity [FLOP/byte] (FLOPs = 2 x MACs + other FLOPs)")
    ax.set_ylabel("attainable FLOP/s")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(title or "roofline (dot area: predicted time)", fontsize=9)
    return _save(figure, path)
