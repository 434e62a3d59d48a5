"""One way to read an option, whatever the model source: the same boolean words and number rules."""

import math
from typing import Any

import pytest

from archbench.errors import UserError
from archbench.models.registry import literal, read_option


@pytest.mark.parametrize("word, value", [("true", True), ("Yes", True), ("on", True), ("false", False), ("NO", False),
                                         ("off", False)])
def test_boolean_words_are_read_alike_typed_or_not(word, value):
    assert read_option("x", word, bool) is value
    assert literal(word) is value


def test_untyped_numbers_are_integers_or_finite_numbers_else_text():
    assert literal("12") == 12 and isinstance(literal("12"), int)
    assert literal("0.5") == 0.5
    assert literal("nan") == "nan" and literal("inf") == "inf"  # not a finite number: the text itself
    assert read_option("x", "relu", Any) == "relu"


@pytest.mark.parametrize("text, kind", [("nan", float), ("inf", float), ("1.5", int), ("maybe", bool)])
def test_typed_options_refuse_what_their_type_cannot_hold(text, kind):
    with pytest.raises(UserError, match="^x: expected"):
        read_option("x", text, kind)
    assert not math.isnan(read_option("x", "2", float))


def test_hf_options_read_booleans_as_the_registry_does():
    from archbench.models.build import build_model

    tiny = "n_layer=1,n_embd=32,n_head=2,vocab_size=64"
    for word, value in (("yes", True), ("off", False)):
        assert build_model(f"hf:gpt2:use_cache={word},{tiny}", device="meta").module.config.use_cache is value
    with pytest.raises(UserError, match="expected true or false"):
        build_model(f"hf:gpt2:use_cache=maybe,{tiny}", device="meta")
