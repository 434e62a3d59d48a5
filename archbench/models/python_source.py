"""Models from a user's own code: ``path/to/file.py:ATTR`` or ``module:ATTR`` (``package.module:ATTR``).

Code is loaded the way Python and pytest load it:

- a file inside a package (folders holding ``__init__.py``) is imported under its dotted name,
  the package's root put first on ``sys.path``, so its relative imports work;
- a lone file is registered in ``sys.modules`` under a unique name before it runs (timm's
  ``@register_model`` and dataclasses look their module up there), its folder on ``sys.path``;
- ``module:ATTR`` imports an installed module or one in the working directory; a registry
  name wins (``lstm:hidden`` is a malformed option of the registry's lstm).

The whole load (import and construction) runs under the build time limit. ATTR is an
``nn.Module`` subclass or a Python function (builtins, other classes and functions of the
standard library are refused before they are called); the spec's options become its keyword
arguments, typed from its signature (annotations, else the default's type, else read as a
number, a boolean or a string). A class or function that takes one config object (nanoGPT's
``GPT(config)``, Whisper's ``Whisper(dims: ModelDimensions)``) is given that object, built from
the options: the config class is the parameter's annotation or, failing that, the module's one
dataclass whose name ends in Config, Args or Dims. A factory may return a module, or ``(module,
example_inputs)`` where example_inputs is a tensor, a tuple of positional inputs or a dict of
keyword inputs; otherwise ``--input SHAPE`` or ``--seq T`` says what to feed it.

Loading a file or module executes its code: that is the point, where a person names it on the
command line. A model that is code named inside a suite or claims file is refused unless the
run is given ``--allow-code`` (:func:`code_from_data`): archbench's own YAML and JSON inputs never
execute anything by themselves. ``sys.exit`` in user code is an error; ``os._exit`` ends the
process at once (nothing can catch it), except under ``memory``, which builds in a child.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import sys
import typing
import weakref
import zlib
from pathlib import Path
from typing import Any

from archbench.errors import UserError
from archbench.models.registry import ModelEntry
from archbench.spec import suggest

CONFIG_SUFFIXES = ("Config", "Args", "Dims")
"""Endings of a config dataclass's name, found in the module when the constructor's parameter has no annotation."""
_LOADED_FILES: dict[Path, Any] = {}
_CODE_REFUSED = False  # set by code_from_data: model names come from a data file, not a person
_BUILT: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # module -> the model it was built as (forward_failure)


class _Required:
    """The default of an option that has none: building without it is an error naming it."""

    def __repr__(self) -> str:
        return "required"


REQUIRED = _Required()


@contextlib.contextmanager
def code_from_data(allowed: bool):
    """While active, the models named come from a data file (a suite, a claims file): one that is code
    (``FILE.py:ATTR``, ``module:ATTR``) is refused unless ``allowed`` (``--allow-code``)."""
    global _CODE_REFUSED
    previous = _CODE_REFUSED
    _CODE_REFUSED = not allowed
    try:
        yield
    finally:
        _CODE_REFUSED = previous


def entry_for(name: str) -> ModelEntry:
    """The entry of ``TARGET:ATTR``: the attribute loaded from a file or an importable module."""
    target, _, attr = name.partition(":")
    is_file = target.endswith(".py") or "/" in target or os.sep in target
    if not is_file:
        _refuse_registry_name(name, target)
    if _CODE_REFUSED:
        raise UserError(f"{name}: a model that is code runs only with --allow-code (a suite or claims file never "
                        "executes code by itself)")
    from archbench.models.build import BUILD_TIME_LIMIT_S, time_limit

    with time_limit(BUILD_TIME_LIMIT_S, f"{target}: loading"), _exits_refused(f"{target}: loading"):
        module = _load_file(target) if is_file else _import(target)
    obj = _attribute(module, attr, name)
    builder, options, any_option = _builder_of(obj, name)
    description = (inspect.getdoc(obj) or f"{attr} from {target}").split("\n")[0]
    return ModelEntry(name=name, family="custom", source="python", builder=builder,
                      default_input=lambda options: None, description=description, options=options,
                      accepts_any_option=any_option)


def _refuse_registry_name(name: str, target: str) -> None:
    """``lstm:hidden`` is a registry model with a malformed option, not a module named lstm (the registry wins)."""
    from archbench.models.registry import _REGISTRY, _load

    if "." in target:
        return
    _load()
    if target in _REGISTRY:
        option = name.partition(":")[2]
        also = ""
        with contextlib.suppress(ImportError, ValueError):
            if importlib.machinery.PathFinder.find_spec(target, [os.getcwd(), *sys.path]) is not None:
                also = f"; {target} is also a module, which the registry name hides: write ./{target}.py:{option}"
        raise UserError(f"malformed option {option!r} in {name!r}: expected key=value ({target} is a registry "
                        f"model{also})")


@contextlib.contextmanager
def _exits_refused(what: str):
    """``sys.exit`` in user code is an error of that code, not archbench's exit."""
    try:
        yield
    except SystemExit as exc:
        raise UserError(f"{what}: the code called sys.exit({exc.code!r}); archbench does not exit for it") from None


