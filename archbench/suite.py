"""Benchmark suites: a typed YAML file of cases, validated before anything runs.

A suite looks like::

    name: ci
    defaults: {device: cpu, batch: 1, dtype: float32, threads: 2, min_time: 0.5}
    cases:
      - model: resnet18
        metrics: [params, flops]
      - id: tiny-transformer
        model: transformer:layers=1
        seq: 128
        metrics: [params, flops, latency]
      - model: lstm
        sweep: {axis: seq, range: 128..1024, points: 4}
        metrics: [flops]

The file is read with PyYAML's safe composer (no arbitrary objects) and converted node by
node, so every mistake (unknown key, wrong type, unknown model, bad range, duplicate id)
is a :class:`UserError` naming the file, the line and the key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from archbench.errors import UserError

SWEEP_AXES = ("seq", "batch", "resolution")
DEVICES = ("cpu", "meta", "cuda")


@dataclass(frozen=True)
class CaseSettings:
    """How cases run: the suite's ``defaults``, which each case may override."""

    device: str = "cpu"
    batch: int = 1
    dtype: str = "float32"
    threads: int | None = None
    min_time: float = 1.0
    timeout_s: float | None = None
    phase: str = "prefill"  # prefill, or decode: one new token after a KV cache of seq tokens
    attention_count: str = "full"  # full, or causal: only the query-key pairs a mask keeps
    head: bool = False  # Hugging Face models: with their task head
    hardware: str = "all"  # roofline: a machine of `archbench hardware`, a comma-separated list, or all
    optimizer: str = "adamw"  # phase train: the step's optimizer, precision and activation checkpointing
    precision: str = "fp32"
    checkpointing: bool = False


@dataclass(frozen=True)
class Sweep:
    """An input axis swept over ``values`` (parsed from ``range`` with ``points``)."""

    axis: str
    range: str
    points: int
    values: tuple[int, ...]


@dataclass(frozen=True)
class Case:
    """One model at one input (or one sweep) with the metrics to measure on it."""

    id: str
    model: str
    metrics: tuple[str, ...]
    settings: CaseSettings
    seq: int | None = None
    input: tuple[int, ...] | None = None
    sweep: Sweep | None = None
    point: dict[str, Any] = field(default_factory=dict, compare=False)
    line: int = 0

    def describe(self) -> dict[str, Any]:
        """The case as plain data, for the run document's metadata."""
        data: dict[str, Any] = {"id": self.id, "model": self.model, "metrics": list(self.metrics), "point": self.point}
        if self.sweep:
            data["sweep"] = {"axis": self.sweep.axis, "values": list(self.sweep.values)}
        return data


