"""The claims as data: load and validate ``archbench/claims/claims.yaml``.

The file has ``claims:``, a list of entries::

    - id: C03
      source: "000"
      claim: A fully connected layer of 1000 neurons on a 224×224×3 image has about 150M weights.
      table: name            # optional: the entry's measurements also form a table (--table name)
      measure:               # named measurements, each of a kind of archbench.claims.measures
        fc: {kind: layer, layer: Linear, args: {in_features: 150528, out_features: 1000}}
      checks:                # the verdict rule, see archbench.claims.checks
        - {kind: near, says: "about 150M weights", figure: fc.params, stated: 150e6, tol: 0.05}
      explain: "{fc.params} weights"   # optional: the measured figures line, {expr} filled in
      title: FC layer on a 224×224×3 image   # optional: the claim in a few words (default: the claim)
      finding: "nn.Linear(150528, 1000) has {fc.weights} weights"   # optional: what was found, in plain words

Any malformed entry is a UserError naming the file, the claim and the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archbench.claims.checks import validate_check
from archbench.claims.expressions import parse
from archbench.errors import UserError

DEFAULT_PATH = Path(__file__).resolve().parent / "claims.yaml"  # package data: in a wheel too
_ID = re.compile(r"^[CA]\d{2}$")  # C: a claim of the documents; A: archbench's own (source: archbench)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Claim:
    """One claim: what the document says, what to measure, and the rule for its verdict."""

    id: str
    source: str
    claim: str
    measure: dict[str, dict[str, Any]]
    checks: list[dict[str, Any]]
    explain: str = ""
    table: str | None = None
    title: str = ""
    finding: str = ""


def load_claims(path: str | Path | None = None) -> list[Claim]:
    """Every claim of the file (``archbench/claims/claims.yaml`` by default), validated."""
    from archbench import yamlfile
    from archbench.claims.measures import KINDS

    path = Path(path) if path else DEFAULT_PATH
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    data = yamlfile.safe_load(path, yamlfile.read_text(path))
    if not isinstance(data, dict) or not isinstance(data.get("claims"), list):
        raise UserError(f"{path}: expected a mapping with a 'claims' list")
    claims, seen = [], set()
    for index, entry in enumerate(data["claims"]):
        where = f"{path}: claims[{index}]"
        if not isinstance(entry, dict):
            raise UserError(f"{where}: expected a mapping")
        for key in ("id", "source", "claim", "measure", "checks"):
            if key not in entry:
                raise UserError(f"{where}: missing key {key!r}")
        claim_id = str(entry["id"])
        where = f"{path}: {claim_id}"
        if not _ID.match(claim_id) or claim_id in seen:
            raise UserError(f"{where}: id must look like C01 (or A01 for archbench's own claims) and be unique")
        seen.add(claim_id)
        if not isinstance(entry["measure"], dict) or not entry["measure"]:
            raise UserError(f"{where}: 'measure' must map names to measurement definitions")
        for name, definition in entry["measure"].items():
            if not _NAME.match(str(name)):
                raise UserError(f"{where}: measurement name {name!r} must be an identifier")
            if not isinstance(definition, dict) or definition.get("kind") not in KINDS:
                raise UserError(f"{where}: measure.{name}.kind must be one of {', '.join(sorted(KINDS))}")
        if not isinstance(entry["checks"], list) or not entry["checks"]:
            raise UserError(f"{where}: 'checks' must be a non-empty list")
        for number, check in enumerate(entry["checks"]):
            check_where = f"{where}: checks[{number}]"
            if not isinstance(check, dict):
                raise UserError(f"{check_where}: expected a mapping")
            validate_check(check, check_where)
            for key in ("figure", "stated", "when"):
                if key in check:
                    parse(check[key], f"{check_where}.{key}")
        unknown = set(entry) - {"id", "source", "claim", "measure", "checks", "explain", "table", "title", "finding"}
        if unknown:
            raise UserError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        claim_text, explain = str(entry["claim"]).strip(), str(entry.get("explain", "")).strip()
        finding = str(entry.get("finding", explain)).strip()
        _check_finding(finding, set(entry["measure"]), f"{where}: finding")
        claims.append(Claim(claim_id, str(entry["source"]), claim_text, entry["measure"], entry["checks"], explain,
                            entry.get("table"), str(entry.get("title", claim_text)).strip(), finding))
    return claims


RUN_FIGURES = ("device", "has_gpu")
"""Figures every claim has besides its measurements: the run's device and whether it is a GPU."""


def _check_finding(finding: str, measurements: set[str], where: str) -> None:
    """UserError unless every ``{expression}`` of ``finding`` parses and names only the claim's own figures."""
    from archbench.claims.expressions import names
    from archbench.claims.runner import placeholders

    for expression in placeholders(finding):
        parse(expression, where)
        for name in names(expression):
            if name not in RUN_FIGURES and name.split(".")[0] not in measurements:
                raise UserError(f"{where}: {name!r} is not a figure of this claim's measurements")


def select(claims: list[Claim], only: str | None = None, table: str | None = None) -> list[Claim]:
    """The claims named in ``only`` (``C13,C15``) or forming ``table``; UserError for unknown ones."""
    from archbench.spec import suggest

    if table:
        chosen = [c for c in claims if c.table == table]
        if not chosen:
            tables = sorted({c.table for c in claims if c.table})
            raise UserError(f"unknown table {table!r}{suggest(table, tables)} (tables: {', '.join(tables)})")
        return chosen
    if not only:
        return claims
    wanted = [w.strip().upper() for w in only.split(",") if w.strip()]
    ids = [c.id for c in claims]
    for claim_id in wanted:
        if claim_id not in ids:
            raise UserError(f"unknown claim {claim_id!r}{suggest(claim_id, ids)}")
    return [c for c in claims if c.id in wanted]
