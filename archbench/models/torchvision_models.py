"""Every torchvision classification model, under its torchvision name, built with ``weights=None``."""

from __future__ import annotations

import functools

from archbench.models.registry import InputSpec, ModelEntry, add_entry, require

_TRANSFORMER_PREFIXES = ("vit_", "swin_", "maxvit_")


@functools.lru_cache(maxsize=None)
def _crop_size(name: str) -> int:
    """The resolution torchvision publishes the model's figures at (its weights' crop size)."""
    from torchvision.models import get_model_weights

    if name.startswith("vit_"):
        return 224  # a ViT built without weights has image_size=224, whatever its weights use
    try:
        return int(get_model_weights(name).DEFAULT.transforms().crop_size[0])
    except (ValueError, AttributeError, IndexError):
        return 224


def _builder(name: str):
    def build(num_classes: int = 1000, **sizes):
        import warnings

        from torchvision.models import get_model

        if "image_size" in sizes:  # ViTs: the position table is sized for the image's patches
            patch = int(name.rsplit("_", 1)[1])
            require(sizes["image_size"] > 0 and sizes["image_size"] % patch == 0,
                    f"option image_size={sizes['image_size']} of {name}: must be a positive multiple of {patch}")
        with warnings.catch_warnings():  # inception_v3/googlenet warn about a future change of their default init
            warnings.simplefilter("ignore", FutureWarning)
            return get_model(name, weights=None, num_classes=num_classes, **sizes)

    return build


def _input(name: str):
    def default_input(options: dict) -> InputSpec:
        size = options.get("image_size") or _crop_size(name)
        return InputSpec("image", (3, size, size))

    return default_input


def _register_all() -> None:
    import torchvision.models
    from torchvision.models import list_models

    for name in list_models(module=torchvision.models):
        family = "vit" if name.startswith(_TRANSFORMER_PREFIXES) else "cnn"
        options = {"num_classes": (int, 1000)}
        sizes = ""
        if name.startswith("vit_"):
            options["image_size"] = (int, 224)
            sizes = ", image_size=N"
        add_entry(
            ModelEntry(
                name=name,
                family=family,
                source="torchvision",
                builder=_builder(name),
                default_input=_input(name),
                description=f"torchvision.models.{name} (weights=None){sizes}",
                options=options,
            )
        )


_register_all()
