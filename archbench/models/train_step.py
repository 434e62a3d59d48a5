"""The training phase of a subject: its module becomes one that returns the loss, and checkpointing is switched on.

:func:`prepare_train` (``--phase train``) wraps the model in a :class:`LossOf`, whose forward takes the
model's inputs and returns the scalar loss of one training step:

- the model's own loss where it has one: a Hugging Face model with its task head (``--head``) is given
  ``labels`` (the input ids for a language-model head, one class per example for a classifier);
- otherwise the mean over its (first) output, a stand-in for a loss; the records say which (``loss`` in details).

With ``checkpointing`` the model recomputes its blocks in backward: a Hugging Face model through its own
switch (``activation_checkpointing_enable``, formerly ``gradient_checkpointing_enable``), any other module
through ``torch.utils.checkpoint`` around each of its :func:`blocks`. The optimizer and the precision belong to the step, not the module:
:mod:`archbench.measure.training`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._pytree import tree_flatten

from archbench.errors import UserError
from archbench.models.subject import Subject

TOKEN_LABEL_HEADS = ("ForCausalLM", "LMHeadModel", "ForMaskedLM", "ForTokenClassification")
"""Hugging Face head classes (by name suffix) whose labels are one class per token; other heads take one per example."""
MEAN_LOSS = "mean over the output (the model has no loss of its own; build a Hugging Face model with --head for one)"


def prepare_train(subject: Subject, checkpointing: bool = False) -> None:
    """Replace ``subject``'s module by a :class:`LossOf` it (training mode); switch checkpointing on when asked."""
    model = subject.module
    model.train(True)
    own_loss = getattr(model, "config", None) is not None and subject.recipe is not None and subject.recipe.head
    found = switch_checkpointing(model, on=subject.device != "meta") if checkpointing else []
    if checkpointing and not found:
        raise UserError(f"{subject.label}: --checkpointing found no blocks to checkpoint (Hugging Face layers that "
                        "support it, or modules of one type repeated in an nn.Sequential or nn.ModuleList)")
    labels = _label_kind(model) if own_loss else None
    subject.module = LossOf(model, labels, [name for name, m in model.named_modules() if any(m is b for b in found)])
    subject.phase = "train"


def loss_description(module) -> str:
    """What the loss of a :class:`LossOf` is, in words."""
    return "the model's own loss (labels given)" if module.labels else MEAN_LOSS


def _label_kind(model) -> str:
    name = type(model).__name__
    return "tokens" if name.endswith(TOKEN_LABEL_HEADS) else "examples"


class LossOf(nn.Module):
    """A model and its loss: ``forward(*inputs)`` runs the model and returns one scalar to call backward on.

    ``labels``: None (the mean over the first output), ``"tokens"`` (labels = the input ids) or ``"examples"``
    (class 0 for each example); the model's forward is given them and returns its own loss. ``checkpointed``:
    the blocks checkpointing recomputes (on the meta device they are only named, not wrapped: a Hugging Face
    model's checkpointed forward reads tensor values there, and the analysis needs no real recompute).
    """

    def __init__(self, model: nn.Module, labels: str | None = None, checkpointed: list[str] | None = None):
        super().__init__()
        self.model = model
        self.labels = labels
        self.checkpointed = checkpointed or []  # names (in ``model``) of the blocks recomputed in backward

    def forward(self, *args, **kwargs):
        if self.labels is not None:
            ids = next(t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor))
            kwargs = {**kwargs, "labels": ids if self.labels == "tokens"
                      else torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)}
            return self.model(*args, **kwargs).loss
        output = self.model(*args, **kwargs)
        first = next(t for t in tree_flatten(output)[0] if isinstance(t, torch.Tensor))
        return first.float().mean()


def blocks(model) -> list:
    """The blocks checkpointing recomputes: for a Hugging Face model, the layers its own switch checkpoints
    (``gradient_checkpointing`` set on them); otherwise the outermost modules that repeat, one type at least
    twice, as the children of an ``nn.Sequential`` or ``nn.ModuleList`` (a Transformer's layers, a ResNet's
    bottlenecks, the Linear and ReLU of a plain stack)."""
    marked = [m for m in model.modules() if m is not model and getattr(m, "gradient_checkpointing", None) is True
              and not hasattr(m, "config")]
    if marked:
        return marked
    found: list = []

    def visit(module) -> None:
        if isinstance(module, (nn.Sequential, nn.ModuleList)):
            children = list(module.children())
            kinds = [type(c) for c in children]
            repeated = [c for c in children if kinds.count(type(c)) >= 2]
            if repeated:
                found.extend(repeated)
                for child in children:
                    if child not in repeated:
                        visit(child)
                return
        for child in module.children():
            visit(child)

    visit(model)
    return found


def switch_checkpointing(model, on: bool = True) -> list:
    """The blocks of ``model`` that checkpointing recomputes; with ``on``, switch it on: a Hugging Face model
    through its own switch (``activation_checkpointing_enable``, or ``gradient_checkpointing_enable`` where
    that is the name), any other module by wrapping each block in ``torch.utils.checkpoint`` (non-reentrant)."""
    from functools import partial

    from torch.utils.checkpoint import checkpoint

    enable = getattr(model, "activation_checkpointing_enable", None)
    keyword = "activation_checkpointing_kwargs"
    if enable is None:
        enable, keyword = getattr(model, "gradient_checkpointing_enable", None), "gradient_checkpointing_kwargs"
    if enable is not None and getattr(model, "supports_gradient_checkpointing", False):
        enable(**{keyword: {"use_reentrant": False}})
        found = blocks(model)
        if not on:
            disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
            disable()
        return found
    found = blocks(model)
    if on:
        for block in found:
            block.forward = partial(checkpoint, block.forward, use_reentrant=False)
    return found
