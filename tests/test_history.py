"""The history store, its series and steps (found by compare), the plot, the CI exports and compare --format github.

The main test builds a real git repository with a model file, makes 8 commits (three of them change
the model's counts) and runs a small suite at each; `history show` must find exactly those three
commits, with before/after figures worked out by hand below.
"""

import json
import math
import os
import subprocess

import pytest

from archbench.report.history import build_history
from archbench.results.record import Record, RunDocument, load_run
from archbench.results.store import open_store, ordered_runs

MODEL = '''\
import torch
from torch import nn

WIDTH = {width}
BLOCKS = {blocks}


def build():
    """{doc}"""
    layers = [nn.Linear(8, WIDTH)]
    for _ in range(BLOCKS):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]
    layers.append(nn.Linear(WIDTH, 4))
    return nn.Sequential(*layers), torch.randn(1, 8)
'''

SUITE = """\
name: tiny
defaults: {device: cpu}
cases:
  - {id: net, model: 'model.py:build', metrics: [params, flops]}
  - {id: mlp, model: 'mlp:hidden=8', metrics: [params, flops]}
"""


def closed_forms(width, blocks):
    """8 -> W, BLOCKS x (W -> W, ReLU), W -> 4, batch 1, worked out by hand.

    params: weights and biases of each Linear; MACs: one per weight; other FLOPs: one per bias
    add and one per ReLU output (archbench's convention for elementwise work); bytes moved: each
    Linear(in, out) reads its input, weight and bias and writes its output (in + in·out + 2·out
    float32 elements), each ReLU reads and writes its W elements.
    """
    w, b = width, blocks
    params = (8 * w + w) + b * (w * w + w) + (4 * w + 4)
    macs = 8 * w + b * w * w + 4 * w
    elements = (8 + 8 * w + 2 * w) + b * ((w + w * w + 2 * w) + 2 * w) + (w + 4 * w + 2 * 4)
    return {"params": params, "params_trainable": params, "macs": macs, "flops": 2 * macs,
            "other_flops": (w + b * w + 4) + b * w, "bytes_moved": 4 * elements}


# (width, blocks, docstring, extra files, message): commits 3, 5 and 7 change a count
COMMITS = [
    (16, 2, "A small MLP.", {"suite.yaml": SUITE}, "first model"),
    (16, 2, "A small MLP.", {"README.md": "# tiny\n"}, "a README"),
    (32, 2, "A small MLP.", {}, "a wider layer"),
    (32, 2, "A small MLP, built from blocks.", {}, "a docstring"),
    (32, 3, "A small MLP, built from blocks.", {}, "one more block"),
    (32, 3, "A small MLP, built from blocks.", {"NOTES.txt": "notes\n"}, "notes"),
    (48, 3, "A small MLP, built from blocks.", {}, "wider again"),
    (48, 3, "A small MLP of blocks.", {}, "a docstring again"),
]