def _load_file(target: str):
    """The module of a ``.py`` file: under its dotted name inside a package, else under a unique name."""
    try:
        path = Path(target).expanduser().resolve(strict=True)
    except FileNotFoundError:
        raise UserError(f"{target}: no such file") from None
    except (OSError, RuntimeError) as exc:  # a symbolic link loop, a folder that cannot be read
        reason = "a loop of symbolic links" if "loop" in str(exc).lower() else _describe(exc)
        raise UserError(f"{target}: cannot be read ({reason})") from None
    if not path.is_file():
        raise UserError(f"{target}: not a file")
    if path not in _LOADED_FILES:
        root, dotted = _package_of(path)
        _LOADED_FILES[path] = _import_from(path, root, dotted) if dotted else _run_lone_file(path)
    return _LOADED_FILES[path]


def _package_of(path: Path) -> tuple[Path, str | None]:
    """The folder above the file's package and its dotted name, as pytest finds them; (folder, None) outside one."""
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if folder == path.parent or not all(part.isidentifier() for part in parts):
        return path.parent, None
    return folder, ".".join(parts)


def _on_path(folder: Path) -> None:
    """Put ``folder`` first on ``sys.path`` (kept there, as pytest does, for imports made later)."""
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _import_from(path: Path, root: Path, dotted: str):
    loaded = sys.modules.get(dotted)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != path:
        raise UserError(f"{path}: cannot be imported as {dotted}: a module of that name is already loaded from "
                        f"{getattr(loaded, '__file__', None) or 'elsewhere'}")
    _on_path(root)
    try:
        return importlib.import_module(dotted)
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"{path}: could not be imported as {dotted}: {_describe(exc)}") from None


