"""Hostile input, round three (issue 24): compare across machines, conflicting records, nothing finished
lost (resume), machine state as MachineError, hangs, sweeps with a point that cannot fit, timing noise.

Each class of the issue has a case here; the user-code classes are in the issue-19 tests.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from archbench.errors import UserError
from archbench.results.record import Record, RunDocument

ROOT = Path(__file__).resolve().parents[1]


def archbench(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m archbench ARGS`` from this checkout, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "archbench", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


def one_line(done: subprocess.CompletedProcess, code: int) -> str:
    """The single stderr line of a command that exited ``code``."""
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and "internal error" not in lines[0] and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text).lstrip())
    return path


TINY_SUITE = """
    name: tiny
    defaults: {min_time: 0.01}
    cases:
      - model: mlp
        metrics: [params, flops, latency]
"""


# --- compare on the documented cross-machine workflow ---------------------------------------------------------

def test_compare_of_two_real_runs_under_different_thread_counts(tmp_path):
    """The README's CI recipe: a baseline from a runner with another thread count compares, exit 0."""
    suite = write(tmp_path / "tiny.yaml", TINY_SUITE)
    for threads, name in ((1, "a.json"), (2, "b.json")):
        done = archbench("run", str(suite), "--out", str(tmp_path / name), "-f", "json",
                         env={"OMP_NUM_THREADS": str(threads)})
        assert done.returncode == 0, done.stderr
    done = archbench("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-f", "markdown")
    assert done.returncode == 0, done.stderr
    assert "OK: nothing regressed" in done.stdout and "timings not comparable (threads: 1 vs 2)" in done.stdout
    rows = [line for line in done.stdout.splitlines() if line.startswith("| not comparable")]
    assert rows and all(line.rstrip().endswith("| threads: 1 vs 2 |") for line in rows), done.stdout
    assert "['" not in done.stdout
    report = archbench("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "-f", "json")
    assert report.returncode == 0
    notes = {c["note"] for c in json.loads(report.stdout)["changes"]}
    assert notes == {"threads: 1 vs 2"}


# --- conflicting and duplicate records ------------------------------------------------------------------------

ENV = {"cpu": "Test CPU", "gpu": None, "device": "cpu", "threads": 2, "torch": "2.14.1", "dtype": "float32"}
POINT = {"batch": 1, "input": "1x28x28"}


def doc(*records: Record, env=ENV) -> RunDocument:
    return RunDocument(env=dict(env), records=list(records), meta={"suite": "t"})


def macs(value, unit="MAC") -> Record:
    return Record("mlp", "macs", value, unit, POINT, case="mlp")


def test_a_run_holding_two_values_for_one_figure_is_refused():
    from archbench.report.compare import compare_runs

    with pytest.raises(UserError, match="current: figure macs of mlp .* recorded twice"):
        compare_runs(doc(macs(100)), doc(macs(100), macs(200)))
    with pytest.raises(UserError, match="baseline"):
        compare_runs(doc(macs(100), macs(100, "FLOP")), doc(macs(100)))
    assert not compare_runs(doc(macs(100), macs(100)), doc(macs(100))).failed  # the same record twice is one


def test_a_figure_whose_unit_changed_is_a_failing_row():
    from archbench.report.compare import compare_runs

    comparison = compare_runs(doc(macs(100)), doc(macs(100, "FLOP")))
    assert comparison.failed
    (change,) = comparison.changes
    assert change.status == "changed" and change.note == "unit MAC -> FLOP: not the same figure"


def test_the_compare_command_names_the_file_of_a_conflict(tmp_path):
    (tmp_path / "a.json").write_text(doc(macs(100)).to_json())
    (tmp_path / "b.json").write_text(doc(macs(100), macs(200)).to_json())
    line = one_line(archbench("compare", str(tmp_path / "a.json"), str(tmp_path / "b.json")), 2)
    assert line.startswith(f"error: {tmp_path / 'b.json'}: figure macs of mlp")


def shard(case_ids, *records) -> RunDocument:
    meta = {"suite": "t", "suite_digest": "d", "cases": [{"id": c} for c in case_ids], "complete": True,
            "suite_case_ids": ["mlp", "other"]}
    return RunDocument(env=dict(ENV), records=list(records), meta=meta)


def test_merge_refuses_one_figure_from_two_shards():
    from archbench.runner import merge_runs

    with pytest.raises(UserError, match="figure macs of case 'mlp' .* is in both a.json and b.json"):
        merge_runs([("a.json", shard(["mlp"], macs(100))), ("b.json", shard(["other"], macs(100)))])
    with pytest.raises(UserError, match="is in a.json twice"):
        merge_runs([("a.json", shard(["mlp"], macs(100), macs(100))), ("b.json", shard(["other"]))])


@pytest.mark.parametrize("env", [
    {**ENV, "cpu": ["Test CPU"]}, {**ENV, "threads": {"n": 2}},
])
@pytest.mark.parametrize("command", ["compare", "merge"])
def test_a_machine_of_lists_or_objects_is_refused_when_read(tmp_path, env, command):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(shard(["mlp"], macs(100)).to_json())
    document = shard(["other"], Record("mlp", "macs", 100, "MAC", POINT, case="other", env="m1"))
    document.envs = {"m1": env}
    bad.write_text(document.to_json())
    args = ["merge", str(good), str(bad), "--out", str(tmp_path / "m.json")] if command == "merge" else \
        ["compare", str(good), str(bad)]
    line = one_line(archbench(*args), 2)
    assert "envs.m1." in line and "must be a string, number, boolean or null" in line


# --- nothing finished is lost, and an interrupted run resumes -------------------------------------------------

def counting_suite(tmp_path: Path, n: int) -> Path:
    """``n`` cases of counts (params, flops) on mlp:hidden=1..n: fast, and exact on every run."""
    cases = "".join(f"  - {{id: c{i}, model: 'mlp:hidden={i + 1}', metrics: [params, flops]}}\n" for i in range(n))
    path = tmp_path / "resume.yaml"
    path.write_text(f"name: resume\ncases:\n{cases}")
    return path


def figures(document: RunDocument) -> dict[tuple, object]:
    """The set of records as (case, metric, point) -> value."""
    return {(r.case, r.metric, json.dumps(r.point, sort_keys=True)): r.value for r in document.records}


def kill_after_records(args: list[str], journal: Path, records: int) -> None:
    """Start ``archbench ARGS``, SIGKILL it once its journal holds ``records`` record lines."""
    import signal
    import time

    earlier = journal.stat().st_ino if journal.exists() else None  # an earlier run's journal is not this one's
    process = subprocess.Popen([sys.executable, "-m", "archbench", *args], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run finished before it could be killed"
        try:
            if journal.stat().st_ino != earlier and journal.read_text().count('{"record"') >= records:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)


def test_a_run_killed_at_a_random_point_resumes_to_what_an_uninterrupted_run_gives(tmp_path):
    import random

    from archbench.results.record import load_run

    suite = counting_suite(tmp_path, 300)
    whole = tmp_path / "whole.json"
    assert archbench("run", str(suite), "--out", str(whole), "-f", "json").returncode == 0
    per_case = len(load_run(whole).records) // 300  # params, buffers, macs, flops... of one case
    out = tmp_path / "run.json"
    journal = tmp_path / "run.json.partial.jsonl"
    at = random.randint(1, per_case * 150)  # kill within the first half of the suite
    kill_after_records(["run", str(suite), "--out", str(out), "-f", "json"], journal, at)
    killed = load_run(journal)
    finished = killed.meta.get("finished_cases", [])
    assert not out.exists() and len(killed.records) >= at, at
    done = archbench("run", str(suite), "--out", str(out), "-f", "json", "--resume")
    assert done.returncode == 0, done.stderr
    kept = tmp_path / "run.json.partial.1.jsonl"
    assert f"resuming: {len(finished)} of 300 cases finished in {kept}" in done.stderr
    assert kept.is_file() and not journal.exists()  # the journal resumed from is kept, never deleted
    resumed, reference = load_run(out), load_run(whole)
    assert resumed.meta["complete"] is True
    assert len(resumed.records) == len(reference.records) == 300 * per_case
    assert figures(resumed) == figures(reference)
    assert [r.case for r in resumed.records] == [r.case for r in reference.records]


def test_a_second_run_keeps_the_earlier_journal_aside(tmp_path):
    from archbench.results.record import load_run

    suite = counting_suite(tmp_path, 300)
    out = tmp_path / "run.json"
    journal = tmp_path / "run.json.partial.jsonl"
    kill_after_records(["run", str(suite), "--out", str(out), "-f", "json"], journal, 20)
    first = journal.read_bytes()
    kill_after_records(["run", str(suite), "--out", str(out), "-f", "json"], journal, 30)
    assert (tmp_path / "run.json.partial.1.jsonl").read_bytes() == first  # kept as it was
    second = journal.read_bytes()
    small = write(tmp_path / "small.yaml", "name: resume\ncases:\n  - {id: c0, model: 'mlp:hidden=1', metrics: [params]}\n")
    done = archbench("run", str(small), "--out", str(out), "-f", "json")
    assert done.returncode == 0 and "is kept as" in done.stderr
    assert (tmp_path / "run.json.partial.1.jsonl").read_bytes() == first
    assert (tmp_path / "run.json.partial.2.jsonl").read_bytes() == second
    assert len(load_run(tmp_path / "run.json.partial.2.jsonl").records) >= 30


def test_resume_refuses_the_journal_of_another_suite_version(tmp_path):
    suite = counting_suite(tmp_path, 300)
    out = tmp_path / "run.json"
    kill_after_records(["run", str(suite), "--out", str(out), "-f", "json"], tmp_path / "run.json.partial.jsonl", 5)
    other = counting_suite(tmp_path, 3)
    line = one_line(archbench("run", str(other), "--out", str(out), "--resume"), 2)
    assert "cannot resume from" in line and "suite_digest" in line
    assert (tmp_path / "run.json.partial.jsonl").is_file()


# --- input errors that were internal errors -------------------------------------------------------------------

@pytest.mark.parametrize(("shape", "fragment"), [
    ("3x32x32", "Given groups=1, weight of size [6, 1, 5, 5], expected input[1, 3, 32, 32] to have 1 channels"),
    ("1x2x2", "Kernel size can't be greater than actual input size"),
])
def test_a_registry_model_fed_an_input_it_refuses_is_one_line(shape, fragment):
    line = one_line(archbench("flops", "lenet5", "--input", shape), 2)
    assert line.startswith("error: lenet5: its forward failed: RuntimeError: ")
    assert fragment in line and line.endswith(f"(at batch=1, input={shape})")


def test_only_an_exception_torch_raised_in_a_forward_is_the_models():
    import torch
    from torch import nn

    from archbench.measure.run import raised_in_forward

    class Refuses(nn.Module):
        def forward(self, x):
            return torch.nn.functional.conv2d(x, torch.zeros(1, 2, 3, 3))

    try:
        Refuses()(torch.zeros(1, 1, 4, 4))
    except RuntimeError as exc:
        assert raised_in_forward(exc)
    assert not raised_in_forward(ValueError("not from a forward"))


@pytest.mark.parametrize(("text", "fragment"), [
    ('{"model_type": "gpt2", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deep"),
    ('{"model_type": "gpt2", "x": ' + "{\"a\": " * 100 + "1" + "}" * 100 + "}", "nested deeper than 64 levels"),
    ('{"model_type": "gpt2", "n_layer": ' + "9" * 5000 + "}", "an integer too long"),
])
def test_a_hostile_config_json_is_one_line(tmp_path, text, fragment):
    from archbench.models import resolve

    (tmp_path / "config.json").write_text(text)
    with pytest.raises(UserError, match=fragment):
        resolve(f"hf:{tmp_path / 'config.json'}").build()


def test_a_5000_digit_integer_in_a_run_document_or_a_journal_is_one_line(tmp_path):
    from archbench.results.record import load_run

    record = '{"model": "m", "metric": "params", "value": ' + "9" * 5000 + ', "unit": "count"}'
    (tmp_path / "run.json").write_text('{"schema_version": 1, "env": {}, "meta": {}, "records": [' + record + "]}")
    with pytest.raises(UserError, match="run.json: holds an integer too long"):
        load_run(tmp_path / "run.json")
    journal = tmp_path / "x.json.partial.jsonl"
    journal.write_text('{"run": {"schema_version": 1, "env": {}, "meta": {}}}\n{"record": ' + record + "}\n")
    with pytest.raises(UserError, match="line 2 holds an integer too long"):
        load_run(journal)


def test_a_vocabulary_of_no_tokens_is_one_line():
    from archbench.models.subject import InputSpec, make_inputs

    with pytest.raises(UserError, match="a vocabulary of 0 tokens has no token ids to draw"):
        make_inputs(InputSpec("tokens", (8,), extra={"vocab": 0}), 1, "cpu")
    with pytest.raises(UserError, match="an input of shape 1x0x224x224 holds nothing"):
        make_inputs(InputSpec("image", (0, 224, 224)), 1, "cpu")


@pytest.mark.parametrize(("line", "message"), [
    ('head: "yes"', "cases[0].head: expected one of true, false, got 'yes'"),
    ("head: null", "cases[0].head: expected one of true, false, got None"),
    ("head: 1", "cases[0].head: expected one of true, false, got 1"),
    ("phase: 3", "cases[0].phase: expected one of prefill, decode, train, got 3"),
    ("attention_count: true", "cases[0].attention_count: expected one of full, causal, got True"),
    ("dtype: null", "cases[0].dtype: expected one of"),
    ("input: {a: 1}", "cases[0].input: expected a single value, got a mapping"),
    ("batch: " + "9" * 5000, "cases[0].batch: a number of 5,000 characters is too long"),
])
def test_every_suite_field_is_typed(tmp_path, line, message):
    from archbench.suite import load_suite

    path = write(tmp_path / "s.yaml", f"cases:\n  - model: lenet5\n    metrics: [params]\n    {line}\n")
    with pytest.raises(UserError) as raised:
        load_suite(path)
    assert str(raised.value) == f"{path}:4: {message}" or str(raised.value).startswith(f"{path}:4: {message}")


def test_a_suite_description_is_a_string(tmp_path):
    from archbench.suite import load_suite

    path = write(tmp_path / "s.yaml", "description: {a: 1}\ncases:\n  - {model: lenet5, metrics: [params]}\n")
    with pytest.raises(UserError, match="description: expected a single value, got a mapping"):
        load_suite(path)


# --- the machine's state: a full disk, no temporary folder ----------------------------------------------------

@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("args", [("params", "lenet5"), ("params", "lenet5", "-f", "json"), ("list",)])
def test_stdout_on_a_full_device_is_a_machine_error(args):
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "archbench", *args], stdout=full, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert one_line(done, 1) == "error: cannot write the output: No space left on device"


@pytest.fixture
def full_disk(tmp_path):
    """A full 256 KiB tmpfs holding a previous good ``run.json`` (root and mount needed), else skip."""
    point = tmp_path / "mnt"
    point.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(point)],
                                           capture_output=True).returncode != 0:
        pytest.skip("needs root and mount for a tmpfs")
    (point / "run.json").write_text("previous good run\n")
    with open(point / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 4096)
        except OSError:
            pass
    yield point
    subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_a_full_disk_under_the_out_of_run_scaling_and_merge_is_a_machine_error(tmp_path, full_disk):
    suite = write(tmp_path / "tiny.yaml", TINY_SUITE.replace("latency]", "]"))
    shards = []
    for i in (1, 2):
        shards.append(str(tmp_path / f"shard{i}.json"))
        assert archbench("run", str(suite), "--shard", f"{i}/2", "--out", shards[-1], "-f", "json").returncode == 0
    out = full_disk / "run.json"
    for args in (["run", str(suite)], ["scaling", "-m", "lstm", "--seq", "8..16", "--points", "2"], ["merge", *shards]):
        line = one_line(archbench(*args, "--out", str(out), "-f", "json") if args[0] != "merge" else
                        archbench(*args, "--out", str(out)), 1)
        assert line.startswith(f"error: cannot write {out}") and line.endswith("No space left on device"), args
        assert out.read_text() == "previous good run\n"
        assert not out.with_name("run.json.lock").exists()