def git(repo, *args, date=None):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    if date:
        env.update(GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    out = subprocess.run(["git", "-c", "commit.gpgsign=false", "-C", str(repo), *args], env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip()


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """The 8-commit repository, a run of the suite at each commit (from a checkout of it), all added to a store."""
    from typer.testing import CliRunner

    from archbench.cli import app

    root = tmp_path_factory.mktemp("history")
    repo, store = root / "repo", root / "store"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commits, added = [], []
    for day, (width, blocks, doc, files, message) in enumerate(COMMITS, 1):
        (repo / "model.py").write_text(MODEL.format(width=width, blocks=blocks, doc=doc))
        for name, text in files.items():
            (repo / name).write_text(text)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", message, date=f"2026-01-{day:02d}T12:00:00+00:00")
        commits.append(git(repo, "rev-parse", "HEAD"))
    runner = CliRunner()
    cwd = os.getcwd()
    for i, commit in enumerate(commits, 1):
        checkout = root / f"checkout-{i}"  # what CI has: the project at that commit, archbench run from inside it
        git(repo, "worktree", "add", "-q", "--detach", str(checkout), commit)
        run = root / f"run-{i}.json"
        os.chdir(checkout)
        try:
            result = runner.invoke(app, ["run", "suite.yaml", "--out", str(run), "--format", "json", "--allow-code"])
        finally:
            os.chdir(cwd)
        assert result.exit_code == 0, result.output
        result = runner.invoke(app, ["history", "add", str(run), "--store", str(store)])
        assert result.exit_code == 0, result.output
        added.append(result.stdout)
    return {"root": root, "store": store, "commits": commits, "added": added, "runner": runner, "app": app}


def test_each_run_records_its_project_commit_and_is_filed_under_it(project):
    commits = project["commits"]
    for i, commit in enumerate(commits, 1):
        env = load_run(project["root"] / f"run-{i}.json").env
        assert env["project_commit"] == commit and env["project_commit_date"] == f"2026-01-{i:02d}T12:00:00+00:00"
        assert project["added"][i - 1].startswith(f"added {project['root'] / f'run-{i}.json'} as commit {commit[:7]}")
    store = open_store(project["store"])
    assert store.suite == "tiny" and [e.commit for e in store.entries] == commits


def test_history_finds_exactly_the_commits_that_changed_a_count(project):
    commits = project["commits"]
    history = build_history(ordered_runs(open_store(project["store"])))
    # commits 3 (16 -> 32 wide), 5 (2 -> 3 blocks) and 7 (32 -> 48 wide); the others change no count
    expected = {commits[2]: ((16, 2), (32, 2)), commits[4]: ((32, 2), (32, 3)), commits[6]: ((32, 3), (48, 3))}
    assert {s.entry.commit for s in history.steps} == set(expected)
    assert all(s.change.case == "net" and s.change.status == "changed" for s in history.steps)
    for commit, (before, after) in expected.items():
        found = {s.change.metric: (s.change.baseline, s.change.current) for s in history.steps
                 if s.entry.commit == commit}
        old, new = closed_forms(*before), closed_forms(*after)
        assert found == {m: (old[m], new[m]) for m in old if old[m] != new[m]}
        assert next(s.previous.commit for s in history.steps if s.entry.commit == commit) == \
            commits[commits.index(commit) - 1]
    assert history.events == [] and history.not_significant == 0
    # the series: each run's params equal the closed form of its commit's model
    (params,) = [s for s in history.series.values() if (s.case, s.metric) == ("net", "params")]
    assert [p.value for p in params.points] == [closed_forms(w, b)["params"] for w, b, *_ in COMMITS]


def test_history_show_prints_the_steps_and_draws_the_plot(project):
    commits, store, root = project["commits"], project["store"], project["root"]
    invoke = project["runner"].invoke
    result = invoke(project["app"], ["history", "show", "--store", str(store), "--plot", str(root / "h.png")])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("history of suite tiny: 8 runs of 8 commits, 2026-01-01 to 2026-01-08, 1 machine\n")
    assert "steps (18):" in out  # 6 changed figures (params, params_trainable, macs, flops, other_flops,
    # bytes_moved) x 3 commits
    step_lines = [line for line in out.splitlines() if " changed " in line]
    assert {line.split()[0] for line in step_lines} == {commits[i][:7] for i in (2, 4, 6)}
    # 16 -> 32 wide: params 756 -> 2,532
    assert any(line.split()[:2] == [commits[2][:7], "2026-01-03"] and "params " in line and
               f"{closed_forms(16, 2)['params']:,}" in line and f"{closed_forms(32, 2)['params']:,}" in line
               for line in step_lines)
    png = (root / "h.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    result = invoke(project["app"], ["history", "show", "--store", str(store), "--case", "net", "--metric", "macs",
                                     "--plot", str(root / "h.html")])
    assert result.exit_code == 0, result.output
    assert "steps (3):" in result.stdout and "mlp" not in result.stdout
    page = (root / "h.html").read_text()
    assert page.count("<svg") == 1 and page.count("<li>") == 3 and commits[4][:7] in page


def test_adding_a_run_twice_is_one_entry(project, tmp_path):
    store = tmp_path / "store"
    invoke = project["runner"].invoke
    run = str(project["root"] / "run-1.json")
    assert invoke(project["app"], ["history", "add", run, "--store", str(store)]).exit_code == 0
    index = (store / "index.json").read_text()
    result = invoke(project["app"], ["history", "add", run, "--store", str(store)])
    assert result.exit_code == 0 and result.stdout.startswith("already in the store:")
    assert (store / "index.json").read_text() == index
    assert len(open_store(store).entries) == 1 and len(list((store / "runs").iterdir())) == 1
    assert not any(p.name.endswith(".lock") or p.name.startswith(".archbench-tmp") for p in store.iterdir())


# ---- synthetic documents ------------------------------------------------------------------------

MACHINE_A = {"cpu": "Test CPU A", "gpu": None, "device": "cpu", "threads": 1, "torch": "2.14.1", "dtype": "float32"}
MACHINE_B = {**MACHINE_A, "cpu": "Test CPU B"}
POINT = {"batch": 1, "input": "3x64x64"}


def synthetic(day, samples, machine=MACHINE_A, macs=1_000_000, suite="s", value=None, **meta):
    """A finished run of suite ``suite`` at commit ``<day><day>...`` (40 hex digits): macs, latency_s (the median
    of ``samples``, or ``value``) with its samples, and the throughput derived from it."""
    median = sorted(samples)[len(samples) // 2] if value is None else value
    env = {**machine, "project_commit": f"{day:x}" * 40, "project_commit_date": f"2026-02-{day:02d}T00:00:00+00:00"}
    return RunDocument(env=env, meta={"suite": suite, "complete": True, **meta}, records=[
        Record("m", "macs", macs, "MAC", POINT, case="c"),
        Record("m", "latency_s", median, "s", POINT, details={"samples": samples}, case="c"),
        Record("m", "throughput_items_s", 1 / median, "items/s", POINT, case="c"),
    ])


def add_all(cli, tmp_path, documents):
    store = tmp_path / "store"
    for i, document in enumerate(documents):
        path = tmp_path / f"run{i}.json"
        path.write_text(document.to_json())
        result = cli("history", "add", str(path), "--store", str(store))
        assert result.exit_code == 0, result.output
    return store


FAST = [0.010, 0.011, 0.012, 0.013, 0.014]
SLOW = [0.015, 0.016, 0.017, 0.018, 0.019]


def test_a_timing_step_needs_the_same_machine_the_threshold_and_significance(cli, tmp_path):
    documents = [
        synthetic(1, FAST),
        synthetic(2, FAST),
        synthetic(3, [3 * s for s in FAST], machine=MACHINE_B),  # 3x slower, but another machine
        synthetic(4, FAST),
        synthetic(5, SLOW),  # +41.7% median, every sample slower: a step
        synthetic(6, SLOW, value=0.017 * 1.15),  # 15% past its samples' median, samples the same: not significant
    ]
    store = add_all(cli, tmp_path, documents)
    history = build_history(ordered_runs(open_store(store)))
    # run 5: latency up and throughput down, both past 10% and significant: two regressions, nothing else
    steps = sorted((s.entry.commit[-1], s.change.metric, s.change.status) for s in history.steps)
    assert steps == [("5", "latency_s", "regressed"), ("5", "throughput_items_s", "regressed")]
    step = next(s for s in history.steps if s.change.metric == "latency_s")
    assert step.previous.commit == "4" * 40  # run 3 was on machine B: run 4 is the one before on A
    # 5 samples all above 5 others: the one-sided Mann–Whitney exact p-value is 1 / C(10, 5) = 1/252
    assert step.change.p_value == pytest.approx(1 / 252)
    assert (step.change.baseline, step.change.current) == (0.012, 0.017)
    # run 6: latency and throughput beyond 10% but not significant (identical samples)
    assert history.not_significant == 2
    # the IQR of run 1's latency: quartiles of 10..14 ms by linear interpolation are 11 and 13 ms
    (latency,) = [s for s in history.series.values() if s.metric == "latency_s"]
    assert latency.points[0].spread == pytest.approx((0.011, 0.013))
    assert [p.machine for p in latency.points].count(latency.points[2].machine) == 1
    # throughput = 1 / latency: its quartiles are 1/13 ms and 1/11 ms
    (throughput,) = [s for s in history.series.values() if s.metric == "throughput_items_s"]
    assert throughput.points[0].spread == pytest.approx((1 / 0.013, 1 / 0.011))
    result = cli("history", "show", "--store", str(store), "--metric", "latency*")
    assert result.exit_code == 0, result.output
    assert "1 timing figure past its threshold but not significant" in result.stdout  # latency; throughput filtered
    assert "0.011..0.013" in result.stdout and "Mann-Whitney p=0.00397" in result.stdout


def test_a_count_step_is_found_across_machines(cli, tmp_path):
    store = add_all(cli, tmp_path, [synthetic(1, FAST), synthetic(2, FAST, machine=MACHINE_B, macs=2_000_000)])
    history = build_history(ordered_runs(open_store(store)), metric="macs")
    assert [(s.change.metric, s.change.baseline, s.change.current) for s in history.steps] == \
        [("macs", 1_000_000, 2_000_000)]


def test_history_orders_runs_by_commit_date_not_by_when_they_were_added(cli, tmp_path):
    store = add_all(cli, tmp_path, [synthetic(2, FAST, macs=2), synthetic(1, FAST, macs=1), synthetic(3, FAST, macs=3)])
    runs = ordered_runs(open_store(store))
    assert [entry.commit[-1] for entry, _ in runs] == ["1", "2", "3"]


@pytest.mark.parametrize("meta, env, fragment", [
    ({"suite": "other"}, {}, "is a run of suite 'other'; the store"),
    ({"complete": False}, {}, "did not finish"),
    ({"interrupted": True}, {}, "interrupted"),
    ({"shard": "1/2"}, {}, "shard 1/2 of a run; merge the shards first"),
    ({"suite": None}, {}, "not a suite run"),
    ({}, {"project_commit": None}, "names no project commit"),
])
def test_history_add_refuses_a_run_it_cannot_hold(cli, tmp_path, meta, env, fragment):
    store = add_all(cli, tmp_path, [synthetic(1, FAST)])
    document = synthetic(2, FAST)
    document.meta.update(meta)
    document.env.update(env)
    path = tmp_path / "bad.json"
    path.write_text(document.to_json())
    result = cli("history", "add", str(path), "--store", str(store))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0]
    assert len(open_store(store).entries) == 1


def test_history_add_refuses_a_journal(cli, tmp_path):
    journal = tmp_path / "run.json.partial.jsonl"
    document = synthetic(1, FAST)
    journal.write_text(json.dumps({"run": {"schema_version": 1, "env": document.env, "meta": document.meta}}) + "\n")
    result = cli("history", "add", str(journal), "--store", str(tmp_path / "store"))
    assert result.exit_code == 2 and "journal of a run that did not finish" in result.stderr


def test_history_show_of_an_empty_or_missing_store_is_one_line(cli, tmp_path):
    result = cli("history", "show", "--store", str(tmp_path / "none"))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "no runs" in result.stderr
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "index.json").write_text("[1, 2]")
    result = cli("history", "show", "--store", str(tmp_path / "bad"))
    assert result.exit_code == 2 and "not an archbench history index" in result.stderr


