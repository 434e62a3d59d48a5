"""Models from a user's own repository (issue 19) and user code as hostile input (issue 24).

The fixtures are shaped like the real repositories' model files (nanoGPT's lone model.py with
a GPTConfig dataclass and a print at construction; Whisper's package with relative imports and
a ModelDimensions dataclass; ConvNeXt's timm-style @register_model; mamba-minimal's dataclass
under ``from __future__ import annotations``), written small. Each count is a closed form
written out here.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from test_model_sources import figures  # metric -> value of a JSON run document


def refused(result, message: str, code: int = 2) -> None:
    """Exit ``code`` with one line on stderr holding ``message``, no traceback."""
    assert result.exit_code == code, result.output
    assert message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.output


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


# ----------------------------------------------------------------- nanoGPT: a lone file, GPT(GPTConfig), prints

NANOGPT = """
    import math
    from dataclasses import dataclass

    import torch
    import torch.nn as nn
    from torch.nn import functional as F


    class CausalSelfAttention(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
            self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
            self.n_head = config.n_head
            self.n_embd = config.n_embd

        def forward(self, x):
            B, T, C = x.size()
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=True)
            return self.c_proj(y.transpose(1, 2).contiguous().view(B, T, C))


    class MLP(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
            self.gelu = nn.GELU()
            self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))


    class Block(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.attn = CausalSelfAttention(config)
            self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
            self.mlp = MLP(config)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))


    @dataclass
    class GPTConfig:
        block_size: int = 1024
        vocab_size: int = 50304
        n_layer: int = 12
        n_head: int = 12
        n_embd: int = 768
        dropout: float = 0.0
        bias: bool = True


    class GPT(nn.Module):
        def __init__(self, config):
            super().__init__()
            assert config.vocab_size is not None
            self.config = config
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            ))
            self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
            self.transformer.wte.weight = self.lm_head.weight  # weight tying
            print("number of parameters: %.2fM" % (sum(p.numel() for p in self.parameters()) / 1e6,))

        def forward(self, idx, targets=None):
            b, t = idx.size()
            assert t <= self.config.block_size
            pos = torch.arange(0, t, dtype=torch.long, device=idx.device)
            x = self.transformer.wte(idx) + self.transformer.wpe(pos)
            for block in self.transformer.h:
                x = block(x)
            x = self.transformer.ln_f(x)
            print("forward done")  # a debugging print in the forward, too
            return self.lm_head(x[:, [-1], :])  # inference: the logits of the last position only
