"""Recurrent layers and Mamba's selective scan counted at the call on the meta device (issue 25), against closed
forms written out here, and equal to the CPU dispatch and fvcore engines, which run the real kernels."""

import copy

import pytest
import torch
from torch import nn

from archbench.measure.flops import count_flops
from archbench.models import build_model


def lstm_layer(t, b, i, h, proj=0, gates=4):
    """One layer, one direction: gates·h×i and gates·h×out per step and sequence (out = p or h), plus p×h
    projected; an LSTM has 4 gates, a GRU 3, an RNN 1."""
    out = proj or h
    return t * b * (gates * (i * h + h * out) + proj * h)


def engines(module, inputs_of):
    """MACs and other FLOPs of fvcore (cpu), dispatch (cpu) and dispatch (meta: counted at the call)."""
    counts = []
    for engine, device in (("fvcore", "cpu"), ("dispatch", "cpu"), ("dispatch", "meta")):
        count = count_flops(copy.deepcopy(module).to(device), inputs_of(device), engine=engine)
        counts.append((count.macs, count.other_flops))
    return counts


@pytest.mark.parametrize("kind,gates", [("LSTM", 4), ("GRU", 3), ("RNN", 1)])
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(1, False, False), (2, True, True), (3, False, True)])
def test_every_option_on_every_engine(kind, gates, layers, bidirectional, batch_first):
    t, b, i, h = 9, 3, 8, 16
    module = getattr(nn, kind)(i, h, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    shape = (b, t, i) if batch_first else (t, b, i)
    directions = 2 if bidirectional else 1
    expected = sum(directions * lstm_layer(t, b, i if layer == 0 else directions * h, h, gates=gates)
                   for layer in range(layers))
    counts = engines(module, lambda device: torch.randn(shape, device=device))
    assert counts[0] == counts[1] == counts[2] and counts[0][0] == expected


def test_projected_lstm_and_an_unbatched_input():
    t, i, h, p = 7, 8, 16, 4
    module = nn.LSTM(i, h, num_layers=2, bidirectional=True, proj_size=p)
    layer0, layer1 = lstm_layer(t, 1, i, h, p), lstm_layer(t, 1, 2 * p, h, p)
    for shape in ((t, i), (t, 1, i)):  # unbatched, batched
        counts = engines(module, lambda device: torch.randn(shape, device=device))
        assert counts[0] == counts[1] == counts[2] and counts[0][0] == 2 * (layer0 + layer1)


class Packed(nn.Module):
    """A recurrent layer on padded sequences of lengths 7, 5 and 2, packed (dispatch engine: fvcore cannot trace the
    lengths)."""

    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        packed = nn.utils.rnn.pack_padded_sequence(x, torch.tensor([7, 5, 2]))
        return self.layer(packed)[0].data


@pytest.mark.parametrize("kind,gates", [("LSTM", 4), ("GRU", 3)])
def test_packed_sequences_count_their_real_steps(kind, gates):
    i, h = 8, 16
    module = Packed(getattr(nn, kind)(i, h, bidirectional=True))
    steps = 7 + 5 + 2
    counts = [count_flops(copy.deepcopy(module).to(device), torch.randn(7, 3, i, device=device), engine="dispatch").macs
              for device in ("cpu", "meta")]
    assert counts == [2 * lstm_layer(steps, 1, i, h, gates=gates)] * 2


def test_meta_count_is_one_op_per_call_at_any_length():
    counts = {t: count_flops(build_model("lstm:layers=2", device="meta", seq=t)) for t in (10, 100_000)}
    for t, count in counts.items():
        assert count.by_operator == {"archbench.lstm": 2 * lstm_layer(t, 1, 512, 512)}
        assert not count.uncounted


def test_decode_step_is_one_step():
    for device in ("cpu", "meta"):
        built = build_model("lstm:layers=2,bidirectional=true", device=device, seq=64, phase="decode")
        assert count_flops(built, engine="dispatch").macs == 2 * (lstm_layer(1, 1, 512, 512)
                                                                  + lstm_layer(1, 1, 1024, 512))


def test_backward_is_twice_the_forward_as_the_cpu_kernel_counts_it():
    # the fused CPU kernel (mkldnn) and the call on meta: data and weight gradients of every matrix
    forward = 2 * lstm_layer(32, 1, 64, 64)
    for device in ("cpu", "meta"):
        built = build_model("lstm:input=64,hidden=64,layers=2", device=device, seq=32, train=True)
        assert count_flops(built, backward=True).macs == 3 * forward


# ---------------------------------------------------------------- Mamba's selective scan

tf = pytest.importorskip("transformers")


def test_the_scan_is_swapped_on_meta_only_and_restored():
    from archbench.models.selective_scan import SCAN, selective_scans
    from transformers.models.mamba import modeling_mamba

    config = tf.MambaConfig(hidden_size=32, num_hidden_layers=1, state_size=4, vocab_size=50)
    original = getattr(modeling_mamba, SCAN)
    with torch.device("meta"):
        model = tf.MambaModel(config)
    with selective_scans(model, "cpu"):
        assert getattr(modeling_mamba, SCAN) is original
    with selective_scans(model, "meta"):
        assert getattr(modeling_mamba, SCAN) is not original
    assert getattr(modeling_mamba, SCAN) is original


def test_the_whole_sequence_scan_makes_the_shapes_of_the_loop():
    from archbench.models.selective_scan import _whole_sequence
    from transformers.models.mamba.modeling_mamba import mamba_selective_scan

    b, d, t, n = 2, 6, 5, 3
    args = [torch.randn(s, device="meta") for s in ((b, d, t), (b, d, t), (d, n), (b, n, t), (b, n, t))]
    options = dict(D=torch.randn(d, device="meta"), z=torch.randn(b, d, t, device="meta"),
                   delta_bias=torch.randn(d, device="meta"), delta_softplus=True, return_last_state=True)
    loop, whole = mamba_selective_scan(*args, **options), _whole_sequence(mamba_selective_scan)(*args, **options)
    assert [tuple(x.shape) for x in loop] == [tuple(x.shape) for x in whole] == [(b, d, t), (b, d, n)]


def test_a_long_mamba_prefill_on_meta_is_the_closed_form():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_modern_attention import KERNEL, MAMBA, mamba_macs, prefill

    t = 4096  # 2 layers × 4096 steps of the loop before; one whole-sequence matmul per layer now
    count = prefill(tf.MambaConfig(**MAMBA), "meta", seq=t).count()
    assert count.macs == mamba_macs(t, t + KERNEL - 1)
    assert count.significant_uncounted == {}


def test_the_fits_check_sees_a_recurrent_models_outputs():
    from archbench.measure.memory import largest_activation_bytes

    t = 100_000  # its output (1, T, 2·512) in float32: the largest tensor one forward makes, found without a time loop
    assert largest_activation_bytes(build_model("lstm:layers=2,bidirectional=true", device="meta", seq=t)) == 4 * t * 1024


MAMBA2 = "hf:mamba2:hidden_size=64,num_hidden_layers=2,num_heads=4,head_dim=32,state_size=8,n_groups=1,vocab_size=100"


def test_mamba2_decode_with_its_conv_state_is_the_closed_form():
    d, inner, heads, state, groups, kernel = 64, 128, 4, 8, 1, 4  # expand 2, conv_kernel 4
    in_proj = d * (2 * inner + 2 * groups * state + heads)  # x and the gate z, B and C, dt per head
    conv = (inner + 2 * groups * state) * 2 * kernel  # the cached K positions and the new one: 2 outputs computed
    scan = inner * state  # y = C·h for every head's channels (dA·h + dB·x is elementwise)
    out_proj = inner * d
    counts = [count_flops(build_model(MAMBA2, device=device, seq=40, phase="decode")).macs for device in ("cpu", "meta")]
    assert counts == [2 * (in_proj + conv + scan + out_proj)] * 2


def test_mamba2_prefill_counts_the_same_on_cpu_and_meta():
    cpu, meta = (count_flops(build_model(MAMBA2, device=device, seq=40)) for device in ("cpu", "meta"))
    assert (cpu.macs, cpu.other_flops) == (meta.macs, meta.other_flops) and not meta.significant_uncounted
