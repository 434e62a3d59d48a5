"""The measurement subject: what every measurer takes, whatever source the model came from.

A :class:`Subject` is a module, how to make its example inputs (positional and keyword), the
point a record is filed under (batch, seq or input shape), the warnings a reader must see, and
the :class:`Recipe` that rebuilds it in another process (memory measures in a fresh one).
Every model source (the registry, a user's file or module, ``hf:``, ``timm:``) produces one
through :func:`archbench.models.build.build`, and :meth:`Subject.from_module` wraps a module
the Python API is handed directly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from archbench.errors import UserError
from archbench.spec import format_shape

DTYPES = ("float32", "bfloat16", "float16", "float64")
PHASES = ("prefill", "decode", "train")


@dataclass(frozen=True)
class InputSpec:
    """What one example looks like, without the batch dimension.

    ``image``: (C, H, W) floats; ``tokens``: (T,) integer ids; ``sequence``: (T, d)
    embeddings; ``vector``: any shape of floats. ``extra`` carries kind-specific facts:
    ``vocab`` for tokens, ``arg_name`` (the keyword the model takes it as), ``max_positions``
    and ``position_option``, ``extra_inputs`` (more keyword tensors: ``{name: "same" | ("tokens", T, vocab) |
    ("image", shape)}``, "same" being a copy of the main input).
    """

    kind: str
    shape: tuple[int, ...]
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def seq(self) -> int | None:
        return self.shape[0] if self.kind in ("tokens", "sequence") else None

    def describe(self) -> str:
        if self.kind == "tokens":
            return f"tokens T={self.shape[0]}"
        if self.kind == "sequence":
            return f"sequence T={self.shape[0]} d={self.shape[1]}"
        return f"{self.kind} {format_shape(self.shape)}"

    def point(self, batch: int) -> dict[str, Any]:
        """The record point of a batch of these inputs: batch plus the sequence length or the input shape."""
        if self.kind in ("tokens", "sequence"):
            return {"batch": batch, "seq": self.shape[0]}
        return {"batch": batch, "input": format_shape(self.shape)}

    def element_bytes(self, dtype: str) -> int:
        """Bytes of one input element: 8 for token ids (int64), the float dtype's size otherwise."""
        return 8 if self.kind == "tokens" else dtype_bytes(dtype)


@dataclass(frozen=True)
class Recipe:
    """How to build a subject: the model argument and the settings of the build. Plain data (JSON)."""

    spec: str
    batch: int | None = None  # None: 1, or the batch of the example inputs a factory returns
    seq: int | None = None
    input_shape: tuple[int, ...] | None = None
    dtype: str = "float32"
    train: bool = False
    phase: str = "prefill"
    head: bool = False
    optimizer: str = "adamw"  # phase train: the optimizer, precision and checkpointing of the step
    precision: str = "fp32"
    checkpointing: bool = False

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape) if self.input_shape else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Recipe":
        """The recipe of :meth:`to_dict`'s data (other keys ignored; missing ones take their defaults)."""
        known = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        if known.get("input_shape"):
            known["input_shape"] = tuple(known["input_shape"])
        return cls(**known)

    def build(self, device: str = "cpu", meta: "Subject | None" = None) -> "Subject":
        """The subject this recipe makes on ``device`` (:func:`archbench.models.build.build_model`); ``meta``, the
        same recipe already built on the meta device, spares building it again for the fits check."""
        from archbench.models.build import build_model

        built = build_model(self.spec, device=device, batch=self.batch, seq=self.seq, input_shape=self.input_shape,
                            dtype=self.dtype, train=self.train, phase=self.phase, head=self.head, meta=meta,
                            checkpointing=self.checkpointing)
        if built.recipe is not None:  # the step's optimizer and precision are not the builder's business
            built.recipe = replace(built.recipe, optimizer=self.optimizer, precision=self.precision)
        return built

    def known_point(self) -> dict[str, Any]:
        """The point as far as it is known without building (for the record of a build that failed)."""
        point: dict[str, Any] = {"batch": self.batch or 1}
        if self.seq is not None:
            point["seq"] = self.seq
        elif self.input_shape is not None:
            point["input"] = format_shape(self.input_shape)
        return _variant(point, self.phase, self.head, self)

    def with_(self, **changes) -> "Recipe":
        """A copy with ``changes``."""
        return replace(self, **changes)