"""


def gpt_macs(layers: int, d: int, vocab: int, t: int) -> int:
    """Per layer: QKV 3·T·d², output projection T·d², MLP 8·T·d², attention scores and values 2·T²·d (every
    query-key pair, the default count); then the LM head on the last position only, d·V."""
    return layers * (12 * t * d * d + 2 * t * t * d) + d * vocab


def gpt_params(layers: int, d: int, vocab: int, block: int) -> int:
    """Tied token embedding V·d, positions B·d; per layer two LayerNorms (2·2d), QKV 3d²+3d, projection d²+d,
    MLP 4d²+4d and 4d²+d: 12d² + 13d; the final LayerNorm 2d."""
    return vocab * d + block * d + layers * (12 * d * d + 13 * d) + 2 * d


def test_gpt2_small_parameters_by_hand():
    assert gpt_params(12, 768, 50257, 1024) == 124_439_808  # GPT-2 small's published 124M (nanoGPT: 124.44M)


NANO_OPTIONS = "n_layer=2,n_head=2,n_embd=32,vocab_size=100,block_size=64"


@pytest.fixture
def nanogpt(tmp_path):
    return write(tmp_path / "nanogpt" / "model.py", NANOGPT)


def test_nanogpt_from_its_own_file_with_its_config_built_from_options(cli, nanogpt):
    got = figures(cli("flops", f"{nanogpt}:GPT:{NANO_OPTIONS}", "--seq", "16", "--format", "json"))
    assert got["macs"] == gpt_macs(2, 32, 100, 16) == 2 * (12 * 16 * 32 * 32 + 2 * 16 * 16 * 32) + 3200
    params = figures(cli("params", f"{nanogpt}:GPT:{NANO_OPTIONS}", "--format", "json"))
    assert params["params"] == gpt_params(2, 32, 100, 64)


def test_prints_of_model_code_go_to_stderr_under_json(cli, nanogpt):
    result = cli("flops", f"{nanogpt}:GPT:{NANO_OPTIONS}", "--seq", "16", "--format", "json")
    json.loads(result.stdout)  # nothing but the document
    assert "number of parameters" in result.stderr and "forward done" in result.stderr


def test_prints_go_to_stderr_when_stdout_is_a_pipe(nanogpt):
    """The real command line, stdout a pipe, the table format: the table alone on stdout."""
    done = subprocess.run([sys.executable, "-m", "archbench", "params", f"{nanogpt}:GPT:{NANO_OPTIONS}"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())},
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "number of parameters" not in done.stdout and "number of parameters" in done.stderr
    assert f"{gpt_params(2, 32, 100, 64):,}" in done.stdout


def test_an_option_the_config_lacks_lists_its_fields(cli, nanogpt):
    refused(cli("params", f"{nanogpt}:GPT:n_layers=2"),
            "unknown option 'n_layers'")
    line = cli("params", f"{nanogpt}:GPT:n_layers=2").stderr
    for field in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias"):
        assert field in line


def test_a_config_field_is_typed_from_its_annotation(cli, nanogpt):
    refused(cli("params", f"{nanogpt}:GPT:n_layer=two"), "option n_layer='two'")


# ----------------------------------------------------------------- Whisper: a package, relative imports, annotated

WHISPER_INIT = """
    from .model import AudioEncoder, ModelDimensions, Whisper
"""

WHISPER_LAYERS = """
    import torch
    from torch import nn


    class ResidualAttentionBlock(nn.Module):
        def __init__(self, n_state: int, n_head: int):
            super().__init__()
            self.attn = nn.MultiheadAttention(n_state, n_head, batch_first=True)
            self.attn_ln = nn.LayerNorm(n_state)
            self.mlp = nn.Sequential(nn.Linear(n_state, 4 * n_state), nn.GELU(), nn.Linear(4 * n_state, n_state))
            self.mlp_ln = nn.LayerNorm(n_state)

        def forward(self, x):
            y = self.attn_ln(x)
            x = x + self.attn(y, y, y, need_weights=False)[0]
            return x + self.mlp(self.mlp_ln(x))
"""

WHISPER_MODEL = """
    from __future__ import annotations

    from dataclasses import dataclass

    import torch
    import torch.nn.functional as F
    from torch import nn

    from .layers import ResidualAttentionBlock


    @dataclass
    class ModelDimensions:
        n_mels: int
        n_audio_ctx: int
        n_audio_state: int
        n_audio_head: int
        n_audio_layer: int


    class AudioEncoder(nn.Module):
        def __init__(self, n_mels: int, n_ctx: int, n_state: int, n_head: int, n_layer: int):
            super().__init__()
            self.conv1 = nn.Conv1d(n_mels, n_state, kernel_size=3, padding=1)
            self.conv2 = nn.Conv1d(n_state, n_state, kernel_size=3, stride=2, padding=1)
            self.register_buffer("positional_embedding", torch.zeros(n_ctx, n_state))
            self.blocks = nn.ModuleList([ResidualAttentionBlock(n_state, n_head) for _ in range(n_layer)])
            self.ln_post = nn.LayerNorm(n_state)

        def forward(self, x):
            x = F.gelu(self.conv1(x))
            x = F.gelu(self.conv2(x)).permute(0, 2, 1)
            x = x + self.positional_embedding
            for block in self.blocks:
                x = block(x)
            return self.ln_post(x)


    class Whisper(nn.Module):
        def __init__(self, dims: ModelDimensions):
            super().__init__()
            self.dims = dims
            self.encoder = AudioEncoder(dims.n_mels, dims.n_audio_ctx, dims.n_audio_state, dims.n_audio_head,
                                        dims.n_audio_layer)

        def forward(self, mel):
            return self.encoder(mel)
