"""MAC counts against closed forms written out here and torchvision's published table; the two engines agree."""

import time

import pytest
import torch
from torch import nn

from archbench.errors import UserError
from archbench.measure.flops import count_flops, flop_records
from archbench.models import build_model
from archbench.models.subject import InputSpec, Subject


def within(value, expected, rel=0.01):
    return abs(value - expected) <= rel * expected


def transformer_layer(t, d):
    """One encoder layer with ff = 4d: q, k, v, out projections 4·T·d², feed-forward 8·T·d², attention 2·T²·d."""
    return 12 * t * d * d + 2 * t * t * d


def recurrent(gates, t, i, h, layers=1, directions=1, proj=0):
    """Per layer and direction, each step applies gates·h×(input + out) and, projected, p×h (out = p or h)."""
    out = proj or h
    total = 0
    for layer in range(layers):
        layer_input = i if layer == 0 else out * directions
        total += directions * t * (gates * h * (layer_input + out) + proj * h)
    return total


def custom(module, shape, device="cpu"):
    """A subject around a test module, on a float input of ``shape`` (batch included)."""
    return Subject("custom", module.to(device).eval(), shape[0], device, "float32", input=InputSpec("image", shape[1:]))


# ---------------------------------------------------------------- closed forms


@pytest.mark.parametrize("attention", ["sdpa", "naive", "torch"])
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize("t,device", [(128, "cpu"), (1024, "cpu"), (128, "meta"), (1024, "meta"), (4096, "meta")])
def test_transformer_layer_closed_form(t, device, attention, train):
    built = build_model(f"transformer:layers=1,d_model=512,heads=8,ff=2048,attention={attention}", device=device,
                        seq=t, train=train)
    assert within(count_flops(built).macs, transformer_layer(t, 512))


@pytest.mark.parametrize("kind,gates", [("lstm", 4), ("gru", 3), ("rnn", 1)])
@pytest.mark.parametrize("layers,bidirectional", [(1, False), (2, False), (1, True), (3, True)])
@pytest.mark.parametrize("engine,device", [("fvcore", "cpu"), ("dispatch", "meta")])
def test_recurrent_closed_forms(kind, gates, layers, bidirectional, engine, device):
    t, i, h = 24, 32, 48
    spec = f"{kind}:input={i},hidden={h},layers={layers},bidirectional={str(bidirectional).lower()}"
    built = build_model(spec, device=device, seq=t)
    expected = recurrent(gates, t, i, h, layers, 2 if bidirectional else 1)
    assert count_flops(built, engine=engine).macs == expected


@pytest.mark.parametrize("engine,device", [("fvcore", "cpu"), ("dispatch", "cpu"), ("dispatch", "meta")])
def test_projected_lstm_closed_form(engine, device):
    built = build_model("lstm:input=32,hidden=64,layers=2,bidirectional=true,proj_size=16", device=device, seq=20)
    assert count_flops(built, engine=engine).macs == recurrent(4, 20, 32, 64, 2, 2, proj=16)


@pytest.mark.parametrize("name", ["resnet50", "vit_b_16", "mobilenet_v2", "efficientnet_b0", "swin_t", "googlenet"])
def test_torchvision_published_gmacs(name):
    from torchvision.models import get_model_weights

    published = get_model_weights(name).DEFAULT.meta["_ops"] * 1e9  # torchvision's table, in GMACs
    built = build_model(name, device="meta")
    assert within(count_flops(built).macs, published)


def test_resnet50_and_vit_figures_written_out():
    assert within(count_flops(build_model("resnet50", device="meta")).macs, 4.089e9)
    assert within(count_flops(build_model("vit_b_16", device="meta")).macs, 17.564e9)


def test_bert_base_closed_form():
    t, d = 512, 768
    built = build_model("bert-base", device="meta", seq=t)
    assert within(count_flops(built).macs, 12 * transformer_layer(t, d) + d * d)  # + the pooler's d×d


def test_bert_on_cpu_goes_through_the_cpu_flash_kernel():
    t, d = 128, 768
    count = count_flops(build_model("bert-base:num_hidden_layers=2", device="cpu", seq=t))
    assert "aten._scaled_dot_product_flash_attention_for_cpu" in count.by_operator
    assert within(count.macs, 2 * transformer_layer(t, d) + d * d)


def test_gpt2_closed_form():
    t, d = 1024, 768  # 12 layers, no LM head in the bare backbone
    assert within(count_flops(build_model("gpt2", device="meta", seq=t)).macs, 12 * transformer_layer(t, d))


