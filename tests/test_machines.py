"""Every record knows its machine: env ids, the envs table, merge keeping each shard's machine, compare per machine."""

import json

from archbench.report.compare import compare_runs
from archbench.results.env import env_id
from archbench.results.record import Record, RunDocument, RunWriter, load_run, write_run
from archbench.runner import merge_runs, new_run_document, run_cases
from archbench.suite import load_suite

HERE = {"cpu": "Test CPU 3000", "gpu": None, "device": "cpu", "threads": 2, "torch": "2.14.1", "dtype": "float32"}
THERE = {**HERE, "gpu": "Test GPU 80GB", "device": "cuda"}
POINT = {"batch": 1}
BASE_SAMPLES = [0.0100 + 0.0001 * (i % 5) for i in range(20)]


def timing(case, samples, env):
    return Record("mlp", "latency_s", sorted(samples)[10], "s", POINT, details={"samples": samples}, case=case,
                  env=env)


def mlp_params(hidden):
    """mlp:hidden=h on 1x28x28 is Linear(784, h) + Linear(h, 10)."""
    return (784 + 1) * hidden + (hidden + 1) * 10


def test_env_id_is_the_fingerprint_not_the_whole_env():
    assert env_id(HERE) == env_id({**HERE, "git_commit": "abc", "python": "3.12"})
    assert env_id(HERE) != env_id(THERE)
    assert len(env_id(HERE)) == 12


def test_a_timing_is_compared_only_with_one_from_an_equivalent_machine():
    here, there = env_id(HERE), env_id(THERE)
    baseline = RunDocument(env=HERE, envs={here: HERE}, meta={"suite": "s"}, records=[
        timing("a", BASE_SAMPLES, here), timing("b", BASE_SAMPLES, here),
        Record("mlp", "params", 101_770, "count", POINT, case="b", env=here)])
    slow = [t * 2 for t in BASE_SAMPLES]
    # case a measured again here (twice as slow: a regression), case b on the GPU machine (and a changed count)
    current = RunDocument(env=HERE, envs={here: HERE, there: THERE}, meta={"suite": "s"}, records=[
        timing("a", slow, here), timing("b", slow, there),
        Record("mlp", "params", 101_771, "count", POINT, case="b", env=there)])
    comparison = compare_runs(baseline, current)
    assert [(c.status, c.case, c.metric) for c in comparison.changes] == [
        ("regressed", "a", "latency_s"), ("changed", "b", "params"), ("not comparable", "b", "latency_s")]
    assert comparison.not_comparable == 1 and not comparison.timings_comparable
    assert comparison.machine_difference == ["gpu: None vs Test GPU 80GB", "device: cpu vs cuda"]
    assert comparison.changes[2].note == "gpu: None vs Test GPU 80GB; device: cpu vs cuda"  # one string


def test_a_record_naming_a_machine_its_run_lacks_is_not_comparable():
    here = env_id(HERE)
    baseline = RunDocument(env=HERE, envs={here: HERE}, meta={"suite": "s"}, records=[timing("a", BASE_SAMPLES, here)])
    current = RunDocument(env=HERE, envs={here: HERE}, meta={"suite": "s"}, records=[timing("a", BASE_SAMPLES, "zz")])
    (change,) = compare_runs(baseline, current).changes
    assert change.status == "not comparable" and change.note.startswith("machine unknown")


def test_documents_without_envs_stay_readable_and_comparable(tmp_path):
    """A document written before records named their machine: every record was measured on its ``env``."""
    old = {"schema_version": 1, "env": HERE, "meta": {"suite": "s"},
           "records": [timing("a", BASE_SAMPLES, None).to_dict()]}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    document = load_run(path)
    assert document.envs == {} and document.records[0].env is None
    assert document.env_of(document.records[0]) == HERE
    here = env_id(HERE)
    new = RunDocument(env=HERE, envs={here: HERE}, meta={"suite": "s"}, records=[timing("a", BASE_SAMPLES, here)])
    comparison = compare_runs(document, new)
    assert comparison.changes == [] and comparison.unchanged == 1
    assert "envs" not in json.loads(RunDocument(env=HERE).to_json())  # other commands' documents are unchanged


def suite_of(tmp_path, hiddens):
    cases = "".join(f"  - {{id: h{h}, model: 'mlp:hidden={h}', metrics: [params]}}\n" for h in hiddens)
    path = tmp_path / "machines.yaml"
    path.write_text(f"name: machines\ncases:\n{cases}")
    return load_suite(path)


def test_merge_keeps_every_shards_machine_and_each_record_names_its_own(tmp_path):
    suite = suite_of(tmp_path, [8, 9, 10, 11])
    shards = []
    for index, machine in ((1, HERE), (2, THERE)):
        cases = suite.shard(index, 2)
        document = new_run_document(suite, cases, (index, 2))
        document.env = {**document.env, **machine}  # as if shard 2 ran on the GPU machine
        run_cases(cases, RunWriter(document, tmp_path / f"shard{index}.json"))
        shards.append((f"shard{index}.json", load_run(tmp_path / f"shard{index}.json")))
    merged, warnings = merge_runs(shards)
    assert warnings == []
    write_run(merged, tmp_path / "merged.json")
    merged = load_run(tmp_path / "merged.json")
    assert set(merged.envs) == {env_id(HERE), env_id(THERE)}
    machine_of = {r.case: merged.env_of(r)["device"] for r in merged.records}
    assert machine_of == {"h8": "cpu", "h9": "cuda", "h10": "cpu", "h11": "cuda"}
    params = {r.case: r.value for r in merged.records if r.metric == "params"}
    assert params == {f"h{h}": mlp_params(h) for h in (8, 9, 10, 11)}


def test_merge_of_shards_written_before_records_named_machines(tmp_path):
    def shard(case, env):
        return RunDocument(env=env, meta={"suite": "s", "suite_digest": "1", "cases": [{"id": case}],
                                          "suite_case_ids": ["a", "b"], "complete": True},
                           records=[Record("mlp", "params", 1, "count", case=case)])

    merged, _ = merge_runs([("a.json", shard("a", HERE)), ("b.json", shard("b", THERE))])
    assert [merged.env_of(r)["device"] for r in merged.records] == ["cpu", "cuda"]
    assert "shard_envs" not in merged.meta


def test_the_journal_keeps_the_machines_as_they_arrive(tmp_path):
    writer = RunWriter(RunDocument(env=HERE, meta={"suite": "s"}), tmp_path / "run.json")
    there = writer.add_env(THERE)
    assert writer.add_env(dict(THERE)) == there  # journalled once
    writer.add(Record("mlp", "params", 1, "count", case="a", env=there))
    writer.abort()
    lines = (tmp_path / "run.json.partial.jsonl").read_text().count('{"envs"')
    assert lines == 1
    partial = load_run(tmp_path / "run.json.partial.jsonl")
    assert partial.envs == {there: THERE} and partial.env_of(partial.records[0]) == THERE