"""


def whisper_encoder_macs(mels: int, frames: int, d: int, layers: int) -> int:
    """conv1 (kernel 3, same length): frames·d·mels·3; conv2 (stride 2): (frames/2)·d·d·3; then per layer on
    T = frames/2 positions: attention projections 4·T·d², MLP 8·T·d², scores and values 2·T²·d."""
    t = frames // 2
    return frames * d * mels * 3 + t * d * d * 3 + layers * (12 * t * d * d + 2 * t * t * d)


WHISPER_DIMS = "n_mels=8,n_audio_ctx=16,n_audio_state=32,n_audio_head=4,n_audio_layer=2"


@pytest.fixture
def whisper(tmp_path, monkeypatch):
    """The package, imported as `whisper` by the test and forgotten after it (as a fresh process would)."""
    root = tmp_path / "whisper-repo"
    write(root / "whisper" / "__init__.py", WHISPER_INIT)
    write(root / "whisper" / "layers.py", WHISPER_LAYERS)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield write(root / "whisper" / "model.py", WHISPER_MODEL)
    for name in [n for n in sys.modules if n == "whisper" or n.startswith("whisper.")]:
        del sys.modules[name]


def test_whisper_from_a_package_file_with_relative_imports(cli, whisper):
    got = figures(cli("flops", f"{whisper}:Whisper:{WHISPER_DIMS}", "--input", "8x32", "--format", "json"))
    assert got["macs"] == whisper_encoder_macs(8, 32, 32, 2)
    assert sys.modules["whisper.model"].__file__ == str(whisper)  # imported under its dotted name


def test_a_config_without_defaults_names_the_fields_to_give(cli, whisper):
    refused(cli("params", f"{whisper}:Whisper:n_mels=8"), "give n_audio_ctx, n_audio_state, n_audio_head, "
                                                            "n_audio_layer (fields of ModelDimensions")


# ----------------------------------------------------------------- ConvNeXt: timm's @register_model

CONVNEXT = """
    import torch
    from torch import nn
    from timm.models import register_model


    class TinyConvNeXt(nn.Module):
        \"\"\"A 4x4 stride-4 patchify stem to DIM channels, global average pooling, a linear head.\"\"\"

        def __init__(self, in_chans=3, num_classes=10, dim=16):
            super().__init__()
            self.stem = nn.Conv2d(in_chans, dim, kernel_size=4, stride=4)
            self.head = nn.Linear(dim, num_classes)

        def forward(self, x):
            return self.head(self.stem(x).mean((-2, -1)))


    @register_model
    def archbench_test_convnext_tiny(pretrained=False, **kwargs):
        return TinyConvNeXt(**kwargs)
"""


def test_timm_style_registration_in_a_lone_file(cli, tmp_path):
    path = write(tmp_path / "convnext" / "models" / "convnext.py", CONVNEXT)
    got = figures(cli("flops", f"{path}:archbench_test_convnext_tiny:dim=24", "--input", "3x32x32", "--format", "json"))
    # the stem: 8x8 outputs, each 24 channels of 3·4·4 MACs; the head 24·10
    assert got["macs"] == 8 * 8 * 24 * 3 * 16 + 24 * 10


# ----------------------------------------------------------------- mamba-minimal: dataclass under future annotations

MAMBA = """
    from __future__ import annotations

    import math
    from dataclasses import dataclass
    from typing import Union

    import torch
    import torch.nn as nn


    @dataclass
    class ModelArgs:
        d_model: int
        n_layer: int
        vocab_size: int
        expand: int = 2
        dt_rank: Union[int, str] = "auto"

        def __post_init__(self):
            self.d_inner = int(self.expand * self.d_model)
            if self.dt_rank == "auto":
                self.dt_rank = math.ceil(self.d_model / 16)


    class ResidualBlock(nn.Module):
        def __init__(self, args: ModelArgs):
            super().__init__()
            self.in_proj = nn.Linear(args.d_model, args.d_inner, bias=False)
            self.out_proj = nn.Linear(args.d_inner, args.d_model, bias=False)

        def forward(self, x):
            return x + self.out_proj(torch.nn.functional.silu(self.in_proj(x)))


    class Mamba(nn.Module):
        def __init__(self, args: ModelArgs):
            super().__init__()
            self.embedding = nn.Embedding(args.vocab_size, args.d_model)
            self.layers = nn.ModuleList([ResidualBlock(args) for _ in range(args.n_layer)])
            self.lm_head = nn.Linear(args.d_model, args.vocab_size, bias=False)
            self.lm_head.weight = self.embedding.weight

        def forward(self, input_ids):
            x = self.embedding(input_ids)
            for layer in self.layers:
                x = layer(x)
            return self.lm_head(x)
