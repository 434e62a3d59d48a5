"""`archbench run --executor ray`: a real local Ray cluster (no mocks), started by the run in a subprocess.

The same counts as a local run, each record naming the machine (and thread count) it ran on, a
worker that SIGKILLs itself (retried once, then an error row while the rest finishes), and Ctrl-C
keeping what finished, the cluster's processes gone. Tests that need Ray are skipped without it.
"""

import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from archbench.executors.ray_executor import case_resources
from archbench.results.env import cpu_count
from archbench.results.record import load_run
from archbench.suite import load_suite

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed (pip install 'archbench[ray]')")
KILLER = Path(__file__).with_name("killer_model.py")


def mlp_params(hidden: int) -> int:
    """mlp:hidden=h on 1x28x28 is Linear(784, h) + Linear(h, 10): (784 + 1)·h + (h + 1)·10 parameters."""
    return 785 * hidden + (hidden + 1) * 10


def archbench(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "archbench", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # Ctrl-C as a terminal gives it


def write_suite(tmp_path: Path, name: str, cases: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ndefaults: {{device: cpu, min_time: 0.05}}\ncases:\n{cases}")
    return path


# ---- without a cluster -------------------------------------------------------------------------

def test_timed_cases_get_a_whole_device_and_counting_cases_one_cpu(tmp_path):
    suite = load_suite(write_suite(tmp_path, "resources", "  - {id: count, model: mlp, metrics: [params, flops]}\n"
                                   "  - {id: time, model: mlp, metrics: [params, latency]}\n"
                                   "  - {id: peak, model: mlp, metrics: [memory]}\n"))
    count, timed, peak = suite.cases
    gpu = replace(timed, settings=replace(timed.settings, device="cuda"))  # a suite names cuda only where it exists
    assert case_resources(count, 16) == {"num_cpus": 1}
    assert case_resources(timed, 16) == {"num_cpus": 16}
    assert case_resources(peak, 16) == {"num_cpus": 16}
    assert case_resources(gpu, 16) == {"num_cpus": 1, "num_gpus": 1}


def test_without_ray_the_executor_is_one_line_saying_how_to_install_it(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets where it is not installed
    suite = write_suite(tmp_path, "noray", "  - {model: mlp, metrics: [params]}\n")
    result = cli("run", str(suite), "--executor", "ray", "--out", str(tmp_path / "run.json"))
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("error: --executor ray needs Ray, which is not installed: "
                                     "pip install 'archbench[ray]'")
    assert not list(tmp_path.glob("run.json*"))  # refused before anything was written


def test_bad_executor_options_are_one_line_and_exit_2(cli, tmp_path):
    suite = write_suite(tmp_path, "options", "  - {model: mlp, metrics: [params]}\n")
    result = cli("run", str(suite), "--executor", "dask", "--out", str(tmp_path / "run.json"))
    assert result.exit_code == 2 and result.stderr.strip() == "error: unknown --executor 'dask'; expected local or ray"
    result = cli("run", str(suite), "--address", "ray://head:10001", "--out", str(tmp_path / "run.json"))
    assert result.exit_code == 2 and "give it with --executor ray" in result.stderr


# ---- a real local cluster ----------------------------------------------------------------------

ZOO_SUBSET = """\
  - {model: lenet5, metrics: [params, flops]}
  - {model: resnet50, metrics: [params, flops]}
  - {model: mobilenet_v2, metrics: [params, flops]}
  - {model: bert-base, seq: 128, metrics: [params, flops]}
  - {id: gpt3, model: gpt3-175b, seq: 2048, device: meta, metrics: [params]}
"""


@needs_ray
def test_ray_gives_exactly_the_counts_of_a_local_run(cli, tmp_path):
    suite = write_suite(tmp_path, "zoo-subset", ZOO_SUBSET)
    local, remote = tmp_path / "local.json", tmp_path / "ray.json"
    assert cli("run", str(suite), "--out", str(local), "--format", "json").exit_code == 0
    process = archbench("run", str(suite), "--executor", "ray", "--out", str(remote), "--format", "json")
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    compared = cli("compare", str(local), str(remote), "--deterministic-only")
    assert compared.exit_code == 0, compared.output
    document = load_run(remote)
    values = {(r.case, r.metric): r.value for r in document.records}
    assert values[("resnet50", "params")] == 25_557_032  # torchvision's published count
    assert values[("resnet50", "macs")] == 4_089_184_256  # torchvision's 4.089 GMACs
    assert values[("gpt3", "params")] == 174_604_259_328
    assert [r.case for r in document.records] == [r.case for r in load_run(local).records]  # the suite's order
    assert all(r.env in document.envs for r in document.records)
    assert {env["threads"] for env in document.envs.values()} == {1}  # counting tasks: one CPU, one thread


@needs_ray
def test_a_killed_worker_is_an_error_row_retried_once_and_the_rest_finishes(tmp_path):
    marker = tmp_path / "attempts.txt"
    suite = write_suite(tmp_path, "killed", f"  - {{id: small, model: 'mlp:hidden=8', metrics: [params]}}\n"
                                            f"  - {{id: killer, model: '{KILLER}:build', metrics: [params, flops]}}\n"
                                            f"  - {{id: timed, model: 'mlp:hidden=16', metrics: [params, latency]}}\n")
    out = tmp_path / "run.json"
    started = time.monotonic()
    process = archbench("run", str(suite), "--executor", "ray", "--out", str(out), "--format", "json",
                        "--allow-code", env={"ARCHBENCH_TEST_KILL": str(marker)})
    _, stderr = process.communicate(timeout=600)
    print(f"killed-worker run: {time.monotonic() - started:.1f} s")
    assert process.returncode == 0, stderr
    assert len(marker.read_text().splitlines()) == 2  # the first attempt and its one retry
    document = load_run(out)
    assert document.meta["complete"] is True
    killed = [r for r in document.records if r.case == "killer"]
    assert [(r.metric, r.value) for r in killed] == [("params", None), ("macs", None)]
    assert all("WorkerCrashedError" in r.error and "retried once" in r.error for r in killed)
    params = {r.case: r.value for r in document.records if r.metric == "params" and r.case != "killer"}
    assert params == {"small": mlp_params(8), "timed": mlp_params(16)}
    threads = {r.case: document.env_of(r)["threads"] for r in document.records if r.case != "killer"}
    assert threads == {"small": 1, "timed": cpu_count()}  # a timed case holds every CPU of the node
    latency = next(r for r in document.records if r.metric == "latency_s")
    assert latency.error is None and latency.value > 0 and latency.details["threads"] == cpu_count()


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc)."""
    children = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    return children


@needs_ray
def test_ctrl_c_ends_the_job_and_keeps_what_finished(tmp_path):
    cases = "".join(f"  - {{id: c{h}, model: 'mlp:hidden={h}', metrics: [params]}}\n" for h in range(1, 401))
    suite = write_suite(tmp_path, "interrupted", cases)
    out = tmp_path / "run.json"
    journal = tmp_path / "run.json.partial.jsonl"
    process = archbench("run", str(suite), "--executor", "ray", "--out", str(out), "--format", "json")
    deadline = time.monotonic() + 300
    while not (journal.is_file() and journal.read_text().count('{"record"') >= 20):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.1)
    cluster = _children(process.pid)  # the local cluster's processes, started by the run
    assert cluster
    stopped = time.monotonic()
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    print(f"Ctrl-C to exit: {time.monotonic() - stopped:.1f} s")
    assert process.returncode == 130, (process.returncode, stderr)
    assert f"finished records kept in {journal}; {out} is unchanged" in stderr
    assert "Traceback" not in stderr and not out.exists()
    document = load_run(journal)
    assert document.meta["interrupted"] is True
    params = {r.case: r.value for r in document.records if r.metric == "params"}
    assert 5 <= len(params) < 400
    assert all(value == mlp_params(int(case[1:])) for case, value in params.items())
    time.sleep(2)
    assert not [pid for pid in cluster if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text()]  # the cluster went with the run


def test_the_test_model_measures_like_any_file_model_when_not_told_to_die(cli, tmp_path, monkeypatch):
    monkeypatch.delenv("ARCHBENCH_TEST_KILL", raising=False)
    suite = write_suite(tmp_path, "file-model", f"  - {{id: linear, model: '{KILLER}:build', metrics: [params]}}\n")
    result = cli("run", str(suite), "--out", str(tmp_path / "run.json"), "--format", "json", "--allow-code")
    assert result.exit_code == 0, result.output
    params = {r.metric: r.value for r in load_run(tmp_path / "run.json").records}
    assert params["params"] == 4 * 4 + 4  # Linear(4, 4): weight and bias