@dataclass
class Subject:
    """A built module with the inputs it is measured on; see the module docstring."""

    label: str  # the model as records name it
    module: Any  # torch.nn.Module
    batch: int
    device: str
    dtype: str
    input: InputSpec | None = None  # random inputs are drawn from this...
    fixed_inputs: tuple[tuple, dict] | None = None  # ...or these were given (a factory's or the API caller's)
    recipe: Recipe | None = None  # None: it cannot be rebuilt in another process
    family: str = "custom"
    source: str = "python"
    name: str = ""  # the registry name, the hf model type, the timm name, or the python target
    options: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    phase: str = "prefill"
    step_input: InputSpec | None = None  # decode: one new token per sequence (the cache lives in the module)

    @property
    def point(self) -> dict[str, Any]:
        """The input point of a record: batch plus the sequence length or input shape, the phase when decoding, head."""
        if self.input is not None:
            point = self.input.point(self.batch)
        else:
            point = {"batch": self.batch, **_fixed_point(self.fixed_inputs)}
        return _variant(point, self.phase, self.recipe is not None and self.recipe.head, self.recipe)

    @property
    def seq(self) -> int | None:
        """The sequence length (for decode: the tokens already in the cache), or None."""
        return self.input.seq if self.input is not None else None

    def example_inputs(self, device: str | None = None) -> tuple[tuple, dict]:
        """The inputs (positional args, keyword args) on ``device`` (default: the subject's)."""
        device = device or self.device
        if self.fixed_inputs is not None:
            return _on_device(self.fixed_inputs, device)
        if self.input is None:
            raise UserError(f"{self.label}: say what to feed it: --input SHAPE (batch is prepended) or --seq T (token "
                            "ids), or return (module, example_inputs) from the factory")
        return make_inputs(self.step_input or self.input, self.batch, device, self.dtype)

    @classmethod
    def from_module(cls, module, inputs=None, *, label: str | None = None, recipe: Recipe | None = None) -> "Subject":
        """Wrap a module and its example inputs (a tensor, a tuple of positional inputs, or a dict of keyword inputs)."""
        from torch import nn

        if not isinstance(module, nn.Module):
            raise UserError(f"expected a torch.nn.Module, got {type(module).__name__}")
        if inputs is None:
            raise UserError(f"{label or type(module).__name__}: no example inputs; pass a tensor, a tuple or a dict")
        args, kwargs = normalise_inputs(inputs, label or type(module).__name__)
        tensors = _tensors((args, kwargs))
        device = str(tensors[0].device) if tensors else _module_device(module)
        floats = [t for t in tensors if t.is_floating_point()]
        dtype = str(floats[0].dtype).removeprefix("torch.") if floats else "float32"
        return cls(label or type(module).__name__, module, batch_of((args, kwargs), 1), device, dtype,
                   fixed_inputs=(args, kwargs), recipe=recipe)


def _variant(point: dict[str, Any], phase: str, head: bool, recipe: Recipe | None = None) -> dict[str, Any]:
    """``point`` with what sets the figure apart from a plain forward of the backbone: the decode or train phase
    (a step's optimizer, precision and checkpointing), the head."""
    if phase != "prefill":
        point["phase"] = phase
    if phase == "train" and recipe is not None:
        point["optimizer"] = recipe.optimizer
        point["precision"] = recipe.precision
        if recipe.checkpointing:
            point["checkpointing"] = True
    if head:
        point["head"] = True
    return point


def batch_of(inputs, default: int) -> int:
    """The batch of given example inputs: their first tensor's first size (``default`` without one)."""
    tensors = _tensors(inputs)
    return int(tensors[0].shape[0]) if tensors and tensors[0].dim() else default


