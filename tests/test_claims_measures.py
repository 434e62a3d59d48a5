"""Each measurement kind of the claims against values worked out independently (closed forms, published figures)."""

import math

import pytest

from archbench.claims.measures import Context, measure

CTX = Context(device="cpu", min_time=0.05)


def test_layer_counts_c03_c04():
    fc = measure({"kind": "layer", "layer": "Linear", "args": {"in_features": 224 * 224 * 3, "out_features": 1000}}, CTX)
    assert fc.figures["weights"] == 150_528_000
    assert fc.figures["params"] == 150_528_000 + 1000
    conv = measure({"kind": "layer", "layer": "Conv2d", "args": {"in_channels": 3, "out_channels": 2, "kernel_size": 5}}, CTX)
    assert conv.figures["params"] == (5 * 5 * 3 + 1) * 2 == 152


def test_max_pool_shapes_c22():
    pool = measure({"kind": "layer", "layer": "MaxPool2d", "args": {"kernel_size": 2, "stride": 2},
                    "inputs": [[8, 224, 224], [8, 7, 7]]}, CTX)
    assert pool.figures["out_shapes"] == [[8, 112, 112], [8, 3, 3]]  # floor(7 / 2) = 3
    assert pool.figures["area_ratio"] == [4.0, 49 / 9]


def test_dense_vs_conv_formulas_c02_c06():
    got = measure({"kind": "dense_vs_conv", "in_channels": 3, "out_channels": 16, "kernel": 3, "bias": True,
                   "resolutions": [8, 1000]}, CTX).figures
    for r, dense, conv in zip([8, 1000], got["dense_params"], got["conv_params"]):
        assert dense == (r * r * 3) * (r * r * 16) + r * r * 16
        assert conv == 3 * 3 * 3 * 16 + 16
    assert got["conv_runs"] is True


def test_dense_equivalent_of_lenet5_c01():
    got = measure({"kind": "dense_equivalent", "models": {"lenet": "lenet5"}}, CTX).figures
    # conv1: 1x32x32 -> 6x28x28 (156 params); conv2: 6x14x14 -> 16x10x10 (2,416 params)
    dense = (1024 * 4704 + 4704) + (1176 * 1600 + 1600)
    assert got["lenet.conv_params"] == 156 + 2416
    assert got["lenet.conv_dense"] == dense
    assert got["lenet.conv_orders"] == pytest.approx(math.log10(dense / 2572))


def test_params_with_and_without_heads_c05(tv_meta):
    got = measure({"kind": "profile", "metrics": ["params"], "models": {
        "resnet": {"model": "resnet50", "without": {"head": ["fc"]}},
        "inception": {"model": "inception_v3", "without": {"aux": ["AuxLogits"]}},
    }}, CTX).figures
    assert got["resnet.params"] == tv_meta("resnet50")["num_params"] == 25_557_032
    assert got["resnet.params_head"] == 25_557_032 - (2048 * 1000 + 1000)
    # AuxLogits: 1x1 conv 768->128 + BN, 5x5 conv 128->768 + BN, Linear(768, 1000)
    aux = (768 * 128 + 2 * 128) + (128 * 768 * 25 + 2 * 768) + (768 * 1000 + 1000)
    assert got["inception.params"] == tv_meta("inception_v3")["num_params"]
    assert got["inception.params_aux"] == tv_meta("inception_v3")["num_params"] - aux


def test_gpt3_config_counted_on_meta_c19():
    got = measure({"kind": "profile", "metrics": ["params"], "models": {
        "gpt3": {"model": "gpt3-175b", "attributes": {"blocks": "config.n_layer", "positions": "config.n_positions"}}}},
        CTX).figures
    d, layers, vocab, positions = 12288, 96, 50257, 2048
    block = 12 * d * d + 13 * d  # qkv 3d²+3d, proj d²+d, fc 4d²+4d, fc-proj 4d²+d, two layer norms 4d
    assert got["gpt3.params"] == layers * block + vocab * d + positions * d + 2 * d
    assert (got["gpt3.blocks"], got["gpt3.positions"]) == (96, 2048)


def test_shape_check_c07():
    got = measure({"kind": "shape_check", "models": {"conv": "dwsep-conv:separable=false", "fcn": "mlp:input=3x32x32"},
                   "second": {"conv": "32x64x64", "fcn": "3x64x64"}}, CTX).figures
    assert got["conv.runs_default"] and got["conv.runs_second"]
    assert got["fcn.runs_default"] and not got["fcn.runs_second"]
    assert got["fcn.error"]  # the shape error is caught and kept as text


def test_resnet50_layer_count_c21():
    got = measure({"kind": "layer_count", "model": "resnet50", "types": ["Conv2d", "Linear"],
                   "exclude": ["downsample"]}, CTX).figures
    blocks = 3 + 4 + 6 + 3  # bottlenecks per stage, 3 convs each
    assert got["conv2d"] == 1 + 3 * blocks + 4  # stem + bottlenecks + one downsample conv per stage
    assert got["excluded"] == 4
    assert got["counted"] == 1 + 3 * blocks + 1 == 50


def test_score_matmul_c14():
    got = measure({"kind": "score_matmul", "d": 1000, "seq": [30, 512]}, CTX).figures
    assert got["macs"] == [30 * 30 * 1000, 512 * 512 * 1000]


def test_unknown_layer_is_a_user_error():
    from archbench.errors import UserError

    with pytest.raises(UserError):
        measure({"kind": "layer", "layer": "NoSuchLayer"}, CTX)


@pytest.fixture
def tv_meta():
    from torchvision.models import get_model_weights

    return lambda name: get_model_weights(name).DEFAULT.meta


def test_profile_macs_of_the_gan_generator_c28():
    got = measure({"kind": "profile", "metrics": ["params", "macs"], "models": {"g": "gan-generator"}}, CTX).figures
    assert got["g.params"] == (100 + 1) * 256 + (256 + 1) * 784
    assert got["g.macs"] == 100 * 256 + 256 * 784
    assert got["g.flops"] == 2 * got["g.macs"]


def test_sweep_figures_c08_c13():
    got = measure({"kind": "sweep", "models": {"lstm": "lstm:input=32,hidden=32", "rnn": "rnn:input=32,hidden=32"},
                   "seq": [16, 64, 256], "metrics": ["params", "flops"]}, CTX).figures
    assert got["params.lstm"] == [4 * (32 * 64 + 64)] * 3
    assert got["macs.lstm"] == [t * 4 * (32 * 32 + 32 * 32) for t in (16, 64, 256)]
    assert got["macs_exponent.lstm"] == pytest.approx(1.0, abs=1e-6)
    assert got["macs_local_exponent.lstm"] == pytest.approx(1.0, abs=1e-6)
    assert got["macs_crossover"] is None  # the LSTM does 4× the RNN's work at every T


def test_recurrent_params_closed_forms_c09():
    got = measure({"kind": "profile", "metrics": ["params"], "models": {
        "rnn": "rnn:input=100,hidden=64", "gru": "gru:input=100,hidden=64", "lstm": "lstm:input=100,hidden=64"}}, CTX).figures
    one_gate_block = 64 * (100 + 64) + 2 * 64  # W_ih, W_hh and two bias vectors per gate block
    assert [got["rnn.params"], got["gru.params"], got["lstm.params"]] == [1 * one_gate_block, 3 * one_gate_block,
                                                                        4 * one_gate_block]
