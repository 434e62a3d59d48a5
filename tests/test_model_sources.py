"""Bring your own model (issue 10): FILE.py:ATTR, package.module:ATTR, hf:, timm: and `archbench list` of them.

Every expected figure is a closed form written out here (or a published parameter count), never
what archbench printed before.
"""

import json
import textwrap
import time

import pytest

import archbench
from archbench.metrics import unit_of

# ----------------------------------------------------------------- helpers


def figures(result) -> dict[str, float]:
    """metric -> value of the whole-model records of a JSON run document printed by the CLI (the run must have
    succeeded; stdout must be pure JSON)."""
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)["records"]
    assert all(r["error"] is None for r in records), records
    for record in records:
        assert record["unit"] == unit_of(record["metric"])
    return {r["metric"]: r["value"] for r in records if not {"module", "operator"} & set(r["point"])}


def refused(result, message: str) -> None:
    """Exit 2 with one line on stderr holding ``message``, no traceback."""
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def write(path, text: str):
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# ----------------------------------------------------------------- user models in files

NET = """
    import torch
    from torch import nn


    class Net(nn.Module):
        \"\"\"A 3x3 conv (same padding) to WIDTH channels, ReLU, then a linear layer to 10 classes.\"\"\"

        def __init__(self, width: int = 8, side: int = 32):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1)
            self.fc = nn.Linear(width * side * side, 10)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))


    def build():
        return Net()
"""


def conv_net_macs(width: int, side: int = 32, channels: int = 3, classes: int = 10) -> int:
    """Conv: channels·3·3 MACs per output pixel and channel; the linear layer width·side²·classes."""
    return width * side * side * channels * 9 + width * side * side * classes


def conv_net_params(width: int, side: int = 32, channels: int = 3, classes: int = 10) -> int:
    return (width * channels * 9 + width) + (width * side * side * classes + classes)


@pytest.fixture
def net_file(tmp_path):
    return write(tmp_path / "my_net.py", NET)


def test_flops_of_a_factory_in_a_file(cli, net_file):
    got = figures(cli("flops", f"{net_file}:build", "--input", "3x32x32", "--format", "json"))
    assert got["macs"] == conv_net_macs(8) == 303_104
    assert got["flops"] == 2 * conv_net_macs(8)


def test_params_of_a_class_with_a_typed_option(cli, net_file):
    got = figures(cli("params", f"{net_file}:Net:width=16", "--input", "3x32x32", "--format", "json"))
    assert got["params"] == conv_net_params(16) == 164_298
    assert got["params_trainable"] == conv_net_params(16) and got["params_frozen"] == 0


def test_params_need_no_input(cli, net_file):
    got = figures(cli("params", f"{net_file}:Net:width=16", "--format", "json"))
    assert got["params"] == conv_net_params(16)


TYPED = """
    from __future__ import annotations

    from typing import Literal

    import torch
    from torch import nn


    def build(width: int = 4, act: Literal["relu", "gelu"] = "relu", bias: bool = True, scale: float = 1.0):
        assert isinstance(width, int) and isinstance(bias, bool) and isinstance(scale, float)
        layer = nn.Linear(3, width, bias=bias)
        return nn.Sequential(layer, nn.ReLU() if act == "relu" else nn.GELU()), torch.randn(1, 3)
"""


def test_options_typed_from_string_annotations(cli, tmp_path):
    """``from __future__ import annotations`` leaves the annotations as strings; they still type the options."""
    path = write(tmp_path / "typed.py", TYPED)
    got = figures(cli("params", f"{path}:build:width=6,act=gelu,bias=false,scale=2", "--format", "json"))
    assert got["params"] == 3 * 6  # Linear 3 -> 6 without bias
    refused(cli("params", f"{path}:build:act=tanh"), "expected one of relu, gelu")
    refused(cli("params", f"{path}:build:width=2.5"), "expected an integer")
    refused(cli("params", f"{path}:build:bias=maybe"), "expected true or false")