def test_gpt3_175b_on_meta_in_well_under_a_minute():
    t, d = 2048, 12288
    start = time.perf_counter()
    macs = count_flops(build_model("gpt3-175b", device="meta", seq=t)).macs
    assert time.perf_counter() - start < 30
    assert within(macs, 96 * transformer_layer(t, d))


def test_backward_closed_forms():
    t, d = 128, 512
    built = build_model("transformer:layers=1", device="meta", seq=t, train=True)
    # the input needs no gradient, so the q/k/v projections only get weight gradients (3·T·d²); out-projection
    # and feed-forward get weight and input gradients (2 × 9·T·d²), attention four products (4·T²·d)
    backward = 3 * t * d * d + 2 * 9 * t * d * d + 4 * t * t * d
    assert count_flops(built, backward=True).macs == transformer_layer(t, d) + backward
    resnet = build_model("resnet18", device="meta", train=True)
    forward = count_flops(resnet).macs
    first_conv = 64 * 112 * 112 * 3 * 7 * 7  # needs no input gradient
    assert count_flops(resnet, backward=True).macs == 3 * forward - first_conv


# ---------------------------------------------------------------- the two engines agree


@pytest.mark.parametrize("spec,seq", [
    ("transformer:layers=2", 64), ("transformer:layers=2,attention=naive", 64),
    ("transformer:layers=2,attention=torch", 64), ("attention", 64), ("attention:attention=naive", 64),
    ("attention:attention=torch", 64), ("lstm:layers=2", 32), ("gru:bidirectional=true", 32), ("rnn", 32),
    ("lenet5", None), ("inception-module", None), ("dwsep-conv", None), ("unet:base=8", None),
    ("resnet18", None), ("mobilenet_v2", None),
])
def test_engines_agree(spec, seq):
    built = build_model(spec, seq=seq)
    fvcore, dispatch = count_flops(built, engine="fvcore"), count_flops(built, engine="dispatch")
    meta = count_flops(build_model(spec, seq=seq, device="meta"))
    assert fvcore.macs == dispatch.macs == meta.macs > 0
    assert not fvcore.uncounted and not dispatch.uncounted


@pytest.mark.parametrize("spec,depth", [("resnet18", None), ("transformer:layers=2,attention=torch", 2)])
def test_engines_agree_per_module(spec, depth):
    """Fused kernels (PyTorch's fast path) are attributed to the layer that calls them, so compare above them."""
    built = build_model(spec, seq=32 if "transformer" in spec else None)
    fvcore, dispatch = (count_flops(built, engine=e).by_module for e in ("fvcore", "dispatch"))
    shallow = lambda table: {m: v for m, v in table.items() if depth is None or m.count(".") < depth}  # noqa: E731
    assert shallow(fvcore) == shallow(dispatch)
    assert dispatch["layers" if depth else "layer1"] > 0  # containers that never run forward themselves


def test_engines_agree_on_einsum_and_transposed_conv():
    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Parameter(torch.randn(16, 24)), nn.Parameter(torch.randn(24, 8))

        def forward(self, x):
            return torch.einsum("bi,ij,jk->bk", x, self.a, self.b)

    built = custom(Chain(), (5, 16))
    expected = 5 * 16 * 24 + 5 * 24 * 8  # left to right: (x a) then (xa b)
    assert count_flops(built, engine="fvcore").macs == count_flops(built, engine="dispatch").macs == expected
    up = custom(nn.ConvTranspose2d(16, 8, 2, stride=2), (1, 16, 10, 10))
    expected = 16 * 10 * 10 * 8 * 4
    assert count_flops(up, engine="fvcore").macs == count_flops(up, engine="dispatch").macs == expected


# ---------------------------------------------------------------- nothing silently uncounted


