"""The Python API (issue 10): archbench.count_params, count_flops, measure_latency, measure_memory, build.

Figures are closed forms written by hand for small modules.
"""

import statistics
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import archbench
from archbench.errors import UserError
from archbench.metrics import unit_of


def small_net() -> nn.Sequential:
    """Conv 3 -> 4 channels, 3x3, no padding (8x8 -> 6x6), ReLU, flatten, Linear 4·6·6 -> 5."""
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


CONV_MACS = 4 * 6 * 6 * 3 * 3 * 3  # per output element: 3 channels × 3×3 taps
LINEAR_MACS = 4 * 6 * 6 * 5


def test_import_does_not_import_torch():
    code = ("import sys, archbench; assert 'torch' not in sys.modules, 'torch at import';"
            "archbench.count_flops, archbench.count_params, archbench.build;"
            "assert 'torch' not in sys.modules, 'torch when a function is looked up'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_the_api_is_the_cli_code():
    from archbench.measure import flops, latency, memory, params
    from archbench.models import build

    assert archbench.count_flops is flops.count_flops and archbench.count_params is params.count_params
    assert archbench.measure_latency is latency.measure_latency and archbench.measure_memory is memory.measure_memory
    assert archbench.build is build.build_model


def test_count_flops_of_a_plain_sequential():
    count = archbench.count_flops(small_net(), torch.randn(2, 3, 8, 8))
    assert count.macs == 2 * (CONV_MACS + LINEAR_MACS) == 9_216
    assert count.flops == 2 * count.macs
    assert count.by_module["0"] == 2 * CONV_MACS and count.by_module["3"] == 2 * LINEAR_MACS
    # one FLOP per bias add (conv 4×6×6, linear 5) and per ReLU element, per batch item
    assert count.other_flops == 2 * (4 * 6 * 6 + 4 * 6 * 6 + 5)
    assert count.uncounted == {}


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 5)
        self.b = nn.Linear(6, 5, bias=False)

    def forward(self, x, y):
        return self.a(x) + self.b(y)


@pytest.mark.parametrize("inputs", [
    (torch.randn(3, 4), torch.randn(3, 6)),  # positional
    {"x": torch.randn(3, 4), "y": torch.randn(3, 6)},  # keyword
])
def test_count_flops_tuple_and_dict_inputs(inputs):
    assert archbench.count_flops(TwoInputs(), inputs).macs == 3 * (4 * 5 + 6 * 5)


def test_count_flops_refuses_bad_inputs_in_one_line():
    with pytest.raises(UserError, match="no example inputs"):
        archbench.count_flops(small_net())
    with pytest.raises(UserError, match="expected a torch.nn.Module"):
        archbench.count_flops(lambda x: x, torch.randn(1))


def test_count_params_totals_and_by_module():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))
    model[0].requires_grad_(False)
    conv, norm, linear = 4 * 3 * 3 * 3 + 4, 2 * 4, 4 * 6 * 6 * 5 + 5
    counts = archbench.count_params(model, per_module=True)
    assert counts.total == conv + norm + linear == 845
    assert (counts.trainable, counts.frozen) == (norm + linear, conv)
    assert counts.buffers == 4 + 4 + 1  # running mean, running variance, batches tracked
    assert counts.by_module == {"": conv + norm + linear, "0": conv, "1": norm, "2": 0, "3": 0, "4": linear}
    assert archbench.count_params(model).by_module == {}


def test_measure_latency_is_the_median_of_its_samples():
    records = archbench.measure_latency(small_net(), torch.randn(2, 3, 8, 8), min_time=0.05)
    latency = next(r for r in records if r.metric == "latency_s")
    assert latency.error is None and latency.unit == unit_of("latency_s")
    samples = latency.details["samples"]
    assert len(samples) == latency.details["n_samples"] >= 1
    assert latency.value == pytest.approx(statistics.median(samples))
    throughput = next(r for r in records if r.metric == "throughput_items_s")
    assert throughput.value == pytest.approx(2 / latency.value)  # batch of 2


NETS = """
    import torch
    from torch import nn


    def build():
        \"\"\"Conv 3 -> 8 channels, 3x3, same padding, then Linear 8·32·32 -> 10.\"\"\"
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 32 * 32, 10))
"""
NETS_PARAMS = (8 * 3 * 3 * 3 + 8) + (8 * 32 * 32 * 10 + 10)


def test_measure_memory_of_a_spec_and_of_an_importable_factory(tmp_path, monkeypatch):
    package = tmp_path / "site" / "abtest_api_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(textwrap.dedent(NETS))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "site"))  # the fresh process imports it too
    from abtest_api_models.nets import build

    spec = f"{package}/nets.py:build"
    for model, label in [(spec, spec), (build, "abtest_api_models.nets:build")]:
        records = {r.metric: r for r in archbench.measure_memory(model, input_shape=(3, 32, 32))}
        assert records["peak_memory_bytes"].error is None and records["peak_memory_bytes"].value >= 0
        assert records["weights_bytes"].value == 4 * NETS_PARAMS  # float32
        assert records["weights_bytes"].model == label
        assert records["weights_bytes"].point == {"batch": 1, "input": "3x32x32"}


def test_measure_memory_refuses_a_live_module():
    with pytest.raises(UserError, match="cannot rebuild"):
        archbench.measure_memory(small_net())


def test_build_gives_a_subject(tmp_path):
    (tmp_path / "nets.py").write_text(textwrap.dedent(NETS))
    subject = archbench.build(f"{tmp_path}/nets.py:build", input_shape=(3, 32, 32), batch=2, device="meta")
    assert isinstance(subject, archbench.Subject)
    assert subject.point == {"batch": 2, "input": "3x32x32"}
    assert archbench.count_params(subject).total == NETS_PARAMS
    assert archbench.count_flops(subject).macs == 2 * (8 * 32 * 32 * 27 + 8 * 32 * 32 * 10)
    args, kwargs = subject.example_inputs()
    assert tuple(args[0].shape) == (2, 3, 32, 32) and kwargs == {}
