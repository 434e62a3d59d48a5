"""Scaling sweeps: fits, local exponents, crossovers, point planning, incremental writing, error rows, Ctrl-C.

The measurers are replaced by closed-form stubs where the sweep machinery is under test; the
real FLOP counter is checked against the closed forms of a Transformer layer and an LSTM.
"""

import math

import pytest

from conftest import stub_group

from archbench.errors import UserError
from archbench.measure.scaling import crossings, crossover, fit_loglog, local_exponents, plan_points, run_sweep
from archbench.results.record import Record, RunDocument, RunWriter, load_run

D, FF = 512, 2048  # the reference transformer's d_model and feed-forward width; the LSTM's input and hidden


def transformer_layer_macs(t: int) -> int:
    """Q, K, V, output projections 4·T·d², feed-forward 2·T·d·ff = 8·T·d², scores and weighted sum 2·T²·d."""
    return 4 * t * D * D + 2 * t * D * FF + 2 * t * t * D


def lstm_macs(t: int, i: int = D, h: int = D) -> int:
    """Four gates, each an input and a recurrent matmul, at each of T steps."""
    return 4 * t * (i * h + h * h)


# -- the math -------------------------------------------------------------------------------------------

def test_fit_recovers_an_exact_power_law():
    xs = [10, 20, 50, 100, 1000]
    exponent, r2 = fit_loglog(xs, [3.0 * x**1.5 for x in xs])
    assert exponent == pytest.approx(1.5, abs=1e-12)
    assert r2 == pytest.approx(1.0, abs=1e-12)


def test_fit_of_noisy_data_has_r2_below_one():
    xs = [1, 2, 4, 8, 16]
    exponent, r2 = fit_loglog(xs, [1, 2.5, 3.5, 9, 15])
    assert 0.9 < exponent < 1.1 and 0.9 < r2 < 1.0


def test_fit_rejects_too_few_or_non_positive_values():
    with pytest.raises(ValueError):
        fit_loglog([1], [1])
    with pytest.raises(ValueError):
        fit_loglog([1, 2], [0, 1])


def test_local_exponents_of_a_transformer_layer_move_from_linear_to_quadratic():
    xs = [64, 256, 1024, 4096, 16384, 65536]
    local = local_exponents(xs, [transformer_layer_macs(x) for x in xs])
    assert all(a < b for a, b in zip(local, local[1:]))
    assert local[0] == pytest.approx(1.0, abs=0.05)
    assert local[-1] == pytest.approx(2.0, abs=0.1)
    # the closed form of one step: log(y1/y0)/log(x1/x0) for y = 12·T·d² + 2·T²·d
    y0, y1 = transformer_layer_macs(64), transformer_layer_macs(256)
    assert local[0] == pytest.approx(math.log(y1 / y0) / math.log(4))


def test_crossover_of_two_power_laws_is_exact_in_log_space():
    xs = [100, 500, 2000, 10000]
    # x² passes 1000·x at x = 1000, between the 2nd and 3rd point
    assert crossover(xs, [x * x for x in xs], [1000 * x for x in xs]) == pytest.approx(1000.0)


def test_crossover_none_in_range_and_several_crossings():
    xs = [1, 2, 4, 8]
    assert crossover(xs, [1, 2, 3, 4], [10, 20, 30, 40]) is None
    # a gap of ±log 2 at every point: each crossing is the geometric mean of its two neighbours
    assert crossings(xs, [1, 4, 1, 4], [2, 2, 2, 2]) == pytest.approx([math.sqrt(2), math.sqrt(8), math.sqrt(32)])
    assert crossings(xs, [1, 2, 3, 4], [1, 5, 6, 7]) == []  # equal at the first point, then below: no crossing
    assert crossings(xs, [1, 2, 2, 2], [1, 2, 2, 2]) == []  # equal throughout
    assert crossings(xs, [1, 2, 4, 9], [2, 2, 4, 4]) == [2.0]  # below, equal twice, above: crossed at the first tie


# -- planning points -------------------------------------------------------------------------------------

def test_plan_sets_the_sequence_length_of_every_model_smallest_first():
    plan = plan_points(["lstm", "transformer:layers=1"], [2048, 512], "seq", batch=2)
    assert [[(p.label, p.seq, p.batch) for p in row] for row in plan] == [
        [("lstm", 512, 2), ("transformer:layers=1", 512, 2)],
        [("lstm", 2048, 2), ("transformer:layers=1", 2048, 2)],
    ]
    assert plan[0][0].point == {"batch": 2, "seq": 512}


def test_plan_of_a_resolution_sweep_rebuilds_a_vit_for_its_patches_but_not_a_cnn():
    vit, torchvision_vit, cnn = plan_points(["vit-base", "vit_b_16", "resnet50"], [224, 448], "resolution")[1]
    assert vit.spec == "vit-base:image_size=448" and vit.input_shape == (3, 448, 448)
    assert torchvision_vit.spec == "vit_b_16:image_size=448" and torchvision_vit.label == "vit_b_16"
    assert cnn.spec == "resnet50" and cnn.input_shape == (3, 448, 448)
    assert cnn.point == {"batch": 1, "input": "3x448x448"}


