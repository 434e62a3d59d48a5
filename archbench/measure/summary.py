"""One summary tree of a model: per module its type, output shape, parameters, MACs, other FLOPs and share.

Built on the counting path every command uses: the dispatch engine's per-module MACs and other
FLOPs (:func:`archbench.measure.flops.count_flops`) and the per-module parameters of
:func:`archbench.measure.params.count_params`; the output shapes come from forward hooks during
that same count. The root row is the model's totals, so it equals ``archbench params`` and
``archbench flops`` exactly.

Repeated blocks fold: consecutive siblings of one type with the same parameters, MACs, other
FLOPs and output shape are one row, ``12 × GPT2Block``, whose figures are the group's sum; the
rows under it are those of its first block (``h.0.attn``), each for one block.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from archbench.models.subject import Subject

COLUMNS = ("module", "type", "repeat", "depth", "output_shape", "params", "macs", "other_flops", "share")
DEFAULT_DEPTH = 3


@dataclass(frozen=True)
class SummaryRow:
    """One module (or a folded group of ``repeat`` identical ones) of the tree."""

    module: str  # its name in the model ("" the model itself; "h.0-11" a folded group)
    type: str  # its class name
    repeat: int  # 1, or how many identical consecutive siblings the row folds
    depth: int  # 0 the model, 1 its children...
    output_shape: str  # the shape of its first output tensor ("1x1024x768"), "" when it did not run
    params: int  # its parameters (a tensor shared with another module counts in each)
    macs: int
    other_flops: int
    share: float  # macs / the model's macs


@dataclass
class Summary:
    """The tree: ``print`` it, or take :meth:`to_dataframe` or :meth:`to_json`."""

    model: str
    point: dict[str, Any]
    rows: list[SummaryRow]
    warnings: list[str] = field(default_factory=list)

    @property
    def params(self) -> int:
        return self.rows[0].params

    @property
    def macs(self) -> int:
        return self.rows[0].macs

    @property
    def flops(self) -> int:
        """FLOPs of the multiply-accumulate work: 2 × MACs."""
        return 2 * self.macs

    @property
    def other_flops(self) -> int:
        return self.rows[0].other_flops

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "point": self.point, "units": {"params": "count", "macs": "MAC",
                                                                  "other_flops": "FLOP", "share": "fraction of macs"},
                "rows": [asdict(row) for row in self.rows], "warnings": list(self.warnings)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def to_dataframe(self):
        """One row per tree row, the columns of :data:`COLUMNS`."""
        import pandas as pd

        return pd.DataFrame([asdict(row) for row in self.rows], columns=list(COLUMNS))

    def __str__(self) -> str:
        return render_tree(self)


def summarize(subject: Subject, depth: int | None = DEFAULT_DEPTH) -> Summary:
    """The summary tree of a built subject down to ``depth`` (None: every module).

    A forward that cannot run on the meta device (it reads a value: BART's padding mask) is counted
    on the CPU when the subject can be rebuilt there, and a warning says so, as ``flops`` does.
    """
    from archbench.errors import UserError, describe_error
    from archbench.measure.params import count_params

    notes: list[str] = []
    try:
        count, shapes = _count(subject)
    except UserError:
        raise
    except Exception as exc:
        if subject.device != "meta" or subject.recipe is None:
            raise
        subject = subject.recipe.build("cpu", subject)
        count, shapes = _count(subject)
        notes.append(f"counted on cpu: its forward cannot run on the meta device ({describe_error(exc)})")
    params = count_params(subject.module, per_module=True)
    figures = {name: (params.by_module.get(name, 0), count.by_module.get(name, 0), count.other_by_module.get(name, 0))
               for name in params.by_module}
    figures[""] = (params.total, count.macs, count.other_flops)  # the totals: what `params` and `flops` report
    rows: list[SummaryRow] = []
    _add_rows(rows, subject.module, "", 0, 1, figures, shapes, count.macs, depth)
    return Summary(subject.label, dict(subject.point), rows, list(count.warnings) + notes)


def _count(subject: Subject):
    """The dispatch engine's count of one forward, and each module's output shape (module name -> "AxBxC")."""
    from archbench.measure.flops import count_flops

    with _output_shapes(subject.module) as shapes:
        count = count_flops(subject, engine="dispatch")
    return count, shapes.seen


def summary(model, inputs=None, *, depth: int | None = DEFAULT_DEPTH, **build) -> Summary:
    """The summary tree of ``model``: an ``nn.Module`` with its example ``inputs`` (a tensor, a tuple of positional
    inputs or a dict of keyword inputs), or any model argument (``"gpt2"``, ``"my_net.py:build"``) built on the
    meta device with ``build``'s options of :func:`archbench.build` (``seq``, ``input_shape``, ``batch``...)."""
    from archbench.models.subject import Subject as _Subject

    if isinstance(model, str):
        from archbench.measure.run import Settings, counting_device
        from archbench.models.build import build_model

        meta = build_model(model, device="meta", **build)
        where = counting_device(meta, Settings(device="meta"))
        subject = meta if where == "meta" else build_model(model, device=where, meta=meta, **build)
    else:
        subject = model if isinstance(model, _Subject) else _Subject.from_module(model, inputs)
    return summarize(subject, depth)


class _output_shapes:
    """Forward hooks on every module recording the shape of its first output tensor (while the count runs)."""

    def __init__(self, module):
        self.module = module
        self.seen: dict[str, str] = {}
        self.handles: list = []

    def __enter__(self):
        for name, sub in self.module.named_modules():
            self.handles.append(sub.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()

    def _hook(self, name: str):
        def record(module, args, output):
            if name not in self.seen:
                self.seen[name] = _shape_of(output)

        return record


def _shape_of(output) -> str:
    import torch
    from torch.utils._pytree import tree_flatten

    if hasattr(output, "to_tuple"):  # a Hugging Face ModelOutput
        output = output.to_tuple()
    tensors = [t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor)]
    return "x".join(str(d) for d in tensors[0].shape) if tensors else ""


def _add_rows(rows, module, name: str, depth: int, repeat: int, figures, shapes, total_macs: int, limit) -> None:
    """Append the row of ``module`` (``repeat`` identical ones, figures summed) and, within ``limit``, its children's.

    A container that never ran itself (a ModuleList) and holds one group of identical blocks is that group's row.
    """
    groups = _groups(module, name, figures, shapes)
    if len(groups) == 1 and len(groups[0]) > 1 and repeat == 1 and name and name not in shapes:
        _add_group(rows, groups[0], depth, figures, shapes, total_macs, limit)
        return
    params, macs, other = (repeat * value for value in figures[name])
    rows.append(SummaryRow(name, type(module).__name__, repeat, depth, shapes.get(name, ""), params, macs, other,
                           macs / total_macs if total_macs else 0.0))
    if limit is not None and depth >= limit:
        return
    for group in groups:
        _add_group(rows, group, depth + 1, figures, shapes, total_macs, limit)


def _groups(module, name: str, figures, shapes) -> list[list[tuple[str, Any]]]:
    """The children of ``module`` as runs of consecutive identical siblings (same type, figures and output shape)."""
    groups: list[list[tuple[str, Any]]] = []
    for child, sub in module.named_children():
        item = (f"{name}.{child}" if name else child, sub)
        if groups and _signature(*groups[-1][0], figures, shapes) == _signature(*item, figures, shapes):
            groups[-1].append(item)
        else:
            groups.append([item])
    return groups


def _add_group(rows, group, depth: int, figures, shapes, total_macs: int, limit) -> None:
    first, sub = group[0]
    at = len(rows)
    _add_rows(rows, sub, first, depth, len(group), figures, shapes, total_macs, limit)
    if len(group) > 1:
        rows[at] = _folded(rows[at], f"{first}-{group[-1][0].rpartition('.')[2]}")


def _folded(row: SummaryRow, name: str) -> SummaryRow:
    from dataclasses import replace

    return replace(row, module=name, type=f"{row.repeat} × {row.type}")


def _signature(name: str, module, figures, shapes) -> tuple:
    return (type(module).__name__, figures.get(name), shapes.get(name, ""))


def render_tree(summary: Summary) -> str:
    """The tree as text: one line per row, indented by depth, figures in aligned columns, then the totals."""
    header = ("module", "type", "output", "params", "MACs", "other FLOPs", "share")
    lines = [header]
    for row in summary.rows:
        indent = "  " * (row.depth - 1) + ("└ " if row.depth else "")
        label = summary.model if row.depth == 0 else _short(row.module)
        lines.append((indent + label, row.type, row.output_shape, f"{row.params:,}", f"{row.macs:,}",
                      f"{row.other_flops:,}", f"{row.share:.1%}"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = []
    for number, line in enumerate(lines):
        cells = [line[i].ljust(widths[i]) if i < 3 else line[i].rjust(widths[i]) for i in range(len(header))]
        text.append("  ".join(cells).rstrip())
        if number == 0:
            text.append("-" * len(text[0]))
    point = ", ".join(f"{k} {v}" for k, v in summary.point.items())
    text.append(f"total: {summary.params:,} params, {summary.macs:,} MACs ({summary.flops:,} FLOPs = 2 x MACs), "
                f"{summary.other_flops:,} other FLOPs ({point}); a folded row (N × Type) sums its N blocks, "
                "the rows under it are its first block's")
    return "\n".join(text)


def _short(name: str) -> str:
    """A row's label under its parent: ``layer1.0.conv1`` -> ``conv1``; a numbered block keeps its container's name
    (``layer2.0``, ``transformer.h.0-11`` -> ``h.0-11``)."""
    parts = name.split(".")
    return ".".join(parts[-2:]) if len(parts) > 1 and parts[-1][:1].isdigit() else parts[-1]
