"""Models from a user's own code: ``path/to/file.py:ATTR`` or ``package.module:ATTR``.

ATTR is an ``nn.Module`` subclass or a factory; the spec's options become its keyword
arguments, typed from its signature (annotations, else the default's type, else read as a
number, a boolean or a string). A factory may return a module, or ``(module, example_inputs)``
where example_inputs is a tensor, a tuple of positional inputs or a dict of keyword inputs;
otherwise ``--input SHAPE`` or ``--seq T`` says what to feed it.

Loading a file or module executes its code: that is the point. (archbench's own YAML and JSON
inputs never execute anything.)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import typing
from pathlib import Path
from typing import Any

from archbench.errors import UserError
from archbench.models.registry import ModelEntry
from archbench.spec import suggest

_LOADED_FILES: dict[Path, Any] = {}


def entry_for(name: str) -> ModelEntry:
    """The entry of ``TARGET:ATTR``: the attribute loaded from a file or an importable module."""
    target, _, attr = name.partition(":")
    _refuse_registry_name(name, target)
    module = _load_file(Path(target)) if target.endswith(".py") or "/" in target else _import(target)
    obj = _attribute(module, attr, name)
    builder, parameters = _callable_of(obj, name)
    options, any_option = _options_of(parameters)
    description = (inspect.getdoc(obj) or f"{attr} from {target}").split("\n")[0]
    return ModelEntry(name=name, family="custom", source="python", builder=_checked(builder, name),
                      default_input=lambda options: None, description=description, options=options,
                      accepts_any_option=any_option)


def _refuse_registry_name(name: str, target: str) -> None:
    """``lstm:hidden`` is a registry model with a malformed option, not a module named lstm."""
    from archbench.models.registry import _REGISTRY, _load

    if "." not in target and "/" not in target:
        _load()
        if target in _REGISTRY:
            option = name.partition(":")[2]
            raise UserError(f"malformed option {option!r} in {name!r}: expected key=value")


def _load_file(path: Path):
    path = path.expanduser().resolve()
    if path in _LOADED_FILES:
        return _LOADED_FILES[path]
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    spec = importlib.util.spec_from_file_location(f"archbench_user_{len(_LOADED_FILES)}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # so the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise UserError(f"{path}: could not be loaded: {_describe(exc)}") from None
    finally:
        sys.path.remove(str(path.parent))
    _LOADED_FILES[path] = module
    return module


def _import(target: str):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        raise UserError(f"cannot import module {target!r} ({exc}); a file is named path/to/file.py:ATTR") from None
    except Exception as exc:
        raise UserError(f"module {target!r} could not be imported: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    """The exception in one line (a SyntaxError's own message names its file and line)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def _attribute(module, attr: str, name: str):
    value = module
    for part in attr.split("."):
        if not hasattr(value, part):
            public = [n for n in dir(value) if not n.startswith("_")]
            raise UserError(f"{name}: no attribute {part!r}{suggest(part, public)}")
        value = getattr(value, part)
    return value


def _callable_of(obj, name: str):
    """The builder and the parameters its options fill."""
    from torch import nn

    if inspect.isclass(obj):
        if not issubclass(obj, nn.Module):
            raise UserError(f"{name}: {obj.__name__} is a class but not a torch.nn.Module")
        return obj, _parameters(obj.__init__)[1:]
    if isinstance(obj, nn.Module):
        raise UserError(f"{name}: is a module instance; name its class or a factory that builds it")
    if not callable(obj):
        raise UserError(f"{name}: is a {type(obj).__name__}, not an nn.Module subclass or a factory")
    return obj, _parameters(obj)


def _parameters(function) -> list:
    """The signature's parameters, string annotations (``from __future__ import annotations``) evaluated."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation names something the module does not define: keep the strings
        hints = {}
    parameters = inspect.signature(function).parameters.values()
    return [p.replace(annotation=hints.get(p.name, p.annotation)) for p in parameters]


def _options_of(parameters) -> tuple[dict[str, tuple[Any, Any]], bool]:
    """Options (name -> (type, default)) from the signature, and whether it takes ``**kwargs``."""
    options: dict[str, tuple[Any, Any]] = {}
    any_option = False
    for param in parameters:
        if param.kind is param.VAR_KEYWORD:
            any_option = True
        elif param.kind is param.VAR_POSITIONAL:
            continue
        else:
            options[param.name] = (_option_type(param), None if param.default is param.empty else param.default)
    return options, any_option


def _option_type(param) -> Any:
    annotation = param.annotation
    if isinstance(annotation, str):  # from __future__ import annotations: resolve the simple ones
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation, param.empty)
    if annotation in (int, float, bool, str) or typing.get_origin(annotation) is typing.Literal:
        return annotation
    if param.default is not param.empty and type(param.default) in (int, float, bool, str):
        return type(param.default)
    return Any


def _checked(builder, name: str):
    """The builder, with its result checked: a module, or (module, example inputs)."""

    def build(**options):
        from torch import nn

        result = builder(**options)
        module = result[0] if isinstance(result, tuple) and len(result) == 2 else result
        if not isinstance(module, nn.Module):
            raise UserError(f"{name} returned {type(result).__name__}: expected an nn.Module or (module, example_inputs)")
        return result

    return build