def test_plan_of_a_batch_sweep_keeps_the_default_input():
    lstm, cnn = plan_points(["lstm", "resnet18"], [1, 8], "batch")[1]
    assert (lstm.batch, lstm.seq) == (8, 512) and (cnn.batch, cnn.input_shape) == (8, (3, 224, 224))


@pytest.mark.parametrize(
    "models, values, axis, message",
    [
        (["resnet50"], [1, 2], "seq", "resolution or batch"),
        (["lstm"], [224, 448], "resolution", "image models"),
        (["lstmm"], [1, 2], "seq", "unknown model"),
        (["lstm:hiden=3"], [1, 2], "seq", "unknown option"),
        (["lstm", "lstm"], [1, 2], "seq", "twice"),
        (["lstm"], [512], "seq", "at least 2"),
        (["lstm"], [1, 2], "time", "unknown sweep axis"),
        ([], [1, 2], "seq", "at least one"),
    ],
)
def test_plan_refuses_what_cannot_be_swept(models, values, axis, message):
    with pytest.raises(UserError, match=message):
        plan_points(models, values, axis)


# -- the sweep with stub measurers -----------------------------------------------------------------------

def closed_form_flops(recipe, settings, earlier):
    macs = transformer_layer_macs(recipe.seq) if recipe.spec.startswith("transformer") else lstm_macs(recipe.seq)
    return [Record("renamed-by-the-sweep", "macs", macs, "MAC", recipe.known_point()),
            Record("renamed-by-the-sweep", "flops", 2 * macs, "FLOP", recipe.known_point())]


@pytest.fixture
def stub_flops(monkeypatch):
    stub_group(monkeypatch, "flops", closed_form_flops)


def test_sweep_records_points_exponents_local_exponents_and_crossover(stub_flops):
    values = [256, 1024, 4096, 16384]
    records = run_sweep(["transformer:layers=1", "lstm"], values, ["flops"])
    macs = {(r.model, r.point["seq"]): r.value for r in records if r.metric == "macs"}
    assert macs[("lstm", 4096)] == lstm_macs(4096)
    assert macs[("transformer:layers=1", 256)] == transformer_layer_macs(256)
    by_metric = {(r.model, r.metric): r for r in records}
    lstm_fit = by_metric[("lstm", "macs_exponent")]
    assert lstm_fit.value == pytest.approx(1.0) and lstm_fit.details["r2"] == pytest.approx(1.0)
    assert lstm_fit.point == {"batch": 1} and (lstm_fit.details["from"], lstm_fit.details["to"]) == (256, 16384)
    expected, _ = fit_loglog(values, [transformer_layer_macs(t) for t in values])
    assert by_metric[("transformer:layers=1", "macs_exponent")].value == pytest.approx(expected)
    local = [r for r in records if r.model == "transformer:layers=1" and r.metric == "macs_local_exponent"]
    assert [r.point["seq"] for r in local] == [1024, 4096, 16384]
    assert [r.value for r in local] == pytest.approx(local_exponents(values, [transformer_layer_macs(t) for t in values]))
    # 12·T·d² + 2·T²·d is above the LSTM's 4·T·2d² = 8·T·d² at every T: no crossover
    cross = by_metric[("transformer:layers=1 vs lstm", "macs_crossover")]
    assert cross.value is None and cross.details["lower_at_start"] == "lstm"
    assert "none in range 256..16384" in cross.details["result"]


def test_crossover_between_a_quadratic_and_a_linear_model(monkeypatch):
    def latency(recipe, settings, earlier):  # T² µs against 2 ms per 512 tokens: equal at T = 2e-3 / 512 / 1e-6
        t = recipe.seq
        value = t * t * 1e-6 if recipe.spec == "transformer" else 2e-3 * t / 512
        return [Record(recipe.spec, "latency_s", value, "s", recipe.known_point())]

    stub_group(monkeypatch, "latency", latency)
    records = run_sweep(["transformer", "lstm"], [1, 2, 3, 4, 8], ["latency"])
    cross = next(r for r in records if r.metric == "latency_s_crossover")
    assert cross.model == "transformer vs lstm" and cross.unit == "tokens"
    assert cross.value == pytest.approx(2e-3 / 512 / 1e-6)
    assert (cross.details["lower_at_start"], cross.details["lower_at_end"]) == ("transformer", "lstm")


def test_each_point_is_written_before_the_next_is_measured(stub_flops, monkeypatch, tmp_path):
    path = tmp_path / "run.json"
    seen_on_disk = []

    def latency(recipe, settings, earlier):
        seen_on_disk.append(len(load_run(tmp_path / "run.json.partial.jsonl").records))  # the run's journal
        assert [r.metric for r in earlier] == ["macs", "flops"]  # this point's flops came first
        return [Record(recipe.spec, "latency_s", 1e-3 * recipe.seq, "s", recipe.known_point())]

    stub_group(monkeypatch, "latency", latency)
    run_sweep(["lstm"], [10, 20, 40], ["flops", "latency"], writer=RunWriter(RunDocument(), path))
    assert seen_on_disk == [2, 5, 8]  # 2 flops records, then +1 latency +2 flops per point


