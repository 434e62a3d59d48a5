"""The record, the run document, reading one back (checked), and the writer that keeps every finished record.

A record is one figure: ``{"model", "metric", "value", "unit", "point", "error", "warnings", "details"}``,
plus ``claim``/``verdict`` for claim rows, ``case`` for suite cases and ``env``, the id of the
machine it was measured on. A run document is
``{"schema_version": 1, "env": {...}, "envs": {id: {...}}, "meta": {...}, "records": [...]}``: ``env`` is
the machine that ran the command, ``envs`` every machine a record names (absent in documents
written before records named one; a record without ``env`` was measured on ``env``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from archbench.errors import UserError
from archbench.results.atomic import check_writable, write_atomic
from archbench.results.journal import Journal, OutputLock, journal_path, read_journal, to_jsonable
from archbench.results.schema import check_depth, check_header, check_record, json_type

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
    env: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for optional in ("case", "claim", "verdict", "env"):
            if data[optional] is None:
                del data[optional]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Record":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @classmethod
    def of(cls, model: str, metric: str, value: Any, point: dict[str, Any] | None = None, *, axis: str = "seq",
           **fields: Any) -> "Record":
        """A record of ``metric`` in the unit the metric table gives it (a crossover's: its sweep ``axis``'s)."""
        from archbench.metrics import unit_of

        return cls(model, metric, value, unit_of(metric, axis), dict(point or {}), **fields)


@dataclass
class RunDocument:
    """A versioned run: the environment, the machines its records name, free-form metadata and the records."""

    env: dict[str, Any] = field(default_factory=dict)
    records: list[Record] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    envs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "env": self.env,
            **({"envs": self.envs} if self.envs else {}),
            "meta": self.meta,
            "records": [r.to_dict() for r in self.records],
        }

    def env_of(self, record: Record) -> dict[str, Any] | None:
        """The environment ``record`` was measured in; None when it names a machine the document lacks."""
        return self.env if record.env is None else self.envs.get(record.env)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=to_jsonable)


def load_run(path: str | Path) -> RunDocument:
    """Read a run document, or the journal of an unfinished run (``.jsonl``), checked against its schema.

    UserError (exit 2) for a missing file, bad JSON, another schema version, or a field of the
    wrong type (naming the record and the field). A journal gives a document with
    ``meta.complete`` false and ``meta.journal`` set.
    """
    path = Path(path)
    if not path.is_file():
        partial = journal_path(path)
        hint = f" (the journal of an unfinished run of it is {partial})" if partial.is_file() else ""
        raise UserError(f"{path}: no such file{hint}")
    try:
        data = read_journal(path) if path.name.endswith(".jsonl") else json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not a JSON run document ({exc})") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise UserError(f"{path}: holds an integer too long to be a measurement") from None
    except RecursionError:
        raise UserError(f"{path}: nested too deep to be a run document") from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read it ({exc.strerror})") from None
    check_depth(data, str(path))
    if not isinstance(data, dict) or "records" not in data:
        raise UserError(f"{path}: not an archbench run document (no 'records')")
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UserError(f"{path}: schema_version {version!r} is not supported (expected {SCHEMA_VERSION})")
    check_header(data, str(path))
    if not isinstance(data["records"], list):
        raise UserError(f"{path}: field 'records' must be an array, got {json_type(data['records'])}")
    for number, record in enumerate(data["records"], 1):
        check_record(record, f"{path}: record {number}")
    records = [Record.from_dict(r) for r in data["records"]]
    return RunDocument(env=data.get("env", {}), records=records, meta=data.get("meta", {}), schema_version=version,
                       envs=data.get("envs", {}))


def write_run(document: RunDocument, path: str | Path) -> None:
    """Write a whole run document to ``path`` atomically, under the lock that keeps other runs off it."""
    lock = OutputLock(check_writable(path))
    try:
        write_atomic(path, document.to_json())
    finally:
        lock.release()


class RunWriter:
    """Collects a run's records; with an output path, journals each one and writes the output at the end.

    While the run goes on, ``path`` is locked (a second run writing it is refused) and left as
    it was; each record is one line of the journal beside it (:mod:`archbench.results.journal`).
    :meth:`finish` replaces ``path`` with ``render(document)`` (the JSON document unless told
    otherwise) and removes the journal; :meth:`abort` keeps the journal, marked interrupted.
    Either releases the lock. Used as a context manager (``with writer: measure...``), an
    exception that leaves the block aborts.
    """

    def __init__(self, document: RunDocument, path: str | Path | None = None,
                 render: Callable[[RunDocument], str] | None = None, finished: tuple[str, ...] = ()):
        self.document = document
        self.path = Path(path) if path else None
        self.journal_path = journal_path(self.path) if self.path else None
        self.render = render or RunDocument.to_json
        self._lock: OutputLock | None = None
        self._journal: Journal | None = None
        self._kept: Path | None = None
        if self.path:
            self._lock = OutputLock(check_writable(self.path))
            try:
                self._journal = Journal(self.journal_path)
                self._kept = self._journal.kept
                self._journal.append("run", {"schema_version": document.schema_version, "env": document.env,
                                             "envs": document.envs, "meta": document.meta})
                for record in document.records:
                    self._journal.append("record", record.to_dict())
                for case_id in finished:
                    self.case_done(case_id)
            except BaseException:
                self._release(remove_journal=True)
                raise

    def __enter__(self) -> "RunWriter":
        return self

    def __exit__(self, kind, exc, traceback) -> None:
        if exc is not None:
            from archbench.errors import describe_error

            self.abort(None if isinstance(exc, KeyboardInterrupt) else describe_error(exc))

    def add(self, *records: Record) -> None:
        """Keep ``records``, each one a line of the journal at once."""
        self.document.records.extend(records)
        if self._journal:
            for record in records:
                self._journal.append("record", record.to_dict())

    def case_done(self, case_id: str) -> None:
        """Every record of suite case ``case_id`` is written: a line of the journal, what a resumed run skips."""
        if self._journal:
            self._journal.append("finished", {"case": case_id})

    @property
    def kept_journal(self) -> Path | None:
        """Where the journal of an earlier unfinished run on ``path`` was kept aside, if there was one."""
        return self._kept

    def add_env(self, env: dict[str, Any]) -> str:
        """Keep the machine ``env`` among the document's ``envs`` (journalled the first time); its id."""
        from archbench.results.env import env_id

        key = env_id(env)
        if key not in self.document.envs:
            self.document.envs[key] = env
            if self._journal:
                self._journal.append("envs", {key: env})
        return key

    def finish(self) -> None:
        """The run is done: write the output to ``path`` atomically and remove the journal."""
        if self.path and self._lock:
            try:
                write_atomic(self.path, self.render(self.document))
            except BaseException as exc:
                self.abort(f"the finished document could not be written: {exc}")
                raise
            self._release(remove_journal=True)

    def abort(self, error: str | None = None) -> Path | None:
        """The run stopped: mark the journal interrupted (with ``error`` if it failed), keep it, return its path."""
        stop = {"interrupted": True, **({"error": error} if error else {})}
        self.document.meta.update(stop)
        if not self._journal:
            return None
        try:
            self._journal.append("meta", stop)
        except Exception:  # the disk is full or failing: the journal is still readable up to its last whole line
            pass
        self._release(remove_journal=False)
        return self.journal_path

    def _release(self, remove_journal: bool) -> None:
        if self._journal:
            self._journal.close(remove=remove_journal)
            self._journal = None
        if self._lock:
            self._lock.release()
            self._lock = None


def unfinished(document: RunDocument) -> str | None:
    """Why ``document`` is not a finished run (read from a journal, interrupted, not complete), or None."""
    meta = document.meta
    if meta.get("journal"):
        return f"it is the journal of a run that did not finish ({meta['journal']})"
    if meta.get("interrupted"):
        return "the run was interrupted"
    if meta.get("complete") is False:
        return "the run did not finish (meta.complete is false)"
    return None
