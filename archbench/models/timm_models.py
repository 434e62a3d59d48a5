"""``timm:NAME`` for every model ``timm.list_models()`` knows, built with ``pretrained=False``.

Options are timm's own keyword arguments (``timm:convnext_tiny:drop_path_rate=0.1``), read as
numbers, booleans or strings and checked by the model itself. The default input is the
``input_size`` of the model's pretrained configuration (no weights are fetched).
"""

from __future__ import annotations

from archbench.errors import UserError
from archbench.models.registry import ModelEntry, literal
from archbench.models.subject import InputSpec
from archbench.spec import suggest

_VIT_PREFIXES = ("vit", "deit", "swin", "beit", "eva", "cait", "xcit", "levit", "pvt", "twins", "maxvit", "coat",
                 "crossvit", "mvit", "flexivit", "davit", "fastvit", "efficientformer", "tiny_vit", "hiera")


def entry_for(name: str) -> ModelEntry:
    """The entry of ``timm:NAME``."""
    import timm

    if not timm.is_model(name):
        raise UserError(f"unknown timm model {name!r}{suggest(name, timm.list_models())} (see `archbench list 'timm:*'`)")

    def build(**options):
        return timm.create_model(name, pretrained=False, **{k: literal(v) for k, v in options.items()})

    return ModelEntry(name=f"timm:{name}", family=family_of(name), source="timm", builder=build,
                      default_input=lambda options: InputSpec("image", input_size(name, options)),
                      description=f"timm.create_model({name!r}, pretrained=False)", accepts_any_option=True)


def family_of(name: str) -> str:
    """``vit`` for attention-based image models (by name), ``cnn`` otherwise."""
    return "vit" if name.startswith(_VIT_PREFIXES) else "cnn"


def input_size(name: str, options: dict) -> tuple[int, int, int]:
    """(C, H, W) the model is built for: its pretrained configuration's, or its ``in_chans``/``img_size`` options."""
    channels, height, width = default_input_size(name)
    typed = {key: literal(str(options[key])) for key in ("in_chans", "img_size") if key in options}
    if isinstance(typed.get("img_size"), int):
        height = width = typed["img_size"]
    return typed["in_chans"] if isinstance(typed.get("in_chans"), int) else channels, height, width


def default_input_size(name: str) -> tuple[int, int, int]:
    """(C, H, W) of the model's pretrained configuration, (3, 224, 224) when it has none."""
    from timm.models import get_pretrained_cfg

    config = get_pretrained_cfg(name)
    size = getattr(config, "input_size", None) if config is not None else None
    return tuple(size) if size else (3, 224, 224)


def names() -> list[str]:
    """Every model name timm knows."""
    import timm

    return timm.list_models()