LSTM = """
    import torch
    from torch import nn


    def lstm(hidden: int = 16, layers: int = 1, steps: int = 10):
        return nn.LSTM(8, hidden, num_layers=layers, batch_first=True), torch.randn(1, steps, 8)
"""


def lstm_macs(steps: int, inputs: int, hidden: int, layers: int) -> int:
    """Per layer and step, the 4 gates take 4·h×(layer input + h) MACs; layers after the first read h."""
    return sum(steps * 4 * hidden * ((inputs if layer == 0 else hidden) + hidden) for layer in range(layers))


@pytest.mark.parametrize("hidden, layers, steps", [(16, 1, 10), (12, 2, 7)])
def test_lstm_factory_closed_form(cli, tmp_path, hidden, layers, steps):
    path = write(tmp_path / "rnn.py", LSTM)
    got = figures(cli("flops", f"{path}:lstm:hidden={hidden},layers={layers},steps={steps}", "--format", "json"))
    assert got["macs"] == lstm_macs(steps, 8, hidden, layers)


FACTORIES = """
    import torch
    from torch import nn


    class TwoInputs(nn.Module):
        \"\"\"a(x) + b(y): Linear 4 -> 5 with bias and Linear 6 -> 5 without.\"\"\"

        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 5)
            self.b = nn.Linear(6, 5, bias=False)

        def forward(self, x, y):
            return self.a(x) + self.b(y)


    class KeywordOnly(TwoInputs):
        def forward(self, x, *, y):
            return super().forward(x, y)


    def as_tensor():
        return nn.Linear(4, 5), torch.randn(3, 4)


    def as_tuple():
        return TwoInputs(), (torch.randn(2, 4), torch.randn(2, 6))


    def as_dict():
        return KeywordOnly(), {"x": torch.randn(2, 4), "y": torch.randn(2, 6)}


    def not_a_module():
        return 3
"""


@pytest.mark.parametrize("factory, batch, macs_per_item", [
    ("as_tensor", 3, 4 * 5),
    ("as_tuple", 2, 4 * 5 + 6 * 5),
    ("as_dict", 2, 4 * 5 + 6 * 5),  # keyword inputs
])
def test_factory_returning_its_inputs_needs_no_input_option(cli, tmp_path, factory, batch, macs_per_item):
    path = write(tmp_path / "factories.py", FACTORIES)
    result = cli("flops", f"{path}:{factory}", "--format", "json")
    assert figures(result)["macs"] == batch * macs_per_item
    assert json.loads(result.stdout)["records"][0]["point"]["batch"] == batch


def test_module_on_the_python_path(cli, tmp_path, monkeypatch):
    package = tmp_path / "site" / "abtest_models"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    write(package / "nets.py", NET)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    got = figures(cli("params", "abtest_models.nets:Net:width=16", "--input", "3x32x32", "--format", "json"))
    assert got["params"] == conv_net_params(16)
    got = figures(cli("flops", "abtest_models.nets:build", "--input", "3x32x32", "--format", "json"))
    assert got["macs"] == conv_net_macs(8)
    refused(cli("params", "abtest_models.nets:Nett", "--input", "3x32x32"), "did you mean Net")
    refused(cli("params", "abtest_models.absent:Net"), "cannot import module 'abtest_models.absent'")


@pytest.mark.parametrize("target, extra, message", [
    ("absent.py:build", [], "no such file"),
    ("broken.py:build", [], "SyntaxError"),
    ("my_net.py:Nett", [], "no attribute 'Nett'; did you mean Net"),
    ("factories.py:not_a_module", [], "returned int: expected an nn.Module"),
    ("my_net.py:Net:widht=16", ["--input", "3x32x32"], "unknown option 'widht'"),
    ("my_net.py:Net:width=wide", ["--input", "3x32x32"], "option width='wide'"),
    ("my_net.py:build", [], "say what to feed it: --input SHAPE"),
])
def test_bad_user_models_exit_2_with_one_line(cli, tmp_path, net_file, target, extra, message):
    write(tmp_path / "factories.py", FACTORIES)
    (tmp_path / "broken.py").write_text("import torch\ndef build(:\n    pass\n")
    refused(cli("flops", f"{tmp_path}/{target}", *extra), message)