def _run_lone_file(path: Path):
    name = f"archbench_user_{path.stem if path.stem.isidentifier() else 'file'}_{zlib.crc32(bytes(path)):08x}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None:
        raise UserError(f"{path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    _on_path(path.parent)  # so the file can import its neighbours
    sys.modules[name] = module  # before it runs: dataclasses and registries look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, Exception) and not isinstance(exc, UserError):
            raise UserError(f"{path}: could not be loaded: {_describe(exc)}") from None
        raise
    return module


def _import(target: str):
    if not all(part.isidentifier() for part in target.split(".")):
        raise UserError(f"{target!r} is not a module name; a file is named path/to/file.py:ATTR")
    _on_path(Path.cwd())  # a module of the working directory, as uvicorn's main:app
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        from archbench.models.registry import _REGISTRY

        raise UserError(f"cannot import module {target!r} ({exc}); a file is named path/to/file.py:ATTR, a "
                        f"registry model NAME:key=value{suggest(target, list(_REGISTRY))}") from None
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"module {target!r} could not be imported: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    """The exception in one line (a SyntaxError's own message names its file and line)."""
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first}"[:300]


def _attribute(module, attr: str, name: str):
    value = module
    for part in attr.split("."):
        if not part or not hasattr(value, part):
            public = [n for n in dir(value) if not n.startswith("_")]
            raise UserError(f"{name}: no attribute {part!r}{suggest(part, public)}")
        value = getattr(value, part)
    return value


def _builder_of(obj, name: str):
    """The checked builder, its options (name -> (type, default)) and whether it takes ``**kwargs``; a class
    that is not a module, a builtin or a function of the standard library is refused before it is called."""
    from torch import nn

    if inspect.isclass(obj):
        if not issubclass(obj, nn.Module):
            raise UserError(f"{name}: {obj.__name__} is a class but not a torch.nn.Module; refused")
        parameters = _parameters(obj.__init__, name)[1:]
    elif isinstance(obj, nn.Module):
        raise UserError(f"{name}: is a module instance; name its class or a factory that builds it")
    elif inspect.isfunction(obj) or (inspect.ismethod(obj) and inspect.isfunction(obj.__func__)):
        home = (getattr(obj, "__module__", None) or "").partition(".")[0]
        if home in sys.stdlib_module_names:
            raise UserError(f"{name}: is a function of Python's standard library ({obj.__module__}), not a model "
                            "factory; refused")
        parameters = _parameters(obj, name)
    else:
        raise UserError(f"{name}: is a {type(obj).__name__}, not an nn.Module subclass or a Python function; refused")
    config = _config_parameter(obj, parameters)
    if config is None:
        options, any_option = _options_of(parameters)
        return _checked(_with_required(obj, options, name), name), options, any_option
    parameter, config_class = config
    others = [p for p in parameters if p is not parameter]
    fields = _config_options(config_class)
    options, any_option = _options_of(others)
    builder = _with_config(obj, parameter, config_class, set(options), name)
    return _checked(builder, name), {**fields, **options}, any_option  # its own keyword wins over a field's name


def _parameters(function, name: str) -> list:
    """The signature's parameters, string annotations (``from __future__ import annotations``) evaluated."""
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # an annotation names something the module does not define: keep the strings
        hints = {}
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError) as exc:
        raise UserError(f"{name}: its signature cannot be read ({_describe(exc)})") from None
    return [p.replace(annotation=hints.get(p.name, p.annotation)) for p in parameters]


def _config_parameter(obj, parameters) -> tuple[Any, type] | None:
    """(the parameter, its config dataclass) when ``obj`` takes one config object, else None."""
    required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if len(required) != 1:
        return None
    parameter = required[0]
    annotation = parameter.annotation
    if inspect.isclass(annotation) and dataclasses.is_dataclass(annotation):
        return parameter, annotation
    if annotation is not parameter.empty and not isinstance(annotation, str):
        return None
    module = sys.modules.get(getattr(obj, "__module__", ""))
    candidates = [value for key, value in vars(module or object()).items()
                  if inspect.isclass(value) and dataclasses.is_dataclass(value) and key.endswith(CONFIG_SUFFIXES)
                  and value.__module__ == getattr(module, "__name__", None)]
    if isinstance(annotation, str):
        candidates = [c for c in candidates if c.__name__ == annotation.rpartition(".")[2]]
    return (parameter, candidates[0]) if len(candidates) == 1 else None


def _config_options(config_class) -> dict[str, tuple[Any, Any]]:
    """The options of a config dataclass: its init fields, typed from their annotations."""
    try:
        hints = typing.get_type_hints(config_class)
    except Exception:
        hints = {}
    options = {}
    for item in dataclasses.fields(config_class):
        if not item.init:
            continue
        default = item.default if item.default is not dataclasses.MISSING else (
            item.default_factory() if item.default_factory is not dataclasses.MISSING else REQUIRED)
        options[item.name] = (_type_of(hints.get(item.name, item.type), default), default)
    return options


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
            default = REQUIRED if param.default is param.empty else param.default
            options[param.name] = (_type_of(param.annotation, default), default)
    return options, any_option


