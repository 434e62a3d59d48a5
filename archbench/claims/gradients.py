"""Gradient propagation at initialisation: through time (recurrent cells) and through depth (plain vs residual).

Both functions build freshly initialised float64 modules (PyTorch's default initialisation
unless stated, float64 so that tiny norms don't underflow), run one forward and one backward pass on random inputs, and return norms. They
are what the vanishing-gradient claims (C12, C25) are judged on.
"""

from __future__ import annotations

import math


def recurrent_gradient_norms(cell: str, steps: list[int], *, size: int = 64, seeds: int = 3,
                             forget_bias: float | None = None) -> list[float]:
    """‖∂h_T/∂x_1‖_F, the Frobenius norm of the Jacobian of the last output by the first input, per T.

    ``cell`` is ``rnn`` (tanh), ``lstm`` or ``gru`` with input = hidden = ``size``. The full
    Jacobian is taken in one backward pass: ``size`` copies of the same sequence go through
    as a batch, and copy ``i`` back-propagates output unit ``i`` only. Each figure is the
    geometric mean over ``seeds`` initialisations. ``forget_bias`` sets the LSTM forget-gate
    biases (b_ih + b_hh) to that value (Jozefowicz et al. use 1).
    """
    import torch
    from torch import nn

    module_class = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[cell]
    norms = []
    for steps_t in steps:
        logs = []
        for seed in range(seeds):
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            module = module_class(size, size, batch_first=True).double()
            if forget_bias is not None and cell == "lstm":
                with torch.no_grad():
                    module.bias_ih_l0[size:2 * size] = forget_bias / 2
                    module.bias_hh_l0[size:2 * size] = forget_bias / 2
            sequence = torch.randn(1, steps_t, size, dtype=torch.float64).expand(size, steps_t, size).clone().requires_grad_(True)
            torch.random.set_rng_state(generator_state)
            last = module(sequence)[0][:, -1, :]  # (copies, hidden)
            last.diagonal().sum().backward()
            logs.append(_log(sequence.grad[:, 0, :].norm().item()))
        norms.append(math.exp(sum(logs) / len(logs)))
    return norms


def depth_gradient_norms(depths: list[int], *, residual: bool, width: int = 64, batch: int = 32,
                         seeds: int = 3) -> list[float]:
    """‖∂L/∂W_1‖_F, the first layer's weight-gradient norm, for a stack of ``depth`` Linear+ReLU blocks.

    Plain: x ← relu(W x + b); residual: x ← x + relu(W x + b); PyTorch's default Linear
    initialisation, no normalisation; L = mean of the squared final features over a batch
    of standard-normal inputs. Geometric mean over ``seeds`` initialisations.
    """
    import torch
    from torch import nn

    norms = []
    for depth in depths:
        logs = []
        for seed in range(seeds):
            generator_state = torch.random.get_rng_state()
            torch.manual_seed(seed)
            layers = [nn.Linear(width, width).double() for _ in range(depth)]
            x = torch.randn(batch, width, dtype=torch.float64)
            torch.random.set_rng_state(generator_state)
            for layer in layers:
                update = torch.relu(layer(x))
                x = x + update if residual else update
            x.pow(2).mean().backward()
            logs.append(_log(layers[0].weight.grad.norm().item()))
        norms.append(math.exp(sum(logs) / len(logs)))
    return norms


def _log(norm: float) -> float:
    """log of a norm, -inf for an exact zero (so the geometric mean is 0 when any seed underflows)."""
    return math.log(norm) if norm > 0 else -math.inf
