"""No import cycles between pipetrace's modules, and every module imports on its own.

A cycle is counted whether its imports sit at module level or inside a function: a function's
import still makes one module depend on the other (``cli`` ↔ ``cli_databricks`` was one, through
a registration done as an import side effect; ``spark`` ↔ ``spark_writer`` another, through a
subclass overriding private methods). Imports under ``if TYPE_CHECKING:`` do not count.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "pipetrace"
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _type_checking_only(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imports_of(module: str) -> set[str]:
    """The pipetrace modules ``module`` imports, anywhere in its source."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    skip = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            parts = node.module.split(".")
            if parts[0] != "pipetrace":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from pipetrace import spool
                found.update(a.name for a in node.names if a.name in MODULES)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names
                         if a.name.startswith("pipetrace."))
    return found - {module}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path (first node repeated at the end), or None.

    Example::

        >>> find_cycle({"a": {"b"}, "b": {"a"}})
        ['a', 'b', 'a']
        >>> find_cycle({"a": {"b"}, "b": set()}) is None
        True
    """
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*path[path.index(dep):], dep]
            if dep not in state and (cycle := visit(dep)) is not None:
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)) is not None:
            return cycle
    return None


def test_find_cycle_finds_a_longer_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycles() -> None:
    graph = {module: imports_of(module) for module in MODULES}
    assert "cli_databricks" in graph["cli"] and "spark_writer" in graph["spark"]  # still seen
    assert find_cycle(graph) is None


def test_each_module_imports_first_on_its_own() -> None:
    """Importing any one module first works (no module leans on another being loaded)."""
    script = (
        "import importlib, sys\n"
        f"for name in {MODULES!r}:\n"
        "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'pipetrace']:\n"
        "        del sys.modules[loaded]\n"
        "    importlib.import_module('pipetrace.' + name)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
