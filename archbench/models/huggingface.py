"""Hugging Face models built from configurations (``AutoModel.from_config``); nothing is downloaded.

Two ways in, one builder:

- ``hf:MODEL_TYPE`` for any architecture transformers' ``AutoConfig.for_model`` knows (llama,
  mistral, mixtral, mamba, t5, whisper, vit, clip, ...), ``hf:path/to/config.json`` (or a
  folder holding one), or ``hf:ORG/NAME``, the config.json of a Hub repository already in the
  local cache (``HF_HOME``);
- the named registry entries (``bert-base``, ``gpt2``, ``gpt3-175b``...), which write out their
  configurations.

Options are configuration attributes, typed like the configuration's own value
(``hf:llama:num_hidden_layers=2``); one the configuration does not have is an error, and so is
changing ``model_type``. ``attn_implementation=auto|sdpa|eager`` picks the attention code.
The model is the bare backbone, as ``AutoModel.from_config`` builds it, or with ``_head``
(``--head``) the model with its task head: the LM head of a decoder or encoder–decoder, the
classifier of an encoder. Inputs are derived from the model's main input name.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any, Callable

from archbench.errors import UserError
from archbench.models.registry import ModelEntry, add_entry, literal, read_option
from archbench.models.subject import InputSpec
from archbench.spec import parse_shape

POSITION_KEYS = ("max_position_embeddings", "n_positions")
DEFAULT_SEQ = 512
DEFAULT_IMAGE_SIDE = 224
"""Image side of a vision model whose configuration names none (ResNet, DETR); ``--input`` sets another."""
ATTENTION_CHOICES = ("auto", "sdpa", "eager")


def _named(config_class: str, **base) -> Callable[..., Any]:
    def factory(**overrides):
        import transformers

        return getattr(transformers, config_class)(**{**base, **overrides})

    return factory


# name: (config factory, description); all are "transformer" family but vit-base
_NAMED: dict[str, tuple[Callable[..., Any], str]] = {
    "bert-base": (_named("BertConfig"), "BERT-base: 12 layers, d 768, 12 heads"),
    "bert-large": (_named("BertConfig", hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                          intermediate_size=4096), "BERT-large: 24 layers, d 1024, 16 heads"),
    "gpt": (_named("OpenAIGPTConfig"), "OpenAI GPT: 12 layers, d 768, ff 3072"),
    "gpt2": (_named("GPT2Config"), "GPT-2 small: 12 layers, d 768"),
    "gpt2-medium": (_named("GPT2Config", n_layer=24, n_embd=1024, n_head=16), "GPT-2 medium: 24 layers, d 1024"),
    "gpt2-large": (_named("GPT2Config", n_layer=36, n_embd=1280, n_head=20), "GPT-2 large: 36 layers, d 1280"),
    "gpt2-xl": (_named("GPT2Config", n_layer=48, n_embd=1600, n_head=25), "GPT-2 XL: 48 layers, d 1600"),
    "gpt3-175b": (_named("GPT2Config", n_layer=96, n_embd=12288, n_head=96, n_positions=2048),
                  "GPT-3 175B shape (dense attention): 96 layers, d 12288, 96 heads, 2048 positions"),
    "vit-base": (_named("ViTConfig"), "ViT-Base/16 (Hugging Face ViTModel with pooler)"),
    "t5-small": (_named("T5Config", d_model=512, d_ff=2048, d_kv=64, num_layers=6, num_decoder_layers=6, num_heads=8,
                        vocab_size=32128), "T5-small encoder-decoder: 6+6 layers, d 512"),
}


def model_types() -> list[str]:
    """Every ``model_type`` this transformers knows (cheap: no model code is imported)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return sorted(CONFIG_MAPPING_NAMES)


def entry_for(name: str) -> ModelEntry:
    """The entry of ``hf:NAME``: a model type, or a config.json (or a folder holding one)."""
    path = Path(name)
    if _is_repo_id(name, path):
        factory = functools.partial(_config_from_file, cached_config(name))
        description = f"Hugging Face model {name}, from the config.json in the local cache"
    elif name.endswith(".json") or path.is_dir() or "/" in name:
        factory = functools.partial(_config_from_file, path)
        description = f"Hugging Face model from {name}"
    else:
        types = model_types()
        if name not in types:
            from archbench.spec import suggest

            raise UserError(f"unknown Hugging Face model type {name!r}{suggest(name, types)} (see `archbench list hf:`)")
        factory = functools.partial(_config_for_model, name)
        description = f"transformers model_type {name}, AutoModel.from_config"
    return _entry(f"hf:{name}", factory, description, family_of(factory()), cap_seq=True)


def _is_repo_id(name: str, path: Path) -> bool:
    """``ORG/NAME`` (a Hub repository id) rather than a path: one slash, no .json, and no such file or folder here."""
    org, slash, repo = name.partition("/")
    return (bool(slash) and bool(org) and bool(repo) and "/" not in repo and not name.endswith(".json")
            and not org.startswith((".", "~")) and not path.exists())


def hub_cache() -> Path:
    """The local Hugging Face cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub."""
    import os

    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(home).expanduser() / "hub"


