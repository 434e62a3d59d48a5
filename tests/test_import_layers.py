"""The package's subpackages import one another without a cycle (read from the source with ast, nothing imported):
models/ builds, measure/ measures what models/ builds, and nothing below imports what is above it."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "archbench"


def _subpackage_imports() -> dict[str, dict[str, set[str]]]:
    """subpackage -> {subpackage it imports -> the modules that do}; top-level modules count as their own unit."""
    units = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    edges: dict[str, dict[str, set[str]]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        unit = parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                target = name.split(".")
                if target[0] == "archbench" and len(target) > 1 and target[1] in units and target[1] != unit:
                    edges.setdefault(unit, {}).setdefault(target[1], set()).add(".".join(parts))
    return edges


def _cycle(edges: dict[str, dict[str, set[str]]]) -> list[str] | None:
    """One cycle of the graph as a path of units, or None."""
    state: dict[str, str] = {}

    def visit(unit: str, path: list[str]) -> list[str] | None:
        state[unit] = "open"
        for other in edges.get(unit, {}):
            if state.get(other) == "open":
                return path[path.index(other):] + [other] if other in path else [unit, other]
            if other not in state and (found := visit(other, path + [other])):
                return found
        state[unit] = "done"
        return None

    for unit in sorted(edges):
        if unit not in state and (found := visit(unit, [unit])):
            return found
    return None


def test_no_import_cycle_between_subpackages():
    edges = _subpackage_imports()
    cycle = _cycle(edges)
    if cycle:
        steps = [f"{a} -> {b} (in {', '.join(sorted(edges[a][b]))})" for a, b in zip(cycle, cycle[1:])]
        raise AssertionError("import cycle between subpackages:\n" + "\n".join(steps))


def test_the_cycle_finder_finds_one():
    assert _cycle({"models": {"measure": {"models.decode"}}, "measure": {"models": {"measure.flops"}}})
    assert _cycle({"a": {"b": set()}, "b": {"c": set()}, "c": {"a": set()}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b": set()}, "b": {"c": set()}}) is None
