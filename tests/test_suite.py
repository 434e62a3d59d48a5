"""Suite files: typed validation with file and line, default ids, shards; the runner and merging shards."""

import textwrap

import pytest

from conftest import stub_group

from archbench.errors import UserError
from archbench.results.record import RunDocument, RunWriter
from archbench.suite import load_suite, parse_shard


def write(tmp_path, text, name="suite.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


GOOD = """
    name: tiny
    defaults: {device: cpu, batch: 2, threads: 1, min_time: 0.1}
    cases:
      - model: lenet5
        metrics: [params]
      - id: small-lstm
        model: lstm:hidden=64,input=32
        seq: 16
        batch: 1
        metrics: [params, flops]
      - model: transformer:layers=1
        sweep: {axis: seq, range: 64..512, points: 4}
        metrics: [flops]
      - model: resnet18
        input: 3x64x64
        metrics: [params]
"""


def test_a_good_suite_is_typed(tmp_path):
    suite = load_suite(write(tmp_path, GOOD))
    assert suite.name == "tiny"
    assert [c.id for c in suite.cases] == [
        "lenet5", "small-lstm", "transformer:layers=1 seq=64..512", "resnet18 input=3x64x64",
    ]
    first, lstm, sweep, resnet = suite.cases
    assert first.settings.batch == 2 and first.settings.threads == 1 and first.settings.min_time == 0.1
    assert first.point == {"batch": 2, "input": "1x32x32"}
    assert lstm.settings.batch == 1 and lstm.point == {"batch": 1, "seq": 16}
    assert lstm.metrics == ("params", "flops")
    assert sweep.sweep.values == (64, 128, 256, 512)  # geometric, both ends included
    assert resnet.input == (3, 64, 64)
    assert [c.line for c in suite.cases] == [4, 6, 11, 14]


def test_anchors_and_merge_keys_work_as_in_safe_load(tmp_path):
    text = """
        cases:
          - &timed {model: lenet5, metrics: [params, latency], min_time: 0.5}
          - <<: *timed
            model: mlp
            min_time: 2.0
    """
    first, second = load_suite(write(tmp_path, text)).cases
    assert (first.model, first.metrics, first.settings.min_time) == ("lenet5", ("params", "latency"), 0.5)
    assert (second.model, second.metrics, second.settings.min_time) == ("mlp", ("params", "latency"), 2.0)


def test_suite_name_defaults_to_the_file_stem(tmp_path):
    suite = load_suite(write(tmp_path, "cases:\n  - {model: lenet5, metrics: [params]}\n", name="nightly.yaml"))
    assert suite.name == "nightly"


@pytest.mark.parametrize(
    "text, where, says",
    [
        ("cases:\n  - model: lenet5\n    metrics: [params]\n    colour: red\n", ":4: cases[0].colour", "unknown key"),
        ("name: x\ndefualts: {batch: 1}\ncases: []\n", ":2: defualts", "unknown key"),
        ("defaults:\n  batch: two\ncases:\n  - {model: lenet5, metrics: [params]}\n", ":2: defaults.batch",
         "positive integer"),
        ("defaults:\n  batch: true\ncases:\n  - {model: lenet5, metrics: [params]}\n", ":2: defaults.batch",
         "positive integer"),
        ("defaults:\n  device: tpu\ncases:\n  - {model: lenet5, metrics: [params]}\n", ":2: defaults.device",
         "cpu, meta, cuda"),
        ("cases:\n  - model: lenet5\n    metrics: [params]\n  - model: resnet5O\n    metrics: [params]\n",
         ":4: cases[1].model", "unknown model 'resnet5O'"),
        ("cases:\n  - model: lstm:hiden=3\n    metrics: [params]\n", ":2: cases[0].model", "unknown option"),
        ("cases:\n  - model: lenet5\n    metrics: [params, flop]\n", ":3: cases[0].metrics[1]", "expected one of"),
        ("cases:\n  - model: lstm\n    metrics: [flops]\n    sweep: {axis: seq, range: 512..64}\n",
         ":4: cases[0].sweep.range", "low end 512 is above high end 64"),
        ("cases:\n  - model: lstm\n    metrics: [flops]\n    sweep:\n      axis: seq\n      range: 64..x\n",
         ":6: cases[0].sweep.range", "not an integer"),
        ("cases:\n  - model: lenet5\n    metrics: [flops]\n    sweep: {axis: seq, range: 8..64}\n",
         ":4: cases[0].sweep.axis", "needs a sequence model"),
        ("cases:\n  - model: lstm\n    metrics: [params]\n    sweep: {axis: seq, range: 8..64}\n",
         ":3: cases[0].metrics[0]", "expected one of flops, latency, memory"),
        ("cases:\n  - model: lenet5\n    seq: 128\n    metrics: [params]\n", ":3: cases[0].seq", "sequence models"),
        ("cases:\n  - model: resnet18\n    input: 224x224\n    metrics: [params]\n", ":3: cases[0].input", "3 sizes"),
        ("cases:\n  - model: lenet5\n    metrics: params\n", ":3: cases[0].metrics", "expected a list"),
        ("cases:\n  - {model: lenet5, metrics: [params]}\n  - {model: lenet5, metrics: [flops]}\n",
         ":3: cases[1].id", "case id 'lenet5' already used on line 2"),
        ("cases:\n  - {model: lenet5}\n", ":2: cases[0]", "missing required key 'metrics'"),
        ("cases:\n  - {model: lenet5, metrics: [params], batch: 1, batch: 2}\n", ":2: cases[0].batch", "given twice"),
        ("cases: []\n", ":1: cases", "at least one case"),
        ("cases:\n  - model: [lenet5\n", ":", "not valid YAML"),
        ("- just\n- a list\n", ":1: suite", "expected a mapping"),
    ],
)
def test_validation_errors_name_file_line_and_key(tmp_path, text, where, says):
    path = write(tmp_path, text)
    with pytest.raises(UserError) as error:
        load_suite(path)
    message = str(error.value)
    assert message.startswith(f"{path}{where}"), message
    assert says in message


def test_missing_and_empty_suite_files(tmp_path):
    with pytest.raises(UserError, match="no such suite file"):
        load_suite(tmp_path / "nope.yaml")
    with pytest.raises(UserError, match="empty suite file"):
        load_suite(write(tmp_path, "# nothing\n"))


def test_yaml_tags_are_refused_like_safe_load(tmp_path):
    path = write(tmp_path, "cases:\n  - model: !!python/object:os.system lenet5\n    metrics: [params]\n")
    with pytest.raises(UserError, match=r":2: cases\[0\].model: could not determine a constructor .*python/object"):
        load_suite(path)


@pytest.mark.parametrize("text, expected", [("1/1", (1, 1)), ("2/4", (2, 4)), ("4/4", (4, 4))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/4", "5/4", "1/0", "a/b", "2", "1/2/3", ""])
def test_malformed_shards(text):
    with pytest.raises(UserError, match="malformed --shard"):
        parse_shard(text)


def _many_cases(tmp_path, n=7):
    cases = "".join(f"  - {{id: c{i}, model: 'mlp:hidden={8 + i}', metrics: [params]}}\n" for i in range(n))
    return load_suite(write(tmp_path, "name: many\ncases:\n" + cases))


def test_shards_partition_the_suite_deterministically(tmp_path):
    suite = _many_cases(tmp_path)
    for count in (1, 2, 3, 7, 9):
        shards = [suite.shard(i, count) for i in range(1, count + 1)]
        ids = [case.id for shard in shards for case in shard]
        assert sorted(ids) == sorted(case.id for case in suite.cases)  # every case exactly once
        assert len(set(ids)) == len(ids)
        assert max(map(len, shards)) - min(map(len, shards)) <= 1  # balanced
    assert [c.id for c in suite.shard(2, 3)] == ["c1", "c4"]
    assert suite.shard(2, 3) == _many_cases(tmp_path).shard(2, 3)  # the same file gives the same shard


def _run(suite, cases, tmp_path=None, name="run.json"):
    from archbench.runner import new_run_document, run_cases

    writer = RunWriter(new_run_document(suite, cases, None), tmp_path / name if tmp_path else None)
    run_cases(cases, writer)
    return writer.document


def test_shard_union_equals_the_whole_suite(tmp_path):
    from archbench.runner import merge_runs, new_run_document, run_cases

    suite = _many_cases(tmp_path)
    whole = _run(suite, suite.cases)
    shards = []
    for i in (1, 2, 3):
        writer = RunWriter(new_run_document(suite, suite.shard(i, 3), (i, 3)))
        run_cases(suite.shard(i, 3), writer)
        shards.append((f"shard{i}.json", writer.document))
    merged, warnings = merge_runs(shards)
    assert warnings == []
    assert merged.meta["complete"] is True
    assert [r.to_dict() for r in merged.records] == [r.to_dict() for r in whole.records]
    assert [c["id"] for c in merged.meta["cases"]] == [c.id for c in suite.cases]
    # mlp:hidden=h on 1x28x28 is Linear(784, h) + Linear(h, 10): (784 + 1)·h + (h + 1)·10 parameters
    params = {r.case: r.value for r in merged.records if r.metric == "params"}
    assert params == {f"c{i}": 785 * (8 + i) + (8 + i + 1) * 10 for i in range(7)}


def test_merge_refuses_other_suites_versions_and_overlaps(tmp_path):
    from archbench.runner import merge_runs

    def run(meta):
        return RunDocument(env={}, records=[], meta={"suite": "a", "suite_digest": "1", "cases": [], **meta})

    with pytest.raises(UserError, match="suite 'b'"):
        merge_runs([("x.json", run({})), ("y.json", run({"suite": "b"}))])
    with pytest.raises(UserError, match="different versions"):
        merge_runs([("x.json", run({})), ("y.json", run({"suite_digest": "2"}))])
    with pytest.raises(UserError, match="'c1' is in both x.json and y.json"):
        merge_runs([("x.json", run({"cases": [{"id": "c1"}]})), ("y.json", run({"cases": [{"id": "c1"}]}))])
    with pytest.raises(UserError, match="not a suite run"):
        merge_runs([("x.json", run({})), ("y.json", RunDocument())])
    merged, warnings = merge_runs([
        ("x.json", run({"cases": [{"id": "c1"}], "suite_case_ids": ["c1", "c2", "c3"], "complete": True})),
        ("y.json", run({"cases": [{"id": "c2"}]})),
    ])
    assert merged.meta["complete"] is False
    assert any("y.json did not finish" in w for w in warnings)
    assert any("1 case(s) of the suite are in no shard: c3" in w for w in warnings)


def test_a_failing_metric_is_a_row_and_the_run_goes_on(tmp_path, monkeypatch):
    from archbench.results.env import env_id

    suite = load_suite(write(tmp_path, "cases:\n  - {model: lenet5, metrics: [latency, params]}\n"
                                       "  - {model: mlp, metrics: [params]}\n"))

    def broken(recipe, settings, earlier):
        raise RuntimeError("out of memory\nsecond line of the trace")

    stub_group(monkeypatch, "latency", broken)
    document = _run(suite, suite.cases, tmp_path)
    failed = [r for r in document.records if r.error]
    assert len(failed) == 1
    assert failed[0].to_dict() == {
        "model": "lenet5", "metric": "latency_s", "value": None, "unit": "s",
        "point": {"batch": 1, "input": "1x32x32"}, "error": "RuntimeError: out of memory",
        "warnings": [], "details": {}, "case": "lenet5", "env": env_id(document.env),
    }
    assert {(r.case, r.metric) for r in document.records if not r.error} >= {("lenet5", "params"), ("mlp", "params")}
    assert document.meta["complete"] is True


def test_ctrl_c_keeps_what_finished(tmp_path, monkeypatch):
    from archbench.results.record import load_run

    suite = _many_cases(tmp_path, 3)
    from archbench.measure.run import GROUPS, Builds

    original = GROUPS["params"].measure

    def interrupt_on_third(recipe, settings, earlier):
        if recipe.spec == "mlp:hidden=10":  # case c2
            raise KeyboardInterrupt
        return original(Builds(recipe), settings, earlier)

    stub_group(monkeypatch, "params", interrupt_on_third)
    with pytest.raises(KeyboardInterrupt):
        _run(suite, suite.cases, tmp_path)
    assert not (tmp_path / "run.json").exists()  # the target is written only when the run finishes
    saved = load_run(tmp_path / "run.json.partial.jsonl")
    assert {r.case for r in saved.records} == {"c0", "c1"}
    assert saved.meta["complete"] is False and saved.meta["interrupted"] is True
    assert saved.meta["suite"] == "many" and saved.env["threads"]


def test_meta_device_case_reports_latency_as_an_error(tmp_path):
    text = "defaults: {device: meta}\ncases:\n  - {model: mlp, metrics: [params, latency]}\n"
    suite = load_suite(write(tmp_path, text))
    document = _run(suite, suite.cases)
    latency = [r for r in document.records if r.metric == "latency_s"]
    assert len(latency) == 1 and "meta device" in latency[0].error
    # the default mlp: 784 -> 256 -> 256 -> 10, weights and biases
    assert next(r.value for r in document.records if r.metric == "params") == 785 * 256 + 257 * 256 + 257 * 10


def test_a_cuda_suite_without_a_gpu_is_refused_with_its_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    path = write(tmp_path, "cases:\n  - model: lenet5\n    device: cuda\n    metrics: [latency]\n")
    with pytest.raises(UserError, match=r":3: cases\[0\].device: .*no CUDA GPU is available"):
        load_suite(path)


def test_a_latency_case_after_its_flops_reports_the_peak_fraction(tmp_path):
    text = "defaults: {threads: 1, min_time: 0.05}\ncases:\n  - {model: mlp, metrics: [flops, latency]}\n"
    suite = load_suite(write(tmp_path, text))
    figures = {r.metric: r for r in _run(suite, suite.cases).records}
    assert figures["macs"].value == 784 * 256 + 256 * 256 + 256 * 10  # the default mlp's three matmuls
    latency = figures["latency_s"].value
    achieved = figures["achieved_flops_s"].value
    assert achieved == pytest.approx(2 * figures["macs"].value / latency)
    peak = figures["peak_fraction"].details["peak_flops_s"]
    assert figures["peak_fraction"].value == pytest.approx(achieved / peak)
