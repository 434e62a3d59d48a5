"""One unit spelling everywhere: every record a measurer writes carries the unit of archbench/metrics.py."""

import pytest

from archbench.measure.run import Settings, measure
from archbench.measure.scaling import run_sweep
from archbench.metrics import AXIS_UNITS, UNITS, is_known, unit_of
from archbench.models.subject import Recipe

TINY_GPT2 = "hf:gpt2:n_layer=1,n_embd=32,n_head=2,vocab_size=64"


def check_units(records):
    assert records
    for r in records:
        if r.metric.endswith("_crossover"):
            assert r.unit in AXIS_UNITS.values(), (r.metric, r.unit)
        elif is_known(r.metric):
            assert r.unit == unit_of(r.metric), (r.model, r.metric, r.unit)
        else:
            assert r.unit in UNITS, (r.model, r.metric, r.unit)


@pytest.mark.parametrize("recipe", [Recipe("lenet5"), Recipe(TINY_GPT2, seq=16), Recipe(TINY_GPT2, seq=16, phase="decode"),
                                    Recipe("lstm:input=8,hidden=8", seq=8)])
def test_every_group_writes_the_table_units(recipe):
    check_units(measure(recipe, ["params", "flops", "latency"], Settings(min_time=0.02, peak=False)))


def test_memory_writes_the_table_units():  # a fresh process per case: one case, with the decode's KV cache
    check_units(measure(Recipe(TINY_GPT2, seq=16, phase="decode"), ["memory"], Settings()))


def test_sweep_summaries_write_the_table_units():
    check_units(run_sweep(["transformer:layers=1,d_model=64,heads=2", "lstm:input=64,hidden=64"], [16, 32, 64],
                          ["flops"]))


def test_failure_rows_write_the_table_units():
    check_units(measure(Recipe("mlp", input_shape=(2, 28, 28)), ["flops", "latency"], Settings(min_time=0.02)))


@pytest.mark.parametrize("axis, unit", [("seq", "tokens"), ("batch", "items"), ("resolution", "pixels")])
def test_a_crossover_is_in_the_unit_of_its_swept_axis(axis, unit):
    from archbench.measure.scaling import sweep_summary
    from archbench.results.record import Record

    key = {"seq": "seq", "batch": "batch", "resolution": "input"}[axis]

    def at(x):
        return f"3x{x}x{x}" if axis == "resolution" else x

    records = [Record.of(model, "macs", cost, {"batch": 1, key: at(x)})
               for x in (8, 16, 32) for model, cost in (("a", x * x), ("b", 16 * x))]
    cross = next(r for r in sweep_summary(records, axis) if r.metric == "macs_crossover")
    assert cross.unit == unit == unit_of("macs_crossover", axis)
    assert cross.value == pytest.approx(16)  # x² = 16·x at x = 16


def test_claim_figures_take_the_table_unit_or_one_of_its_units():
    from archbench.claims.measures import Measured

    out = Measured()
    out.add("a.params", 10, "count", "m")
    out.add("steps", [1, 2], "steps", "cells")
    out.add("a.grad_norm", [0.5], "norm", "cells")
    assert [r.unit for r in out.records] == [unit_of("params"), "steps", "norm"]
    with pytest.raises(ValueError, match="not in archbench/metrics.py's UNITS"):
        out.add("a.thing", 1, "furlongs", "m")


def test_the_group_table_names_each_setting_some_group_reads():
    from dataclasses import fields

    from archbench.measure.run import GROUPS, group_names

    read = {name for group in GROUPS.values() for name in group.reads}
    assert read == {f.name for f in fields(Settings)}
    assert group_names() == ("params", "flops", "latency", "memory", "roofline")
    assert group_names(sweeps=True) == ("flops", "latency", "memory", "roofline")  # params do not depend on the axis
    assert {name: g.primary for name, g in GROUPS.items()} == {
        "params": "params", "flops": "macs", "latency": "latency_s", "memory": "peak_memory_bytes",
        "roofline": "predicted_latency_s"}
    assert all(is_known(g.primary) for g in GROUPS.values())