def test_the_lock_on_a_full_disk_is_a_machine_error(tmp_path, monkeypatch):
    import errno

    from archbench.errors import MachineError
    from archbench.results.journal import OutputLock

    def no_space(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "ftruncate", no_space)
    with pytest.raises(MachineError, match=r"cannot write .*run.json.lock: No space left on device"):
        OutputLock(tmp_path / "run.json")
    monkeypatch.undo()
    OutputLock(tmp_path / "run.json").release()  # the failed one let go of its lock


def test_the_internal_error_log_never_raises(monkeypatch, tmp_path):
    import tempfile

    from archbench.cli.common import write_traceback

    def no_temporary_folder():
        raise FileNotFoundError("No usable temporary directory found")

    monkeypatch.setenv("XDG_STATE_HOME", "/proc/no-such-place")
    monkeypatch.setattr(tempfile, "gettempdir", no_temporary_folder)
    assert write_traceback("Traceback ...") == "no log file: none could be written; rerun with --debug"


# --- hangs ------------------------------------------------------------------------------------------------

SLEEPY = """
    import time

    import torch
    from torch import nn


    class Sleepy(nn.Module):
        def forward(self, x):
            time.sleep(600)
            return x


    def build():
        return Sleepy(), torch.zeros(1, 4)
"""


