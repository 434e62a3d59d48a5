"""Every torchvision classification model, under its torchvision name, built with ``weights=None``."""

from __future__ import annotations

import functools

from archbench.models.registry import InputSpec, ModelEntry, add_entry

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
    def build(num_classes: int = 1000):
        import warnings

        from torchvision.models import get_model

        with warnings.catch_warnings():  # inception_v3/googlenet warn about a future change of their default init
            warnings.simplefilter("ignore", FutureWarning)
            return get_model(name, weights=None, num_classes=num_classes)

    return build


def _register_all() -> None:
    import torchvision.models
    from torchvision.models import list_models

    for name in list_models(module=torchvision.models):
        family = "vit" if name.startswith(_TRANSFORMER_PREFIXES) else "cnn"
        size = functools.partial(_crop_size, name)
        add_entry(
            ModelEntry(
                name=name,
                family=family,
                source="torchvision",
                builder=_builder(name),
                default_input=lambda _opts, size=size: InputSpec("image", (3, size(), size())),
                description=f"torchvision.models.{name} (weights=None)",
                options={"num_classes": (int, 1000)},
            )
        )


_register_all()