# ---- exports -------------------------------------------------------------------------------------

def export_store(cli, tmp_path):
    documents = [synthetic(1, FAST), synthetic(2, SLOW, macs=3_000_000)]
    sweep = [Record("t", "macs", 100 * seq, "MAC", {"batch": 1, "seq": seq}, case="sweep") for seq in (128, 256)]
    documents[1].records += sweep + [Record("t", "params", None, "count", {"batch": 1}, case="broken",
                                            error="RuntimeError: boom")]
    return add_all(cli, tmp_path, documents)


def test_export_github_action_benchmark_is_custom_smaller_is_better(cli, tmp_path):
    store = export_store(cli, tmp_path)
    result = cli("history", "export", "--store", str(store), "--format", "github-action-benchmark")
    assert result.exit_code == 0, result.output
    benches = json.loads(result.stdout)
    assert [b["name"] for b in benches] == ["c macs", "c latency_s", "sweep [seq=128] macs", "sweep [seq=256] macs"]
    assert all(set(b) <= {"name", "unit", "value", "range", "extra"} and isinstance(b["value"], (int, float))
               for b in benches)
    assert benches[0] == {"name": "c macs", "unit": "MAC", "value": 3_000_000, "extra": "commit 2222222, model m"}
    assert benches[1]["unit"] == "s" and benches[1]["value"] == 0.017 and benches[1]["range"] == "IQR 0.016 to 0.018"
    assert "throughput" in result.stderr and "larger is better" in result.stderr
    assert "broken params: failed (RuntimeError: boom)" in result.stderr
    # --commit picks an older run
    result = cli("history", "export", "--store", str(store), "--format", "github-action-benchmark",
                 "--commit", "1" * 10)
    assert json.loads(result.stdout)[0]["value"] == 1_000_000