@dataclass(frozen=True)
class Suite:
    """A validated suite: its name, where it came from, the defaults and the cases in file order."""

    name: str
    path: str
    digest: str
    defaults: CaseSettings
    cases: tuple[Case, ...]

    def shard(self, index: int, count: int) -> tuple[Case, ...]:
        """Shard ``index`` of ``count`` (1-based): every ``count``-th case, starting at the ``index``-th.

        Deterministic (file order only), balanced within one case, and the shards 1..count
        together hold every case exactly once.
        """
        return self.cases[index - 1 :: count]


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``--shard I/N`` into ``(I, N)`` with 1 <= I <= N."""
    index_text, slash, count_text = text.partition("/")
    try:
        index, count = int(index_text), int(count_text)
    except ValueError:
        index = count = 0
    if not slash or count < 1 or not 1 <= index <= count:
        raise UserError(f"malformed --shard {text!r}: expected I/N with 1 <= I <= N, e.g. 1/4")
    return index, count


def load_suite(path: str | Path) -> Suite:
    """Read, type-check and validate a suite file (models resolved, ranges parsed, ids unique)."""
    from archbench import yamlfile

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such suite file")
    text = yamlfile.read_text(path)
    root = yamlfile.compose(path, text)
    if root is None:
        raise UserError(f"{path}: empty suite file")
    reader = _Reader(path)
    top = reader.mapping(root, "suite", required=("cases",), optional=("name", "description", "defaults"))
    name = reader.string(top["name"], "name") if "name" in top else path.stem
    if "description" in top:
        reader.string(top["description"], "description")
    defaults = CaseSettings()
    if "defaults" in top:
        defaults = reader.settings(top["defaults"], "defaults", CaseSettings())
    case_nodes = reader.sequence(top["cases"], "cases")
    if not case_nodes:
        raise reader.error(top["cases"], "cases", "a suite needs at least one case")
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(case_nodes):
        case = reader.case(node, f"cases[{i}]", defaults)
        if case.id in seen:
            raise reader.error(node, f"cases[{i}].id", f"case id {case.id!r} already used on line {seen[case.id]}")
        seen[case.id] = case.line
        cases.append(case)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Suite(name, str(path), digest, defaults, tuple(cases))


class _Reader:
    """Converts composed YAML nodes into typed values, raising errors that name file, line and key."""

    def __init__(self, path: Path):
        import yaml

        self.path = path
        self.yaml = yaml
        self.constructor = yaml.SafeLoader("")  # only its scalar constructors are used

    def error(self, node, key: str, message: str) -> UserError:
        return UserError(f"{self.path}:{node.start_mark.line + 1}: {key}: {message}")

    def mapping(self, node, key: str, *, required=(), optional=()) -> dict[str, Any]:
        """A mapping of known string keys to their (unconverted) value nodes."""
        if not isinstance(node, self.yaml.MappingNode):
            raise self.error(node, key, f"expected a mapping, got {self._kind(node)}")
        allowed = (*required, *optional)
        own = {id(key_node) for key_node, _ in node.value}
        try:
            self.constructor.flatten_mapping(node)  # YAML merge keys (<<: *defaults), as safe_load does
        except self.yaml.YAMLError as exc:
            raise self.error(node, key, f"{getattr(exc, 'problem', None) or exc}") from None
        result: dict[str, Any] = {}
        own_names: set[str] = set()
        for key_node, value_node in node.value:  # merged keys first, so the mapping's own keys override them
            name = self.construct(key_node, key)
            where = f"{key}.{name}" if key != "suite" else str(name)
            if name not in allowed:
                raise self.error(key_node, where, f"unknown key; expected one of {', '.join(allowed)}")
            if name in own_names:
                raise self.error(key_node, where, "key given twice")
            if id(key_node) in own:
                own_names.add(name)
            result[name] = value_node
        for name in required:
            if name not in result:
                raise self.error(node, key, f"missing required key {name!r}")
        return result

    def sequence(self, node, key: str) -> list:
        if not isinstance(node, self.yaml.SequenceNode):
            raise self.error(node, key, f"expected a list, got {self._kind(node)}")
        return list(node.value)

    def scalar(self, node, key: str) -> Any:
        if not isinstance(node, self.yaml.ScalarNode):
            raise self.error(node, key, f"expected a single value, got {self._kind(node)}")
        return self.construct(node, key)

    def construct(self, node, key: str) -> Any:
        """A scalar's value as ``yaml.safe_load`` gives it (tags outside the safe set are errors)."""
        try:
            return self.constructor.construct_object(node)
        except self.yaml.YAMLError as exc:
            raise self.error(node, key, f"{getattr(exc, 'problem', None) or exc}") from None
        except ValueError:  # Python's limit on the digits of an integer
            raise self.error(node, key, f"a number of {len(node.value):,} characters is too long") from None

    def string(self, node, key: str) -> str:
        value = self.scalar(node, key)
        if not isinstance(value, str) or not value.strip():
            raise self.error(node, key, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def integer(self, node, key: str) -> int:
        """A positive integer of at most MAX_SIZE (sizes, batch, seq)."""
        from archbench.limits import MAX_SIZE

        value = self.scalar(node, key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
            raise self.error(node, key, f"expected a positive integer of at most {MAX_SIZE:,}, got {value!r}")
        return value

    def number(self, node, key: str) -> float:
        """A positive finite number of seconds (min_time, timeout_s)."""
        from archbench.limits import positive_finite

        return self._bounded(node, key, positive_finite)

    def _bounded(self, node, key: str, check):
        """``check(key, value)`` on the scalar's value, its UserError naming the file and line."""
        value = self.scalar(node, key)
        try:
            return check(key.rsplit(".", 1)[-1], value)
        except UserError as exc:
            raise self.error(node, key, str(exc)) from None

    def settings(self, node, key: str, base: CaseSettings, extra: dict | None = None) -> CaseSettings:
        """``base`` overridden by the CaseSettings keys of a mapping (or of ``extra``, already split out)."""
        items = extra if extra is not None else self.mapping(node, key, optional=_SETTING_KEYS)
        values: dict[str, Any] = {}
        for name, value_node in items.items():
            where = f"{key}.{name}"
            if name == "batch":
                values[name] = self.integer(value_node, where)
            elif name == "threads":
                values[name] = self._bounded(value_node, where, _threads)
            elif name in ("min_time", "timeout_s"):
                values[name] = self.number(value_node, where)
            elif name == "dtype":
                values[name] = self.choice(value_node, where, _dtypes())
            elif name == "phase":
                from archbench.models.subject import PHASES

                values[name] = self.choice(value_node, where, PHASES)
            elif name == "attention_count":
                from archbench.measure.flops import ATTENTION_COUNTS

                values[name] = self.choice(value_node, where, ATTENTION_COUNTS)
            elif name in ("head", "checkpointing"):
                values[name] = self.choice(value_node, where, (True, False))
            elif name == "hardware":
                values[name] = self._bounded(value_node, where, _hardware)
            elif name in ("optimizer", "precision"):
                from archbench.measure import training

                values[name] = self.choice(value_node, where, training.OPTIMIZERS if name == "optimizer"
                                           else training.PRECISIONS)
            else:
                values[name] = self.device(value_node, where)
        return replace(base, **values)

    def choice(self, node, key: str, choices: tuple) -> Any:
        """One of ``choices``, of its type too (``head: "yes"`` is not ``true``, nor is 1)."""
        value = self.scalar(node, key)
        if not any(type(value) is type(c) and value == c for c in choices):
            names = ", ".join(str(c).lower() if isinstance(c, bool) else str(c) for c in choices)
            raise self.error(node, key, f"expected one of {names}, got {value!r}")
        return value

    def device(self, node, key: str) -> str:
        from archbench.models import check_device

        value = self.string(node, key)
        kind, _, index = value.partition(":")
        if kind not in DEVICES or (index and (kind != "cuda" or not index.isdigit())):
            raise self.error(node, key, f"expected cpu, meta, cuda or cuda:N, got {value!r}")
        try:
            check_device(value)
        except UserError as exc:
            raise self.error(node, key, str(exc)) from None
        return value

    def metrics(self, node, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        items = self.sequence(node, key)
        if not items:
            raise self.error(node, key, "expected at least one metric")
        names: list[str] = []
        for i, item in enumerate(items):
            name = self.choice(item, f"{key}[{i}]", allowed)
            if name in names:
                raise self.error(item, f"{key}[{i}]", f"metric {name!r} listed twice")
            names.append(name)
        return tuple(names)

    def shape(self, node, key: str) -> tuple[int, ...]:
        from archbench.spec import parse_shape

        if isinstance(node, self.yaml.SequenceNode):
            return tuple(self.integer(item, f"{key}[{i}]") for i, item in enumerate(node.value))
        text = str(self.scalar(node, key))
        try:
            return parse_shape(text, what=key)
        except UserError as exc:
            raise self.error(node, key, str(exc)) from None

    def sweep(self, node, key: str) -> Sweep:
        from archbench.limits import check_points
        from archbench.spec import parse_range

        items = self.mapping(node, key, required=("axis", "range"), optional=("points",))
        axis = self.choice(items["axis"], f"{key}.axis", SWEEP_AXES)
        points = self._bounded(items["points"], f"{key}.points", lambda name, n: check_points(n, name)) \
            if "points" in items else 8
        range_node = items["range"]
        if isinstance(range_node, self.yaml.SequenceNode):
            values = [self.integer(item, f"{key}.range[{i}]") for i, item in enumerate(range_node.value)]
            text = ",".join(str(v) for v in values)
        else:
            text = str(self.scalar(range_node, f"{key}.range"))
        try:
            parsed = parse_range(text, points)
        except UserError as exc:
            raise self.error(range_node, f"{key}.range", str(exc)) from None
        return Sweep(axis, text, points, tuple(parsed))

    def case(self, node, key: str, defaults: CaseSettings) -> Case:
        items = self.mapping(node, key, required=("model", "metrics"), optional=_CASE_KEYS + _SETTING_KEYS)
        model = self.string(items["model"], f"{key}.model")
        input_spec = self._resolve_model(items["model"], f"{key}.model", model)
        sweep = self.sweep(items["sweep"], f"{key}.sweep") if "sweep" in items else None
        from archbench.measure.run import group_names

        metrics = self.metrics(items["metrics"], f"{key}.metrics", group_names(sweeps=sweep is not None))
        settings = self.settings(node, key, defaults, {k: v for k, v in items.items() if k in _SETTING_KEYS})
        seq = self.integer(items["seq"], f"{key}.seq") if "seq" in items else None
        shape = self.shape(items["input"], f"{key}.input") if "input" in items else None
        self._check_input(items, key, model, input_spec, seq, shape, sweep)

        from archbench.models.subject import Recipe

        given_seq, given_shape = seq, shape
        if input_spec is not None and input_spec.kind in ("tokens", "sequence"):
            seq = seq or input_spec.shape[0]
        elif input_spec is not None:
            shape = shape or input_spec.shape
        # a model of the user's own code: its factory makes its inputs unless seq/input say
        point = Recipe(model, settings.batch, seq, shape, settings.dtype, phase=settings.phase, head=settings.head,
                       optimizer=settings.optimizer, precision=settings.precision,
                       checkpointing=settings.checkpointing).known_point()
        if "id" in items:
            case_id = self.string(items["id"], f"{key}.id")
        else:
            given = {"seq": given_seq, "input": "x".join(map(str, given_shape)) if given_shape else None,
                     "batch": settings.batch if "batch" in items else None}
            parts = [model] + [f"{k}={v}" for k, v in given.items() if v is not None]
            if sweep:
                parts.append(f"{sweep.axis}={sweep.range}")
            case_id = " ".join(parts)
        return Case(case_id, model, metrics, settings, seq, shape, sweep, point, node.start_mark.line + 1)

    def _resolve_model(self, node, key: str, model: str):
        from archbench.models import default_input, resolve

        try:
            resolve(model)
            return default_input(model)
        except UserError as exc:
            raise self.error(node, key, str(exc)) from None

    def _check_input(self, items, key, model, input_spec, seq, shape, sweep) -> None:
        """The case's seq, input and sweep axis must fit the model's kind of input (a user's own model: its own)."""
        if input_spec is None:
            return
        takes = f"{model} takes {input_spec.describe()}"
        sequential = input_spec.kind in ("tokens", "sequence")
        if seq is not None and not sequential:
            raise self.error(items["seq"], f"{key}.seq", f"{takes}; seq applies to sequence models")
        if shape is not None:
            if input_spec.kind == "tokens":
                raise self.error(items["input"], f"{key}.input", f"{model} takes token ids: give seq, not input")
            if len(shape) != len(input_spec.shape):
                raise self.error(items["input"], f"{key}.input",
                                 f"{takes} ({len(input_spec.shape)} sizes), got {len(shape)}")
        if sweep is None:
            return
        where = f"{key}.sweep.axis"
        if sweep.axis == "seq" and not sequential:
            raise self.error(items["sweep"], where, f"{takes}; a seq sweep needs a sequence model")
        if sweep.axis == "resolution" and input_spec.kind != "image":
            raise self.error(items["sweep"], where, f"{takes}; a resolution sweep needs an image model")
        fixed = {"seq": seq, "batch": items.get("batch"), "resolution": shape}[sweep.axis]
        if fixed is not None:
            raise self.error(items["sweep"], where, f"the case fixes {sweep.axis} and sweeps it too; give one")

    def _kind(self, node) -> str:
        if isinstance(node, self.yaml.MappingNode):
            return "a mapping"
        if isinstance(node, self.yaml.SequenceNode):
            return "a list"
        return repr(self.construct(node, "value"))


def _hardware(key: str, value: Any) -> str:
    from archbench.measure.hardware import MACHINES, THIS_CPU

    names = [n.strip() for n in str(value).split(",")]
    unknown = [n for n in names if n not in (*MACHINES, THIS_CPU, "all")]
    if unknown:
        raise UserError(f"unknown hardware {unknown[0]!r}; expected all or one of {', '.join([*MACHINES, THIS_CPU])}")
    return str(value)


_SETTING_KEYS = tuple(f.name for f in fields(CaseSettings))
_CASE_KEYS = ("id", "seq", "input", "sweep")


def _threads(name: str, threads) -> int:
    """A thread count within archbench's bounds (more than this machine's cores is allowed: the file may be for another)."""
    from archbench.limits import threads_warning

    threads_warning(threads, name)
    return threads


def _dtypes() -> tuple[str, ...]:
    from archbench.models.subject import DTYPES

    return DTYPES