def test_a_forward_that_sleeps_for_minutes_is_a_latency_error_row(tmp_path):
    import time

    from archbench.measure.run import Settings, measure

    path = write(tmp_path / "sleepy.py", SLEEPY)
    start = time.monotonic()
    (record,) = measure(f"{path}:build", ["latency"], Settings(min_time=0.01, timeout_s=1.0))
    assert time.monotonic() - start < 30
    assert record.metric == "latency_s" and record.value is None
    assert record.error.endswith("TimingTimeout: timed out after 1 s (the limit of --timeout-s / timeout_s)")


def test_the_latency_command_takes_a_timeout(tmp_path):
    path = write(tmp_path / "sleepy.py", SLEEPY)
    done = archbench("latency", f"{path}:build", "--timeout-s", "2", "--min-time", "0.01", "-f", "json", timeout=90)
    assert done.returncode == 0, done.stderr
    (record,) = json.loads(done.stdout)["records"]
    assert record["error"].endswith("TimingTimeout: timed out after 2 s (the limit of --timeout-s / timeout_s)")
    assert one_line(archbench("latency", "mlp", "--timeout-s", "0"), 2).startswith("error: --timeout-s must be positive")


def test_a_ray_address_where_nothing_listens_is_refused_within_15_s(tmp_path):
    pytest.importorskip("ray")
    import time

    suite = write(tmp_path / "tiny.yaml", TINY_SUITE)
    start = time.monotonic()
    done = archbench("run", str(suite), "--executor", "ray", "--address", "127.0.0.1:1", "--out",
                     str(tmp_path / "run.json"), timeout=60)
    assert time.monotonic() - start < 15
    assert one_line(done, 2) == "error: cannot reach the Ray cluster at 127.0.0.1:1: Connection refused"


