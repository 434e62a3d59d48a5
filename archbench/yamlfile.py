"""Reading the YAML files users give (suites, claims) safely: UTF-8 only, bounded depth and alias expansion.

PyYAML shares an aliased node, but merge keys (``<<: [*a, *a, ...]``) copy it, so a file of a
few hundred bytes can expand to millions of nodes. Before anything is composed, one pass over
the parser's events counts every node as often as aliases repeat it and measures the nesting,
refusing the file past :data:`MAX_ALIAS_NODES` or :data:`MAX_DEPTH` with its name and line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from archbench.errors import UserError

MAX_ALIAS_NODES = 100_000
"""The most nodes that aliases (and merge keys) may add by repeating anchored ones."""
MAX_DEPTH = 100
"""The deepest nesting of mappings and lists accepted."""


def read_text(path: Path) -> str:
    """The file's text; UserError naming the file and the byte offset when it is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def compose(path: Path, text: str):
    """The single document of ``text`` as PyYAML nodes (``yaml.compose``), checked first."""
    import yaml

    return _checked(path, text, lambda: yaml.compose(text, Loader=yaml.SafeLoader))


def safe_load(path: Path, text: str) -> Any:
    """The single document of ``text`` as plain Python data (``yaml.safe_load``), checked first."""
    import yaml

    return _checked(path, text, lambda: yaml.safe_load(text))


def _checked(path: Path, text: str, load):
    import yaml

    try:
        _check_events(path, yaml.parse(text, Loader=yaml.SafeLoader))
        return load()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UserError(f"{where}: not valid YAML ({problem})") from None
    except ValueError:  # Python's limit on the digits of an integer
        raise UserError(f"{path}: holds a number too long to read (over 4,300 digits)") from None


def _check_events(path: Path, events) -> None:
    """Refuse deep nesting, recursive aliases and alias expansion beyond MAX_ALIAS_NODES, event by event."""
    import yaml

    sizes: dict[str, int] = {}  # anchor -> nodes under it, aliases expanded
    open_frames: list[list] = []  # [nodes so far, anchor] of each mapping or list being read
    added = 0
    for event in events:
        line = event.start_mark.line + 1
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_frames.append([1, event.anchor])
            if len(open_frames) > MAX_DEPTH:
                raise UserError(f"{path}:{line}: nested more than {MAX_DEPTH} levels deep")
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            count, anchor = open_frames.pop()
        elif isinstance(event, yaml.ScalarEvent):
            count, anchor = 1, event.anchor
        elif isinstance(event, yaml.AliasEvent):
            if any(frame[1] == event.anchor for frame in open_frames):
                raise UserError(f"{path}:{line}: alias *{event.anchor} refers to a node that contains it")
            count, anchor = sizes.get(event.anchor, 1), None
            added += count
            if added > MAX_ALIAS_NODES:
                raise UserError(f"{path}:{line}: aliases and merge keys expand to more than "
                                f"{MAX_ALIAS_NODES:,} nodes (*{event.anchor} repeats {count:,})")
        else:
            continue
        if anchor is not None:
            sizes[anchor] = count
        if open_frames:
            open_frames[-1][0] += count
