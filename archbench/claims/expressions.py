"""The small expression language of ``archbench/claims/claims.yaml``: closed forms and figure arithmetic.

An expression is Python syntax restricted to numbers, strings, ``None``, lists, + - * / // % **,
comparisons (chained ones too, ``is None``), ``and``/``or``/``not``, subscripts and slices (``x[-1]``, ``x[1:]``) and
a few functions (:data:`FUNCTIONS`). Names are dotted figure references, ``measurement.figure``
(``rnn.params``, ``sweep.latency_s.lstm``), looked up in the figures of the claim. Lists of
figures are numpy arrays, so arithmetic on them is element by element.

Expressions come from a file, so they are bounded: at most :data:`MAX_LENGTH` characters
nested at most :data:`MAX_DEPTH` deep (checked when parsing), no power beyond 10^300 or
integer beyond :data:`MAX_INT_BITS` bits, no repeated string or list beyond
:data:`MAX_ITEMS` items. Any failure while evaluating (``1/0``, ``'a' + 1``, an overflow)
is an :class:`EvaluationError`, which a check reports as "not measured" with its message.
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any, Mapping

from archbench.errors import UserError, describe_error

MAX_LENGTH = 1000
"""The longest expression accepted, in characters."""
MAX_DEPTH = 50
"""The deepest nesting of operators, calls and lists accepted."""
MAX_POWER_DIGITS = 300
"""A power whose result would exceed 10^300 is refused before it is computed."""
MAX_INT_BITS = 4096
"""An integer result over this many bits (about 1,233 digits) is refused."""
MAX_ITEMS = 100_000
"""A string or list repeated (``'a' * n``) beyond this many items is refused."""



def _power(base, exponent):
    """``base ** exponent``, refused when the result's magnitude would exceed 10^MAX_POWER_DIGITS."""
    import numpy as np

    magnitude = float(np.max(np.abs(base))) if np.size(base) else 0.0
    if magnitude > 0:
        digits = math.log10(magnitude) * max(float(np.max(exponent)), float(np.min(exponent)), key=abs)
        if digits > MAX_POWER_DIGITS:
            raise OverflowError(f"{base} ** {exponent} would exceed 10^{MAX_POWER_DIGITS}")
    return operator.pow(base, exponent)


def _multiply(left, right):
    """``left * right``, refused when it repeats a string or list beyond MAX_ITEMS items."""
    for items, count in ((left, right), (right, left)):
        if isinstance(items, (str, list)) and isinstance(count, int) and len(items) * count > MAX_ITEMS:
            raise OverflowError(f"repeating {len(items)} items {count} times exceeds {MAX_ITEMS:,}")
    return operator.mul(left, right)


_BINARY = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: _multiply, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: _power,
}
_COMPARE = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Is: operator.is_, ast.IsNot: operator.is_not,
}


def _all(values) -> bool:
    import numpy as np

    return bool(np.all(values))


def _any(values) -> bool:
    import numpy as np

    return bool(np.any(values))


def _log10(value):
    import numpy as np

    return np.log10(value)