def test_a_ray_client_address_without_the_client_says_how_to_install_it(monkeypatch):
    pytest.importorskip("ray")
    from archbench.executors.ray_executor import check_reachable

    monkeypatch.setitem(sys.modules, "grpc", None)  # not installed
    with pytest.raises(UserError, match=r"a ray:// address needs Ray's client.*pip install 'ray\[client\]'"):
        check_reachable("ray://head:10001")


# --- a sweep with a point that cannot fit ---------------------------------------------------------------------

def test_a_sweep_measures_the_points_that_fit_and_gives_the_other_an_error_row(tmp_path, monkeypatch):
    """transformer:layers=2 at T=32,768 makes a batch x heads x T x T float32 score tensor:
    1 x 8 x 32768² x 4 bytes = 34,359,738,368 bytes; on a machine offering 1 GiB it cannot fit, T=64 and 128 can."""
    from archbench.models import footprint

    monkeypatch.setattr(footprint, "available_memory_bytes", lambda device: 2**30)
    from archbench.measure.run import Settings
    from archbench.measure.scaling import run_sweep

    records = run_sweep(["transformer:layers=2"], [64, 128, 32768], ["latency"], axis="seq",
                        settings=Settings(min_time=0.01))
    latency = {r.point["seq"]: r for r in records if r.metric == "latency_s"}
    assert latency[64].value > 0 and latency[128].value > 0
    assert latency[32768].value is None
    assert "one forward makes a 34,359,738,368-byte tensor" in latency[32768].error
    assert "refused before allocating" in latency[32768].error


