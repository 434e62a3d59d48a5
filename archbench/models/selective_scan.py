"""Mamba's selective scan counted at the call on the meta device, without transformers' loop over the tokens.

Without the CUDA kernels, transformers' Mamba runs its scan (``mamba_selective_scan``) as a Python loop: for
each token, ``h = dA_t · h + dB_t x_t`` (elementwise) and ``y_t = C_t · h`` (a matmul of d_inner × N by N × 1).
On the meta device, where values mean nothing, :func:`selective_scans` swaps that function, in the module that
defines the model's mixer and only for the count, for :func:`_whole_sequence`: the same ops over the whole
sequence at once (one elementwise multiply and add over T states, one batched matmul with the T vectors C_t),
so the count is the same (the matmul formula, B·T·d_inner·N MACs) and the loop is gone. Decode
(``mamba_selective_state_update``, one step) and the convolution with its cached state are left as they are.
Mamba-2's scan is chunked already (no loop over the tokens) and is left as it is.
"""

from __future__ import annotations

import inspect
import sys
from contextlib import contextmanager

SCAN = "mamba_selective_scan"
PARAMETERS = ("hidden_states", "dt", "A", "B", "C", "D", "z", "delta_bias", "delta_softplus", "return_last_state")
"""The scan's parameters this stand-in reproduces; a library whose scan takes others keeps its own."""


@contextmanager
def selective_scans(model, device: str):
    """On the meta device, ``model``'s sequential selective scans replaced by :func:`_whole_sequence` while the
    context lasts; elsewhere (and for a model without one) nothing changes."""
    libraries = {}
    if device == "meta":
        for layer in model.modules():
            library = sys.modules.get(type(layer).__module__)
            scan = getattr(library, SCAN, None)
            if callable(scan) and tuple(inspect.signature(scan).parameters)[:len(PARAMETERS)] == PARAMETERS:
                libraries[id(library)] = (library, scan)
    try:
        for library, scan in libraries.values():
            setattr(library, SCAN, _whole_sequence(scan))
        yield
    finally:
        for library, scan in libraries.values():
            setattr(library, SCAN, scan)


def _whole_sequence(scan):
    """``scan`` for real tensors; for meta tensors its sequential path written over the whole sequence."""
    import torch
    import torch.nn.functional as F

    def whole_sequence(hidden_states, dt, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                       return_last_state=False, **kwargs):
        if hidden_states.device.type != "meta":
            return scan(hidden_states, dt, A, B, C, D, z, delta_bias, delta_softplus, return_last_state, **kwargs)
        dtype = hidden_states.dtype
        if delta_bias is not None:
            dt = dt + delta_bias.to(dt.dtype)[..., None]
        if delta_softplus:
            dt = F.softplus(dt)
        B, C = B.transpose(1, 2), C.transpose(1, 2)  # (batch, T, N)
        discrete_A = torch.exp(A[None, :, None, :] * dt[:, :, :, None])  # (batch, d_inner, T, N)
        deltaB_u = dt[:, :, :, None] * B[:, None, :, :].float() * hidden_states[:, :, :, None].float()
        states = discrete_A * deltaB_u + deltaB_u  # the T steps h = dA·h + dB·x: one multiply and one add each
        scan_output = torch.matmul(states.transpose(1, 2).to(dtype), C.unsqueeze(-1))  # y_t = C_t·h_t, every t
        scan_output = scan_output.squeeze(-1).transpose(1, 2)
        if D is not None:
            scan_output = scan_output + hidden_states * D[None, :, None]
        if z is not None:
            scan_output = scan_output * F.silu(z)
        return (scan_output, states[:, :, -1]) if return_last_state else scan_output

    return whole_sequence