def test_syntax_error_names_file_and_line_once(cli, tmp_path):
    (tmp_path / "broken.py").write_text("import torch\ndef build(:\n    pass\n")
    line = cli("params", f"{tmp_path}/broken.py:build").stderr.strip()
    assert "broken.py" in line and line.count("line 2") == 1


def test_memory_of_a_file_model_rebuilt_in_a_fresh_process(cli, net_file):
    got = figures(cli("memory", f"{net_file}:build", "--input", "3x32x32", "--format", "json"))
    assert got["peak_memory_bytes"] >= 0
    assert got["weights_bytes"] == 4 * conv_net_params(8)  # float32 weights, no buffers


def test_latency_of_a_file_model(cli, net_file):
    got = figures(cli("latency", f"{net_file}:build", "--input", "3x32x32", "--min-time", "0.05", "--format", "json"))
    assert got["latency_s"] > 0
    assert got["achieved_flops_s"] == pytest.approx(2 * conv_net_macs(8) / got["latency_s"])


def test_batch_sweep_of_a_file_model(cli, tmp_path):
    path = write(tmp_path / "factories.py", FACTORIES)
    result = cli("scaling", "--model", f"{path}:as_tuple", "--sweep", "batch", "--range", "1,2,4", "--metric", "flops",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    macs = {r["point"]["batch"]: r["value"] for r in json.loads(result.stdout)["records"] if r["metric"] == "macs"}
    assert macs == {b: b * (4 * 5 + 6 * 5) for b in (1, 2, 4)}


# ----------------------------------------------------------------- hf: architectures, built on meta

LLAMA = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=96,
             vocab_size=100, max_position_embeddings=64)


def options(config: dict) -> str:
    return ",".join(f"{k}={v}" for k, v in config.items())


def llama_macs(t: int, d: int, layers: int, heads: int, kv_heads: int, ff: int, **_) -> int:
    """Per layer: Q and O d×d, K and V d×(d·kv/heads), SwiGLU 3·d·ff per token; scores and values 2·T²·d."""
    kv = d * kv_heads // heads
    return layers * (t * (2 * d * d + 2 * d * kv + 3 * d * ff) + 2 * t * t * d)


def llama_params(d: int, layers: int, heads: int, kv_heads: int, ff: int, vocab: int, **_) -> int:
    """Token embedding; per layer 4 projections (no biases), the SwiGLU MLP, 2 RMSNorm weights; final norm."""
    kv = d * kv_heads // heads
    return vocab * d + layers * (2 * d * d + 2 * d * kv + 3 * d * ff + 2 * d) + d


def llama_sizes(config: dict) -> dict:
    return dict(d=config["hidden_size"], layers=config["num_hidden_layers"], heads=config["num_attention_heads"],
                kv_heads=config["num_key_value_heads"], ff=config["intermediate_size"], vocab=config["vocab_size"])


def meta_counts(spec: str, **build) -> tuple[int, int]:
    """(params, MACs) of ``spec`` built on the meta device."""
    subject = archbench.build(spec, device="meta", **build)
    count = archbench.count_flops(subject)
    assert not count.significant_uncounted, count.uncounted
    return archbench.count_params(subject).total, count.macs


@pytest.mark.parametrize("config", [
    LLAMA,                                                  # GQA: 2 query heads per key/value head
    {**LLAMA, "num_attention_heads": 8, "num_key_value_heads": 1, "num_hidden_layers": 1},  # MQA, head_dim 8
])
def test_llama_gqa_swiglu_closed_form(config):
    params, macs = meta_counts(f"hf:llama:{options(config)}", seq=16)
    assert params == llama_params(**llama_sizes(config))
    assert macs == llama_macs(16, **llama_sizes(config))


