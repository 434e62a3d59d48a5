"""The decode phase: one new token per sequence, appended to a cache that already holds ``seq`` tokens.

:func:`prepare_decode` turns a built subject into its decode step. Hugging Face decoders use
their own cache (transformers' cache classes, filled by a prefill forward of ``seq`` tokens
that is not part of what is measured); recurrent models carry their hidden state. The step
is a module, :class:`DecodeStep`, so every measurer (counting, timing, memory) sees one call
of it; after each call the cache is cut back to ``seq`` tokens, so timing it many times
measures the same step every time.
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from typing import Any

from torch import nn

from archbench.errors import LibraryBehaviourError, UserError
from archbench.models.structure import attention_shape, layer_windows
from archbench.models.subject import InputSpec, Subject

# The names a Hugging Face model's forward has taken its cache under, newest first: transformers 5.24 renamed
# ``past_key_values`` (attention) and ``cache_params`` (state-space) to ``cache``. Which one a model takes is read
# from its forward's signature and its output's fields, never from a version number.
CACHE_NAMES = ("cache", "cache_params", "past_key_values")


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
    from archbench.models.selective_scan import selective_scans
    from archbench.models.structure import meta_routing

    args, kwargs = subject.example_inputs()
    try:  # MoE experts and Mamba's scan on meta: as they are counted
        with torch.no_grad(), meta_routing(model, subject.device), selective_scans(model, subject.device):
            output = model(*args, **kwargs, use_cache=True)
    except Exception as exc:
        raise UserError(f"{subject.label}: its prefill of {cached} tokens failed: {type(exc).__name__}: {exc}") \
            from None
    cache = returned_cache(output)
    if cache is None:
        raise UserError(f"{subject.label}: the model returned no cache (use_cache=True): it has no decode step")
    return DecodeStep(model, cache_keyword(model), cache, cached, subject.device, subject.label)


def cache_keyword(model) -> str:
    """The keyword ``model``'s forward takes its cache under, read from the signature (see CACHE_NAMES)."""
    parameters = inspect.signature(model.forward).parameters
    for name in CACHE_NAMES:
        if name in parameters:
            return name
    raise LibraryBehaviourError(f"{type(model).__name__}.forward takes no cache argument ({', '.join(CACHE_NAMES)}) "
                                f"with {_library_versions()}: archbench cannot pass it the cache of a decode step")


def returned_cache(output):
    """The cache a Hugging Face forward returned, under whichever of CACHE_NAMES its output has (None: no cache)."""
    fields = output.keys() if hasattr(output, "keys") else ()
    return next((output[name] for name in CACHE_NAMES if name in fields and output[name] is not None), None)


def _library_versions() -> str:
    from importlib.metadata import version

    return f"transformers {version('transformers')}, torch {version('torch')}"


class DecodeStep(nn.Module):
    """A Hugging Face model's step: ``input_ids`` (batch, 1) after a cache of ``cached`` tokens, cut back after each call."""

    def __init__(self, model, cache_key: str, cache: Any, cached: int, device: str, label: str = ""):
        import torch

        super().__init__()
        self.model = model
        self.cache_key = cache_key
        self.cache = cache
        self.cached = cached
        self.label = label or type(model).__name__
        self.checked = False  # the first call checks that the model attended to the cache (check_cache_used)
        self.position = torch.tensor([cached], device=device)
        for layer in getattr(cache, "layers", []):  # so that a full sliding-window layer can be cut back (_rewind)
            if getattr(layer, "is_sliding", False) and not hasattr(layer, "conv_states"):
                layer.activate_past_recording()

    def forward(self, input_ids):
        lengths = _layer_lengths(self.cache)
        if self.checked:
            output = self._step(input_ids)
        else:
            with _key_lengths() as keys:
                output = self._step(input_ids)
            self.check_cache_used(output, keys)
            self.checked = True
        _rewind(self.cache, lengths)
        return output

    def _step(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=True, cache_position=self.position,
                          **{self.cache_key: self.cache})

    def check_cache_used(self, output, key_lengths: list[int]) -> None:
        """Refuse a step that did not use its cache: every figure of it would be silently wrong.

        The model must return the cache object it was given (a dropped cache comes back as a new one), and
        every attention call must see the ``cached`` keys plus the new one, or its sliding window: one key
        means the step attended to itself alone.
        """
        returned = returned_cache(output)
        dropped = returned is not None and returned is not self.cache
        config = self.model.config
        shape = attention_shape(config)
        windows = [w for w in layer_windows(config, shape[0]) if w] if shape else []
        expected = min([self.cached + 1, *windows])  # a sliding layer's keys: its window
        short = [n for n in key_lengths if n < expected]
        if dropped or short:
            seen = f"an attention call saw {min(short)} key(s), expected {expected}" if short \
                else "it returned another cache than the one it was given"
            raise LibraryBehaviourError(
                f"{self.label}: the decode step did not use its cache of {self.cached} tokens ({seen}) with "
                f"{_library_versions()}: no decode figure is given rather than a wrong one")


@contextmanager
def _key_lengths():
    """Yields the list of the key lengths of every ``scaled_dot_product_attention`` call in the block."""
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode

    lengths: list[int] = []

    class Seen(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if func is F.scaled_dot_product_attention:
                key = args[1] if len(args) > 1 else kwargs["key"]
                lengths.append(int(key.shape[-2]))
            return func(*args, **kwargs)

    with Seen():
        yield lengths


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
