"""Recurrent layers counted at the call on the meta device: one op per ``nn.LSTM``/``GRU``/``RNN`` call, no time loop.

On the meta device PyTorch's recurrent kernels (``aten::lstm``, ``gru``, ``rnn_tanh``, ``rnn_relu``) run their
composite implementation: one small op per time step, layer and direction, so counting an LSTM at T = 10,000
dispatched tens of thousands of ops. :func:`recurrent_calls` is a ``TorchFunctionMode`` that sees the whole
``torch._VF`` call ``nn.RNNBase.forward`` makes and, on meta, answers it with one custom op (``archbench::lstm``,
``gru``, ``rnn_tanh``, ``rnn_relu``). Its fake implementation makes outputs of the right shapes (padded or packed
input, any layers, directions, ``proj_size``, batch-first); the op table (``measure/ops.py``: ``archbench.lstm``...)
counts it with :func:`formulas.recurrent_macs` and its backward, :data:`BACKWARD_OP`, with
:func:`formulas.recurrent_backward_macs`, as it counts the CPU's fused ``mkldnn_rnn_layer`` ops. On a real
device the call runs as it is.
"""

from __future__ import annotations

from contextlib import nullcontext

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
"""The ``torch._VF`` recurrent calls and the gates of their cells."""

BACKWARD_OP = "archbench::recurrent_backward"
_ops: tuple | None = None


def ops() -> tuple:
    """The custom ops (forward by ``torch._VF`` name, backward), defined once per process through ``torch.library``."""
    global _ops
    if _ops is None:
        _ops = _define()
    return _ops


def _define() -> tuple:
    import torch

    def fake(data, hx, weights, output_width, cells):
        last = hx[-1]  # LSTM: (h, c); GRU and RNN: (h,)
        return data.new_empty((*data.shape[:-1], output_width)), hx[0].new_empty(hx[0].shape), last.new_empty(last.shape)

    def stand_in(data, hx, weights, output_width, cells):
        raise NotImplementedError("archbench's recurrent ops only stand for a recurrent call on the meta device")

    @torch.library.custom_op(BACKWARD_OP, mutates_args=(),
                             schema="(Tensor grad, Tensor data, Tensor[] hx, Tensor[] weights) -> Tensor[]")
    def recurrent_backward(grad, data, hx, weights):
        raise NotImplementedError("archbench's recurrent ops only stand for a recurrent call on the meta device")

    @recurrent_backward.register_fake
    def _(grad, data, hx, weights):
        return [t.new_empty(t.shape) for t in (data, *hx, *weights)]

    def setup_context(ctx, inputs, output):
        data, hx, weights = inputs[:3]
        ctx.save_for_backward(data, *hx, *weights)
        ctx.states = len(hx)

    def backward(ctx, grad_output, grad_h, grad_c):
        data, *rest = ctx.saved_tensors
        hx, weights = rest[:ctx.states], rest[ctx.states:]
        grads = torch.ops.archbench.recurrent_backward(grad_output, data, hx, weights)
        return grads[0], grads[1:1 + ctx.states], grads[1 + ctx.states:], None, None

    forward = {}
    for name in GATES:
        op = torch.library.custom_op(f"archbench::{name}", stand_in, mutates_args=(), schema=(
            "(Tensor data, Tensor[] hx, Tensor[] weights, int output_width, int cells) "
            "-> (Tensor, Tensor, Tensor)"))
        op.register_fake(fake)
        op.register_autograd(backward, setup_context=setup_context)
        forward[name] = getattr(torch.ops.archbench, name)
    return forward, torch.ops.archbench.recurrent_backward


def recurrent_calls(model, device: str):
    """On the meta device, a TorchFunctionMode that answers each ``torch._VF`` recurrent call with one op of
    archbench's; elsewhere, or for a model without a recurrent layer, nothing (the real kernels are one fused op
    per layer)."""
    import torch
    from torch.overrides import TorchFunctionMode

    if not counted_at_the_call(model, device):
        return nullcontext()

    forward, _ = ops()
    calls = {getattr(torch._VF, name): op for name, op in forward.items()}

    class RecurrentCalls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            op = calls.get(func)
            if op is None or kwargs or args[0].device.type != "meta":
                return func(*args, **(kwargs or {}))
            return _answer(op, args)

    return RecurrentCalls()


def counted_at_the_call(model, device: str) -> bool:
    """Whether ``model``'s recurrent layers are counted at the call: on meta, for a model that has one."""
    from torch import nn

    return device == "meta" and any(isinstance(m, nn.RNNBase) for m in model.modules())


def _answer(op, args: tuple):
    """The recurrent call ``args`` answered by ``op``: padded ``(input, hx, params, has_biases, layers, dropout,
    train, bidirectional, batch_first)`` or packed ``(data, batch_sizes, hx, params, has_biases, layers, dropout,
    train, bidirectional)``, hx a tensor (GRU, RNN) or a pair (LSTM)."""
    packed = isinstance(args[3], (list, tuple))  # padded: args[3] is has_biases
    data, hx, weights, *flags = (args[0], args[2], args[3], *args[4:]) if packed else args
    _, layers, _, _, bidirectional, *_ = flags  # has_biases, num_layers, dropout, train, bidirectional[, batch_first]
    states = list(hx) if isinstance(hx, (list, tuple)) else [hx]
    directions = 2 if bidirectional else 1
    output, h, c = op(data, states, list(weights), directions * states[0].shape[-1], layers * directions)
    return (output, h, c) if len(states) == 2 else (output, h)  # packed: nn.RNNBase wraps the data again
