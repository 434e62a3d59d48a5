"""Parameter counts against closed forms written out here and against published figures."""

import pytest
from torch import nn

from archbench.measure.params import count_params, dense_equivalent, dense_equivalent_records
from archbench.models import build_model


def by_metric(records, layer=None):
    return {r.metric: r.value for r in records if r.point.get("layer") == layer}


def test_linear_and_conv_closed_forms():
    assert count_params(nn.Linear(300, 70)).total == 300 * 70 + 70
    assert count_params(nn.Linear(300, 70, bias=False)).total == 300 * 70
    assert count_params(nn.Conv2d(3, 64, 7)).total == 7 * 7 * 3 * 64 + 64
    assert count_params(nn.Conv2d(32, 32, 3, groups=32, bias=False)).total == 3 * 3 * 32


def test_shared_parameters_count_once_and_frozen_are_split():
    shared = nn.Linear(10, 10)
    model = nn.Sequential(shared, nn.ReLU(), shared, nn.BatchNorm1d(10))
    model[3].weight.requires_grad_(False)
    counts = count_params(model)
    assert counts.total == (10 * 10 + 10) + 2 * 10
    assert counts.frozen == 10
    assert counts.trainable == counts.total - 10
    assert counts.buffers == 10 + 10 + 1  # running mean, running var, num_batches_tracked


def recurrent_closed_form(gates, i, h, layers, directions):
    """PyTorch's recurrent layers: gates × (h·input + h·h + two bias vectors of h) per layer and direction."""
    total = 0
    for layer in range(layers):
        layer_input = i if layer == 0 else h * directions
        total += directions * gates * (h * layer_input + h * h + 2 * h)
    return total


@pytest.mark.parametrize("name, gates", [("rnn", 1), ("gru", 3), ("lstm", 4)])
@pytest.mark.parametrize("layers, bidirectional", [(1, False), (2, False), (3, True)])
def test_recurrent_params(name, gates, layers, bidirectional):
    spec = f"{name}:input=100,hidden=256,layers={layers},bidirectional={str(bidirectional).lower()}"
    built = build_model(spec, device="meta")
    expected = recurrent_closed_form(gates, 100, 256, layers, 2 if bidirectional else 1)
    assert count_params(built.module).total == expected


def test_mlp_closed_form():
    built = build_model("mlp:input=3x32x32,hidden=512x128,outputs=10", device="meta")
    expected = (3 * 32 * 32 * 512 + 512) + (512 * 128 + 128) + (128 * 10 + 10)
    assert count_params(built.module).total == expected


def test_lenet5_closed_form():
    conv1 = 5 * 5 * 1 * 6 + 6
    conv2 = 5 * 5 * 6 * 16 + 16
    fcs = (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert count_params(build_model("lenet5", device="meta").module).total == conv1 + conv2 + fcs


def test_transformer_layer_closed_form_same_for_sdpa_and_naive():
    d, ff = 512, 2048
    layer = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    for attention in ("sdpa", "naive", "torch"):
        built = build_model(f"transformer:layers=2,attention={attention}", device="meta")
        assert count_params(built.module).total == 2 * layer


def test_published_torchvision_counts():
    from torchvision.models import get_model_weights

    # regnet's builder computes with tensors: built on cpu and moved to meta
    for name in ("resnet50", "mobilenet_v2", "vit_b_16", "inception_v3", "alexnet", "vgg16", "efficientnet_b0", "swin_t",
                 "regnet_x_400mf"):
        published = get_model_weights(name).DEFAULT.meta["num_params"]
        assert count_params(build_model(name, device="meta").module).total == published, name
    # torchvision's model table, written out: ResNet-50 has 25,557,032 parameters
    assert count_params(build_model("resnet50", device="meta").module).total == 25_557_032


def test_bert_base_published_count():
    # BERT-base (uncased) with pooler: 109,482,240 parameters, the figure Hugging Face reports for bert-base-uncased
    assert count_params(build_model("bert-base", device="meta").module).total == 109_482_240


def test_gpt3_175b_closed_form_on_meta():
    d, layers, vocab, positions = 12288, 96, 50257, 2048
    per_layer = (4 * d * d + 4 * d) + (8 * d * d + 5 * d) + 4 * d  # attention, MLP (4d hidden), two LayerNorms
    expected = layers * per_layer + vocab * d + positions * d + 2 * d
    built = build_model("gpt3-175b", device="meta")
    assert count_params(built.module).total == expected
    assert 174e9 < expected < 176e9


def test_dense_equivalent_formula():
    # C04's layers: an FC layer of 100 units on 500x500x3 has 75M weights; two 5x5 filters have (5·5·3+1)·2
    assert dense_equivalent(500 * 500 * 3, 100, bias=False) == 75_000_000
    built = build_model("dwsep-conv:separable=false,in_channels=3,out_channels=2,kernel=5,bias=true", device="meta",
                        input_shape=(3, 500, 500))
    rows = by_metric(dense_equivalent_records(built), layer="")
    volume_in, volume_out = 3 * 500 * 500, 2 * 500 * 500
    assert rows["params"] == (5 * 5 * 3 + 1) * 2
    assert rows["params_dense_equivalent"] == volume_in * volume_out + volume_out


def test_dense_equivalent_of_lenet5_layers():
    records = dense_equivalent_records(build_model("lenet5", device="meta"))
    conv1 = by_metric(records, "0")
    assert conv1["params"] == 5 * 5 * 6 + 6
    assert conv1["params_dense_equivalent"] == (32 * 32 * 1) * (28 * 28 * 6) + 28 * 28 * 6
    conv2 = by_metric(records, "3")
    assert conv2["params_dense_equivalent"] == (14 * 14 * 6) * (10 * 10 * 16) + 10 * 10 * 16
    fc = by_metric(records, "7")
    assert fc["params_dense_equivalent"] == fc["params"] == 400 * 120 + 120
    total = by_metric(records, "TOTAL (conv + linear)")
    assert total["params"] == count_params(build_model("lenet5", device="meta").module).total
    assert total["dense_ratio"] == pytest.approx(total["params_dense_equivalent"] / total["params"])


def test_dense_equivalent_works_for_a_real_cnn():
    records = dense_equivalent_records(build_model("resnet50", device="meta"))
    total = by_metric(records, "TOTAL (conv + linear)")
    assert total["dense_ratio_orders"] > 4  # dense equivalents are orders of magnitude larger
    assert any("outside conv/linear" in w for r in records for w in r.warnings)