def test_export_bencher_is_the_bencher_metric_format(cli, tmp_path):
    store = export_store(cli, tmp_path)
    out = tmp_path / "bmf.json"
    result = cli("history", "export", "--store", str(store), "--format", "bencher", "--out", str(out))
    assert result.exit_code == 0, result.output
    bmf = json.loads(out.read_text())
    # BMF: {benchmark: {measure: {"value": number, "lower_value"?: number, "upper_value"?: number}}}
    for benchmark, measures in bmf.items():
        for measure, metric in measures.items():
            assert "value" in metric and set(metric) <= {"value", "lower_value", "upper_value"}
            assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in metric.values())
            assert len(measure) <= 64
    assert bmf["c"]["macs"] == {"value": 3_000_000}
    assert bmf["c"]["latency_s"] == {"value": 0.017, "lower_value": 0.016, "upper_value": 0.018}
    thr = bmf["c"]["throughput_items_s"]
    assert thr["value"] == pytest.approx(1 / 0.017)
    assert (thr["lower_value"], thr["upper_value"]) == (pytest.approx(1 / 0.018), pytest.approx(1 / 0.016))
    assert bmf["sweep [seq=128]"] == {"macs": {"value": 12_800}}
    assert bmf["sweep [seq=256]"] == {"macs": {"value": 25_600}}
    assert "broken" not in bmf and "broken params: failed" in result.stderr


