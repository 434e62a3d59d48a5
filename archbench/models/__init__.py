"""The model registry: named architectures from torchvision, Hugging Face and archbench's own builders."""

from archbench.models.build import BuiltModel, build_model, check_device, default_input, make_inputs
from archbench.models.registry import InputSpec, ModelEntry, all_entries, get_entry, list_models, resolve

__all__ = [
    "BuiltModel", "InputSpec", "ModelEntry", "all_entries", "build_model", "check_device",
    "default_input", "get_entry", "list_models", "make_inputs", "resolve",
]