def _ratio(values):
    """Each element over the first one (``[a, b, c] -> [1, b/a, c/a]``)."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    return values / values[0]


FUNCTIONS = {
    "all": _all, "any": _any, "min": lambda v: min(v) if not isinstance(v, (int, float)) else v,
    "max": lambda v: max(v) if not isinstance(v, (int, float)) else v, "abs": abs, "log10": _log10,
    "len": len, "ratio": _ratio, "sqrt": math.sqrt, "sum": lambda v: sum(v.tolist() if hasattr(v, "tolist") else v),
}


class MissingFigure(Exception):
    """An expression refers to a figure that the run did not produce (its measurement failed)."""


class EvaluationError(Exception):
    """An expression failed on the figures it was given (division by zero, wrong types, a bound passed)."""


def parse(text: str | int | float, where: str) -> ast.Expression:
    """Parse an expression, UserError naming ``where`` when it is not valid or too long or too deep."""
    text = str(text)
    if len(text) > MAX_LENGTH:
        raise UserError(f"{where}: expression of {len(text):,} characters; at most {MAX_LENGTH} are allowed")
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise UserError(f"{where}: cannot parse expression {text!r} ({exc.msg})") from None
    except (ValueError, RecursionError, MemoryError):
        raise UserError(f"{where}: cannot parse expression {text!r} (too deeply nested or malformed)") from None
    if _depth(tree) > MAX_DEPTH:
        raise UserError(f"{where}: expression {text[:60]!r}... nests more than {MAX_DEPTH} levels deep")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            raise UserError(f"{where}: {type(node).__name__} is not allowed in expression {text!r}")
        if isinstance(node, ast.Call) and not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
            raise UserError(f"{where}: unknown function in {text!r} (known: {', '.join(FUNCTIONS)})")
    return tree


def names(text: str | int | float) -> list[str]:
    """The dotted figure names an expression refers to, in order of appearance."""
    found: list[str] = []
    tree = parse(text, "expression")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Attribute, ast.Name)):
            name = _dotted(node)
            if name and name not in FUNCTIONS and not any(name != f and f.startswith(name + ".") for f in found):
                found = [f for f in found if not name.startswith(f + ".")]
                if name not in found:
                    found.append(name)
    return [n for n in found if n not in FUNCTIONS]


def evaluate(text: str | int | float, figures: Mapping[str, Any], where: str = "expression") -> Any:
    """The value of an expression over ``figures`` (dotted name -> value).

    MissingFigure when it needs a figure that is not there; EvaluationError for any other failure.
    """
    import numpy as np

    tree = parse(text, where)
    try:
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            return _eval(tree.body, figures)
    except MissingFigure:
        raise
    except Exception as exc:  # noqa: BLE001  (whatever the figures make an expression do, it is reported)
        raise EvaluationError(f"{text}: {describe_error(exc)}") from None


def _depth(tree: ast.AST) -> int:
    """How deeply the nodes of ``tree`` nest, found without recursion."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return ".".join(reversed(parts))


def _lookup(name: str, figures: Mapping[str, Any]) -> Any:
    import numpy as np

    if name not in figures:
        raise MissingFigure(name)
    value = figures[name]
    return np.asarray(value) if isinstance(value, list) and all(isinstance(v, (int, float)) for v in value) else value


def _eval(node, figures):
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        return _lookup(_dotted(node), figures)
    if isinstance(node, ast.List):
        return [_eval(e, figures) for e in node.elts]
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, figures)
        return not value if isinstance(node.op, ast.Not) else (-value if isinstance(node.op, ast.USub) else +value)
    if isinstance(node, ast.BinOp):
        result = _BINARY[type(node.op)](_eval(node.left, figures), _eval(node.right, figures))
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:
            raise OverflowError(f"an integer of {result.bit_length():,} bits exceeds {MAX_INT_BITS:,}")
        return result
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, figures) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.Compare):
        left = _eval(node.left, figures)
        result = True
        for op, right_node in zip(node.ops, node.comparators):
            right = _eval(right_node, figures)
            outcome = _COMPARE[type(op)](left, right)
            result = result and (_all(outcome) if not isinstance(outcome, bool) else outcome)
            left = right
        return result
    if isinstance(node, ast.Slice):
        return slice(*(_eval(part, figures) if part is not None else None for part in (node.lower, node.upper, node.step)))
    if isinstance(node, ast.Subscript):
        return _eval(node.value, figures)[_eval(node.slice, figures)]
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](*(_eval(a, figures) for a in node.args))
    raise UserError(f"unsupported expression node {type(node).__name__}")


_ALLOWED = (
    ast.Expression, ast.Constant, ast.Name, ast.Attribute, ast.Load, ast.List, ast.UnaryOp, ast.UAdd, ast.USub,
    ast.Not, ast.BinOp, ast.BoolOp, ast.And, ast.Or, ast.Compare, ast.Subscript, ast.Slice, ast.Call, *_BINARY,
    *_COMPARE,
)
