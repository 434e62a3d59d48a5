"""Hugging Face models built from their configurations as bare backbones (``AutoModel.from_config``).

Nothing is downloaded: each entry writes out its configuration. Any configuration
attribute can be overridden as an option (``bert-base:num_hidden_layers=2``), plus
``attn_implementation=auto|sdpa|eager`` (auto: what transformers picks, SDPA where supported).
"""

from __future__ import annotations

from typing import Any, Callable

from archbench.errors import UserError
from archbench.models.registry import InputSpec, ModelEntry, add_entry


def _bert(**kw):
    from transformers import BertConfig

    return BertConfig(**kw)


def _gpt(**kw):
    from transformers import OpenAIGPTConfig

    return OpenAIGPTConfig(**kw)


def _gpt2(**kw):
    from transformers import GPT2Config

    return GPT2Config(**kw)


def _vit(**kw):
    from transformers import ViTConfig

    return ViTConfig(**kw)


def _t5(**kw):
    from transformers import T5Config

    return T5Config(**kw)


# name: (family, config factory, base keyword arguments, position attribute, description)
_MODELS: dict[str, tuple[str, Callable, dict, str | None, str]] = {
    "bert-base": ("transformer", _bert, {}, "max_position_embeddings", "BERT-base: 12 layers, d 768, 12 heads"),
    "bert-large": (
        "transformer",
        _bert,
        dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
        "max_position_embeddings",
        "BERT-large: 24 layers, d 1024, 16 heads",
    ),
    "gpt": ("transformer", _gpt, {}, "n_positions", "OpenAI GPT: 12 layers, d 768, ff 3072"),
    "gpt2": ("transformer", _gpt2, {}, "n_positions", "GPT-2 small: 12 layers, d 768"),
    "gpt2-medium": ("transformer", _gpt2, dict(n_layer=24, n_embd=1024, n_head=16), "n_positions", "GPT-2 medium: 24 layers, d 1024"),
    "gpt2-large": ("transformer", _gpt2, dict(n_layer=36, n_embd=1280, n_head=20), "n_positions", "GPT-2 large: 36 layers, d 1280"),
    "gpt2-xl": ("transformer", _gpt2, dict(n_layer=48, n_embd=1600, n_head=25), "n_positions", "GPT-2 XL: 48 layers, d 1600"),
    "gpt3-175b": (
        "transformer",
        _gpt2,
        dict(n_layer=96, n_embd=12288, n_head=96, n_positions=2048),
        "n_positions",
        "GPT-3 175B shape (dense attention): 96 layers, d 12288, 96 heads, 2048 positions",
    ),
    "vit-base": ("vit", _vit, {}, None, "ViT-Base/16 (Hugging Face ViTModel with pooler)"),
    "t5-small": (
        "transformer",
        _t5,
        dict(d_model=512, d_ff=2048, d_kv=64, num_layers=6, num_decoder_layers=6, num_heads=8, vocab_size=32128),
        None,
        "T5-small encoder-decoder: 6+6 layers, d 512",
    ),
}


def make_config(name: str, overrides: dict[str, Any]):
    """The configuration of entry ``name`` with user overrides applied (typed like the defaults)."""
    _, factory, base, _, _ = _MODELS[name]
    config = factory(**base)
    for key, value in overrides.items():
        if key == "attn_implementation":
            continue
        if not hasattr(config, key):
            raise UserError(f"unknown option {key!r} for {name}: not an attribute of {type(config).__name__}")
        setattr(config, key, _typed_like(name, key, value, getattr(config, key)))
    return config


def _typed_like(name: str, key: str, value: Any, current: Any) -> Any:
    if not isinstance(value, str) or current is None or isinstance(current, str):
        return value
    kind = type(current)
    try:
        if kind is bool:
            if value.lower() not in ("true", "false"):
                raise ValueError
            return value.lower() == "true"
        converted = kind(value)
    except ValueError:
        raise UserError(f"option {key}={value!r} of {name}: expected {kind.__name__}") from None
    if isinstance(converted, (int, float)) and converted <= 0 and key != "layer_norm_eps":
        raise UserError(f"option {key}={value!r} of {name}: must be positive")
    return converted


def _builder(name: str):
    def build(**overrides):
        import torch  # noqa: F401  (transformers needs torch imported first)
        from transformers import AutoModel

        attn = overrides.get("attn_implementation", "auto")
        if attn not in ("auto", "sdpa", "eager"):
            raise UserError(f"option attn_implementation={attn!r} of {name}: expected auto, sdpa or eager")
        config = make_config(name, overrides)
        chosen = {} if attn == "auto" else {"attn_implementation": attn}
        try:
            return AutoModel.from_config(config, **chosen)
        except ValueError as exc:  # inconsistent configuration, e.g. hidden size not divisible by heads
            raise UserError(f"{name}: {str(exc).splitlines()[0]}") from None

    return build


def _input(name: str):
    _, _, _, position_key, _ = _MODELS[name]

    def default_input(options: dict) -> InputSpec:
        config = make_config(name, options)
        if name == "vit-base":
            size = config.image_size
            return InputSpec("image", (config.num_channels, size, size), {"arg_name": "pixel_values"})
        positions = getattr(config, position_key) if position_key else None
        extra = {
            "arg_name": "input_ids",
            "vocab": config.vocab_size,
            "max_positions": positions,
            "position_option": position_key,
            "encoder_decoder": bool(getattr(config, "is_encoder_decoder", False)),
        }
        return InputSpec("tokens", (positions or 512,), extra)

    return default_input


for _name, (_family, _factory, _base, _pos, _doc) in _MODELS.items():
    add_entry(
        ModelEntry(
            name=_name,
            family=_family,
            source="huggingface",
            builder=_builder(_name),
            default_input=_input(_name),
            description=_doc,
            options={"attn_implementation": (str, "auto")},
            accepts_any_option=True,
        )
    )