"""


def test_dataclass_config_under_future_annotations(cli, tmp_path):
    path = write(tmp_path / "mamba-minimal" / "model.py", MAMBA)
    got = figures(cli("flops", f"{path}:Mamba:d_model=16,n_layer=3,vocab_size=50,expand=4", "--seq", "8",
                      "--format", "json"))
    t, d, inner, layers, vocab = 8, 16, 64, 3, 50
    assert got["macs"] == layers * 2 * t * d * inner + t * d * vocab


# ----------------------------------------------------------------- module:ATTR, the registry wins

def test_a_top_level_module_of_the_working_directory(cli, tmp_path, monkeypatch):
    write(tmp_path / "mymodels.py", """
        from torch import nn

        def build(width: int = 4):
            return nn.Linear(3, width)
    """)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    got = figures(cli("params", "mymodels:build:width=5", "--format", "json"))
    assert got["params"] == 3 * 5 + 5


def test_the_registry_wins_over_a_module_of_that_name_and_says_so(cli, tmp_path, monkeypatch):
    write(tmp_path / "lstm.py", "def build():\n    raise SystemExit('never run')\n")
    monkeypatch.chdir(tmp_path)
    refused(cli("params", "lstm:build"), "lstm is a registry model; lstm is also a module")


# ----------------------------------------------------------------- user code as hostile input (issue 24)

def test_a_suite_naming_code_is_refused_without_allow_code(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = write(tmp_path / "net.py", "from torch import nn\n\ndef build():\n    return nn.Linear(4, 2)\n")
    for model in ("torch.utils.collect_env:run:command=touch pwned", f"{net}:build"):
        suite = write(tmp_path / "suite.yaml", f"cases:\n  - model: \"{model}\"\n    metrics: [params]\n")
        refused(cli("run", str(suite), "--out", str(tmp_path / "run.json")), "runs only with --allow-code")
    assert not (tmp_path / "pwned").exists()
    result = cli("run", str(suite), "--out", str(tmp_path / "run.json"), "--allow-code", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records"][0]["value"] == 4 * 2 + 2


def test_a_claims_file_naming_code_is_refused_without_allow_code(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    claims = write(tmp_path / "claims.yaml", """
        claims:
          - id: C01
            source: test
            claim: a model from code
            measure:
              m: {kind: profile, models: {a: "subprocess:getoutput:cmd=touch pwned"}}
            checks:
              - {kind: near, says: "one", figure: m.a.params, stated: 1, tol: 0.1}
    """)
    refused(cli("claims", "--suite", str(claims)), "runs only with --allow-code")
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("model, message", [
    ("subprocess:getoutput:cmd=touch pwned", "a function of Python's standard library"),
    ("os:system:command=touch pwned", "not an nn.Module subclass or a Python function"),
    ("collections:OrderedDict", "is a class but not a torch.nn.Module"),
])
def test_builtins_classes_and_the_standard_library_are_refused_before_a_call(cli, tmp_path, monkeypatch, model,
                                                                             message):
    monkeypatch.chdir(tmp_path)
    refused(cli("params", model), message)
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("where, code", [
    ("import", "import sys\nsys.exit(3)\n"),
    ("factory", "import sys\n\ndef build():\n    sys.exit(0)\n"),
])
def test_sys_exit_in_user_code_is_an_error(cli, tmp_path, where, code):
    path = write(tmp_path / f"exits_{where}.py", code)
    refused(cli("params", f"{path}:build"), "called sys.exit(")


def test_a_file_looping_forever_at_import_is_stopped(cli, tmp_path, monkeypatch):
    import archbench.models.build as build

    monkeypatch.setattr(build, "BUILD_TIME_LIMIT_S", 1)
    path = write(tmp_path / "loops.py", "while True:\n    pass\n")
    refused(cli("params", f"{path}:build"), "loading took more than 1 s and was stopped")


def test_a_symlink_loop_is_one_line(cli, tmp_path):
    (tmp_path / "a.py").symlink_to(tmp_path / "b.py")
    (tmp_path / "b.py").symlink_to(tmp_path / "a.py")
    refused(cli("params", f"{tmp_path / 'a.py'}:build"), "a loop of symbolic links")


FAILING = """
    from torch import nn


    class Refuses(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            raise ValueError("forward refuses")
"""


def test_a_forward_that_raises_is_the_models_failure(cli, tmp_path):
    path = write(tmp_path / "refuses.py", FAILING)
    refused(cli("flops", f"{path}:Refuses", "--input", "4"), f"{path}:Refuses: its forward failed: ValueError: "
                                                              "forward refuses")
    refused(cli("params", f"{path}:Refuses", "--input", "4", "--vs", "fcn"), "its forward failed: ValueError")


def test_a_forward_that_raises_is_an_error_row_in_a_suite(cli, tmp_path):
    path = write(tmp_path / "refuses.py", FAILING)
    suite = write(tmp_path / "suite.yaml", f"cases:\n  - model: \"{path}:Refuses\"\n    input: 4\n"
                                           "    metrics: [params, flops]\n")
    result = cli("run", str(suite), "--out", str(tmp_path / "run.json"), "--allow-code", "--format", "json")
    assert result.exit_code == 0, result.output
    records = {r["metric"]: r for r in json.loads(result.stdout)["records"]}
    assert records["params"]["value"] == 4 * 4 + 4
    assert records["macs"]["error"] == f"{path}:Refuses: its forward failed: ValueError: forward refuses"


# ----------------------------------------------------------------- the conventions

def test_version_names_the_libraries_without_importing_torch():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "archbench", "--version"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(Path.cwd())}, timeout=60)
    assert done.returncode == 0
    from importlib import metadata

    assert done.stdout.startswith("archbench ") and f"torch {metadata.version('torch')}" in done.stdout
    for name in ("transformers", "timm", "fvcore"):
        assert name in done.stdout
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if "|" in line]
    assert "torch" not in imported


def test_choices_are_shown_in_the_help(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = cli("flops", "--help").stdout
    assert "[table|json|csv|markdown]" in text and "[auto|fvcore|dispatch]" in text and "[prefill|decode|train]" in text
    assert "Registry model" not in text + cli("params", "--help").stdout + cli("scaling", "--help").stdout


def test_completion_is_on_and_completes_choices(cli):
    from typer.testing import CliRunner

    from archbench.cli import app

    assert "--install-completion" in cli("--help").stdout
    env = {"_ARCHBENCH_COMPLETE": "complete_bash", "COMP_WORDS": "archbench flops resnet18 --format ", "COMP_CWORD": "4"}
    result = CliRunner().invoke(app, [], env=env, prog_name="archbench")
    assert result.output.split() == ["table", "json", "csv", "markdown"]


# ----------------------------------------------------------------- the summary tree

def test_summary_totals_equal_params_and_flops_exactly(cli, nanogpt):
    spec = f"{nanogpt}:GPT:{NANO_OPTIONS}"
    tree = json.loads(cli("summary", spec, "--seq", "16", "--format", "json").stdout)
    flops = figures(cli("flops", spec, "--seq", "16", "--format", "json"))
    params = figures(cli("params", spec, "--format", "json"))
    root = tree["rows"][0]
    assert (root["params"], root["macs"], root["other_flops"]) == (params["params"], flops["macs"],
                                                                   flops["other_flops"])
    assert root["macs"] == gpt_macs(2, 32, 100, 16) and root["params"] == gpt_params(2, 32, 100, 64)


def test_summary_folds_repeated_blocks_with_their_closed_forms(cli, nanogpt):
    rows = json.loads(cli("summary", f"{nanogpt}:GPT:{NANO_OPTIONS}", "--seq", "16", "--depth", "3",
                          "--format", "json").stdout)["rows"]
    by_name = {row["module"]: row for row in rows}
    blocks = by_name["transformer.h.0-1"]
    t, d = 16, 32
    assert blocks["type"] == "2 × Block" and blocks["repeat"] == 2 and blocks["output_shape"] == "1x16x32"
    assert blocks["macs"] == 2 * (12 * t * d * d + 2 * t * t * d)  # the group's sum
    assert blocks["params"] == 2 * (12 * d * d + 13 * d)
    attention = by_name["transformer.h.0.attn"]  # under the group: its first block, for one block
    assert attention["macs"] == 4 * t * d * d + 2 * t * t * d and attention["params"] == 4 * d * d + 4 * d
    assert by_name["lm_head"]["macs"] == d * 100 and by_name["lm_head"]["output_shape"] == "1x1x100"
    assert abs(blocks["share"] - blocks["macs"] / gpt_macs(2, 32, 100, 16)) < 1e-12


def test_summary_of_a_module_from_the_api():
    import torch
    from torch import nn

    import archbench

    model = nn.Sequential(nn.Linear(8, 16), *[nn.Sequential(nn.Linear(16, 16), nn.ReLU()) for _ in range(3)])
    tree = archbench.summary(model, torch.randn(4, 8))
    assert tree.macs == 4 * (8 * 16 + 3 * 16 * 16) and tree.params == (8 * 16 + 16) + 3 * (16 * 16 + 16)
    frame = tree.to_dataframe()
    assert list(frame["type"]) == ["Sequential", "Linear", "3 × Sequential", "Linear", "ReLU"]
    assert list(frame["macs"]) == [tree.macs, 4 * 8 * 16, 3 * 4 * 16 * 16, 4 * 16 * 16, 0]
    assert list(frame["other_flops"])[-1] == 4 * 16  # one ReLU: one FLOP per element
    assert json.loads(tree.to_json())["rows"][0]["macs"] == tree.macs
    assert str(tree).splitlines()[0].startswith("module")


# ----------------------------------------------------------------- hf:ORG/NAME from the local cache

def test_a_hub_repository_id_reads_its_config_from_the_local_cache(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    repo = tmp_path / "hf" / "hub" / "models--someorg--tiny-llama"
    write(repo / "refs" / "main", "abc123")
    write(repo / "snapshots" / "abc123" / "config.json", json.dumps({
        "model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 4, "intermediate_size": 128, "vocab_size": 100}))
    got = figures(cli("params", "hf:someorg/tiny-llama", "--format", "json"))
    d, inner, vocab = 64, 128, 100  # embedding; per layer q, k, v, o (4d²), gate, up, down (3·d·I), two RMSNorms
    assert got["params"] == vocab * d + 2 * (4 * d * d + 3 * d * inner + 2 * d) + d == 88_640


def test_a_hub_repository_not_in_the_cache_says_where_to_put_its_config(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    refused(cli("params", "hf:someorg/absent-model"),
            f"hf:someorg/absent-model: no config.json for it in the local Hugging Face cache ({tmp_path}/hf/hub)")


def test_a_module_that_is_not_there_suggests_registry_names(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(cli("params", "resnt50:build"), "cannot import module 'resnt50'")
    assert "did you mean resnet50" in cli("params", "resnt50:build").stderr