def _type_of(annotation, default) -> Any:
    """An option's type: int, float, bool, str or a Literal from the annotation (``Optional[X]`` is X), else the
    default's type, else Any (the text read as a number, a boolean or a string)."""
    if isinstance(annotation, str):  # an annotation that could not be evaluated: the simple ones by name
        annotation = {"int": int, "float": float, "bool": bool, "str": str}.get(annotation.removeprefix("Optional[")
                                                                                .removesuffix("]"), None)
    arguments = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Union and len(arguments) == 1:
        annotation = arguments[0]
    if annotation in (int, float, bool, str) or typing.get_origin(annotation) is typing.Literal:
        return annotation
    if default is not REQUIRED and type(default) in (int, float, bool, str):
        return type(default)
    return Any


def _missing(options: dict, name: str, what: str) -> None:
    missing = [key for key, value in options.items() if value is REQUIRED]
    if missing:
        raise UserError(f"{name}: give {', '.join(missing)} ({what}; no default), e.g. "
                        f"{name}:{','.join(f'{key}=...' for key in missing[:3])}")


def _with_required(obj, options: dict, name: str):
    """``obj`` called with its options, once every required one is given; those its ``**kwargs`` take are read as
    a number, a boolean or else a string."""
    from archbench.models.registry import literal

    def build(**values):
        _missing(values, name, f"required by {getattr(obj, '__name__', name)}")
        return obj(**{key: value if key in options else literal(value) for key, value in values.items()})

    return build


def _with_config(obj, parameter, config_class, own_names: set, name: str):
    """``obj`` called with a ``config_class`` built from the options that are its fields, and its own keywords."""
    fields = {item.name for item in dataclasses.fields(config_class) if item.init}

    def build(**values):
        config_values = {key: value for key, value in values.items() if key in fields and key not in own_names}
        _missing(config_values, name, f"fields of {config_class.__name__}")
        try:
            config = config_class(**config_values)
        except Exception as exc:  # its own __post_init__ checks
            raise UserError(f"{name}: {config_class.__name__}({_shown(config_values)}) failed: {_describe(exc)}") \
                from None
        own = {key: value for key, value in values.items() if key not in config_values}
        _missing(own, name, f"required by {getattr(obj, '__name__', name)}")
        if parameter.kind is parameter.POSITIONAL_ONLY:
            return obj(config, **own)
        return obj(**{parameter.name: config}, **own)

    return build


def _shown(values: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in values.items())[:200]


def _checked(builder, name: str):
    """The builder, with its result checked: a module, or (module, example inputs); ``sys.exit`` refused."""

    def build(**options):
        from torch import nn

        with _exits_refused(f"{name}: building"):
            result = builder(**options)
        module = result[0] if isinstance(result, tuple) and len(result) == 2 else result
        if not isinstance(module, nn.Module):
            raise UserError(f"{name} returned {type(result).__name__}: expected an nn.Module or (module, "
                            "example_inputs)")
        _BUILT[module] = name
        return result

    return build


def forward_failure(exc: BaseException) -> str | None:
    """The line ``MODEL: its forward failed: Type: message`` when ``exc`` came out of the forward of a model built
    from user code (a frame of ``nn.Module.__call__`` on it is in the traceback), else None."""
    if not _BUILT:
        return None
    traceback = exc.__traceback__
    while traceback is not None:
        frame = traceback.tb_frame
        owner = frame.f_locals.get("self") if frame.f_code.co_name in ("_call_impl", "_wrapped_call_impl") else None
        if owner is not None and owner in _BUILT:
            return f"{_BUILT[owner]}: its forward failed: {_describe(exc)}"
        traceback = traceback.tb_next
    return None