def test_a_failed_point_is_a_row_the_larger_ones_are_skipped_and_the_others_go_on(stub_flops, monkeypatch):
    def memory(recipe, settings, earlier):
        if recipe.spec == "transformer" and recipe.seq >= 2048:
            raise RuntimeError("out of memory: tried to allocate 4 GiB\nmore detail")
        return [Record(recipe.spec, "peak_memory_bytes", 1000 * recipe.seq, "bytes", recipe.known_point())]

    stub_group(monkeypatch, "memory", memory)
    records = run_sweep(["transformer", "lstm"], [512, 1024, 2048, 4096], ["flops", "memory"])
    peaks = {(r.model, r.point["seq"]): r for r in records if r.metric == "peak_memory_bytes"}
    assert peaks[("transformer", 2048)].error == "RuntimeError: out of memory: tried to allocate 4 GiB"
    assert peaks[("transformer", 4096)].error == "skipped: memory already failed at seq=2048"
    assert peaks[("lstm", 4096)].value == 1000 * 4096  # the stand-in measurer above
    assert all(r.error is None for r in records if r.metric == "macs")  # the other group goes on
    fit = next(r for r in records if r.model == "transformer" and r.metric == "peak_memory_bytes_exponent")
    assert fit.value == pytest.approx(1.0) and fit.details["points"] == 2
    assert "2 of 4 points failed" in fit.warnings[0]


def test_a_model_with_one_measured_point_gets_an_exponent_row_with_an_error(monkeypatch):
    def memory(recipe, settings, earlier):
        if recipe.seq > 10:
            raise MemoryError()
        return [Record(recipe.spec, "peak_memory_bytes", 5, "bytes", recipe.known_point())]

    stub_group(monkeypatch, "memory", memory)
    records = run_sweep(["gru"], [10, 20], ["memory"])
    assert [r.error for r in records] == [None, "MemoryError: ", "needs at least 2 measured points, got 1"]


def test_ctrl_c_propagates_and_keeps_every_finished_point(stub_flops, monkeypatch, tmp_path):
    path = tmp_path / "run.json"

    def latency(recipe, settings, earlier):
        if recipe.seq == 40:
            raise KeyboardInterrupt
        return [Record(recipe.spec, "latency_s", 1.0, "s", recipe.known_point())]

    stub_group(monkeypatch, "latency", latency)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(["lstm"], [10, 20, 40, 80], ["flops", "latency"], writer=RunWriter(RunDocument(), path))
    kept = [(r.metric, r.point["seq"]) for r in load_run(tmp_path / "run.json.partial.jsonl").records]
    assert kept == [("macs", 10), ("flops", 10), ("latency_s", 10), ("macs", 20), ("flops", 20), ("latency_s", 20),
                    ("macs", 40), ("flops", 40)]


def test_progress_is_told_every_step_and_the_end(stub_flops):
    calls = []
    run_sweep(["lstm", "gru"], [8, 16], ["flops"], progress=lambda done, total, what: calls.append((done, total, what)))
    assert calls == [(0, 4, "lstm seq=8: flops"), (1, 4, "gru seq=8: flops"), (2, 4, "lstm seq=16: flops"),
                     (3, 4, "gru seq=16: flops"), (4, 4, "done")]


def test_resolution_sweep_fits_against_the_image_side(monkeypatch):
    def flops(recipe, settings, earlier):  # a CNN's work grows with the pixels: side²
        return [Record(recipe.spec, "macs", 7 * recipe.input_shape[-1]**2, "MAC", recipe.known_point())]

    stub_group(monkeypatch, "flops", flops)
    records = run_sweep(["resnet18"], [224, 448, 896], ["flops"], axis="resolution")
    assert [r.point for r in records if r.metric == "macs"][1] == {"batch": 1, "input": "3x448x448"}
    fit = next(r for r in records if r.metric == "macs_exponent")
    assert fit.value == pytest.approx(2.0) and fit.point == {"batch": 1} and fit.details["to"] == 896


def test_unknown_metric_group_is_a_user_error():
    with pytest.raises(UserError, match="unknown metric 'energy'"):
        run_sweep(["lstm"], [1, 2], ["energy"])


# -- the real counter -------------------------------------------------------------------------------------

def test_counted_macs_and_exponents_match_the_closed_forms():
    values = [256, 1024, 4096]
    records = run_sweep(["transformer:layers=1", "lstm"], values, ["flops"])
    closed = {"transformer:layers=1": transformer_layer_macs, "lstm": lstm_macs}
    for model, formula in closed.items():
        counted = {r.point["seq"]: r.value for r in records if r.model == model and r.metric == "macs"}
        assert sorted(counted) == values
        for t in values:
            assert counted[t] == pytest.approx(formula(t), rel=0.01)
        fitted = next(r for r in records if r.model == model and r.metric == "macs_exponent")
        expected, _ = fit_loglog(values, [formula(t) for t in values])
        assert fitted.value == pytest.approx(expected, abs=0.02)
    assert next(r for r in records if r.metric == "macs_crossover").details["lower_at_end"] == "lstm"
