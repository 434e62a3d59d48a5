"""Run a suite's cases through the measurers, one record at a time into a :class:`RunWriter`.

Each metric of a case is measured on its own: a failure (unknown op, out of memory, a shape
the model refuses) becomes one record with its ``error`` under the metric's main name, and
the run goes on. Every record carries its case id and the id of the machine it was measured on
(its ``env``, kept in the document's ``envs``). The writer journals each record as it
comes, so Ctrl-C (which propagates) leaves every finished record on disk; the document
itself is written, with ``meta.complete`` true, only when the last case is done.
"""

from __future__ import annotations

from typing import Any, Callable

from archbench.results.record import Record, RunDocument, RunWriter
from archbench.suite import Case, CaseSettings, Suite


def new_run_document(suite: Suite, cases: tuple[Case, ...], shard: tuple[int, int] | None) -> RunDocument:
    """An empty run document for ``cases`` of ``suite``: environment plus what the suite and shard were."""
    import sys

    meta = {
        "command": "archbench " + " ".join(sys.argv[1:]),
        "suite": suite.name,
        "suite_file": suite.path,
        "suite_digest": suite.digest,
        "shard": f"{shard[0]}/{shard[1]}" if shard else None,
        "cases": [case.describe() for case in cases],
        "suite_case_ids": [case.id for case in suite.cases],
        "complete": False,
    }
    return RunDocument(env=machine_env(suite.defaults), meta=meta)


def resume_from(document: RunDocument, out: str) -> tuple[str, ...]:
    """Add to ``document`` the records of the cases an unfinished run on ``out`` finished; their ids.

    The journal must be of the same suite file (digest) and shard; the records of a case it did
    not finish are left out, to be measured again. No journal: a warning, and nothing is added.
    """
    import sys
    from dataclasses import replace

    from archbench.errors import UserError
    from archbench.results.env import env_id
    from archbench.results.journal import journal_path
    from archbench.results.record import load_run

    journal = journal_path(out)
    if not journal.is_file():
        print(f"warning: --resume: no journal of an unfinished run at {journal}; every case is measured",
              file=sys.stderr)
        return ()
    earlier = load_run(journal)
    for key in ("suite", "suite_digest", "shard"):
        if earlier.meta.get(key) != document.meta.get(key):
            raise UserError(f"cannot resume from {journal}: its {key} is {earlier.meta.get(key)!r}, this run's "
                            f"{document.meta.get(key)!r} (run without --resume to start over; the journal is kept)")
    wanted = {case["id"] for case in document.meta["cases"]}
    finished = tuple(dict.fromkeys(c for c in earlier.meta.get("finished_cases", []) if c in wanted))
    own = env_id(earlier.env)
    for record in earlier.records:
        if record.case in finished:
            document.records.append(record if record.env else replace(record, env=own))
    envs = {**earlier.envs, own: earlier.env}
    document.envs.update({r.env: envs[r.env] for r in document.records if r.env in envs})
    return finished


def machine_env(defaults: CaseSettings) -> dict[str, Any]:
    """The environment of this machine as a suite with ``defaults`` runs on it (device, dtype, threads)."""
    from archbench.results.env import collect_env

    extra: dict[str, Any] = {"dtype": defaults.dtype}
    if defaults.threads:
        extra["threads"] = defaults.threads
    return collect_env(defaults.device, **extra)


def run_cases(cases: tuple[Case, ...], writer: RunWriter,
              progress: Callable[[int, int, str], None] | None = None) -> None:
    """Measure every case into ``writer``, then mark the document complete and have the writer finish it.

    On Ctrl-C or any other exception the writer aborts (its journal kept, marked interrupted)
    and the exception propagates.
    """
    with writer:
        machine = writer.add_env(writer.document.env)
        for done, case in enumerate(cases):
            if progress:
                progress(done, len(cases), case.id)
            run_case(case, writer, machine)
            writer.case_done(case.id)
    writer.document.meta["complete"] = True
    writer.finish()
    if progress:
        progress(len(cases), len(cases), "done")


def run_case(case: Case, writer: RunWriter, env: str | None = None) -> None:
    """Measure one case's metrics (or its sweep) through the one measurement path, each record tagged with the
    case id and ``env``, the id of this machine among the document's ``envs``."""
    from archbench.measure.run import measure_group

    tagged = _CaseWriter(writer, case.id, env)
    if case.sweep:
        _run_sweep(case, tagged)
        return
    earlier: list[Record] = []
    recipe, settings = case_recipe(case), case_settings(case)
    for metric in case.metrics:  # one failed metric is one row; the other metrics and cases go on
        records = measure_group(metric, recipe, settings, earlier)
        earlier.extend(records)
        tagged.add(*records)


def case_recipe(case: Case):
    """What a case builds."""
    from archbench.models.subject import Recipe

    s = case.settings
    return Recipe(case.model, s.batch, case.seq, case.input, s.dtype, phase=s.phase, head=s.head,
                  optimizer=s.optimizer, precision=s.precision, checkpointing=s.checkpointing)