def cached_config(repo_id: str) -> Path:
    """The config.json of ``repo_id`` in the local cache (nothing is downloaded), or a UserError saying where to put
    one."""
    from huggingface_hub import try_to_load_from_cache

    cache = hub_cache()
    try:
        found = try_to_load_from_cache(repo_id, "config.json", cache_dir=str(cache))
    except Exception:  # a malformed repository id
        found = None
    if isinstance(found, str):
        return Path(found)
    raise UserError(f"hf:{repo_id}: no config.json for it in the local Hugging Face cache ({cache}) and archbench "
                    f"downloads nothing: fetch it (`huggingface-cli download {repo_id} config.json`) or give "
                    "hf:path/to/config.json")


def make_config(factory: Callable[..., Any], label: str, overrides: dict[str, Any]):
    """The configuration ``factory(**overrides)``, each override checked and typed like the default's value.

    The overrides go to the configuration's constructor, so what it derives from them follows
    (Llama's ``head_dim`` is ``hidden_size // num_attention_heads`` unless given).
    """
    default = factory()
    typed = {}
    for key, value in overrides.items():
        if key in ("attn_implementation", "_head"):
            continue
        if key == "model_type":
            raise UserError(f"option model_type of {label}: the model type cannot be changed (it is "
                            f"{default.model_type!r}); name another model, e.g. hf:{value}")
        if not hasattr(default, key):
            raise UserError(f"unknown option {key!r} for {label}: not an attribute of {type(default).__name__}")
        typed[key] = _typed_like(label, key, value, getattr(default, key))
    if not typed:
        return default
    try:
        return factory(**typed)
    except UserError:
        raise
    except Exception as exc:  # the configuration's own validation
        raise UserError(f"{label}: invalid configuration: {_reason(exc)}") from None


def _reason(exc: BaseException) -> str:
    """The exception in one line: transformers' validation errors put the reason on a second line."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:300]


def _typed_like(label: str, key: str, value: Any, current: Any) -> Any:
    if not isinstance(value, str):
        return value
    where = f"option {key}={value!r} of {label}"
    if isinstance(current, (bool, int, float)):  # read as the registry reads its options
        converted = read_option(where, value, type(current))
        if not isinstance(current, bool) and converted < 0:  # sizes, counts, rates: none is negative
            raise UserError(f"{where}: expected a non-negative number")
        return converted
    if isinstance(current, (list, tuple)) and current and all(isinstance(v, int) for v in current):
        return list(parse_shape(value, what=where))
    if current is None:  # no default to type it by: a number, a boolean or a string
        return literal(value)
    if isinstance(current, str):
        return value
    raise UserError(f"{where}: {key} holds a {type(current).__name__}, which cannot be set from the command line")


def _config_for_model(model_type: str, **overrides):
    from transformers import AutoConfig

    return AutoConfig.for_model(model_type, **overrides)


def _config_from_file(path: Path, **overrides):
    from transformers import AutoConfig

    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise UserError(f"{file}: no such configuration file")
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{file}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except RecursionError:
        raise UserError(f"{file}: nested too deep to be a configuration") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise UserError(f"{file}: holds an integer too long to be a configuration value") from None
    from archbench.results.schema import check_depth

    check_depth(data, str(file))
    if not isinstance(data, dict) or not isinstance(data.get("model_type"), str):
        raise UserError(f"{file}: a Hugging Face config.json needs a \"model_type\" string")
    model_type = data.pop("model_type")
    from archbench.models.build import check_layer_counts

    check_layer_counts(str(file), data)  # bounded like the same values given as options
    if model_type not in model_types():
        raise UserError(f"{file}: unknown model_type {model_type!r} for this transformers version")
    try:
        return AutoConfig.for_model(model_type, **{**data, **overrides})
    except Exception as exc:
        raise UserError(f"{file}: invalid configuration: {_reason(exc)}") from None


def _entry(label: str, factory: Callable[..., Any], description: str, family: str, cap_seq: bool = False,
           main_input: str | None = None) -> ModelEntry:
    """The entry of a configuration ``factory``; ``main_input`` (when known) spares importing the model's code."""

    def build(**overrides):
        return build_from_config(make_config(factory, label, overrides), label, overrides)

    def default_input(options: dict) -> InputSpec:
        return input_for(make_config(factory, label, options), cap_seq, main_input)

    return ModelEntry(name=label, family=family, source="huggingface", builder=build, default_input=default_input,
                      description=description, options={"attn_implementation": (str, "auto")},
                      accepts_any_option=True)


def family_of(config) -> str:
    """``ssm`` for state-space models, ``vit`` for image transformers (patches), ``cnn`` for other image models,
    ``transformer`` otherwise."""
    if "mamba" in config.model_type or "rwkv" in config.model_type:
        return "ssm"
    if main_input_name(config) != "pixel_values":
        return "transformer"
    return "vit" if getattr(config, "patch_size", None) else "cnn"