def test_llama_figures_by_hand():
    """The same closed form, worked out: d=64, heads 4, kv 2 (K, V 64×32), ff 96, V 100, 2 layers, T=16."""
    assert llama_params(**llama_sizes(LLAMA)) == 100 * 64 + 2 * (4096 + 4096 + 4096 + 18432 + 128) + 64 == 68_160
    assert llama_macs(16, **llama_sizes(LLAMA)) == 2 * (16 * 30_720 + 2 * 256 * 64) == 1_048_576


TINY_SEQ2SEQ = dict(d=32, ff=64, vocab=100, t=16)


def seq2seq_macs(t: int, d: int, ff: int, **_) -> int:
    """One encoder and one decoder layer, T source = T target tokens, inner attention width d.

    Encoder: 4·d² projections + 2·d·ff MLP per token, 2·T²·d attention. Decoder: self-attention
    the same, cross-attention 4·d² projections per token (Q and O on the target, K and V on the
    source) and 2·T²·d, MLP 2·d·ff.
    """
    return t * (12 * d * d + 4 * d * ff) + 6 * t * t * d


def test_t5_encoder_decoder_closed_form():
    d, ff, vocab, t = TINY_SEQ2SEQ.values()
    params, macs = meta_counts(f"hf:t5:d_model={d},d_kv={d // 2},num_heads=2,d_ff={ff},num_layers=1,"
                               f"num_decoder_layers=1,vocab_size={vocab}", seq=t)
    buckets_x_heads = 32 * 2  # relative position bias of the first self-attention of each stack
    encoder = 4 * d * d + buckets_x_heads + 2 * d * ff + 3 * d  # RMSNorm weights: attention, MLP, final
    decoder = 8 * d * d + buckets_x_heads + 2 * d * ff + 4 * d  # attention, cross-attention, MLP, final
    assert params == vocab * d + encoder + decoder == 24_032
    assert macs == seq2seq_macs(**TINY_SEQ2SEQ) == 376_832


BART = ("hf:bart:d_model=32,encoder_layers=1,decoder_layers=1,encoder_attention_heads=2,decoder_attention_heads=2,"
        "encoder_ffn_dim=64,decoder_ffn_dim=64,vocab_size=100,max_position_embeddings=64")


def test_bart_encoder_decoder_closed_form(cli):
    d, ff, vocab, t = TINY_SEQ2SEQ.values()
    params = archbench.count_params(archbench.build(BART, device="meta", seq=t)).total
    attention = 4 * (d * d + d)
    mlp = (d * ff + ff) + (ff * d + d)
    positions = (64 + 2) * d  # BART's learned positions keep 2 offset rows
    encoder = positions + 2 * d + attention + mlp + 2 * 2 * d  # LayerNorms: embedding, attention, MLP
    decoder = positions + 2 * d + 2 * attention + mlp + 3 * 2 * d  # and cross-attention
    assert params == vocab * d + encoder + decoder == 28_928
    got = figures(cli("flops", BART, "--seq", str(t), "--device", "cpu", "--format", "json"))
    assert got["macs"] == seq2seq_macs(**TINY_SEQ2SEQ)


def test_bart_flops_on_the_default_device(cli):
    got = figures(cli("flops", BART, "--seq", "16", "--format", "json"))
    assert got["macs"] == seq2seq_macs(**TINY_SEQ2SEQ)