class Spectral(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(32, 32)

    def forward(self, x):
        return torch.fft.rfft(self.proj(x)).abs().cumsum(-1)


@pytest.mark.parametrize("engine", ["fvcore", "dispatch"])
def test_uncounted_ops_are_reported_with_their_module(engine):
    count = count_flops(custom(Spectral(), (2, 32)), engine=engine)
    assert count.macs == 2 * 32 * 32
    fft = next(op for op in count.uncounted if "fft" in op)
    cumsum = next(op for op in count.uncounted if "cumsum" in op)
    assert fft in count.significant_uncounted and cumsum not in count.significant_uncounted
    text = " ".join(count.warnings)
    assert f"uncounted op {fft}" in text and "no formula" in text and "known negligible" in text


@pytest.mark.parametrize("engine", ["fvcore", "dispatch"])
def test_uncounted_ops_reach_the_record(engine):
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = Spectral()

        def forward(self, x):
            return self.inner(x)

    macs = flop_records(custom(Wrapped(), (2, 32)), engine=engine)[0]
    assert any("fft" in w and "(1 call in inner)" in w for w in macs.warnings)
    assert any("fft" in op for op in macs.details["significant_uncounted"])


def test_untraceable_model_falls_back_to_dispatch_under_auto():
    class Labelled(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 4)

        def forward(self, x):
            return [self.proj(x), [1, 2]]  # jit tracing refuses a constant in the output

    built = custom(Labelled(), (3, 8))
    count = count_flops(built)
    assert (count.engine, count.macs) == ("dispatch", 3 * 8 * 4)
    assert any("fvcore could not trace" in w for w in count.warnings)
    with pytest.raises(UserError, match="use --engine dispatch"):
        count_flops(built, engine="fvcore")


def test_batch_multiplies_the_count():
    for spec in ("transformer:layers=1", "lstm:input=16,hidden=16"):
        one, three = (count_flops(build_model(spec, seq=32, batch=b)).macs for b in (1, 3))
        assert three == 3 * one


def test_position_table_warning_is_carried():
    records = flop_records(build_model("bert-base:num_hidden_layers=1", device="meta", seq=600))
    assert any("position table was extended" in w for w in records[0].warnings)


# ---------------------------------------------------------------- records and choices


def test_records_units_and_breakdowns():
    built = build_model("lenet5")
    records = flop_records(built, by="module", depth=1)
    total = {r.metric: r for r in records if "module" not in r.point}
    # conv1 6·28·28·25, conv2 16·10·10·6·25, fc 400·120 + 120·84 + 84·10
    lenet = 6 * 28 * 28 * 25 + 16 * 10 * 10 * 6 * 25 + 400 * 120 + 120 * 84 + 84 * 10
    assert (total["macs"].value, total["macs"].unit) == (lenet, "MAC")
    assert (total["flops"].value, total["flops"].unit) == (2 * lenet, "FLOP")
    assert total["other_flops"].value > 0
    modules = {r.point["module"]: r.value for r in records if "module" in r.point and r.metric == "macs"}
    assert modules["0"] == 6 * 28 * 28 * 25 and sum(modules.values()) == lenet
    operators = [r for r in flop_records(built, by="operator") if "operator" in r.point and r.metric == "macs"]
    assert sum(r.value for r in operators) == lenet


def test_other_flops_inside_fused_kernels():
    t, d, heads = 128, 512, 8
    fused = count_flops(build_model("attention:attention=torch", seq=t), engine="dispatch")  # MHA's fast path
    assert "aten._native_multi_head_attention" in fused.by_operator
    assert fused.other_flops == 4 * t * d + 3 * heads * t * t  # four bias adds, softmax at 3 per score
    for spec in ("attention:attention=torch", "transformer:layers=1,attention=torch"):  # fused against unfused (meta)
        fast, ops = (count_flops(build_model(spec, seq=t, device=device)).other_flops for device in ("cpu", "meta"))
        assert within(fast, ops, rel=0.2)


@pytest.mark.parametrize("kind,extra,per_hidden", [("lstm", "", 21), ("gru", ",layers=2,bidirectional=true", 4 * 16),
                                                    ("rnn", "", 4)])
def test_other_flops_inside_fused_recurrent_ops(kind, extra, per_hidden):
    # per step and cell: 4 per gate element (two biases, the add, the activation) + the state update
    # (LSTM 5·h, GRU 4·h): LSTM 4·4 + 5 = 21, GRU 4·3 + 4 = 16 (× 4 cells here), RNN 4
    t, h = 50, 32
    spec = f"{kind}:input=16,hidden={h}{extra}"
    built, meta = build_model(spec, seq=t), build_model(spec, seq=t, device="meta")
    counts = [count_flops(built, engine="fvcore"), count_flops(built, engine="dispatch"), count_flops(meta)]
    assert [c.other_flops for c in counts] == [per_hidden * t * h] * 3


def test_attention_counting_is_stated():
    records = flop_records(build_model("attention", seq=32))
    assert "full L×S" in records[0].details["attention"]


def test_engine_choice():
    with pytest.raises(UserError, match="keyword inputs"):
        count_flops(build_model("bert-base:num_hidden_layers=1", seq=8), engine="fvcore")
    with pytest.raises(UserError, match="meta"):
        count_flops(build_model("lenet5", device="meta"), engine="fvcore")
    with pytest.raises(UserError, match="unknown --engine"):
        count_flops(build_model("lenet5"), engine="ptflops")
    assert count_flops(build_model("lenet5")).engine == "fvcore"
    assert count_flops(build_model("lenet5"), backward=True).engine == "dispatch"