# --- a verdict must not flip with the machine's load --------------------------------------------------------

SEQ = [256, 512, 1024, 2048]


def quadratic_samples(spread: float, n: int = 30) -> list[list[float]]:
    """Per-point samples of a time ∝ T² (1 ms at T=256), each spread uniformly ±``spread`` around it."""
    import numpy as np

    rng = np.random.default_rng(1)
    return [list(1e-3 * (t / 256) ** 2 * (1 + spread * rng.uniform(-1, 1, n))) for t in SEQ]


def test_a_tight_spread_gives_a_narrow_exponent_interval_around_the_fit():
    from archbench.claims.uncertainty import exponent_interval

    low, high = exponent_interval(SEQ, quadratic_samples(0.01))
    assert low < 2.0 < high and high - low < 0.02  # ±1 % per sample over a ×8 range: slope 2 ± log(1.02)/log(8)


def test_a_wide_spread_leaves_a_timing_check_inconclusive_and_a_tight_one_decided():
    """The C13 rule: a quadratic model's exponent must exceed a linear one's (1.0) by 0.5 (here: exponent > 1.5).
    With samples spread ±95 % the median of a point can move by a large factor, and the interval straddles 1.5."""
    from archbench.claims.checks import HOLDS, INCONCLUSIVE, run_check, verdict
    from archbench.claims.uncertainty import exponent_interval

    check = {"kind": "true", "says": "quadratic", "figure": "s.latency_s_exponent.tf > 1.5"}
    for spread, status in ((0.01, HOLDS), (0.95, INCONCLUSIVE)):
        samples = quadratic_samples(spread, n=3)
        interval = exponent_interval(SEQ, samples)
        figures = {"s.latency_s_exponent.tf": 2.0}
        result = run_check(check, figures, {"s.latency_s_exponent.tf": interval})
        assert result.status == status, (spread, interval)
        assert verdict([result]) == status
    assert result.passed is None and result.note.startswith("inconclusive (timing too noisy: s.latency_s_exponent.tf in [")
    assert result.note.endswith("rerun with a larger --min-time")


def test_count_checks_are_unaffected_by_timing_intervals():
    from archbench.claims.checks import HOLDS, REFUTED, run_check

    check = {"kind": "true", "says": "counts", "figure": "m.macs.tf > 100"}
    intervals = {"s.latency_s_exponent.tf": (0.5, 3.0)}
    assert run_check(check, {"m.macs.tf": 200}, intervals).status == HOLDS
    assert run_check(check, {"m.macs.tf": 50}, intervals).status == REFUTED


def test_the_report_counts_the_inconclusive_checks_and_suggests_a_longer_min_time():
    from archbench.claims.checks import CheckResult
    from archbench.claims.report import inconclusive_note

    class Outcome:
        checks = [CheckResult("a", None, "inconclusive", ""), CheckResult("b", True, "holds", "")]

    (_, line) = inconclusive_note([Outcome(), Outcome()])
    assert line.startswith("2 checks inconclusive") and "larger `--min-time`" in line
    assert inconclusive_note([]) == []
