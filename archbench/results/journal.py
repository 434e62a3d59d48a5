"""A run's journal (JSON Lines beside its target, one line per record) and the lock on its target.

The journal of ``run.json`` is ``run.json.partial.jsonl``. Each line is an object with one key:

- ``{"run": {"schema_version", "env", "envs", "meta"}}``: the first line, the document without its records;
- ``{"record": {...}}``: one finished record, flushed at once;
- ``{"envs": {id: env}}``: a machine records name, written before the first record that names it;
- ``{"meta": {...}}``: keys that update ``meta`` (``interrupted`` when the run was stopped);
- ``{"finished": {"case": id}}``: every record of suite case ``id`` is written (read back as
  ``meta.finished_cases``, what ``run --resume`` skips).

A run that finishes writes its target and removes the journal, so a journal on disk is the
work of a run that did not finish: killed, interrupted or failed. A SIGKILL can cut the last
line short; reading drops that line with a warning. A new run on the same target never
deletes such a journal: it is kept aside as ``run.json.partial.N.jsonl`` (the first free N).

The lock is an ``flock`` on ``run.json.lock``, held for the whole run and released by the
kernel when the process dies, so a stale lock file is no obstacle.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from pathlib import Path
from typing import Any

from archbench.errors import UserError
from archbench.results.atomic import FILE_MODE, output_error

JOURNAL_SUFFIX = ".partial.jsonl"
LOCK_SUFFIX = ".lock"


def journal_path(target: str | Path) -> Path:
    """Where the journal of a run writing ``target`` lives."""
    target = Path(target)
    return target.with_name(target.name + JOURNAL_SUFFIX)


def to_jsonable(value: Any) -> Any:
    """``default`` for json.dumps: tensor and numpy scalars as numbers, sets and tuples as lists, else str."""
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


class OutputLock:
    """An exclusive lock on ``target`` for one process; UserError naming the holder's PID when another has it."""

    def __init__(self, target: str | Path):
        self.target = Path(target)
        self.path = self.target.with_name(self.target.name + LOCK_SUFFIX)
        self.fd: int | None = None
        while self.fd is None:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(fd)
                os.close(fd)
                raise UserError(f"{self.target} is being written by another archbench run (PID {holder}); "
                                "wait for it to finish or give another --out") from None
            if self._same_file(fd):
                self.fd = fd
            else:  # the previous holder removed the file between our open and our lock: lock the new one
                os.close(fd)
        try:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk: release the lock and say so
            self.release()
            raise output_error(self.path, exc) from None

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def _same_file(self, fd: int) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _holder(fd: int) -> str:
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        return text if text.isdigit() else "unknown"

    def release(self) -> None:
        """Remove the lock file and release the lock (removing first, so no one locks a file about to vanish)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = None


def keep_aside(journal: str | Path) -> Path | None:
    """Rename an existing ``journal`` to the first free ``NAME.partial.N.jsonl`` (never replacing a file); its
    new path, or None when there was none."""
    journal = Path(journal)
    stem = journal.name[: -len(".jsonl")] if journal.name.endswith(".jsonl") else journal.name
    number = 1
    while journal.exists():
        kept = journal.with_name(f"{stem}.{number}.jsonl")
        try:
            os.link(journal, kept)  # fails when ``kept`` exists: nothing is ever overwritten
        except FileExistsError:
            number += 1
            continue
        except OSError as exc:
            raise output_error(kept, exc) from None
        os.unlink(journal)
        return kept
    return None


class Journal:
    """An append-only JSON Lines file; each line is flushed to the kernel as it is written.

    The journal of an earlier unfinished run at ``path`` is kept aside (:func:`keep_aside`), with a warning.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.kept = keep_aside(self.path)
        if self.kept:
            print(f"warning: {self.path}: the journal of an earlier unfinished run is kept as {self.kept}",
                  file=sys.stderr)
        try:
            self.handle = open(self.path, "w", encoding="utf-8")
            os.fchmod(self.handle.fileno(), FILE_MODE)
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def append(self, kind: str, data: dict[str, Any]) -> None:
        """Write one ``{kind: data}`` line and flush it."""
        line = json.dumps({kind: data}, default=to_jsonable) + "\n"
        try:
            self.handle.write(line)
            self.handle.flush()
        except OSError as exc:
            raise output_error(self.path, exc) from None

    def close(self, remove: bool = False) -> None:
        """Sync and close the file; with ``remove``, delete it (the finished document replaces it)."""
        try:
            if not remove:
                os.fsync(self.handle.fileno())
            self.handle.close()
        except OSError:
            pass  # a journal that cannot be synced (full disk) is still readable up to its last whole line
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def read_journal(path: str | Path) -> dict[str, Any]:
    """A journal as a run-document dict (``meta.complete`` false, ``meta.journal`` its path).

    A last line cut short by a killed write is dropped with a warning on stderr; any other
    line that is not a journal line is a UserError naming it.
    """
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    document: dict[str, Any] | None = None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):  # no newline after it: the write was cut short
                print(f"warning: {path}: line {number} was cut short by a killed write; dropped", file=sys.stderr)
                break
            raise UserError(f"{path}: line {number} is not JSON") from None
        except ValueError:  # Python's limit on the digits of an integer
            raise UserError(f"{path}: line {number} holds an integer too long to read") from None
        except RecursionError:
            raise UserError(f"{path}: line {number} is nested too deep") from None
        kind, data = _entry(entry, path, number)
        if document is None:
            if kind != "run":
                raise UserError(f"{path}: line 1 must be the run header {{\"run\": ...}}, got {kind!r}")
            document = {**data, "records": []}
            if isinstance(document.get("meta"), dict):
                document["meta"] = dict(document["meta"])
        elif kind == "record":
            document["records"].append(data)
        elif kind in ("meta", "envs") and isinstance(document.setdefault(kind, {}), dict):
            document[kind].update(data)
        elif kind == "finished" and isinstance(data.get("case"), str) and isinstance(document.get("meta"), dict):
            document["meta"].setdefault("finished_cases", []).append(data["case"])
        else:
            raise UserError(f"{path}: line {number}: unexpected {kind!r} entry")
    if document is None:
        raise UserError(f"{path}: an empty journal (the run was stopped before it wrote anything)")
    if isinstance(document.setdefault("meta", {}), dict):
        document["meta"].update(complete=False, journal=str(path))
    return document


def _entry(entry: Any, path: Path, number: int) -> tuple[str, Any]:
    if not isinstance(entry, dict) or len(entry) != 1:
        raise UserError(f"{path}: line {number}: expected an object with one key (run, record, meta, envs or "
                        "finished)")
    kind, data = next(iter(entry.items()))
    if kind not in ("run", "record", "meta", "envs", "finished") or (kind != "record" and not isinstance(data, dict)):
        raise UserError(f"{path}: line {number}: unexpected {kind!r} entry")
    return kind, data