def test_vit_closed_form():
    d, ff, side, patch, channels = 32, 64, 32, 8, 3
    patches = (side // patch) ** 2
    t = patches + 1  # the class token
    params, macs = meta_counts(f"hf:vit:hidden_size={d},num_hidden_layers=1,num_attention_heads=2,"
                               f"intermediate_size={ff},image_size={side},patch_size={patch}")
    embedding = channels * patch * patch * d + d + d + t * d  # patch conv with bias, class token, positions
    layer = 4 * (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    pooler = d * d + d
    assert params == embedding + layer + 2 * d + pooler == 16_416
    layer_macs = t * (4 * d * d + 2 * d * ff) + 2 * t * t * d
    assert macs == patches * channels * patch * patch * d + layer_macs + d * d == 257_088


def test_hf_resnet_is_torchvision_resnet50_without_its_head():
    """ResNetConfig's defaults are ResNet-50; AutoModel builds the bare backbone, without the 2048 -> 1000 fc.
    torchvision publishes resnet50 at 25,557,032 parameters and 4.089 GMACs (4,089,184,256 counted)."""
    params, macs = meta_counts("hf:resnet")  # no image_size in its configuration: 3x224x224
    fc_params, fc_macs = 2048 * 1000 + 1000, 2048 * 1000
    assert params == 25_557_032 - fc_params
    assert macs == 4_089_184_256 - fc_macs


@pytest.mark.parametrize("spec, head_macs", [
    ("hf:vit:num_hidden_layers=1", 768 * 768),  # the pooler: d×d on the class token
    ("timm:vit_base_patch16_224:depth=1", 768 * 1000),  # the classifier on the class token
])
def test_vision_transformer_at_another_input_size(cli, spec, head_macs):
    result = cli("flops", spec, "--input", "3x64x64", "--format", "json")
    if result.exit_code != 0:
        refused(result, "64")
        return
    d, ff, t, patches = 768, 3072, 17, 16  # ViT-B/16 at 64x64: 16 patches and the class token, one block
    assert figures(result)["macs"] == \
        patches * (3 * 16 * 16) * d + t * (4 * d * d + 2 * d * ff) + 2 * t * t * d + head_macs


@pytest.mark.parametrize("where", ["file", "folder"])
def test_config_json_file_or_folder(tmp_path, where):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", **LLAMA}))
    spec = f"hf:{tmp_path / 'config.json'}" if where == "file" else f"hf:{tmp_path}"
    params, macs = meta_counts(spec, seq=16)
    assert (params, macs) == (llama_params(**llama_sizes(LLAMA)), llama_macs(16, **llama_sizes(LLAMA)))
    one_layer = {**LLAMA, "num_hidden_layers": 1}
    params, macs = meta_counts(f"{spec}:num_hidden_layers=1", seq=16)
    assert (params, macs) == (llama_params(**llama_sizes(one_layer)), llama_macs(16, **llama_sizes(one_layer)))


def test_bad_hf_models_exit_2_with_one_line(cli, tmp_path):
    refused(cli("params", "hf:lama"), "unknown Hugging Face model type 'lama'; did you mean llama")
    refused(cli("params", "hf:llama:not_an_attribute=1"), "unknown option 'not_an_attribute'")
    refused(cli("params", "hf:llama:model_type=gpt2"), "the model type cannot be changed")
    refused(cli("params", "gpt2:model_type=llama"), "the model type cannot be changed")  # it used to build GPT-2
    refused(cli("params", "hf:llama:hidden_size=65,num_hidden_layers=1"), "not a multiple of the number of attention")
    (tmp_path / "config.json").write_text('{\n  "model_type": "llama",\n  "hidden_size": 64,,\n}\n')
    refused(cli("params", f"hf:{tmp_path}/config.json"), f"{tmp_path}/config.json:3: not valid JSON")
    (tmp_path / "typeless.json").write_text('{"hidden_size": 64}')
    refused(cli("params", f"hf:{tmp_path}/typeless.json"), 'needs a "model_type" string')
    refused(cli("params", f"hf:{tmp_path}/absent.json"), "no such configuration file")
    (tmp_path / "unknown.json").write_text('{"model_type": "not_a_model_type"}')
    refused(cli("params", f"hf:{tmp_path}/unknown.json"), "unknown model_type 'not_a_model_type'")
    (tmp_path / "latin1.json").write_bytes(b'\xff\xfe{}')
    refused(cli("params", f"hf:{tmp_path}/latin1.json"), "not UTF-8")


def test_layer_count_in_a_config_file_is_bounded_before_building(cli, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 100_000_000}))
    start = time.perf_counter()
    refused(cli("params", f"hf:{tmp_path}/config.json"), "more than 10,000 layers")
    assert time.perf_counter() - start < 20  # it used to build for 60 s before being stopped