def case_settings(case: Case):
    """How a case is measured."""
    from archbench.measure.run import Settings

    s = case.settings
    return Settings(device=s.device, dtype=s.dtype, threads=s.threads, min_time=s.min_time, timeout_s=s.timeout_s,
                    attention_count=s.attention_count, hardware=s.hardware)


class _CaseWriter:
    """Forwards records to the run's writer with the case and machine ids set, remembering what it wrote."""

    def __init__(self, writer: RunWriter, case_id: str, env: str | None):
        self.writer = writer
        self.case_id = case_id
        self.env = env
        self.written: set[int] = set()

    def add(self, *records: Record) -> None:
        for record in records:
            record.case = self.case_id
            record.env = self.env
            self.written.add(id(record))
        self.writer.add(*records)


def _run_sweep(case: Case, writer: _CaseWriter) -> None:
    """A sweep case through :func:`archbench.measure.scaling.run_sweep`; a sweep that cannot start is one error row."""
    from archbench.measure.run import failure_record
    from archbench.measure.scaling import run_sweep

    sweep = case.sweep
    try:
        records = run_sweep([case.model], list(sweep.values), list(case.metrics), axis=sweep.axis,
                            template=case_recipe(case), settings=case_settings(case), writer=writer)
    except KeyboardInterrupt:
        raise
    except Exception as exc:
        writer.add(failure_record(case_recipe(case), case.metrics[0], exc))
        return
    unwritten = [r for r in records if id(r) not in writer.written]
    if unwritten:
        writer.add(*unwritten)


def merge_runs(documents: list[tuple[str, RunDocument]]) -> tuple[RunDocument, list[str]]:
    """Join shard runs of one suite into one document (records in the suite's case order) and its warnings.

    The machines of every shard are kept in ``envs``, each record naming its own (a record of a
    document written before records named one gets its document's ``env``).

    UserError when the runs are not of the same suite file (name and content digest), are
    not suite runs, or share a case or a figure. Warnings name cases of the suite that no shard ran
    and shards that did not finish.
    """
    from dataclasses import replace

    from archbench.errors import UserError
    from archbench.results.env import env_id

    if len(documents) < 2:
        raise UserError("merge needs at least two run files")
    first_path, first = documents[0]
    identity = _suite_identity(first_path, first)
    seen: dict[str, str] = {}
    cases: list[dict] = []
    warnings: list[str] = []
    for path, document in documents:
        other = _suite_identity(path, document)
        if other[0] != identity[0]:
            raise UserError(f"{path} is a run of suite {other[0]!r}, {first_path} of {identity[0]!r}: "
                            "refusing to merge")
        if other[1] != identity[1]:
            raise UserError(f"{path} and {first_path} ran different versions of suite {identity[0]!r} "
                            f"(digest {other[1]} vs {identity[1]}): refusing to merge")
        for case in document.meta.get("cases", []):
            if case["id"] in seen:
                raise UserError(f"case {case['id']!r} is in both {seen[case['id']]} and {path}: "
                                "are these the same shard?")
            seen[case["id"]] = path
            cases.append(case)
        if not document.meta.get("complete"):
            warnings.append(f"{path} did not finish (interrupted or still running): its missing records stay missing")
    order = {case_id: i for i, case_id in enumerate(first.meta.get("suite_case_ids", []))}
    cases.sort(key=lambda case: order.get(case["id"], len(order)))
    not_run = [case_id for case_id in order if case_id not in seen]
    if not_run:
        warnings.append(f"{len(not_run)} case(s) of the suite are in no shard: {', '.join(not_run)}")
    _check_no_duplicate_figures(documents)
    envs: dict[str, dict] = {}
    records: list[Record] = []
    for _, document in documents:
        envs.update(document.envs)
        own = env_id(document.env)
        if any(r.env is None for r in document.records):
            envs[own] = document.env
        records += [r if r.env else replace(r, env=own) for r in document.records]
    records.sort(key=lambda r: order.get(r.case, len(order)))
    meta = {
        **first.meta,
        "shard": None,
        "merged_from": [path for path, _ in documents],
        "cases": cases,
        "complete": not not_run and all(doc.meta.get("complete") for _, doc in documents),
    }
    return RunDocument(env=first.env, records=records, meta=meta, envs=envs), warnings


def _check_no_duplicate_figures(documents: list[tuple[str, RunDocument]]) -> None:
    """UserError when one figure (case, metric, point) has a record in two shards, or twice in one."""
    from archbench.errors import UserError
    from archbench.report.compare import figure_key

    where: dict[tuple, int] = {}
    for number, (path, document) in enumerate(documents):
        for record in document.records:
            key = figure_key(record)
            if key in where:
                first = documents[where[key]][0]
                both = f"both {first} and {path}" if where[key] != number else f"{path} twice"
                raise UserError(f"figure {record.metric} of case {record.case or record.model!r} at "
                                f"{record.point} is in {both}: refusing to merge duplicate records")
            where[key] = number


def _suite_identity(path: str, document: RunDocument) -> tuple[str, str]:
    from archbench.errors import UserError

    if "suite" not in document.meta:
        raise UserError(f"{path}: not a suite run (no meta.suite); only `archbench run` shards can be merged")
    return document.meta["suite"], document.meta.get("suite_digest")
