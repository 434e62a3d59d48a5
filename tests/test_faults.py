"""Faults: nothing finished and nothing earlier is lost.

Atomic writes (temp files removed, stale ones cleaned), --out paths that cannot be written,
a full disk, SIGKILL and SIGINT in the middle of a real `archbench run` and of a sweep with a
previous good --out, two runs writing one file, a cut journal line, a suite name with `..`.
"""

import errno
import fcntl
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from archbench.errors import MachineError, UserError
from archbench.results.atomic import TEMP_PREFIX, remove_stale_temps, safe_file_name, write_atomic
from archbench.results.journal import OutputLock
from archbench.results.record import Record, RunDocument, RunWriter, load_run


def mlp_params(hidden: int) -> int:
    """mlp:hidden=h on 1x28x28 is Linear(784, h) + Linear(h, 10): (784 + 1)·h + (h + 1)·10 parameters."""
    return 785 * hidden + (hidden + 1) * 10


def params_suite(tmp_path: Path, n: int, name: str = "faults") -> Path:
    cases = "".join(f"  - {{id: c{i}, model: 'mlp:hidden={i + 1}', metrics: [params]}}\n" for i in range(n))
    path = tmp_path / f"{name}-{n}.yaml"
    path.write_text(f"name: {name}\ndefaults: {{device: cpu}}\ncases:\n{cases}")
    return path


def one_line_error(result, code, *fragments):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0]