# ----------------------------------------------------------------- timm: against published counts

# Published parameter counts, the same architectures as torchvision's documented ``num_params``
# (pytorch.org/vision/stable/models: ResNet50_Weights 25,557,032; ConvNeXt_Tiny_Weights 28,589,128;
# ViT_B_16_Weights 86,567,656) and timm's model cards on the Hugging Face hub (25.6M, 28.6M, 86.6M).
@pytest.mark.parametrize("name, published", [
    ("resnet50", 25_557_032),
    ("convnext_tiny", 28_589_128),
    ("vit_base_patch16_224", 86_567_656),
])
def test_timm_published_parameter_counts(name, published):
    start = time.perf_counter()
    subject = archbench.build(f"timm:{name}", device="meta")
    assert archbench.count_params(subject).total == published
    assert subject.point == {"batch": 1, "input": "3x224x224"}  # the pretrained configuration's input_size
    assert time.perf_counter() - start < 30


def test_timm_options_follow_into_params_macs_and_input():
    # resnet50 with a 10-class head: the published 25,557,032 less the 2048 -> 1000 fc, plus a 2048 -> 10 one
    assert archbench.count_params(archbench.build("timm:resnet50:num_classes=10", device="meta")).total == \
        25_557_032 - (2048 * 1000 + 1000) + (2048 * 10 + 10)
    # resnet18 on one channel: torchvision's published 1.814 GMACs (1,814,073,344) less the stem's two other channels
    subject = archbench.build("timm:resnet18:in_chans=1", device="meta")
    assert subject.point["input"] == "1x224x224"
    assert archbench.count_flops(subject).macs == 1_814_073_344 - 2 * 64 * 7 * 7 * 112 * 112
    # ViT-B/16 at 64x64, one block: 16 patches + class token; patch embedding, the block, the head on the class token
    subject = archbench.build("timm:vit_base_patch16_224:img_size=64,depth=1", device="meta")
    assert subject.point["input"] == "3x64x64"
    d, ff, t, patches = 768, 3072, 17, 16
    assert archbench.count_flops(subject).macs == \
        patches * (3 * 16 * 16) * d + t * (4 * d * d + 2 * d * ff) + 2 * t * t * d + d * 1000
    # its position table shrinks from 197 to 17 rows
    assert archbench.count_params(archbench.build("timm:vit_base_patch16_224:img_size=64", device="meta")).total == \
        86_567_656 - (197 - 17) * d


def test_timm_unknown_name_suggests(cli):
    refused(cli("params", "timm:convnext_tny"), "did you mean convnext_tiny")


# ----------------------------------------------------------------- archbench list hf: / timm:


@pytest.mark.parametrize("pattern, expected, prefix", [
    ("hf:", {"hf:llama", "hf:t5", "hf:vit", "hf:bart", "hf:mamba"}, "hf:"),
    ("timm:convnext*", {"timm:convnext_tiny", "timm:convnext_base"}, "timm:convnext"),
])
def test_list_other_sources_fast(cli, pattern, expected, prefix):
    start = time.perf_counter()
    result = cli("list", pattern, "--format", "json")
    assert time.perf_counter() - start < 10
    assert result.exit_code == 0, result.output
    names = {row["name"] for row in json.loads(result.stdout)}
    assert expected <= names and all(n.startswith(prefix) for n in names)


def test_list_timm_without_wildcards_matches_names_containing_it(cli):
    import timm

    result = cli("list", "timm:convnext_tin", "--format", "json")
    assert result.exit_code == 0, result.output
    assert {row["name"] for row in json.loads(result.stdout)} == \
        {f"timm:{name}" for name in timm.list_models("*convnext_tin*")} >= {"timm:convnext_tiny"}
