"""The schema of a run document, checked on reading: each wrong field is named with its record.

Records are numbered from 1 in messages (``record 17`` is ``records[16]``). Besides the record
fields, the parts of ``meta`` that ``compare``, ``merge`` and ``report`` read are checked
(``cases`` and their sweeps, ``sweep``, ``shard_envs``...), and nesting deeper than
:data:`MAX_DEPTH` is refused.
"""

from __future__ import annotations

from typing import Any

from archbench.errors import UserError

MAX_DEPTH = 64
"""Deepest nesting of arrays and objects a run document may have (archbench writes fewer than 10 levels)."""

_SCALAR = (str, int, float, bool, type(None))


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type: object, array, string, number, boolean or null."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def check_depth(value: Any, where: str) -> None:
    """UserError when ``value`` nests deeper than :data:`MAX_DEPTH` (checked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise UserError(f"{where}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values() if isinstance(child, (dict, list)))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item if isinstance(child, (dict, list)))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_RECORD_FIELDS: dict[str, tuple[str, Any, bool]] = {
    # field: (what it must be, test, required)
    "model": ("a string", lambda v: isinstance(v, str), True),
    "metric": ("a string", lambda v: isinstance(v, str), True),
    "value": ("a number, string, boolean, array or null", lambda v: isinstance(v, (*_SCALAR, list)), True),
    "unit": ("a string", lambda v: isinstance(v, str), True),
    "point": ("an object", lambda v: isinstance(v, dict), False),
    "error": ("a string or null", lambda v: isinstance(v, (str, type(None))), False),
    "warnings": ("an array of strings", lambda v: isinstance(v, list) and all(isinstance(w, str) for w in v), False),
    "details": ("an object", lambda v: isinstance(v, dict), False),
    "case": ("a string or null", lambda v: isinstance(v, (str, type(None))), False),
    "claim": ("a string or null", lambda v: isinstance(v, (str, type(None))), False),
    "verdict": ("a string or null", lambda v: isinstance(v, (str, type(None))), False),
    "env": ("a string or null", lambda v: isinstance(v, (str, type(None))), False),
}


def check_record(data: Any, where: str) -> None:
    """UserError naming the field of one record (``where``, e.g. ``run.json: record 3``) that is wrong."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: must be an object, got {json_type(data)}")
    for name, (expected, test, required) in _RECORD_FIELDS.items():
        if name not in data:
            if required:
                raise UserError(f"{where}: field {name!r} is missing")
            continue
        if not test(data[name]):
            raise UserError(f"{where}: field {name!r} must be {expected}, got {json_type(data[name])}")
    for key, value in data.get("point", {}).items():
        if not isinstance(value, _SCALAR):
            raise UserError(f"{where}: field 'point.{key}' must be a string, number, boolean or null, "
                            f"got {json_type(value)}")
    samples = data.get("details", {}).get("samples")
    if samples is not None and not (isinstance(samples, list) and all(_is_number(s) for s in samples)):
        raise UserError(f"{where}: field 'details.samples' must be an array of numbers")


def check_header(data: Any, where: str) -> None:
    """UserError for a wrong ``env`` or ``meta`` (the parts of meta that archbench reads back)."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: a run document must be an object, got {json_type(data)}")
    for name in ("env", "envs", "meta"):
        if name in data and not isinstance(data[name], dict):
            raise UserError(f"{where}: field {name!r} must be an object, got {json_type(data[name])}")
    for key, env in data.get("envs", {}).items():
        if not isinstance(env, dict):
            raise UserError(f"{where}: field 'envs.{key}' must be an object, got {json_type(env)}")
        _check_env(env, f"envs.{key}", where)
    _check_env(data.get("env", {}), "env", where)
    meta = data.get("meta", {})
    _check_meta_field(meta, "cases", where, "an array of objects with an 'id'",
                      lambda v: isinstance(v, list) and all(isinstance(c, dict) and isinstance(c.get("id"), str)
                                                            for c in v))
    for i, case in enumerate(meta.get("cases") or [], 1):
        if case.get("sweep") is not None and not _is_sweep(case["sweep"]):
            raise UserError(f"{where}: meta.cases {i} ({case['id']!r}): 'sweep' must be an object with an 'axis' string")
    if meta.get("sweep") is not None and not _is_sweep(meta["sweep"]):
        raise UserError(f"{where}: field 'meta.sweep' must be an object with an 'axis' string")
    for name in ("suite_case_ids", "merged_from", "finished_cases"):
        _check_meta_field(meta, name, where, "an array of strings",
                          lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
    _check_meta_field(meta, "shard_envs", where, "an array of objects",
                      lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))
    for i, env in enumerate(meta.get("shard_envs") or [], 1):
        _check_env(env, f"meta.shard_envs {i}", where)
    for name in ("complete", "interrupted"):
        _check_meta_field(meta, name, where, "a boolean", lambda v: isinstance(v, bool))
    for name in ("suite", "suite_digest", "command", "shard"):
        _check_meta_field(meta, name, where, "a string", lambda v: isinstance(v, str))


def _check_env(env: dict, name: str, where: str) -> None:
    """The entries of a machine that compare and merge read (its fingerprint) must be single values."""
    from archbench.results.env import FINGERPRINT_KEYS

    for key in FINGERPRINT_KEYS:
        if not isinstance(env.get(key), _SCALAR):
            raise UserError(f"{where}: field '{name}.{key}' must be a string, number, boolean or null, "
                            f"got {json_type(env[key])}")


def _check_meta_field(meta: dict, name: str, where: str, expected: str, test) -> None:
    if meta.get(name) is not None and not test(meta[name]):
        raise UserError(f"{where}: field 'meta.{name}' must be {expected}, got {json_type(meta[name])}")


def _is_sweep(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("axis"), str)
