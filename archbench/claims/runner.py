"""Run claims: measure each claim's figures, evaluate its checks, attach the verdict to its records."""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Callable

from archbench.claims.checks import NOT_MEASURED, CheckResult, run_check, verdict
from archbench.claims.measures import Context, Measured, measure
from archbench.claims.suite import Claim
from archbench.errors import describe_error
from archbench.results.record import Record


@dataclass
class ClaimOutcome:
    """A judged claim: its verdict, the figures line, each check's outcome, every record and the figures by name."""

    claim: Claim
    verdict: str
    measured: str
    checks: list[CheckResult]
    records: list[Record] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    figures: dict = field(default_factory=dict)


class ClaimRunner:
    """Judges claims on one device; a measurement defined identically by several claims runs once."""

    def __init__(self, context: Context):
        self.context = context
        self._cache: dict[str, Measured] = {}

    def measure(self, definition: dict) -> Measured:
        key = json.dumps(definition, sort_keys=True, default=str)
        if key not in self._cache:
            try:
                self._cache[key] = measure(definition, self.context)
            except Exception as exc:  # noqa: BLE001  (a failed measurement is a record with its error)
                failed = Measured()
                failed.fail(definition["kind"], definition["kind"], describe_error(exc))
                self._cache[key] = failed
        return self._cache[key]

    def judge(self, claim: Claim, progress: Callable[[str], None] | None = None) -> ClaimOutcome:
        """Measure and judge one claim."""
        figures = {"device": self.context.device, "has_gpu": self.context.device.startswith("cuda")}
        intervals: dict[str, tuple[float, float]] = {}
        records: list[Record] = []
        for name, definition in claim.measure.items():
            if progress:
                progress(f"{claim.id}: {name} ({definition['kind']})")
            measured = self.measure(definition)
            figures.update({f"{name}.{key}": value for key, value in measured.figures.items()})
            intervals.update({f"{name}.{key}": value for key, value in measured.intervals.items()})
            for record in measured.records:
                own = copy.deepcopy(record)
                own.claim = claim.id
                own.details.setdefault("measurement", name)
                records.append(own)
        results = [run_check(check, figures, intervals) for check in claim.checks]
        outcome_verdict = verdict(results)
        errors = ([f"{r.metric}: {r.error}" for r in records if r.error]
                  or [f"{r.says}: {r.figures}" for r in results if r.status == NOT_MEASURED])  # an expression failed
        summary = Record(
            model=claim.claim, metric="verdict", value=outcome_verdict, unit="", claim=claim.id,
            details={"source": claim.source, "measured": fill(claim.explain, figures),
                     "checks": [vars(r) for r in results],
                     **({"intervals": {k: list(v) for k, v in intervals.items()}} if intervals else {})},
            error="; ".join(errors) if outcome_verdict == "not measured" else None,
        )
        for record in (summary, *records):
            record.verdict = outcome_verdict
        return ClaimOutcome(claim, outcome_verdict, summary.details["measured"], results, [summary, *records], errors,
                            figures)


_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


def placeholders(template: str) -> list[str]:
    """The expressions of a template's ``{expression|format}`` placeholders, without their formats."""
    return [text.rsplit("|", 1)[0] for text in _PLACEHOLDER.findall(template)]


def fill(template: str, figures: dict) -> str:
    """``template`` with each ``{expression}`` replaced by its value (``n/a`` when not measured)."""
    from archbench.claims.checks import plain
    from archbench.claims.expressions import EvaluationError, MissingFigure, evaluate

    def replace(match: re.Match) -> str:
        text = match.group(1)
        fmt = None
        if "|" in text:
            text, fmt = text.rsplit("|", 1)
        try:
            value = evaluate(text, figures, "explain")
            return _format(value, fmt) if fmt else plain(value)
        except (MissingFigure, EvaluationError, TypeError, ValueError):  # a format that does not fit the value too
            return "n/a"

    return _PLACEHOLDER.sub(replace, template)


def _format(value, fmt: str) -> str:
    """Apply a format spec (``.3g``, ``,.0f``, ``si``) to a number or element by element to a list."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format(v, fmt) for v in value) + "]"
    if value is None:
        return "none"
    if fmt == "si":
        from archbench.claims.checks import si

        return si(value)
    return format(value, fmt)

