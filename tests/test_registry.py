"""The registry: every source present, options typed and validated, meta-device builds."""

import pytest

from archbench.errors import UserError
from archbench.models import build_model, get_entry, list_models

REFERENCE = [
    "mlp", "rnn", "lstm", "gru", "transformer", "attention", "lenet5", "unet", "inception-module",
    "dwsep-conv", "gan-generator", "gan-discriminator", "autoencoder",
]
HUGGING_FACE = ["bert-base", "bert-large", "gpt", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt3-175b",
                "vit-base", "t5-small"]


def test_every_torchvision_classification_model_is_registered():
    import torchvision.models
    from torchvision.models import list_models as tv_list

    names = tv_list(module=torchvision.models)
    assert len(names) > 50
    for name in names:
        assert get_entry(name).source == "torchvision"


@pytest.mark.parametrize("name", REFERENCE + HUGGING_FACE)
def test_named_entries_exist(name):
    entry = get_entry(name)
    assert entry.family and entry.source in ("archbench", "huggingface")


def test_list_filters_with_globs_and_substrings():
    assert {e.name for e in list_models("resnet*")} >= {"resnet18", "resnet50", "resnet152"}
    assert {e.name for e in list_models("gpt2")} == {"gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl"}
    assert list_models("no-such-model*") == []


@pytest.mark.parametrize("name", REFERENCE)
def test_reference_builders_run_on_their_default_input(name):
    import torch

    built = build_model(name, device="cpu")
    args, kwargs = built.example_inputs()
    with torch.no_grad():
        built.module(*args, **kwargs)


def test_families_and_default_inputs():
    assert get_entry("resnet50").family == "cnn"
    assert get_entry("vit_b_16").family == "vit"
    assert get_entry("lstm").family == "rnn"
    assert build_model("inception_v3", device="meta").input.shape == (3, 299, 299)
    assert build_model("lstm:input=64", device="meta").input.shape == (512, 64)
    bert = build_model("bert-base", device="meta", seq=128, batch=4)
    assert bert.input.kind == "tokens" and bert.point == {"batch": 4, "seq": 128}


def test_overrides_of_input_seq_and_batch():
    built = build_model("resnet18", device="meta", input_shape=(3, 299, 299), batch=2)
    assert built.point == {"batch": 2, "input": "3x299x299"}
    with pytest.raises(UserError, match="--seq applies to sequence models"):
        build_model("resnet18", device="meta", seq=10)
    with pytest.raises(UserError, match="3 sizes"):
        build_model("resnet18", device="meta", input_shape=(224, 224))


@pytest.mark.parametrize(
    "spec, message",
    [
        ("resnet5", "did you mean resnet50"),
        ("transformer:heads=7", "not divisible by heads"),
        ("lstm:hidden=-1", "must be positive"),
        ("lstm:hidden=abc", "expected an integer"),
        ("lstm:bidirectional=maybe", "expected true or false"),
        ("lstm:depth=3", "unknown option 'depth'"),
        ("transformer:attention=linear", "expected one of sdpa, naive, torch"),
        ("bert-base:not_a_field=1", "unknown option"),
        ("bert-base:num_attention_heads=7", "not a multiple"),
    ],
)
def test_bad_specs_are_clear_errors(spec, message):
    with pytest.raises(UserError, match=message):
        build_model(spec, device="meta")


def test_position_table_extended_with_a_warning():
    built = build_model("bert-base", device="meta", seq=1024)
    assert built.module.config.max_position_embeddings == 1024
    assert any("extended" in w for w in built.warnings)


def test_cuda_without_gpu_is_a_user_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(UserError, match="no CUDA GPU"):
        build_model("lenet5", device="cuda")