def archbench(*args: str, **kwargs) -> subprocess.Popen:
    """archbench in a subprocess that takes Ctrl-C as a terminal gives it (a job started with ``&`` by a
    non-interactive shell, as CI may start the tests, inherits SIGINT ignored)."""
    return subprocess.Popen([sys.executable, "-m", "archbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint, **kwargs)


def default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_for_records(journal: Path, count: int, process: subprocess.Popen, timeout: float = 120) -> None:
    """Until the journal holds ``count`` record lines (the subprocess still running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        if journal.is_file() and journal.read_text().count('{"record"') >= count:
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError(f"{journal} never reached {count} records")


# ---- atomic writes ---------------------------------------------------------------------------

def test_write_atomic_replaces_the_file_readable_by_everyone(tmp_path):
    path = tmp_path / "deep" / "out.csv"
    write_atomic(path, "a,b\n1,2\n")
    write_atomic(path, "a,b\n3,4\n")
    assert path.read_text() == "a,b\n3,4\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in path.parent.iterdir()] == ["out.csv"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "out.md"
    write_atomic(path, "good\n")

    def fail(*args):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(MachineError, match=f"cannot write {path}: Input/output error"):
        write_atomic(path, "new\n")
    assert path.read_text() == "good\n"
    assert os.listdir(tmp_path) == ["out.md"]


def test_stale_temps_of_killed_writes_are_removed_and_live_ones_kept(tmp_path):
    stale = tmp_path / f"{TEMP_PREFIX}4242-abc-run.json"
    live = tmp_path / f"{TEMP_PREFIX}4343-def-run.json"
    other = tmp_path / ".hidden-notes"
    for path in (stale, live, other):
        path.write_text("half a file")
        os.utime(path, (time.time() - 3600,) * 2)  # older than this process
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a writer still at work holds its temp file's lock
        write_atomic(tmp_path / "run.json", "{}")
        assert not stale.exists()
        assert live.exists() and other.exists()
    assert remove_stale_temps(tmp_path) == [live]


# ---- --out paths that cannot be written --------------------------------------------------------

def test_out_naming_a_directory_or_under_a_file_exits_2(cli, tmp_path):
    folder = tmp_path / "taken.json"
    folder.mkdir()
    one_line_error(cli("params", "mlp", "--out", str(folder)), 2, str(folder), "it is a directory")
    (tmp_path / "file").write_text("x")
    under = tmp_path / "file" / "out.csv"
    one_line_error(cli("params", "mlp", "--out", str(under)), 2, str(under), "is a file, not a directory")


@pytest.fixture
def tmpfs(tmp_path):
    """A mount point for a tmpfs when running as root and mount works, else None."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_out_in_a_read_only_place_exits_2(cli, tmp_path, tmpfs):
    if tmpfs is not None:  # root ignores permission bits: a read-only mount
        subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
        place = tmpfs
    else:
        place = tmp_path / "ro"
        place.mkdir()
        place.chmod(0o555)
    out = place / "out.csv"
    result = cli("params", "mlp", "--out", str(out))
    one_line_error(result, 2, str(out))
    assert any(word in result.stderr for word in ("Read-only file system", "not writable"))


def fill(place: Path) -> None:
    """Write to ``place`` until the disk is full."""
    with open(place / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


def no_space(*args):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_keeps_the_previous_file_and_exits_1(cli, tmpfs, tmp_path, monkeypatch):
    place = tmpfs or tmp_path
    out = place / "params.csv"
    assert cli("params", "mlp", "--out", str(out)).exit_code == 0
    good = out.read_bytes()
    if tmpfs is not None:
        fill(place)
    else:  # not root: the disk fills up when the new file is synced
        monkeypatch.setattr(os, "fsync", no_space)
    result = cli("params", "mlp:hidden=64", "--out", str(out))
    one_line_error(result, 1, f"cannot write {out}: No space left on device")
    assert out.read_bytes() == good
    assert not [p for p in os.listdir(place) if p.startswith(TEMP_PREFIX)]


class FullDisk:
    """Stands in for a journal's file on a disk that just filled up."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, text):
        no_space()

    def __getattr__(self, name):
        return getattr(self.handle, name)


def test_a_full_disk_during_a_run_keeps_the_journal_and_the_previous_document(tmpfs, tmp_path):
    place = tmpfs or tmp_path
    path = place / "run.json"
    path.write_text("previous good run\n")
    writer = RunWriter(RunDocument(), path)
    writer.add(Record("mlp", "params", 1, "count"))
    if tmpfs is not None:
        fill(place)
    else:
        writer._journal.handle = FullDisk(writer._journal.handle)
    with pytest.raises(MachineError, match=f"cannot write {writer.journal_path}: No space left on device"):
        with writer:
            for value in range(2, 10_000):  # a page of the page cache may still take a few lines
                writer.add(Record("mlp", "params", value, "count"))
    assert path.read_text() == "previous good run\n"
    assert load_run(writer.journal_path).records[0].value == 1
    assert not path.with_name("run.json.lock").exists()


# ---- SIGKILL and SIGINT in the middle of a real run ---------------------------------------------

@pytest.fixture
def previous_run(cli, tmp_path):
    """A finished 3-case run at run.json: the previous good --out, and a 2000-case suite to interrupt."""
    out = tmp_path / "run.json"
    done = cli("run", str(params_suite(tmp_path, 3)), "--out", str(out), "--format", "json")
    assert done.exit_code == 0, done.output
    return out, out.read_bytes(), params_suite(tmp_path, 2000)


def assert_finished_records(journal: Path, at_least: int):
    document = load_run(journal)
    assert document.meta["complete"] is False and document.meta["suite"] == "faults"
    params = {r.case: r.value for r in document.records if r.metric == "params"}
    assert len(params) >= at_least
    assert all(value == mlp_params(int(case[1:]) + 1) for case, value in params.items())
    return document


def run_under_way(out, suite) -> tuple[subprocess.Popen, object]:
    """A second run of ``suite`` onto ``out``, once its journal holds 20 records; (the process, its journal)."""
    process = archbench("run", str(suite), "--out", str(out), "--format", "json")
    journal = out.with_name("run.json.partial.jsonl")
    wait_for_records(journal, 20, process)
    return process, journal


def test_sigkill_leaves_the_previous_document_and_a_readable_journal(previous_run):
    out, before, suite = previous_run
    process, journal = run_under_way(out, suite)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert out.read_bytes() == before
    document = assert_finished_records(journal, 3)
    assert "interrupted" not in document.meta  # killed: no chance to say so, but the journal is complete-less
    assert not [p for p in os.listdir(out.parent) if p.startswith(TEMP_PREFIX)]


def test_sigint_keeps_the_previous_document_and_marks_the_journal_interrupted(previous_run):
    out, before, suite = previous_run
    process, journal = run_under_way(out, suite)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert f"finished records kept in {journal}; {out} is unchanged" in stderr
    assert "Traceback" not in stderr
    assert out.read_bytes() == before
    document = assert_finished_records(journal, 3)
    assert document.meta["interrupted"] is True
    assert not out.with_name("run.json.lock").exists()


def test_sigint_in_a_sweep_keeps_the_previous_output(cli, tmp_path):
    out = tmp_path / "sweep.json"
    done = cli("scaling", "-m", "mlp", "--sweep", "batch", "--range", "1,2,4", "--metric", "flops", "--out", str(out),
               "--format", "json")
    assert done.exit_code == 0, done.output
    before = out.read_bytes()
    process = archbench("scaling", "-m", "mlp", "--sweep", "batch", "--range", "1..400:1", "--metric", "flops",
                        "--out", str(out), "--format", "json")
    journal = tmp_path / "sweep.json.partial.jsonl"
    wait_for_records(journal, 9, process)  # 3 points of macs, flops, other_flops
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert out.read_bytes() == before
    document = load_run(journal)
    assert document.meta["interrupted"] is True
    # mlp on 1x28x28 (784 -> 256 -> 256 -> 10): 784·256 + 256·256 + 256·10 MACs per item
    macs = {r.point["batch"]: r.value for r in document.records if r.metric == "macs"}
    assert len(macs) >= 3 and all(v == b * (784 * 256 + 256 * 256 + 256 * 10) for b, v in macs.items())


# ---- two writers -------------------------------------------------------------------------------

def test_a_second_run_writing_the_same_out_is_refused_naming_the_first(cli, tmp_path, previous_run):
    out, before, suite = previous_run
    first = archbench("run", str(suite), "--out", str(out), "--format", "json")
    try:
        wait_for_records(out.with_name("run.json.partial.jsonl"), 1, first)
        second = cli("run", str(params_suite(tmp_path, 2)), "--out", str(out))
        one_line_error(second, 2, f"{out} is being written by another archbench run (PID {first.pid})")
    finally:
        first.kill()
        first.wait()
    assert out.read_bytes() == before
    # the first one died holding the lock: its lock file is no obstacle
    assert out.with_name("run.json.lock").exists()
    assert cli("run", str(params_suite(tmp_path, 2)), "--out", str(out)).exit_code == 0
    assert [r.case for r in load_run(out).records if r.metric == "params"] == ["c0", "c1"]


def test_the_lock_is_exclusive_and_released(tmp_path):
    target = tmp_path / "x.json"
    lock = OutputLock(target)
    with pytest.raises(UserError, match=f"PID {os.getpid()}"):
        OutputLock(target)
    lock.release()
    OutputLock(target).release()


# ---- journals ----------------------------------------------------------------------------------

def test_a_journal_line_cut_short_is_dropped_with_a_warning(tmp_path, capsys):
    writer = RunWriter(RunDocument(meta={"suite": "s"}), tmp_path / "run.json")
    writer.add(Record("mlp", "params", 7, "count"), Record("mlp", "macs", 9, "MAC"))
    writer.abort()
    with open(writer.journal_path, "a") as journal:
        journal.write('{"record": {"model": "mlp", "metr')  # what a SIGKILL in the middle of a write leaves
    document = load_run(writer.journal_path)
    assert [r.value for r in document.records] == [7, 9]
    assert "line 5 was cut short by a killed write; dropped" in capsys.readouterr().err


def test_a_corrupt_line_inside_a_journal_is_an_error(tmp_path):
    journal = tmp_path / "run.json.partial.jsonl"
    journal.write_text('{"run": {"schema_version": 1, "env": {}, "meta": {}}}\nnot json\n{"record": {}}\n')
    with pytest.raises(UserError, match="line 2 is not JSON"):
        load_run(journal)


def test_a_missing_document_points_at_its_journal(tmp_path):
    RunWriter(RunDocument(), tmp_path / "run.json").abort()
    with pytest.raises(UserError, match=r"run.json: no such file \(the journal of an unfinished run of it is .*"
                                        r"run.json.partial.jsonl\)"):
        load_run(tmp_path / "run.json")


# ---- default output path -----------------------------------------------------------------------

def test_a_suite_name_cannot_lead_the_default_out_outside_results(cli, tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    suite = work / "s.yaml"
    suite.write_text(textwrap.dedent("""
        name: ../../escaped
        cases:
          - {model: 'mlp:hidden=4', metrics: [params]}
    """))
    result = cli("run", str(suite))
    assert result.exit_code == 0, result.output
    assert (work / "results" / "escaped.json").is_file()
    assert not list(tmp_path.rglob("escaped.json"))[1:] and not (tmp_path / "escaped.json").exists()
    assert [safe_file_name(n) for n in ("../../x", "a/b", "..", "ok-name_1.2")] == ["x", "a-b", "run", "ok-name_1.2"]
    assert json.loads((work / "results" / "escaped.json").read_text())["meta"]["complete"] is True
