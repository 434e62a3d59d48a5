"""Turn a model argument (any source) into a :class:`~archbench.models.subject.Subject`, on any device.

One function, :func:`build_model` (``archbench.build``), for every source: the registry, a
user's file or module, ``hf:`` and ``timm:``. Before anything is allocated on a real device
the model is built on the meta device and its weights and inputs are checked against the
memory available; a construction that runs away (a billion layers) is refused or stopped.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import replace

from archbench.errors import UserError
from archbench.models.registry import ModelEntry, resolve
from archbench.models.subject import (
    PHASES, InputSpec, Recipe, Subject, batch_of, input_bytes, make_inputs, torch_dtype,
)
from archbench.spec import ModelSpec, format_shape, parse_model_spec

__all__ = ["Subject", "build_model", "check_device", "check_fits", "default_input", "make_inputs", "torch_dtype"]

BUILD_TIME_LIMIT_S = 60
"""Seconds a model's construction may take before it is stopped (gpt3-175b builds on meta in a few)."""
MAX_LAYERS = 10_000
"""Largest layer count an option may ask for (published models have at most a few hundred)."""
LAYER_OPTIONS = frozenset(("layers", "n_layer", "n_layers", "num_layers", "num_hidden_layers", "num_decoder_layers",
                           "num_encoder_layers", "encoder_layers", "decoder_layers", "depth", "depths"))


def check_device(device: str) -> None:
    """UserError unless ``device`` (cpu, meta, cuda, cuda:N) can be used on this machine."""
    kind, colon, index = str(device).partition(":")
    if kind not in ("cpu", "meta", "cuda") or (colon and (kind != "cuda" or not index.isdigit())):
        raise UserError(f"unknown device {device!r}; expected cpu, meta, cuda or cuda:N")
    if kind != "cuda":
        return
    import torch

    if not torch.cuda.is_available():
        raise UserError(f"device {device} requested but no CUDA GPU is available on this machine")
    if index and int(index) >= torch.cuda.device_count():
        raise UserError(f"device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")


def build_model(
    spec: str | ModelSpec,
    *,
    device: str = "cpu",
    batch: int | None = None,
    input_shape: tuple[int, ...] | None = None,
    seq: int | None = None,
    dtype: str = "float32",
    train: bool = False,
    phase: str = "prefill",
    head: bool = False,
    meta: Subject | None = None,
) -> Subject:
    """Build any model argument in eval mode (``train=True``: training mode) with its example inputs.

    ``phase="decode"`` prepares one new token per sequence after a KV cache of ``seq`` tokens;
    ``head=True`` builds a Hugging Face model with its task head. On a real device the model
    is first built on meta (or ``meta`` is that build, already made) and refused (UserError)
    when its weights and inputs cannot fit.
    """
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    recipe = Recipe(str(spec), batch, seq, tuple(input_shape) if input_shape else None, dtype, train, phase, head)
    label, sized = str(spec), sized_for_image(spec, input_shape)
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise UserError(f"--batch must be a positive integer, got {batch}")
    if phase not in PHASES:
        raise UserError(f"unknown phase {phase!r}; expected one of {', '.join(PHASES)}")
    torch_dtype(dtype)
    check_device(device)
    if device != "meta":
        check_fits(meta or recipe.build("meta"), device)
    entry, options = resolve(sized)
    if head:
        if entry.source != "huggingface":
            raise UserError(f"{spec}: --head builds a Hugging Face model with its task head; {entry.name} is "
                            f"from {entry.source}")
        options = {**options, "_head": True}
    check_layer_counts(label, options)
    input_spec = _input_for(entry, options, input_shape, seq)
    extended = _fit_positions(entry, options, input_spec, phase)
    warnings: list[str] = []
    if sized is not spec:
        warnings.append(f"built for its {format_shape(input_shape)} input: {sized} (a vision transformer's position "
                        "table follows its image size)")
    with time_limit(BUILD_TIME_LIMIT_S, f"{label}: building"):
        built = _construct(entry, options, device)
    module, fixed = built if isinstance(built, tuple) else (built, None)
    input_spec, fixed = _inputs_of(entry, label, module, input_spec, fixed)
    if extended:
        warnings.insert(0, _position_warning(entry, input_spec, extended, module))
    if dtype != "float32":
        module = module.to(torch_dtype(dtype))
    module.train(train)
    subject = Subject(label, module, batch or 1, device, dtype, input=input_spec, fixed_inputs=fixed, recipe=recipe,
                      family=entry.family, source=entry.source, name=entry.name, options=options, warnings=warnings)
    if fixed is not None:
        subject.fixed_inputs = _rebatched(fixed, batch)
        subject.batch = batch_of(subject.fixed_inputs, subject.batch)
    if phase == "decode":
        from archbench.models.decode import prepare_decode

        prepare_decode(subject)
    return subject


