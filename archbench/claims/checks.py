"""Verdict rules: each check of a claim passes or fails on figures measured in the run.

A claim's checks are written in ``archbench/claims/claims.yaml``. Kinds:

- ``near``: ``figure`` within ``tol`` (relative) or ``abs_tol`` of ``stated`` (both expressions;
  element by element for lists).
- ``true``: the expression ``figure`` is true (comparisons, ``all(...)``, ``is None``...).
- ``readings``: which reading of a model matches a ``stated`` figure: ``readings`` maps a label
  to an expression; the first label is the primary reading. Matching only another reading is
  a caveat that names it; matching none fails.
- ``ranking``: ``levels`` maps figure expressions to the document's ordinal level (1 = lowest);
  fails for each pair the measured order contradicts.

Each check says what the document ``says``; ``on_fail`` is ``refuted`` (default) or ``caveat``,
``note`` explains the condition when it fails, and ``when`` (an expression) skips it when false.
The verdict is the worst outcome: any refuting failure gives ``refuted``, else a check left open
by timing noise gives ``inconclusive``, else any caveat gives ``holds with caveat``, else ``holds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from archbench.claims.expressions import EvaluationError, MissingFigure, evaluate, names
from archbench.errors import UserError
from archbench.report.render import format_value

HOLDS, CAVEAT, REFUTED, NOT_MEASURED = "holds", "holds with caveat", "refuted", "not measured"
INCONCLUSIVE = "inconclusive"
KINDS = ("near", "true", "readings", "ranking")
_KEYS = {"kind", "says", "figure", "stated", "tol", "abs_tol", "readings", "levels", "on_fail", "note", "when"}


@dataclass
class CheckResult:
    """One check's outcome: ``passed`` (None when skipped or not measurable) and what decided it."""

    says: str
    passed: bool | None
    status: str  # HOLDS, CAVEAT, REFUTED, NOT_MEASURED or "skipped"
    figures: str  # the deciding figures, written out
    note: str = ""


def validate_check(check: Mapping[str, Any], where: str) -> None:
    """UserError naming ``where`` when a check definition is malformed."""
    kind = check.get("kind")
    if kind not in KINDS:
        raise UserError(f"{where}: kind {kind!r} is not a check kind ({', '.join(KINDS)})")
    required = {"near": ("figure", "stated"), "true": ("figure",), "readings": ("stated", "readings"),
                "ranking": ("levels",)}[kind]
    for key in ("says", *required):
        if key not in check:
            raise UserError(f"{where}: missing key {key!r} for a {kind} check")
    unknown = set(check) - _KEYS
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (quote text containing commas)")
    if check.get("on_fail", REFUTED) not in (REFUTED, "caveat"):
        raise UserError(f"{where}: on_fail must be 'refuted' or 'caveat'")
    if kind == "near" and "tol" not in check and "abs_tol" not in check:
        raise UserError(f"{where}: a near check needs tol (relative) or abs_tol")


def run_check(check: Mapping[str, Any], figures: Mapping[str, Any],
              intervals: Mapping[str, tuple[float, float]] | None = None) -> CheckResult:
    """Evaluate one check over the claim's figures.

    ``intervals`` (figure name -> confidence interval of a timing figure): a check whose outcome
    differs within them is ``inconclusive``, naming them (see :mod:`archbench.claims.uncertainty`).
    """
    from archbench.claims.uncertainty import undecided

    says = check["says"]
    try:
        if "when" in check and not evaluate(check["when"], figures):
            return CheckResult(says, None, "skipped", _show(check["when"], figures), check.get("skipped_note", ""))
        passed, shown, extra = _KIND_FUNCTIONS[check["kind"]](check, figures)
        open_ = undecided(_used(check), figures, intervals or {},
                          lambda corner: _KIND_FUNCTIONS[check["kind"]](check, corner)[0])
        if open_:
            return CheckResult(says, None, INCONCLUSIVE, shown,
                               f"inconclusive (timing too noisy: {'; '.join(open_)}); rerun with a larger --min-time")
    except MissingFigure as missing:
        return CheckResult(says, None, NOT_MEASURED, f"{missing} was not measured")
    except (EvaluationError, TypeError, ValueError) as failed:  # also a figure that is not a number where one is needed
        return CheckResult(says, None, NOT_MEASURED, f"cannot evaluate {failed}")
    failed_status = CAVEAT if check.get("on_fail") == "caveat" else REFUTED
    if passed and extra:  # a readings check that matched a secondary reading
        return CheckResult(says, True, CAVEAT, shown, extra)
    return CheckResult(says, passed, HOLDS if passed else failed_status, shown,
                       "" if passed else check.get("note", ""))


