"""A figure must not change because a dependency did (issue 17).

- decode passes the cache under the name the model's forward takes, on every transformers the ranges allow, and
  raises no deprecation warning of transformers';
- a decode step that dropped its cache is refused (one line, exit 1; an error row in a suite), never a number;
- a Hugging Face transformer's counted MACs equal the closed form of its config, written out here by hand for
  a few shapes and derived by archbench.measure.closed_form for the rest; a disagreement warns, and fails
  --strict;
- the install is reproducible: the constraints file pins every direct dependency and the figures' transitive
  ones, and pyproject's lower bounds are versions that were tested.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import textwrap
import warnings
from pathlib import Path

import pytest

tf = pytest.importorskip("transformers")

from archbench.measure.closed_form import config_macs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
D, LAYERS, HEADS, FF, VOCAB = 64, 2, 4, 128, 100
HEAD_DIM = D // HEADS
DECODER = (f"hidden_size={D},num_hidden_layers={LAYERS},num_attention_heads={HEADS},intermediate_size={FF},"
           f"vocab_size={VOCAB}")
GPT2 = f"hf:gpt2:n_layer={LAYERS},n_embd={D},n_head={HEADS},vocab_size={VOCAB}"


def macs_record(cli, *args: str) -> dict:
    result = cli("flops", *args, "--format", "json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["records"][0]


# ---------------------------------------------------------------- the closed form, by hand


def test_config_macs_of_gpt2_small_decode_is_the_readmes_figure():
    """12·L·d² + 2·L·(T+1)·d for one new token after T = 1024 (GPT-2 small: L 12, d 768)."""
    config = tf.GPT2Config()
    assert config_macs(config, batch=1, tokens=1, cached=1024) == 12 * 12 * 768 ** 2 + 2 * 12 * 1025 * 768


def test_config_macs_of_llama_2_7b_decode_with_its_head():
    """Llama-2-7B at T = 2048: per layer 4·d² (MHA) + 3·d·ff, the new query's 2·d·(T+1), the LM head d·vocab.
    The head and attention are what a dropped cache or a forgotten head would lose."""
    config = tf.LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                            num_attention_heads=32, num_key_value_heads=32, vocab_size=32000)
    per_layer = 4 * 4096 ** 2 + 3 * 4096 * 11008 + 2 * 4096 * 2049
    assert config_macs(config, batch=1, tokens=1, cached=2048, lm_head=True) == 32 * per_layer + 4096 * 32000


def test_config_macs_of_mistral_prefill_causal_keeps_the_window():
    """Mistral with GQA (2 of 4 heads) and a window of 5 at T = 16, causal: 1 + 2 + 3 + 4 + 5·12 = 70 pairs."""
    config = tf.MistralConfig(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                              num_key_value_heads=2, intermediate_size=FF, vocab_size=VOCAB, sliding_window=5)
    projections = 2 * D * D + 2 * D * (D // 2) + 3 * D * FF
    expected = LAYERS * (16 * projections + HEADS * 70 * 2 * HEAD_DIM)
    assert config_macs(config, batch=1, tokens=16, attention_count="causal") == expected


def test_config_macs_of_mixtral_routes_each_token_to_top_k_experts():
    config = tf.MixtralConfig(hidden_size=D, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
                              num_key_value_heads=2, intermediate_size=FF, vocab_size=VOCAB, num_local_experts=4,
                              num_experts_per_tok=2)
    per_token = 2 * D * D + 2 * D * (D // 2) + 2 * 3 * D * FF + D * 4
    assert config_macs(config, batch=3, tokens=8) == 3 * LAYERS * (8 * per_token + HEADS * 64 * 2 * HEAD_DIM)


def test_config_macs_is_none_for_a_family_it_does_not_know():
    assert config_macs(tf.T5Config(), batch=1, tokens=8) is None


# ---------------------------------------------------------------- counted == closed form, on the tests' shapes

SHAPES = [
    (GPT2, ("--seq", "16")),
    (GPT2, ("--seq", "100", "--phase", "decode")),
    (GPT2, ("--seq", "16", "--head")),
    (GPT2, ("--seq", "16", "--attention-count", "causal")),
    (f"hf:llama:{DECODER},num_key_value_heads=2", ("--seq", "16")),  # GQA
    (f"hf:llama:{DECODER},num_key_value_heads=1", ("--seq", "16", "--attention-count", "causal")),  # MQA
    (f"hf:llama:{DECODER},num_key_value_heads=2", ("--seq", "32", "--phase", "decode", "--head")),
    (f"hf:mistral:{DECODER},num_key_value_heads=2,sliding_window=5", ("--seq", "16", "--attention-count", "causal")),
    (f"hf:mistral:{DECODER},num_key_value_heads=2,sliding_window=8", ("--seq", "16", "--phase", "decode")),
    (f"hf:mixtral:{DECODER},num_key_value_heads=2,num_local_experts=4,num_experts_per_tok=2", ("--seq", "16")),
    (f"hf:mixtral:{DECODER},num_key_value_heads=2,num_local_experts=4,num_experts_per_tok=2",
     ("--seq", "16", "--phase", "decode")),
    (f"hf:qwen2:{DECODER},num_key_value_heads=2", ("--seq", "16", "--attention-count", "causal")),
    (f"hf:bert:hidden_size={D},num_hidden_layers={LAYERS},num_attention_heads={HEADS},intermediate_size={FF},"
     f"vocab_size={VOCAB}", ("--seq", "16")),
]


@pytest.mark.parametrize("model,options", SHAPES, ids=lambda v: " ".join(v) if isinstance(v, tuple) else v[:20])
def test_counted_macs_equal_the_closed_form_of_the_config(cli, model, options):
    record = macs_record(cli, model, *options)
    assert record["details"]["closed_form_macs"] == record["value"]
    assert "closed_form_mismatch" not in record["details"]


def test_gpt2_small_decode_counts_the_readmes_figure_on_this_transformers(cli):
    record = macs_record(cli, "gpt2", "--phase", "decode", "--seq", "1024")
    assert record["value"] == 12 * 12 * 768 ** 2 + 2 * 12 * 1025 * 768 == record["details"]["closed_form_macs"]


def test_a_model_that_moved_a_computation_disagrees_with_its_closed_form(cli, monkeypatch):
    """A library release that dropped Llama's gate projection: the count loses d·ff per token and layer, the
    config's closed form does not; a warning names both figures, and --strict exits 1."""
    from transformers.models.llama import modeling_llama

    def ungated(self, x):
        return self.down_proj(self.act_fn(self.up_proj(x)))

    monkeypatch.setattr(modeling_llama.LlamaMLP, "forward", ungated)
    model = f"hf:llama:{DECODER},num_key_value_heads=2"
    record = macs_record(cli, model, "--seq", "16")
    assert record["details"]["closed_form_macs"] - record["value"] == LAYERS * 16 * D * FF
    assert any("closed form" in w and f"{record['value']:,}" in w for w in record["warnings"])
    strict = cli("flops", model, "--seq", "16", "--strict")
    assert strict.exit_code == 1
    assert "strict: the counted MACs" in strict.stderr


