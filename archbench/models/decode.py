"""The decode phase: one new token per sequence, appended to a cache that already holds ``seq`` tokens.

:func:`prepare_decode` turns a built subject into its decode step. Hugging Face decoders use
their own cache (transformers' cache classes, filled by a prefill forward of ``seq`` tokens
that is not part of what is measured); recurrent models carry their hidden state. The step
is a module, :class:`DecodeStep`, so every measurer (counting, timing, memory) sees one call
of it; after each call the cache is cut back to ``seq`` tokens, so timing it many times
measures the same step every time.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from archbench.errors import UserError
from archbench.models.subject import InputSpec, Subject


def prepare_decode(subject: Subject) -> None:
    """Replace ``subject``'s module and inputs by its decode step after a cache of ``subject.seq`` tokens."""
    cached = subject.seq
    if subject.input is None or subject.input.kind not in ("tokens", "sequence") or not cached:
        raise UserError(f"{subject.label}: --phase decode needs a sequence model and --seq T (the tokens already "
                        "in the cache)")
    module = subject.module
    if getattr(module, "config", None) is not None and subject.input.kind == "tokens":
        step = _hf_step(subject, module, cached)
    elif isinstance(module, nn.RNNBase):
        step = RecurrentStep(module, subject.batch, subject.device, subject.dtype)
    else:
        raise UserError(f"{subject.label}: --phase decode needs a model with a cache: a Hugging Face decoder "
                        "(gpt2, hf:llama, hf:mamba...) or a recurrent model (rnn, lstm, gru)")
    subject.module = step.train(module.training)
    subject.phase = "decode"
    extra = {k: v for k, v in subject.input.extra.items() if k not in ("extra_inputs", "arg_name")}
    subject.step_input = InputSpec(subject.input.kind, (1, *subject.input.shape[1:]), extra)


def _hf_step(subject: Subject, model, cached: int):
    import torch

    if getattr(model.config, "is_encoder_decoder", False):
        raise UserError(f"{subject.label}: --phase decode is built for decoder-only models; an encoder-decoder's "
                        "decode step is not supported yet")
    from archbench.measure.flops import meta_routing
    from archbench.measure.selective_scan import selective_scans

    args, kwargs = subject.example_inputs()
    try:  # MoE experts and Mamba's scan on meta: as they are counted
        with torch.no_grad(), meta_routing(model, subject.device), selective_scans(model, subject.device):
            output = model(*args, **kwargs, use_cache=True)
    except Exception as exc:
        raise UserError(f"{subject.label}: its prefill of {cached} tokens failed: {type(exc).__name__}: {exc}") \
            from None
    key = "cache_params" if getattr(output, "cache_params", None) is not None else "past_key_values"
    cache = getattr(output, key, None)
    if cache is None:
        raise UserError(f"{subject.label}: the model returned no cache (use_cache=True): it has no decode step")
    return DecodeStep(model, key, cache, cached, subject.device)


class DecodeStep(nn.Module):
    """A Hugging Face model's step: ``input_ids`` (batch, 1) after a cache of ``cached`` tokens, cut back after each call."""

    def __init__(self, model, cache_key: str, cache: Any, cached: int, device: str):
        import torch

        super().__init__()
        self.model = model
        self.cache_key = cache_key
        self.cache = cache
        self.cached = cached
        self.position = torch.tensor([cached], device=device)
        for layer in getattr(cache, "layers", []):  # so that a full sliding-window layer can be cut back (_rewind)
            if getattr(layer, "is_sliding", False) and not hasattr(layer, "conv_states"):
                layer.activate_past_recording()

    def forward(self, input_ids):
        lengths = _layer_lengths(self.cache)
        output = self.model(input_ids=input_ids, use_cache=True, cache_position=self.position,
                            **{self.cache_key: self.cache})
        _rewind(self.cache, lengths)
        return output


class RecurrentStep(nn.Module):
    """A recurrent model's step: one time step ``(batch, 1, input)`` carrying its hidden state."""

    def __init__(self, model, batch: int, device: str, dtype: str):
        import torch

        from archbench.models.subject import torch_dtype

        super().__init__()
        self.model = model
        layers = model.num_layers * (2 if model.bidirectional else 1)
        size = getattr(model, "proj_size", 0) or model.hidden_size
        hidden = torch.zeros(layers, batch, size, device=device, dtype=torch_dtype(dtype))
        cell = torch.zeros(layers, batch, model.hidden_size, device=device, dtype=torch_dtype(dtype))
        self.state = (hidden, cell) if model.mode == "LSTM" else hidden

    def forward(self, x):
        return self.model(x, self.state)


def _layer_lengths(cache) -> list[int | None]:
    """Each cache layer's token count before a step (None where the layer does not say)."""
    lengths = []
    for layer in getattr(cache, "layers", []):
        try:
            lengths.append(int(layer.get_seq_length()))
        except Exception:  # a state-space layer: fixed size, nothing to cut back
            lengths.append(None)
    return lengths


def _rewind(cache, lengths: list[int | None]) -> None:
    """Cut every layer that grew back to its length before the step.

    A sliding-window layer records its past (see :class:`DecodeStep`), so it can be cut back once
    full too; a state-space layer is updated in place.
    """
    for layer, before in zip(getattr(cache, "layers", []), lengths):
        if before is None:
            continue
        try:
            grown = int(layer.get_seq_length()) - before
            if grown > 0:
                layer.crop(-grown)
        except (ValueError, NotImplementedError, AttributeError, TypeError):
            pass