def normalise_inputs(inputs, label: str) -> tuple[tuple, dict]:
    """(args, kwargs) from a tensor, a tuple/list of positional inputs, or a dict of keyword inputs."""
    import torch

    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    if isinstance(inputs, dict):
        if not all(isinstance(k, str) for k in inputs):
            raise UserError(f"{label}: keyword inputs need string keys")
        return (), dict(inputs)
    raise UserError(f"{label}: example inputs must be a tensor, a tuple or a dict, got {type(inputs).__name__}")


def make_inputs(spec: InputSpec, batch: int, device: str, dtype: str = "float32") -> tuple[tuple, dict]:
    """Random example inputs for ``spec`` with a leading batch dimension."""
    import torch

    shape = (batch, *spec.shape)
    vocabs = [spec.extra.get("vocab", 1000)] * (spec.kind == "tokens") + \
        [kind[2] for kind in spec.extra.get("extra_inputs", {}).values() if kind != "same" and kind[0] == "tokens"]
    if any(not isinstance(v, int) or v < 1 for v in vocabs):
        raise UserError(f"a vocabulary of {min(vocabs, key=str)} tokens has no token ids to draw: "
                        "vocab_size must be a positive integer")
    if 0 in shape:
        raise UserError(f"an input of shape {'x'.join(map(str, shape))} holds nothing: every size must be positive")
    if spec.kind == "tokens":
        tensor = torch.randint(0, spec.extra.get("vocab", 1000), shape, device=device)
    else:
        tensor = torch.randn(shape, device=device, dtype=torch_dtype(dtype))
    arg_name = spec.extra.get("arg_name")
    if not arg_name:
        return (tensor,), {}
    kwargs = {arg_name: tensor}
    for name, kind in spec.extra.get("extra_inputs", {}).items():  # "same", ("tokens", T, vocab), ("image", shape)
        if kind == "same":
            kwargs[name] = tensor.clone()
        elif kind[0] == "tokens":
            kwargs[name] = torch.randint(0, kind[2], (batch, kind[1]), device=device)
        else:
            kwargs[name] = torch.randn((batch, *kind[1]), device=device, dtype=torch_dtype(dtype))
    return (), kwargs


def torch_dtype(name: str):
    """The torch dtype for a name of :data:`DTYPES`."""
    import torch

    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def dtype_bytes(name: str) -> int:
    """Bytes per element of a dtype of :data:`DTYPES` (without importing torch)."""
    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}[name]


def input_bytes(subject: Subject) -> int:
    """Bytes of the subject's example inputs (computed from shapes; nothing is allocated)."""
    if subject.input is not None:
        return subject.batch * math.prod(subject.input.shape) * subject.input.element_bytes(subject.dtype)
    if subject.fixed_inputs is None:
        subject.example_inputs()  # raises: the model was given no inputs
    return sum(t.numel() * t.element_size() for t in _tensors(subject.fixed_inputs))


def _fixed_point(inputs: tuple[tuple, dict] | None) -> dict[str, Any]:
    """The point of given inputs: the first tensor's shape without batch (``seq`` for 2-D integer ids)."""
    tensors = _tensors(inputs)
    if not tensors:
        return {}
    first = tensors[0]
    if first.dim() == 2 and not first.is_floating_point():
        return {"seq": int(first.shape[1])}
    return {"input": format_shape(tuple(int(d) for d in first.shape[1:]))} if first.dim() > 1 else {}


def _tensors(value) -> list:
    import torch
    from torch.utils._pytree import tree_flatten

    return [t for t in tree_flatten(value)[0] if isinstance(t, torch.Tensor)]


def _on_device(inputs: tuple[tuple, dict], device: str) -> tuple[tuple, dict]:
    """The inputs moved to ``device`` (on meta: empty tensors of the same shapes and dtypes)."""
    import torch
    from torch.utils._pytree import tree_map

    def move(value):
        if not isinstance(value, torch.Tensor) or str(value.device) == device:
            return value
        if device == "meta":
            return torch.empty_like(value, device="meta")
        if value.device.type == "meta":
            raise UserError("the example inputs are on the meta device: pass real tensors to run on " + device)
        return value.to(device)

    return tree_map(move, inputs)


def _module_device(module) -> str:
    for tensor in list(module.parameters()) + list(module.buffers()):
        return str(tensor.device)
    return "cpu"
