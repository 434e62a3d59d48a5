"""The one registry of named architectures.

An entry knows how to build its module from typed options, its family, its source
(torchvision, huggingface, archbench) and its default input. Options are declared as
typed keyword arguments of the builder: ``int``, ``float``, ``bool``, ``str``, a
``Literal[...]`` of choices, or :data:`Shape` (``AxBxC``).
"""

from __future__ import annotations

import inspect
import math
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from archbench.errors import UserError
from archbench.models.subject import InputSpec
from archbench.spec import ModelSpec, parse_model_spec, parse_shape, suggest

Shape = typing.NewType("Shape", tuple)
"""Option type for a list of positive integers written ``AxBxC``."""

@dataclass
class ModelEntry:
    """One named architecture of the registry."""

    name: str
    family: str
    source: str
    builder: Callable[..., Any]
    default_input: Callable[[dict], InputSpec | None]  # None: the caller says (--input/--seq) or the builder does
    description: str = ""
    options: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # name -> (type, default)
    accepts_any_option: bool = False  # e.g. Hugging Face config overrides, checked by the builder

    def resolve_options(self, raw: dict[str, str]) -> dict[str, Any]:
        """Typed options: the defaults overridden by the user's strings."""
        values = {name: default for name, (_, default) in self.options.items()}
        for key, text in raw.items():
            if key not in self.options:
                if self.accepts_any_option:
                    values[key] = text
                    continue
                known = ", ".join(o for o in self.options if not o.startswith("_")) or "none"
                raise UserError(f"unknown option {key!r} for {self.name} (options: {known})")
            values[key] = read_option(f"option {key}={text!r} of {self.name}", text, self.options[key][0])
        return values


_REGISTRY: dict[str, ModelEntry] = {}
_LOADED = False


def register(
    name: str,
    *,
    family: str,
    source: str = "archbench",
    default_input: Callable[[dict], InputSpec],
    description: str = "",
):
    """Decorator: register a builder whose keyword arguments are its typed options."""

    def wrap(builder):
        options = {}
        hints = typing.get_type_hints(builder)
        for pname, param in inspect.signature(builder).parameters.items():
            options[pname] = (hints.get(pname, str), param.default)
        doc = description or (inspect.getdoc(builder) or "").split("\n")[0]
        add_entry(ModelEntry(name, family, source, builder, default_input, doc, options))
        return builder

    return wrap


def add_entry(entry: ModelEntry) -> None:
    """Add an entry built elsewhere (torchvision and Hugging Face entries)."""
    if entry.name in _REGISTRY:
        raise ValueError(f"model {entry.name!r} registered twice")
    _REGISTRY[entry.name] = entry


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        from archbench.models import huggingface, reference, torchvision_models  # noqa: F401


def all_entries() -> list[ModelEntry]:
    """Every registered entry, sorted by name."""
    _load()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def list_models(pattern: str | None = None) -> list[ModelEntry]:
    """Entries whose name matches the glob ``pattern`` (a bare word matches as a substring)."""
    from archbench.spec import matching

    entries = {e.name: e for e in all_entries()}
    return [entries[name] for name in matching(list(entries), pattern)]


def get_entry(name: str) -> ModelEntry:
    """The entry called ``name``, or a UserError with the closest names."""
    _load()
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}{suggest(name, list(_REGISTRY))} (see `archbench list`)")
    return _REGISTRY[name]


def resolve(spec: str | ModelSpec) -> tuple[ModelEntry, dict[str, Any]]:
    """Parse and validate a model argument of any source: its entry and typed options."""
    if isinstance(spec, str):
        spec = parse_model_spec(spec)
    if spec.source == "hf":
        from archbench.models.huggingface import entry_for
    elif spec.source == "timm":
        from archbench.models.timm_models import entry_for
    elif spec.source == "python":
        from archbench.models.python_source import entry_for
    else:
        entry_for = get_entry
    entry = entry_for(spec.name)
    return entry, entry.resolve_options(spec.options)


TRUE_WORDS = ("true", "yes", "on")
FALSE_WORDS = ("false", "no", "off")
"""How an option says yes or no, wherever it is read (registry, hf:, timm:, a user's own model)."""


def literal(text: str) -> Any:
    """An untyped option value: an integer, a finite number, a boolean word (:data:`TRUE_WORDS`,
    :data:`FALSE_WORDS`) or else the string itself."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is not None and math.isfinite(value):
        return value
    lowered = text.lower()
    return True if lowered in TRUE_WORDS else False if lowered in FALSE_WORDS else text


def read_option(where: str, text: str, kind: Any) -> Any:
    """An option's text read as ``kind`` (bool, int, float, Shape, a Literal of choices, str, or Any: untyped);
    the one way every model source types its options. UserError naming ``where`` when it cannot be."""
    if kind is Any:
        return literal(text)
    if kind is bool:
        lowered = text.lower()
        if lowered in (*TRUE_WORDS, "1"):
            return True
        if lowered in (*FALSE_WORDS, "0"):
            return False
        raise UserError(f"{where}: expected true or false (or yes/no, on/off)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            raise UserError(f"{where}: expected an integer") from None
    if kind is float:
        try:
            value = float(text)
        except ValueError:
            raise UserError(f"{where}: expected a number") from None
        if not math.isfinite(value):
            raise UserError(f"{where}: expected a finite number")
        return value
    if kind is Shape:
        return parse_shape(text, what=where)
    if typing.get_origin(kind) is Literal:
        choices = typing.get_args(kind)
        if text not in choices:
            raise UserError(f"{where}: expected one of {', '.join(choices)}")
        return text
    return text


def require(condition: bool, message: str) -> None:
    """Builders call this for impossible option values."""
    if not condition:
        raise UserError(message)
