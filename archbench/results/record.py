"""The record, the run document, and a writer that keeps every finished record on disk.

A record is one figure: ``{"model", "metric", "value", "unit", "point", "error", "warnings", "details"}``,
plus ``claim``/``verdict`` for claim rows and ``case`` for suite cases. A run document is
``{"schema_version": 1, "env": {...}, "meta": {...}, "records": [...]}``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from archbench.errors import UserError

SCHEMA_VERSION = 1


@dataclass
class Record:
    """One measured figure (or one failure to measure it, with ``error`` set and ``value`` None)."""

    model: str
    metric: str
    value: Any
    unit: str
    point: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    case: str | None = None
    claim: str | None = None
    verdict: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for optional in ("case", "claim", "verdict"):
            if data[optional] is None:
                del data[optional]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    def key(self) -> tuple:
        """What identifies the figure across runs: case, model, metric and input point."""
        return (self.case, self.claim, self.model, self.metric, json.dumps(self.point, sort_keys=True))


@dataclass
class RunDocument:
    """A versioned run: the environment, free-form metadata (command, suite) and the records."""

    env: dict[str, Any] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "env": self.env,
            "meta": self.meta,
            "records": [r.to_dict() for r in self.records],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def load_run(path: str | Path) -> RunDocument:
    """Read a run document; UserError (exit 2) for a missing file, bad JSON or another schema version."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a JSON run document ({exc})") from None
    if not isinstance(data, dict) or "records" not in data:
        raise UserError(f"{path}: not an archbench run document (no 'records')")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
    try:
        records = [Record.from_dict(r) for r in data["records"]]
    except TypeError as exc:
        raise UserError(f"{path}: malformed record ({exc})") from None
    return RunDocument(env=data.get("env", {}), records=records, meta=data.get("meta", {}), schema_version=version)


class RunWriter:
    """Collects records and, when given a JSON path, rewrites the file atomically after each one.

    So a long sweep or suite keeps every finished record when a later one fails or the
    user presses Ctrl-C.
    """

    def __init__(self, document: RunDocument, json_path: str | Path | None = None):
        self.document = document
        self.json_path = Path(json_path) if json_path else None
        if self.json_path:
            self.flush()

    def add(self, *records: Record) -> None:
        self.document.records.extend(records)
        if self.json_path:
            self.flush()

    def flush(self) -> None:
        assert self.json_path is not None
        self.json_path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.json_path.parent, prefix=".archbench-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            handle.write(self.document.to_json())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a results file is for everyone to read
        os.replace(tmp, self.json_path)
