"""Where models come from (the registry, a user's code, ``hf:``, ``timm:``) and the subject they are measured as."""

from archbench.models.build import build_model, check_device, check_fits, default_input
from archbench.models.registry import ModelEntry, all_entries, get_entry, list_models, resolve
from archbench.models.subject import InputSpec, Recipe, Subject, make_inputs, torch_dtype

__all__ = [
    "InputSpec", "ModelEntry", "Recipe", "Subject", "all_entries", "build_model", "check_device", "check_fits",
    "default_input", "get_entry", "list_models", "make_inputs", "resolve", "torch_dtype",
]
