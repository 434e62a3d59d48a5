"""The history store: a plain folder of finished suite runs and an index, to keep in a git branch or a CI artifact.

Layout of a store folder::

    index.json                       {"archbench_history": 1, "suite": NAME, "runs": [entry, ...]}
    runs/<commit>-<machine>-<digest>.json   one run document each, as ``archbench run`` wrote it

An entry names its run's file, the digest of its content, the project commit it measured
(``env.project_commit``) and that commit's date, the machine (:func:`~archbench.results.env.env_id`
of the run's ``env``), when it was added and how many records it has.

:func:`add_run` is idempotent (a run whose content is already stored is one entry) and atomic:
the run file is written first, then the index replaces the old one, both through
:func:`~archbench.results.atomic.write_atomic`, under a lock on the index. A run of another
suite than the store's, an unfinished run, a shard and a run that names no project commit
are refused (UserError). :func:`ordered_runs` gives the runs in history order: by commit
date, then in the order they were added.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from archbench.errors import UserError
from archbench.results.record import RunDocument, load_run, unfinished

INDEX = "index.json"
STORE_VERSION = 1
DEFAULT_STORE = "archbench-history"


@dataclass(frozen=True)
class Entry:
    """One run of the store, as its index lists it."""

    file: str
    digest: str
    commit: str
    commit_date: str | None
    machine: str
    added: str
    records: int

    @property
    def short(self) -> str:
        """The commit's first 7 characters, as git shows it."""
        return self.commit[:7]


@dataclass
class Store:
    """A store folder: the suite it holds (None while empty) and its entries in the order they were added."""

    path: Path
    suite: str | None
    entries: list[Entry]

    def load(self, entry: Entry) -> RunDocument:
        """The run document of ``entry``."""
        return load_run(self.path / entry.file)


def open_store(path: str | Path) -> Store:
    """The store in folder ``path`` (empty when it has no index yet); UserError for an index that is not one."""
    path = Path(path)
    index = path / INDEX
    if path.exists() and not path.is_dir():
        raise UserError(f"--store {path}: not a folder")
    if not index.is_file():
        return Store(path, None, [])
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        if data.get("archbench_history") != STORE_VERSION:
            raise ValueError(f"archbench_history {data.get('archbench_history')!r} is not {STORE_VERSION}")
        entries = [Entry(**entry) for entry in data["runs"]]
        suite = data["suite"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{index}: not an archbench history index ({exc})") from None
    return Store(path, suite, entries)


def add_run(store_path: str | Path, run_path: str | Path) -> tuple[Entry, bool]:
    """File the finished run at ``run_path`` in the store; its entry, and False when it was there already."""
    from archbench.results.atomic import write_atomic
    from archbench.results.env import env_id
    from archbench.results.journal import OutputLock

    document = load_run(run_path)
    commit = _check_addable(document, run_path)
    index = Path(store_path) / INDEX
    lock = OutputLock(_writable(index))
    try:
        store = open_store(store_path)
        suite = document.meta["suite"]
        if store.suite is not None and store.suite != suite:
            raise UserError(f"{run_path} is a run of suite {suite!r}; the store {store.path} holds suite "
                            f"{store.suite!r}: refusing to mix them")
        text = document.to_json()
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        for entry in store.entries:
            if entry.digest == digest:
                return entry, False
        machine = env_id(document.env)
        entry = Entry(file=f"runs/{commit[:12]}-{machine}-{digest[:8]}.json", digest=digest, commit=commit,
                      commit_date=document.env.get("project_commit_date"), machine=machine,
                      added=datetime.now(timezone.utc).isoformat(timespec="seconds"), records=len(document.records))
        write_atomic(store.path / entry.file, text)
        store.entries.append(entry)
        index_data = {"archbench_history": STORE_VERSION, "suite": suite,
                      "runs": [asdict(e) for e in store.entries]}
        write_atomic(index, json.dumps(index_data, indent=1) + "\n")
        return entry, True
    finally:
        lock.release()


def _check_addable(document: RunDocument, run_path: str | Path) -> str:
    """The run's project commit; UserError for a run the history cannot hold."""

    reason = unfinished(document)
    if reason:
        raise UserError(f"{run_path}: {reason}; only a finished run joins the history")
    if not isinstance(document.meta.get("suite"), str):
        raise UserError(f"{run_path}: not a suite run (no meta.suite); the history holds runs of `archbench run`")
    if document.meta.get("shard"):
        raise UserError(f"{run_path}: shard {document.meta['shard']} of a run; merge the shards first "
                        "(`archbench merge`)")
    commit = document.env.get("project_commit")
    if not isinstance(commit, str) or not commit:
        raise UserError(f"{run_path}: names no project commit (env.project_commit); run the suite from the "
                        "project's git checkout")
    return commit


def _writable(index: Path) -> Path:
    from archbench.results.atomic import check_writable

    if index.parent.exists() and not index.parent.is_dir():
        raise UserError(f"--store {index.parent}: not a folder")
    return check_writable(index)


def ordered_runs(store: Store) -> list[tuple[Entry, RunDocument]]:
    """Every run of the store with its document, in history order: by commit date, then as added."""
    def when(item: tuple[int, Entry]) -> tuple[datetime, int]:
        position, entry = item
        try:
            date = datetime.fromisoformat(entry.commit_date) if entry.commit_date else None
        except ValueError:
            date = None
        if date is not None and date.tzinfo is None:
            date = date.replace(tzinfo=timezone.utc)
        return (date or datetime.min.replace(tzinfo=timezone.utc), position)

    order = sorted(enumerate(store.entries), key=when)
    return [(entry, store.load(entry)) for _, entry in order]