IMAGE_SIZE_OPTIONS = ("image_size", "img_size")
"""Options that size a vision transformer's position table: torchvision's and Hugging Face's, timm's."""


def sized_for_image(spec: ModelSpec, input_shape: tuple[int, ...] | None) -> ModelSpec:
    """``spec`` with its image-size option set for a square ``input_shape`` (C, S, S) when the model's input follows
    that option (a vision transformer), else ``spec`` itself: a CNN takes any resolution as it is."""
    if not input_shape or len(input_shape) != 3 or input_shape[1] != input_shape[2]:
        return spec
    if any(key in spec.options for key in IMAGE_SIZE_OPTIONS):
        return spec
    try:
        entry, options = resolve(spec)
        current = entry.default_input(options)
    except UserError:
        return spec
    if entry.family != "vit" or current is None or current.shape == tuple(input_shape):
        return spec
    for key in IMAGE_SIZE_OPTIONS:
        candidate = spec.with_options(**{key: str(input_shape[1])})
        try:
            if default_input(candidate).shape == tuple(input_shape):
                return candidate
        except (UserError, TypeError, ValueError):
            continue
    return spec


def default_input(spec: str | ModelSpec) -> InputSpec | None:
    """The input a model is measured on when the user gives none (None: the user must say)."""
    entry, options = resolve(spec if isinstance(spec, ModelSpec) else parse_model_spec(spec))
    return entry.default_input(options)


def check_fits(meta: Subject, device: str) -> None:
    """UserError unless the weights and inputs of ``meta`` (built on the meta device) fit in ``device``'s free memory.

    So ``gpt3-175b`` on cpu, or ``--batch 100000000``, is refused before anything is allocated,
    with the estimate and the memory available.
    """
    from archbench.models.footprint import available_memory_bytes, weights_bytes

    available = available_memory_bytes(device)
    if available is None:
        return
    weights, inputs = weights_bytes(meta.module), input_bytes(meta)
    if weights > available:
        raise UserError(f"weights need {weights:,} bytes but only {available:,} bytes are available on {device}; "
                        "not built")
    if weights + inputs > available:
        raise UserError(f"weights and inputs need {weights + inputs:,} bytes ({_gib(weights + inputs)}) but only "
                        f"{available:,} bytes are available on {device}; not built")


def _gib(n: int) -> str:
    return f"{n / 2**30:,.2f} GiB"


def check_layer_counts(label: str, options: dict) -> None:  # also read by huggingface.py for a config.json
    """Refuse a layer-count option above :data:`MAX_LAYERS` before anything is built (typed or still text)."""
    for key, value in options.items():
        counts = value if isinstance(value, (tuple, list)) else [value]
        counts = [int(v) if isinstance(v, str) and v.isdigit() else v for v in counts]
        if key in LAYER_OPTIONS and any(isinstance(v, int) and v > MAX_LAYERS for v in counts):
            raise UserError(f"{label}: {key}={value} is more than {MAX_LAYERS:,} layers; refused before building")