def verdict(results: list[CheckResult]) -> str:
    """The claim's verdict from its checks' outcomes."""
    statuses = {r.status for r in results}
    for status in (NOT_MEASURED, REFUTED, INCONCLUSIVE, CAVEAT):
        if status in statuses:
            return status
    return HOLDS


def _used(check: Mapping[str, Any]) -> list[str]:
    """The figure names every expression of ``check`` reads."""
    expressions = [check[key] for key in ("figure", "stated") if key in check]
    expressions += list(check.get("readings", {}).values()) + list(check.get("levels", {}))
    return [name for text in expressions for name in names(text)]


def _near(check, figures):
    import numpy as np

    value = np.asarray(evaluate(check["figure"], figures), dtype=float)
    stated = np.asarray(evaluate(check["stated"], figures), dtype=float)
    allowed = check.get("abs_tol", 0.0) + check.get("tol", 0.0) * np.abs(stated)
    passed = bool(np.all(np.abs(value - stated) <= allowed))
    tolerance = f"±{check['tol']:.0%}" if "tol" in check else f"±{check['abs_tol']}"
    shown = f"{_show(check['figure'], figures, value)} vs {plain(stated)} ({tolerance})"
    return passed, shown, ""


def _true(check, figures):
    passed = bool(evaluate(check["figure"], figures))
    return passed, _show(check["figure"], figures), ""


def _readings(check, figures):
    stated = float(evaluate(check["stated"], figures))
    tol = float(check.get("tol", 0.05))
    labels = list(check["readings"])
    values = {label: float(evaluate(check["readings"][label], figures)) for label in labels}
    matched = [label for label in labels if abs(values[label] - stated) <= tol * stated]
    shown = f"stated {plain(stated)}: " + ", ".join(f"{label} {plain(v)}" for label, v in values.items())
    if not matched:
        return False, shown, ""
    if matched[0] == labels[0]:
        return True, shown, ""
    return True, shown, f"{plain(stated)} matches the {matched[0]} reading ({plain(values[matched[0]])}), not the {labels[0]} one ({plain(values[labels[0]])})"


def _ranking(check, figures):
    levels = {expr: int(level) for expr, level in check["levels"].items()}
    values = {expr: float(evaluate(expr, figures)) for expr in levels}
    label = _short_labels(list(levels))
    contradictions = [
        f"{label[a]} ({plain(values[a])}) ≥ {label[b]} ({plain(values[b])})"
        for a in levels for b in levels if levels[a] < levels[b] and values[a] >= values[b]
    ]
    order = " < ".join(f"{label[e]} {plain(values[e])}" for e in sorted(values, key=values.get))
    shown = f"measured order: {order}"
    if contradictions:
        shown += "; contradicts the stated levels: " + "; ".join(contradictions)
    return not contradictions, shown, ""


def _short_labels(expressions: list[str]) -> dict[str, str]:
    """Figure names without the dotted parts they all share: ``fam.cnn.macs``, ``fam.rnn.macs`` -> cnn, rnn."""
    parts = [e.split(".") for e in expressions]
    head = 0
    while all(len(p) > head + 1 and p[head] == parts[0][head] for p in parts):
        head += 1
    tail = 0
    while all(len(p) > head + tail + 1 and p[-1 - tail] == parts[0][-1 - tail] for p in parts):
        tail += 1
    return {e: ".".join(p[head:len(p) - tail]) for e, p in zip(expressions, parts)}


_KIND_FUNCTIONS = {"near": _near, "true": _true, "readings": _readings, "ranking": _ranking}


def _show(expression, figures, value=None) -> str:
    """An expression with the figures it uses written out, e.g. ``lstm.params / rnn.params = 4 (lstm.params=...)``."""
    used = [n for n in names(expression) if n in figures]
    text = str(expression)
    if value is not None:
        text += f" = {plain(value)}"
    if used and not (len(used) == 1 and str(expression) == used[0] and value is not None):
        text += " [" + ", ".join(f"{n}={plain(figures[n])}" for n in used) + "]"
    return text


def plain(value) -> str:
    """A figure for the report: numbers via :func:`format_value`, lists and arrays element by element."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(plain(v) for v in value) + "]"
    if isinstance(value, float) and abs(value) >= 1e6 or isinstance(value, int) and abs(value) >= 1e9:
        return si(value)
    if isinstance(value, float) and value != 0 and abs(value) < 1e-3:
        return f"{value:.3g}"
    return format_value(value)


def si(value: float) -> str:
    """A large number with a SI suffix: 25.56M, 4.089G, 175.2G."""
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.4g}{suffix}"
    return f"{value:.4g}"
