"""The op table (archbench/measure/ops.py): one entry per op, bound by schema names; losses counted by their
written-out formulas; backward ops filed under the module whose forward made them."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from archbench.measure import ops
from archbench.measure.flops import count_flops

N, C, D = 4, 5, 8  # batch rows, classes (outputs), inputs


class LinearLoss(nn.Module):
    """Linear(D -> C) and a loss on its output, as a model that computes its loss does."""

    def __init__(self, loss):
        super().__init__()
        self.fc = nn.Linear(D, C)
        self.loss = loss

    def forward(self, x, target):
        return self.loss(self.fc(x), target)


def _inputs(kind):
    torch.manual_seed(0)
    target = torch.tensor([0, 1, 2, 3]) if kind == "ce" else torch.randn(N, C)
    return torch.randn(N, D), target


LOSSES = {"ce": F.cross_entropy, "mse": F.mse_loss}
LINEAR_MACS = N * D * C
BIAS = N * C
# written out: log_softmax 3 per logit, then N picked log-probabilities summed (N); mse: subtract, square, add
FORWARD_LOSS = {"ce": 3 * N * C + N, "mse": 3 * N * C}
# backward of loss.sum(): the sum of the scalar (1), the loss's backward (nll: one write per target, N; log_softmax's
# backward 3 per logit; mse: 3 per element), the bias gradient (a sum over the N rows of the (N, C) gradient)
BACKWARD_LOSS = {"ce": N + 3 * N * C, "mse": 3 * N * C}


@pytest.mark.parametrize("engine", ["dispatch", "fvcore"])
@pytest.mark.parametrize("kind", ["ce", "mse"])
def test_a_model_that_computes_its_loss_has_no_significant_uncounted_op(kind, engine):
    count = count_flops(LinearLoss(LOSSES[kind]), _inputs(kind), engine=engine)
    assert count.macs == LINEAR_MACS
    assert count.other_flops == BIAS + FORWARD_LOSS[kind]
    assert count.uncounted == {}


@pytest.mark.parametrize("kind", ["ce", "mse"])
def test_loss_backward_closed_forms(kind):
    count = count_flops(LinearLoss(LOSSES[kind]).train(), _inputs(kind), backward=True)
    assert count.macs == 2 * LINEAR_MACS  # forward + weight gradient (the input needs none)
    assert count.other_flops == BIAS + FORWARD_LOSS[kind] + 1 + BACKWARD_LOSS[kind] + N * C
    assert count.significant_uncounted == {}


def test_weighted_nll_counts_the_weights():
    model = LinearLoss(lambda logits, target: F.cross_entropy(logits, target, weight=torch.ones(C)))
    count = count_flops(model, _inputs("ce"), engine="dispatch")
    assert count.other_flops == BIAS + 3 * N * C + 3 * N  # multiply by the weight, sum, and sum the weights


class _Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.c_attn, self.c_proj, self.heads = nn.Linear(d, 3 * d), nn.Linear(d, d), heads
        self.resid_dropout = nn.Dropout(0.0)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in self.c_attn(x).split(d, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(b, t, d)
        return self.resid_dropout(self.c_proj(y))


class NanoGPT(nn.Module):
    """nanoGPT's shape: token and position embeddings, blocks ending in a dropout, a tied head, its own loss."""

    def __init__(self, vocab=64, length=16, d=32, heads=4, layers=3):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(length, d)
        self.h = nn.ModuleList([_Attention(d, heads) for _ in range(layers)])
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.wte.weight = self.lm_head.weight

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = x + block(x)
        logits = self.lm_head(x)
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def test_backward_ops_are_filed_under_the_module_whose_forward_made_them():
    idx = torch.randint(0, 64, (2, 16))
    count = count_flops(NanoGPT().train(), (idx, idx), backward=True)
    assert count.uncounted == {"aten.embedding_dense_backward": 2}  # negligible, and reported
    assert sorted(count.uncounted_modules["aten.embedding_dense_backward"]) == ["wpe", "wte"]
    assert count.significant_uncounted == {}


def test_the_table_refuses_an_op_registered_twice():
    with pytest.raises(ValueError, match="already in the op table"):
        ops.op("mm")(lambda call: ops.Work())
    assert ops.OPS["mm"].work is not None  # the first registration stands


def test_an_entry_whose_argument_names_are_gone_fails_loudly():
    """An entry reads arguments by schema name: a schema without them is an error naming the op and its
    arguments, never a silent zero or a wrong positional argument."""
    renamed = ops.Call("addmm", ("self", "m1", "m2"), {}, lambda v: v, lambda: [], (2, 3))
    with pytest.raises(ops.OpSchemaError, match=r"aten\.addmm: its schema has no argument 'mat1'"):
        ops.OPS["addmm"].work(renamed)


def test_every_entry_names_an_aten_op_and_no_op_is_in_two_lists():
    assert all(hasattr(torch.ops.aten, name) for name in ops.OPS)
    assert not set(ops.OPS) & ops.DATA_MOVEMENT_OPS
    assert not set(ops.OPS) & ops.NEGLIGIBLE_OPS
    assert not ops.DATA_MOVEMENT_OPS & ops.NEGLIGIBLE_OPS


def test_arguments_bind_by_name_for_every_overload():
    """mm with keyword arguments and lstm's packed overload (data, batch_sizes, hx, params...) bind alike."""
    a, b = torch.ones(2, 3), torch.ones(3, 4)
    call = ops.dispatch_call(torch.ops.aten.mm.default, (), {"self": a, "mat2": b}, a @ b)
    assert ops.OPS["mm"].work(call).macs == 2 * 3 * 4
    packed = ops.Call("lstm", ("data", "batch_sizes", "hx", "params", "has_biases", "num_layers", "dropout", "train",
                               "bidirectional"),
                      {"data": (10, 8), "params": [(64, 8), (64, 16), (64,), (64,)], "num_layers": 1,
                       "bidirectional": False}, lambda v: v, lambda: [], None)
    work = ops.OPS["lstm"].work(packed)
    assert work.macs == 10 * (64 * 8 + 64 * 16)  # ΣT·B rows × (4h·i + 4h·h), h = 16
    assert work.other_flops == 10 * (4 * 4 + 5) * 16


def test_grouped_convolution_backward_costs_what_its_forward_does():
    """The weight gradient of a depthwise conv is as cheap as its forward (torch's own formula multiplies it
    by the groups): dw 3x3 over 8 channels, then 1x1 8 -> 16, on 2x8x10x10."""
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.Conv2d(8, 16, 1, bias=False))
    depthwise, pointwise = 2 * 10 * 10 * 8 * 9, 2 * 10 * 10 * 16 * 8
    count = count_flops(model.train(), torch.randn(2, 8, 10, 10), backward=True)
    # the input needs no gradient: the depthwise conv's weight gradient only; the pointwise conv's both
    assert count.by_operator == {"aten.convolution": depthwise + pointwise,
                                 "aten.convolution_backward": depthwise + 2 * pointwise}
