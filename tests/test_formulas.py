"""The pure MAC formulas against counts worked out by hand here."""

import pytest

from archbench.measure import formulas


def test_matmul_shapes_and_broadcasting():
    assert formulas.matmul_macs((7, 5), (5, 3)) == 7 * 5 * 3
    assert formulas.matmul_macs((4, 7, 5), (4, 5, 3)) == 4 * 7 * 5 * 3
    # (2, 1, 3, 4) @ (5, 4, 6): batch broadcast to (2, 5)
    assert formulas.matmul_macs((2, 1, 3, 4), (5, 4, 6)) == 2 * 5 * 3 * 4 * 6
    assert formulas.matmul_macs((5,), (5, 3)) == 5 * 3  # vector-matrix
    assert formulas.matmul_macs((7, 5), (5,)) == 7 * 5  # matrix-vector
    with pytest.raises(ValueError):
        formulas.matmul_macs((7, 5), (4, 3))


def test_linear():
    # (B=2, T=10, in=32) through Linear(32, 64): every output takes 32 MACs
    assert formulas.linear_macs((2, 10, 32), (64, 32)) == 2 * 10 * 64 * 32


def test_convolutions_of_every_kind():
    # 3x3 conv, 3 -> 16 channels, 32x32 output: each output element takes 3·9 MACs
    assert formulas.conv_macs((1, 3, 32, 32), (16, 3, 3, 3), (1, 16, 32, 32)) == 16 * 32 * 32 * 3 * 9
    # grouped: 4 groups of 8 -> 4 groups of 16 (weight (64, 8, 3, 3)), 16x16 output, batch 2
    assert formulas.conv_macs((2, 32, 16, 16), (64, 8, 3, 3), (2, 64, 16, 16)) == 2 * 64 * 16 * 16 * 8 * 9
    # depthwise 3x3 on 32 channels, 112x112: 9 MACs per output element
    assert formulas.conv_macs((1, 32, 112, 112), (32, 1, 3, 3), (1, 32, 112, 112)) == 32 * 112 * 112 * 9
    # 1-D conv, kernel 5
    assert formulas.conv_macs((1, 4, 100), (8, 4, 5), (1, 8, 96)) == 8 * 96 * 4 * 5
    # transposed 2x2 stride 2, 16 -> 8 channels: each input element scattered to 8·4 outputs
    assert formulas.conv_macs((1, 16, 10, 10), (16, 8, 2, 2), (1, 8, 20, 20), transposed=True) == 16 * 10 * 10 * 8 * 4


def test_attention_counts_both_products():
    b, h, length, source, e, ev = 2, 8, 100, 60, 64, 32
    scores = b * h * length * source * e  # q @ kᵀ
    weighted = b * h * length * source * ev  # p @ v
    assert formulas.attention_macs((b, h, length, e), (b, h, source, e), (b, h, source, ev)) == scores + weighted
    # grouped-query attention: 2 key/value heads broadcast to 8 query heads
    assert formulas.attention_macs((b, 8, length, e), (b, 2, source, e), (b, 2, source, e)) == 2 * b * 8 * length * source * e
    assert formulas.attention_backward_macs((1, 1, 4, 8), (1, 1, 4, 8), (1, 1, 4, 8)) == 2 * 2 * 4 * 4 * 8


def test_multi_head_attention_and_encoder_layer_closed_forms():
    b, t, d = 2, 128, 512
    # q, k, v, out projections 4·T·d², scores and weighted values 2·T²·d
    assert formulas.multi_head_attention_macs((b, t, d), (b, t, d), (b, t, d), d) == b * (4 * t * d * d + 2 * t * t * d)
    # the Transformer layer with ff = 4d: 12·T·d² + 2·T²·d per sequence
    assert formulas.encoder_layer_macs((b, t, d), 4 * d) == b * (12 * t * d * d + 2 * t * t * d)
    # cross-attention: L = 10 queries over S = 50 keys
    assert formulas.multi_head_attention_macs((1, 10, d), (1, 50, d), (1, 50, d), d) == (
        10 * d * d + 2 * 50 * d * d + 2 * 10 * 50 * d + 10 * d * d
    )


def lstm_weight_shapes(i, h, layers, bidirectional, proj=0, gates=4):
    """The weight shapes of torch's recurrent layers, written out: w_ih, w_hh, b_ih, b_hh (, w_hr) per layer and direction."""
    directions = 2 if bidirectional else 1
    out = proj or h
    shapes = []
    for layer in range(layers):
        layer_input = i if layer == 0 else out * directions
        for _ in range(directions):
            shapes += [(gates * h, layer_input), (gates * h, out), (gates * h,), (gates * h,)]
            if proj:
                shapes.append((proj, h))
    return shapes


@pytest.mark.parametrize("gates", [4, 3, 1])  # LSTM, GRU, RNN
def test_recurrent_single_layer(gates):
    t, b, i, h = 50, 3, 32, 64
    expected = t * b * gates * (i * h + h * h)
    assert formulas.recurrent_macs((t, b, i), lstm_weight_shapes(i, h, 1, False, gates=gates)) == expected
    assert formulas.recurrent_macs((b, t, i), lstm_weight_shapes(i, h, 1, False, gates=gates)) == expected  # batch_first
    assert formulas.recurrent_macs((t * b, i), lstm_weight_shapes(i, h, 1, False, gates=gates)) == expected  # packed


def test_recurrent_stacked_bidirectional_projected():
    t, b, i, h, p = 20, 2, 32, 64, 16
    # layer 0: input i; layer 1: input 2p (both directions' projected outputs); per step 4h·(in + p) + p·h
    layer0 = 2 * t * b * (4 * h * (i + p) + p * h)
    layer1 = 2 * t * b * (4 * h * (2 * p + p) + p * h)
    assert formulas.recurrent_macs((t, b, i), lstm_weight_shapes(i, h, 2, True, proj=p)) == layer0 + layer1
    assert formulas.recurrent_backward_macs((t, b, i), lstm_weight_shapes(i, h, 2, True, proj=p)) == 2 * (layer0 + layer1)


def test_recurrent_shapes_match_torch_modules():
    from torch import nn

    lstm = nn.LSTM(32, 64, num_layers=2, bidirectional=True, proj_size=16, device="meta")
    assert [tuple(p.shape) for p in lstm._flat_weights] == lstm_weight_shapes(32, 64, 2, True, proj=16)


def test_einsum_pairwise_left_to_right():
    assert formulas.einsum_macs("bhld,bhsd->bhls", [(2, 3, 4, 5), (2, 3, 6, 5)]) == 2 * 3 * 4 * 6 * 5
    # chain (2x3)(3x4)(4x5) left to right: 2·3·4 then 2·4·5
    assert formulas.einsum_macs("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]) == 2 * 3 * 4 + 2 * 4 * 5
    # right to left, given as a path in opt_einsum's format: (1, 2) first, then the rest
    assert formulas.einsum_macs("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)], path=[(1, 2), (0, 1)]) == 3 * 4 * 5 + 2 * 3 * 5
    # implicit output (ik), and an index summed out before the product (k of 'jk' in 'ij,jk->i')
    assert formulas.einsum_macs("ij,jk", [(2, 3), (3, 4)]) == 2 * 3 * 4
    assert formulas.einsum_macs("ij,jk->i", [(2, 3), (3, 4)]) == 2 * 3
    assert formulas.einsum_macs("ij->ji", [(2, 3)]) == 0