def build_from_config(config, label: str, overrides: dict):
    """``AutoModel.from_config`` (with ``_head``: the task-head model), with the chosen attention implementation."""
    import torch  # noqa: F401  (transformers needs torch imported first)

    attn = overrides.get("attn_implementation", "auto")
    if attn not in ATTENTION_CHOICES:
        raise UserError(f"option attn_implementation={attn!r} of {label}: expected {', '.join(ATTENTION_CHOICES)}")
    auto = head_class(config, label) if overrides.get("_head") else _auto("AutoModel")
    chosen = {} if attn == "auto" else {"attn_implementation": attn}
    try:
        return auto.from_config(config, **chosen)
    except UserError:
        raise
    except Exception as exc:  # an inconsistent configuration, e.g. hidden size not divisible by heads
        raise UserError(f"{label}: could not be built: {_reason(exc)}") from None


def _auto(name: str):
    import transformers

    return getattr(transformers, name)


def head_class(config, label: str):
    """The Auto class of the model with its task head: LM head for decoders and encoder–decoders, classifier for encoders."""
    from transformers.models.auto import modeling_auto as auto

    kind = type(config)
    if getattr(config, "is_encoder_decoder", False):
        order = ("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING", "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING")
    elif kind in auto.MODEL_FOR_MASKED_LM_MAPPING:  # an encoder: its classifier
        order = ("MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING")
    else:
        order = ("MODEL_FOR_CAUSAL_LM_MAPPING", "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING",
                 "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING", "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING")
    names = {"MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING": "AutoModelForSeq2SeqLM",
             "MODEL_FOR_SPEECH_SEQ_2_SEQ_MAPPING": "AutoModelForSpeechSeq2Seq",
             "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING": "AutoModelForSequenceClassification",
             "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING": "AutoModelForImageClassification",
             "MODEL_FOR_CAUSAL_LM_MAPPING": "AutoModelForCausalLM",
             "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING": "AutoModelForAudioClassification"}
    for mapping in order:
        if kind in getattr(auto, mapping):
            return _auto(names[mapping])
    raise UserError(f"{label}: transformers has no task head for model type {config.model_type!r}")


def main_input_name(config) -> str:
    """The model's main input (``input_ids``, ``pixel_values``, ``input_features``...), read from its class."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    try:
        model_class = MODEL_MAPPING[type(config)]
    except KeyError:
        return "input_ids"
    return getattr(model_class, "main_input_name", "input_ids")


def input_for(config, cap_seq: bool = False, name: str | None = None) -> InputSpec:
    """The default input of a model built from ``config``: its main input (``name``, else read from the
    model's class) plus what its forward also needs.

    Token models take their position limit as the default length (``cap_seq``: at most 512).
    """
    name = name or main_input_name(config)
    if name == "pixel_values":
        return InputSpec("image", _image_shape(getattr(config, "vision_config", None) or config), {"arg_name": name})
    if name == "input_features":  # speech: mel frames; whisper's encoder takes exactly 2 x max_source_positions
        frames = 2 * getattr(config, "max_source_positions", 1500)
        extra = {"arg_name": name, **_decoder_inputs(config)}
        return InputSpec("vector", (config.num_mel_bins, frames), extra)
    if name == "input_values":  # raw audio samples
        return InputSpec("vector", (16000,), {"arg_name": name})
    if name != "input_ids":
        raise UserError(f"{config.model_type}: archbench cannot derive its input {name!r}; build it in a file "
                        "and return (module, example_inputs) from a factory")
    text = getattr(config, "text_config", None) or config
    key = next((k for k in POSITION_KEYS if isinstance(getattr(text, k, None), int)), None)
    positions = getattr(text, key) if key else None
    extra: dict[str, Any] = {"arg_name": name, "vocab": text.vocab_size, "max_positions": positions,
                             "position_option": key if text is config else None}
    if getattr(config, "is_encoder_decoder", False):
        extra["extra_inputs"] = {"decoder_input_ids": "same"}
    vision = getattr(config, "vision_config", None)
    if vision is not None and getattr(vision, "image_size", None):  # e.g. CLIP: text and image
        extra["extra_inputs"] = {"pixel_values": ("image", _image_shape(vision))}
    seq = positions or DEFAULT_SEQ
    return InputSpec("tokens", (min(seq, DEFAULT_SEQ) if cap_seq else seq,), extra)


def _image_shape(vision) -> tuple[int, int, int]:
    """(C, H, W) of a vision configuration: its image_size (a side or [H, W]), else :data:`DEFAULT_IMAGE_SIDE`."""
    size = getattr(vision, "image_size", None) or DEFAULT_IMAGE_SIDE
    height, width = (size, size) if isinstance(size, int) else tuple(size)[:2]
    return getattr(vision, "num_channels", 3), height, width


def _decoder_inputs(config) -> dict:
    if not getattr(config, "is_encoder_decoder", False):
        return {}
    return {"extra_inputs": {"decoder_input_ids": ("tokens", 1, config.vocab_size)}}


for _name, (_factory, _doc) in _NAMED.items():  # `archbench list` shows their inputs without importing model code
    _vision = _name == "vit-base"
    add_entry(_entry(_name, _factory, _doc, "vit" if _vision else "transformer",
                     main_input="pixel_values" if _vision else "input_ids"))
