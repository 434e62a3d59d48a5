"""Gradient norms at initialisation (C12, C25) against an independent route: autograd's Jacobian, a hand derivation."""

import pytest
import torch

from archbench.claims.gradients import depth_gradient_norms, recurrent_gradient_norms


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_recurrent_norm_is_the_jacobian_of_last_output_by_first_input(cell):
    size, steps = 6, 4
    got = recurrent_gradient_norms(cell, [steps], size=size, seeds=1)[0]
    torch.manual_seed(0)  # the same draws as the function's seed 0: module first, then the sequence
    module = {"rnn": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](size, size, batch_first=True).double()
    sequence = torch.randn(1, steps, size, dtype=torch.float64)

    def last_output(first):
        return module(torch.cat([first.view(1, 1, size), sequence[:, 1:]], dim=1))[0][0, -1]

    jacobian = torch.autograd.functional.jacobian(last_output, sequence[0, 0])
    assert got == pytest.approx(jacobian.norm().item(), rel=1e-9)


def test_rnn_one_step_closed_form():
    # h_1 = tanh(W_ih x + b_ih + b_hh) with h_0 = 0, so ∂h_1/∂x = diag(1 - h_1²) W_ih
    size = 5
    got = recurrent_gradient_norms("rnn", [1], size=size, seeds=1)[0]
    torch.manual_seed(0)
    rnn = torch.nn.RNN(size, size).double()
    x = torch.randn(size, dtype=torch.float64)
    h = torch.tanh(rnn.weight_ih_l0 @ x + rnn.bias_ih_l0 + rnn.bias_hh_l0)
    assert got == pytest.approx(((1 - h**2)[:, None] * rnn.weight_ih_l0).norm().item(), rel=1e-9)


def test_lstm_forget_bias_sets_the_gate():
    slow = recurrent_gradient_norms("lstm", [30], size=8, seeds=1, forget_bias=3.0)[0]
    fast = recurrent_gradient_norms("lstm", [30], size=8, seeds=1, forget_bias=-3.0)[0]
    assert slow > 1e3 * fast  # forget gate σ(3)≈0.95 keeps far more gradient than σ(-3)≈0.05


def test_depth_one_closed_form():
    # L = mean(relu(Wx + b)²) over a (B, d) batch: ∂L/∂W = 2/(B·d) · (relu(z) ⊙ [z > 0])ᵀ x
    width, batch = 7, 32
    got = depth_gradient_norms([1], residual=False, width=width, batch=batch, seeds=1)[0]
    torch.manual_seed(0)
    layer = torch.nn.Linear(width, width).double()
    x = torch.randn(batch, width, dtype=torch.float64)
    z = x @ layer.weight.T + layer.bias
    grad = (2 / (batch * width)) * (torch.relu(z) * (z > 0)).T @ x
    assert got == pytest.approx(grad.norm().item(), rel=1e-9)


def test_residual_depth_one_adds_the_identity_path():
    # x + relu(Wx + b): ∂L/∂W = 2/(B·d) · ((x + relu(z)) ⊙ [z > 0])ᵀ x
    width, batch = 7, 32
    got = depth_gradient_norms([1], residual=True, width=width, batch=batch, seeds=1)[0]
    torch.manual_seed(0)
    layer = torch.nn.Linear(width, width).double()
    x = torch.randn(batch, width, dtype=torch.float64)
    z = x @ layer.weight.T + layer.bias
    grad = (2 / (batch * width)) * ((x + torch.relu(z)) * (z > 0)).T @ x
    assert got == pytest.approx(grad.norm().item(), rel=1e-9)