@contextlib.contextmanager
def time_limit(seconds: float, label: str):
    """Stop a load or construction that runs longer than ``seconds`` (main thread only, where SIGALRM can
    interrupt; inside another limit, that one holds)."""
    if (threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer")
            or signal.getitimer(signal.ITIMER_REAL)[0] > 0):
        yield
        return

    def expired(signum, frame):
        raise UserError(f"{label} took more than {seconds:g} s and was stopped (is a size option too large, or does "
                        "the code loop?)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _construct(entry: ModelEntry, options: dict, device: str):
    """Run the builder with ``device`` as the default device.

    A few builders compute with tensors while constructing (torchvision's RegNets derive their
    widths with ``torch.arange(...).tolist()``), which the meta device cannot do: those are
    built on the CPU and moved to meta. A builder that rejects its options (a library's own
    check) is the user's mistake: one line naming the model.
    """
    import torch

    try:
        with torch.device(device):
            return entry.builder(**options)
    except UserError:
        raise
    except (NotImplementedError, RuntimeError) as exc:
        if device != "meta":
            raise UserError(f"{entry.name}: could not be built: {_first_line(exc)}") from None
    except Exception as exc:  # a library's validation of the options: ValueError, TypeError, KeyError...
        raise UserError(f"{entry.name}: could not be built: {_first_line(exc)}") from None
    try:
        built = entry.builder(**options)
    except Exception as exc:
        raise UserError(f"{entry.name}: could not be built: {_first_line(exc)}") from None
    return built.to("meta") if not isinstance(built, tuple) else (built[0].to("meta"), built[1])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"[:300]


def _fit_positions(entry: ModelEntry, options: dict, input_spec: InputSpec | None, phase: str) -> int | None:
    """Extend a position table shorter than the positions used (the size it now has), or refuse; None: it fits.

    Decoding after a cache of T tokens puts the new token at position T: T + 1 positions.
    """
    if input_spec is None or not input_spec.seq:
        return None
    needed = input_spec.seq + (1 if phase == "decode" else 0)
    max_positions = input_spec.extra.get("max_positions")
    position_key = input_spec.extra.get("position_option")
    if not (max_positions and needed > max_positions):
        return None
    if not position_key:
        raise UserError(f"{entry.name}: {needed} positions needed, more than its {max_positions}")
    options[position_key] = needed
    return needed


def _position_warning(entry: ModelEntry, input_spec: InputSpec, extended: int, module) -> str:
    """What extending the position table did: added parameters (a learned table) or not (rotary, relative)."""
    from torch import nn

    learned = any(isinstance(m, nn.Embedding) and m.num_embeddings == extended for m in module.modules())
    return (f"{entry.name} has {input_spec.extra['max_positions']} positions; its position table was extended to "
            f"{extended} to measure T={input_spec.seq}"
            + (" (extra positions add parameters)" if learned else " (rotary or relative positions: no parameters added)"))


def _input_for(entry: ModelEntry, options: dict, input_shape, seq) -> InputSpec | None:
    """The model's default input with ``input_shape`` or ``seq`` applied (None: the builder must supply inputs)."""
    spec = entry.default_input(options)
    if spec is None:  # a user's model: the shape says what to feed it
        if input_shape is not None and seq is not None:
            raise UserError(f"{entry.name}: give --input or --seq, not both")
        if input_shape is not None:
            return InputSpec("image" if len(input_shape) == 3 else "vector", tuple(input_shape))
        if seq is not None:
            _positive_seq(seq)
            return InputSpec("tokens", (seq,))
        return None
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
        _positive_seq(seq)
        if spec.kind not in ("tokens", "sequence"):
            raise UserError(f"{entry.name} takes {spec.kind} input {format_shape(spec.shape)}; "
                            "--seq applies to sequence models")
        spec = replace(spec, shape=(seq, *spec.shape[1:]))
    return spec


def _positive_seq(seq) -> None:
    if not isinstance(seq, int) or seq < 1:
        raise UserError(f"--seq must be a positive integer, got {seq}")


def _inputs_of(entry: ModelEntry, label: str, module, input_spec: InputSpec | None, fixed):
    """The subject's inputs: the user's --input/--seq when given, else what the factory returned; token ids
    get the vocabulary of the model's first embedding."""
    from torch import nn

    if input_spec is not None:
        if input_spec.kind == "tokens" and "vocab" not in input_spec.extra:
            vocab = next((m.num_embeddings for m in module.modules() if isinstance(m, nn.Embedding)), None)
            if vocab is None:
                raise UserError(f"{label}: --seq feeds token ids, but the model has no nn.Embedding to read the "
                                "vocabulary from; give --input with the shape it takes")
            input_spec = replace(input_spec, extra={**input_spec.extra, "vocab": vocab})
        return input_spec, None
    if fixed is None:  # params need none; a forward asks for them (Subject.example_inputs)
        return None, None
    from archbench.models.subject import normalise_inputs

    return None, normalise_inputs(fixed, label)


def _rebatched(fixed, batch: int | None):
    """The factory's example inputs, or with a ``batch`` asked for their first example repeated ``batch`` times."""
    import torch
    from torch.utils._pytree import tree_map

    if batch is None:
        return fixed

    def repeat(value):
        if isinstance(value, torch.Tensor) and value.dim():
            return value[:1].expand(batch, *value.shape[1:]).contiguous()
        return value

    return tree_map(repeat, fixed)
