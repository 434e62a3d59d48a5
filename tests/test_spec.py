"""Parsing of model specs, shapes and sweep ranges."""

import math

import pytest

from archbench.errors import UserError
from archbench.spec import parse_model_spec, parse_range, parse_shape, suggest


def test_model_spec_with_options():
    spec = parse_model_spec("transformer:layers=1,d_model=512,heads=8")
    assert spec.name == "transformer"
    assert spec.options == {"layers": "1", "d_model": "512", "heads": "8"}
    assert str(spec) == "transformer:layers=1,d_model=512,heads=8"


@pytest.mark.parametrize("text", ["", ":a=1", "lstm:hidden=", "lstm:=3", "lstm:a=1,a=2"])
def test_malformed_model_specs(text):
    with pytest.raises(UserError):
        parse_model_spec(text)


def test_a_registry_name_wins_over_a_module_of_that_name():
    """`lstm:hidden` parses as MODULE:ATTR (`mymodels:build` is one); resolving it finds the registry's lstm first."""
    from archbench.models import resolve

    assert parse_model_spec("lstm:hidden").source == "python"
    with pytest.raises(UserError, match="malformed option 'hidden' in 'lstm:hidden': expected key=value"):
        resolve("lstm:hidden")


def test_shapes():
    assert parse_shape("3x224x224") == (3, 224, 224)
    assert parse_shape("784") == (784,)
    for bad in ("3x", "axb", "3x0x4", "-3x4", ""):
        with pytest.raises(UserError):
            parse_shape(bad)


def test_geometric_range_includes_both_ends():
    values = parse_range("512..10000")
    assert values[0] == 512 and values[-1] == 10000 and len(values) == 8
    ratios = [b / a for a, b in zip(values, values[1:])]
    expected = (10000 / 512) ** (1 / 7)
    assert all(math.isclose(r, expected, rel_tol=0.01) for r in ratios)
    assert parse_range("100..1000", points=4) == [100, 215, 464, 1000]


def test_arithmetic_and_list_ranges():
    assert parse_range("512..2048:512") == [512, 1024, 1536, 2048]
    assert parse_range("4096,512,1024") == [512, 1024, 4096]
    assert parse_range("7..7") == [7]


@pytest.mark.parametrize("bad", ["abc", "0..100", "-5..10", "100..10", "10..100:0", "10..x", "1,,2", ""])
def test_bad_ranges(bad):
    with pytest.raises(UserError):
        parse_range(bad)


def test_suggest_closest_names():
    assert "resnet50" in suggest("resnet5", ["resnet50", "resnet18", "vgg16"])
    assert suggest("zzzz", ["resnet50"]) == ""