# ---------------------------------------------------------------- decode passes the cache the model takes


def test_decode_raises_no_deprecation_warning_of_transformers(cli, recwarn):
    warnings.simplefilter("always")
    for model in (GPT2, "hf:mamba:hidden_size=32,num_hidden_layers=2,state_size=4,vocab_size=50"):
        assert cli("flops", model, "--seq", "8", "--phase", "decode", "--format", "json").exit_code == 0
    deprecated = [str(w.message) for w in recwarn if issubclass(w.category, (FutureWarning, DeprecationWarning))
                  and "deprecat" in str(w.message).lower() and "transformers" in w.filename]
    assert deprecated == []


@pytest.fixture
def dropped_cache(monkeypatch):
    """GPT-2 patched to ignore the cache of a one-token step, as transformers 5.24 did with a cache passed under
    its old name: the step then attends to its own key only."""
    from transformers.models.gpt2 import modeling_gpt2

    forward = modeling_gpt2.GPT2Model.forward
    name = next(n for n in ("cache", "past_key_values") if n in inspect.signature(forward).parameters)

    @functools.wraps(forward)
    def ignoring(self, *args, **kwargs):
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        if input_ids is not None and input_ids.shape[-1] == 1 and kwargs.get(name) is not None:
            kwargs[name] = type(kwargs[name])(config=self.config)  # a new, empty cache in place of the one given
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(modeling_gpt2.GPT2Model, "forward", ignoring)


def test_a_decode_step_that_dropped_its_cache_is_an_error_not_a_number(cli, dropped_cache):
    result = cli("flops", GPT2, "--seq", "64", "--phase", "decode")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "\n" not in line and "did not use its cache of 64 tokens" in line
    assert re.search(r"transformers \d+\.\d+", line) and "Traceback" not in result.output


def test_a_dropped_cache_in_a_suite_is_an_error_row(cli, dropped_cache, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(textwrap.dedent(f"""\
        name: decode
        cases:
          - model: "{GPT2}"
            seq: 64
            phase: decode
            metrics: [flops]
        """))
    result = cli("run", str(suite), "--out", str(tmp_path / "run.json"), "--format", "json")
    records = json.loads((tmp_path / "run.json").read_text())["records"]
    assert records and all(r["value"] is None and "did not use its cache" in r["error"] for r in records)
    assert result.exit_code in (0, 1)


# ---------------------------------------------------------------- reproducible installs


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def _requirements() -> dict[str, str]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    listed = project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]
    bounds = {}
    for requirement in listed:
        name, lower = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*>=\s*([^,;\s]+)", requirement).groups()
        bounds[re.sub(r"[-_.]+", "-", name).lower()] = lower
    return bounds


def test_constraints_pin_every_direct_dependency_and_the_figures_transitive_ones():
    pins = _constraints()
    missing = set(_requirements()) - set(pins)
    assert not missing, f"constraints.txt does not pin {sorted(missing)}"
    for transitive in ("numpy", "huggingface-hub", "safetensors", "tokenizers"):
        assert transitive in pins


def test_lower_bounds_are_not_above_the_tested_pins():
    """Each lower bound in pyproject.toml admits the constraints' pin (what `make test` runs)."""
    from packaging.version import Version

    pins = _constraints()
    for name, lower in _requirements().items():
        assert Version(lower) <= Version(pins[name]), (name, lower, pins[name])


def test_the_run_document_records_the_versions_its_figures_rest_on():
    from archbench.results.env import collect_env

    env = collect_env("cpu")
    for library in ("torch", "transformers", "timm", "fvcore"):
        assert env.get(library), library
