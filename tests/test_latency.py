"""Latency: statistics recomputed from the raw samples, FLOP/s from MACs written out by hand, failures as rows."""

import statistics
import time
from dataclasses import replace

import pytest
import torch

from archbench.errors import UserError
from archbench.measure.latency import measure_latency
from archbench.measure.peak import measure_peak_flops
from archbench.models import build_model

# mlp: 1x28x28 -> 256 -> 256 -> 10; MACs per item = 784*256 + 256*256 + 256*10
MLP_MACS_PER_ITEM = 784 * 256 + 256 * 256 + 256 * 10  # 268,800


def _by_metric(records):
    return {r.metric: r for r in records}


def test_latency_statistics_come_from_the_raw_samples():
    built = build_model("mlp", batch=4)
    records = _by_metric(measure_latency(built, threads=1, min_time=0.1, macs=4 * MLP_MACS_PER_ITEM,
                                         peak_flops=1e11))
    latency = records["latency_s"]
    samples = latency.details["samples"]
    assert latency.unit == "s" and latency.point == {"batch": 4, "input": "1x28x28"}
    assert len(samples) == latency.details["n_samples"] >= 1
    assert latency.value == pytest.approx(statistics.median(samples), rel=1e-9)
    assert latency.details["threads"] == 1
    assert records["throughput_items_s"].value == pytest.approx(4 / latency.value)
    achieved = records["achieved_flops_s"]
    assert achieved.unit == "FLOP/s"
    assert achieved.value == pytest.approx(2 * 4 * 268_800 / latency.value)
    assert records["peak_fraction"].value == pytest.approx(achieved.value / 1e11)
    assert records["peak_fraction"].warnings == []


def test_fraction_above_the_peak_is_a_warning():
    built = build_model("mlp")
    fraction = _by_metric(measure_latency(built, min_time=0.05, macs=268_800, peak_flops=1.0))["peak_fraction"]
    assert fraction.value > 1 and "x the measured matmul peak" in fraction.warnings[0]


class _Slower(torch.nn.Module):
    """Each call sleeps 0.5 ms longer than the one before: the timed blocks differ far more than 10%."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        time.sleep(0.0005 * self.calls)
        return x


def test_noisy_timing_is_a_warning():
    built = replace(build_model("mlp"), module=_Slower())
    latency = _by_metric(measure_latency(built, min_time=0.2))["latency_s"]
    assert any(w.startswith("noisy timing: IQR") for w in latency.warnings)


class _Broken(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")


def test_failing_forward_is_a_record_with_error():
    built = replace(build_model("mlp"), module=_Broken())
    records = measure_latency(built, min_time=0.05)
    assert [(r.metric, r.value) for r in records] == [("latency_s", None)]
    assert records[0].error == "RuntimeError: mat1 and mat2 shapes cannot be multiplied"


def test_compile_failure_is_a_record_with_error(monkeypatch):
    def no_compiler(module):
        raise RuntimeError("no C++ compiler")

    monkeypatch.setattr(torch, "compile", no_compiler)
    records = _by_metric(measure_latency(build_model("mlp"), min_time=0.05, compile=True))
    assert records["compile_time_s"].error == "torch.compile failed: RuntimeError: no C++ compiler"
    assert records["latency_s"].value is None and records["latency_s"].error


def test_meta_device_is_refused():
    with pytest.raises(UserError, match="needs a real device"):
        measure_latency(build_model("mlp", device="meta"))


def test_peak_flops_is_measured_once_and_is_plausible():
    peak = measure_peak_flops("cpu", "float32", 1)
    hits = measure_peak_flops.cache_info().hits
    assert measure_peak_flops("cpu", "float32", 1) == peak
    assert measure_peak_flops.cache_info().hits == hits + 1
    # Independent check: one 1024x1024 matmul timed by hand (2 * 1024^3 FLOP) cannot beat the peak by much.
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.mm(a, b)
        start = time.perf_counter()
        torch.mm(a, b)
        by_hand = 2 * 1024**3 / (time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    assert 0 < by_hand < 2 * peak
