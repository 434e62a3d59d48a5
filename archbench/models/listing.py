"""What ``archbench list`` shows: registry entries, Hugging Face model types (``hf:``) or timm names (``timm:``)."""

from __future__ import annotations


COLUMNS = ("name", "family", "source", "default_input", "description")


def listing(pattern: str | None) -> list[dict[str, str]]:
    """One row per model matching ``pattern``; a ``hf:`` or ``timm:`` prefix lists that source (cheaply: nothing is built)."""
    from archbench.spec import matching

    if pattern and pattern.startswith("hf:"):
        from archbench.models.huggingface import model_types

        return [_row(f"hf:{name}", "?", "huggingface", "derived from the model", f"transformers model_type {name}")
                for name in matching(model_types(), pattern[3:])]
    if pattern and pattern.startswith("timm:"):
        from archbench.models.timm_models import default_input_size, family_of, names

        return [_row(f"timm:{name}", family_of(name), "timm", "image " + "x".join(map(str, default_input_size(name))),
                     f"timm.create_model({name!r}, pretrained=False)")
                for name in matching(names(), pattern[5:])]
    from archbench.models.registry import list_models

    return [_row(e.name, e.family, e.source, e.default_input(e.resolve_options({})).describe(), e.description)
            for e in list_models(pattern)]


def _row(*values: str) -> dict[str, str]:
    return dict(zip(COLUMNS, values))
