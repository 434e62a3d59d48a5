"""Parsing of the small languages users type: model specs, shapes, sequence ranges.

A model spec is ``NAME`` or ``NAME:key=value,key=value``; a shape is ``3x224x224``;
a range is ``512..10000`` (geometric), ``512..10000:512`` (arithmetic) or ``512,1024,4096``.
Every malformed input raises :class:`archbench.errors.UserError` with one clear line.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field

from archbench.errors import UserError


PREFIXED_SOURCES = ("hf", "timm")
"""Sources named by a prefix: ``hf:MODEL_TYPE`` (or ``hf:path/config.json``) and ``timm:NAME``."""


@dataclass(frozen=True)
class ModelSpec:
    """A model argument: where the model comes from, its name there, and the raw option strings.

    ``source`` is ``registry`` (``resnet50``), ``python`` (``my_net.py:build``, ``mymodels:build`` or
    ``package.module:Factory``), ``hf`` (``hf:llama``, ``hf:path/config.json``) or ``timm``
    (``timm:convnext_tiny``). Options come after the last ``:`` as ``key=value,...``.
    """

    name: str
    options: dict[str, str] = field(default_factory=dict)
    source: str = "registry"

    def __str__(self) -> str:
        prefix = f"{self.source}:" if self.source in PREFIXED_SOURCES else ""
        if not self.options:
            return prefix + self.name
        return prefix + self.name + ":" + ",".join(f"{k}={v}" for k, v in self.options.items())

    def with_options(self, **options: str) -> "ModelSpec":
        """The same model with ``options`` added or replaced."""
        return ModelSpec(self.name, {**self.options, **options}, self.source)


def parse_model_spec(text: str) -> ModelSpec:
    """Split a model argument into a :class:`ModelSpec` (values stay strings; nothing is imported)."""
    text = str(text).strip()
    whole = text
    source = "registry"
    for prefix in PREFIXED_SOURCES:
        if text.startswith(prefix + ":"):
            source, text = prefix, text[len(prefix) + 1:]
    parts = text.split(":")
    option_text = parts.pop() if len(parts) > 1 and "=" in parts[-1] else ""
    if not all(parts):
        what = "model name" if source == "registry" else f"{source}: name"
        raise UserError(f"empty {what} in {whole!r}")
    if len(parts) == 2 and source == "registry":  # FILE.py:ATTR or MODULE:ATTR (lstm:hidden: see python_source)
        source = "python"
    elif len(parts) > 1:
        raise UserError(f"malformed model {whole!r}: expected NAME, FILE.py:ATTR or MODULE:ATTR, "
                        "then :key=value,... options")
    options: dict[str, str] = {}
    if option_text:
        for item in option_text.split(","):
            key, eq, value = item.partition("=")
            key, value = key.strip(), value.strip()
            if not eq or not key or not value or "=" in value:
                raise UserError(f"malformed option {item[:80]!r} in {whole[:120]!r}: expected key=value")
            if key in options:
                raise UserError(f"option {key!r} given twice in {whole!r}")
            options[key] = value
    return ModelSpec(":".join(parts), options, source)


def parse_shape(text: str, what: str = "--input") -> tuple[int, ...]:
    """Parse ``3x224x224`` into ``(3, 224, 224)``; every size must be a positive integer."""
    parts = str(text).strip().lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise UserError(f"malformed {what} {text!r}: expected sizes like 3x224x224") from None
    if any(d <= 0 for d in dims):
        raise UserError(f"malformed {what} {text!r}: every size must be a positive integer")
    return dims


def format_shape(shape: tuple[int, ...]) -> str:
    """The inverse of :func:`parse_shape`."""
    return "x".join(str(d) for d in shape)


def parse_range(text: str, points: int = 8) -> list[int]:
    """Parse a sweep range into sorted distinct positive integers.

    ``LO..HI`` gives ``points`` geometrically spaced values including both ends,
    ``LO..HI:STEP`` an arithmetic progression from LO up to HI (HI included when reached),
    ``A,B,C`` an explicit list. Values are at most ``MAX_SIZE`` and a range holds at most
    ``MAX_POINTS`` of them, counted before any list is built.
    """
    from archbench.limits import MAX_POINTS, MAX_SIZE, check_points

    raw = str(text).strip()
    check_points(points)

    def number(s: str, what: str = "values") -> int:
        try:
            value = int(s.strip())
        except ValueError:
            shown = s.strip() if len(s.strip()) <= 40 else s.strip()[:40] + "..."
            raise UserError(f"malformed range {raw[:80]!r}: {shown!r} is not an integer") from None
        if value <= 0:
            raise UserError(f"malformed range {raw[:80]!r}: {what} must be positive, got {value}")
        if value > MAX_SIZE:
            raise UserError(f"malformed range {raw[:80]!r}: {what} must be at most {MAX_SIZE:,}, got {value:,}")
        return value

    if ".." in raw:
        lo_text, _, rest = raw.partition("..")
        hi_text, colon, step_text = rest.partition(":")
        lo, hi = number(lo_text), number(hi_text)
        if lo > hi:
            raise UserError(f"malformed range {raw!r}: low end {lo} is above high end {hi}")
        if colon:
            step = number(step_text, "the step")
            count = (hi - lo) // step + 1
            if count > MAX_POINTS:
                raise UserError(f"range {raw!r} holds {count:,} values; at most {MAX_POINTS} are allowed")
            values = list(range(lo, hi + 1, step))
        else:
            if lo == hi:
                return [lo]
            ratio = math.log(hi / lo)
            values = [round(lo * math.exp(ratio * i / (points - 1))) for i in range(points)]
        return sorted(set(values))
    if not raw:
        raise UserError("malformed range '': expected LO..HI, LO..HI:STEP or A,B,C")
    items = raw.split(",", MAX_POINTS)
    if len(items) > MAX_POINTS:
        raise UserError(f"range {raw[:80]!r}... lists more than {MAX_POINTS} values")
    return sorted({number(p) for p in items})


def matching(names: list[str], pattern: str | None) -> list[str]:
    """The names matching the glob ``pattern``; a pattern without wildcards matches names containing it."""
    import fnmatch

    if not pattern:
        return list(names)
    if not any(ch in pattern for ch in "*?["):
        pattern = f"*{pattern}*"
    return [n for n in names if fnmatch.fnmatch(n, pattern)]


def suggest(name: str, candidates: list[str], n: int = 3) -> str:
    """A ``did you mean`` tail for an unknown name, or an empty string."""
    close = difflib.get_close_matches(name, candidates, n=n, cutoff=0.6)
    if not close:
        lowered = name.lower()
        close = [c for c in candidates if lowered in c.lower()][:n]
    return f"; did you mean {', '.join(close)}?" if close else ""
