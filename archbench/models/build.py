"""Turn a model spec into a module plus example inputs, on any device (``meta`` included)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from archbench.errors import UserError
from archbench.models.registry import InputSpec, ModelEntry, resolve
from archbench.spec import ModelSpec, format_shape, parse_model_spec

DTYPES = ("float32", "bfloat16", "float16", "float64")


@dataclass
class BuiltModel:
    """A built module with the input it is measured on."""

    spec: str
    entry: ModelEntry
    options: dict[str, Any]
    module: Any  # torch.nn.Module
    input: InputSpec
    batch: int
    device: str
    dtype: str
    warnings: list[str] = field(default_factory=list)

    @property
    def point(self) -> dict[str, Any]:
        """The input point of a record: batch plus the image shape or the sequence length."""
        point: dict[str, Any] = {"batch": self.batch}
        if self.input.kind in ("tokens", "sequence"):
            point["seq"] = self.input.shape[0]
        else:
            point["input"] = format_shape(self.input.shape)
        return point

    def example_inputs(self, device: str | None = None) -> tuple[tuple, dict]:
        """Random inputs (positional args, keyword args) matching :attr:`input`."""
        return make_inputs(self.input, self.batch, device or self.device, self.dtype)


def torch_dtype(name: str):
    """The torch dtype for a name of :data:`DTYPES`."""
    import torch

    if name not in DTYPES:
        raise UserError(f"unknown dtype {name!r}; expected one of {', '.join(DTYPES)}")
    return getattr(torch, name)


def check_device(device: str) -> None:
    """UserError unless ``device`` (cpu, meta, cuda, cuda:N) can be used on this machine."""
    import torch

    kind = device.split(":")[0]
    if kind in ("cpu", "meta"):
        return
    if kind != "cuda":
        raise UserError(f"unknown device {device!r}; expected cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise UserError(f"--device {device} requested but no CUDA GPU is available on this machine")


def make_inputs(spec: InputSpec, batch: int, device: str, dtype: str = "float32") -> tuple[tuple, dict]:
    """Random example inputs for ``spec`` with a leading batch dimension."""
    import torch

    shape = (batch, *spec.shape)
    if spec.kind == "tokens":
        tensor = torch.randint(0, spec.extra.get("vocab", 1000), shape, device=device)
    else:
        tensor = torch.randn(shape, device=device, dtype=torch_dtype(dtype))
    arg_name = spec.extra.get("arg_name")
    if not arg_name:
        return (tensor,), {}
    kwargs = {arg_name: tensor}
    if spec.extra.get("encoder_decoder"):
        kwargs["decoder_input_ids"] = tensor.clone()
    return (), kwargs


def build_model(
    spec: str | ModelSpec,
    *,
    device: str = "cpu",
    batch: int = 1,
    input_shape: tuple[int, ...] | None = None,
    seq: int | None = None,
    dtype: str = "float32",
    train: bool = False,
) -> BuiltModel:
    """Build a registry model in eval mode (``train=True`` for training mode) with its input."""
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    entry, options = resolve(spec)
    if batch < 1:
        raise UserError(f"--batch must be a positive integer, got {batch}")
    input_spec = _input_for(entry, options, input_shape, seq)
    warnings: list[str] = []
    max_positions = input_spec.extra.get("max_positions")
    position_key = input_spec.extra.get("position_option")
    if max_positions and input_spec.seq and input_spec.seq > max_positions:
        if not position_key:
            raise UserError(f"{spec}: sequence length {input_spec.seq} exceeds its {max_positions} positions")
        options[position_key] = input_spec.seq
        warnings.append(
            f"{entry.name} has {max_positions} positions; its position table was extended to "
            f"{input_spec.seq} to measure T={input_spec.seq} (extra positions add parameters)"
        )
    dtype_obj = torch_dtype(dtype)
    check_device(device)
    module = _construct(entry, options, device)
    if dtype != "float32":
        module = module.to(dtype_obj)
    module.train(train)
    return BuiltModel(str(spec), entry, options, module, input_spec, batch, device, dtype, warnings)


def _construct(entry: ModelEntry, options: dict, device: str):
    """Run the builder with ``device`` as the default device.

    A few builders compute with tensors while constructing (torchvision's RegNets derive their
    widths with ``torch.arange(...).tolist()``), which the meta device cannot do: those are
    built on the CPU and moved to meta.
    """
    import torch

    try:
        with torch.device(device):
            return entry.builder(**options)
    except UserError:
        raise
    except (NotImplementedError, RuntimeError):
        if device != "meta":
            raise
    return entry.builder(**options).to("meta")


def default_input(spec: str | ModelSpec) -> InputSpec:
    """The input a model is measured on when the user gives none."""
    entry, options = resolve(spec if isinstance(spec, ModelSpec) else parse_model_spec(spec))
    return entry.default_input(options)


def _input_for(entry: ModelEntry, options: dict, input_shape, seq) -> InputSpec:
    spec = entry.default_input(options)
    if input_shape is not None:
        if spec.kind == "tokens":
            raise UserError(f"{entry.name} takes token ids: give --seq T, not --input")
        if len(input_shape) != len(spec.shape):
            raise UserError(
                f"{entry.name} takes {spec.kind} input of {len(spec.shape)} sizes "
                f"({format_shape(spec.shape)}), got --input {format_shape(input_shape)}"
            )
        spec = replace(spec, shape=tuple(input_shape))
    if seq is not None:
        if seq < 1:
            raise UserError(f"--seq must be a positive integer, got {seq}")
        if spec.kind not in ("tokens", "sequence"):
            raise UserError(f"{entry.name} takes {spec.kind} input {format_shape(spec.shape)}; --seq applies to sequence models")
        spec = replace(spec, shape=(seq, *spec.shape[1:]))
    return spec