def test_export_run_gives_the_document_back_for_compare(cli, tmp_path):
    store = export_store(cli, tmp_path)
    out = tmp_path / "base.json"
    assert cli("history", "export", "--store", str(store), "--format", "run", "--commit", "1" * 40,
               "--out", str(out)).exit_code == 0
    assert load_run(out).to_json() == synthetic(1, FAST).to_json()
    result = cli("history", "export", "--store", str(store), "--format", "run", "--commit", "ffff")
    assert result.exit_code == 2 and "no run of commit ffff" in result.stderr
    result = cli("history", "export", "--store", str(store), "--format", "csv")
    assert result.exit_code == 2 and "unknown --format 'csv'" in result.stderr


# ---- compare --format github ---------------------------------------------------------------------

def test_compare_format_github_writes_the_job_summary(cli, tmp_path, monkeypatch):
    base, current = tmp_path / "base.json", tmp_path / "current.json"
    base.write_text(synthetic(1, FAST).to_json())
    changed = synthetic(2, FAST, macs=1_500_000)
    changed.records[0].model = "m|2"  # a | in a cell must not split the table
    current.write_text(changed.to_json())
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    result = cli("compare", str(base), str(current), "--format", "github")
    assert result.exit_code == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "### archbench compare: :x: failed" and lines[2] == "FAIL: 1 changed · 2 unchanged"
    row = next(line for line in lines if line.startswith("| changed"))
    assert row == "| changed | c | macs | batch=1, input=3x64x64 | 1,000,000 MAC | 1,500,000 MAC | " \
                  "+500,000 (+50.00%) | model m -> m\\|2 |"
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = cli("compare", str(base), str(base), "--format", "github")
    assert result.exit_code == 0 and result.stdout == "OK: nothing regressed · 3 unchanged\n"
    assert summary.read_text() == "earlier step\n### archbench compare: :white_check_mark: passed\n\n" \
                                  "OK: nothing regressed · 3 unchanged\n"


def test_project_commit_is_the_working_directory_s_repository(tmp_path):
    from archbench.results.env import project_commit

    assert project_commit(tmp_path) == {"project_commit": None, "project_commit_date": None}
    git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x")
    git(tmp_path, "add", "f")
    git(tmp_path, "commit", "-q", "-m", "x", date="2026-03-04T05:06:07+00:00")
    assert project_commit(tmp_path) == {"project_commit": git(tmp_path, "rev-parse", "HEAD"),
                                        "project_commit_date": "2026-03-04T05:06:07+00:00"}
