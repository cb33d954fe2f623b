"""The package's shape: no import cycles (lazy imports inside functions included), no
module over ~600 lines, and the numpy-only stages import no TensorFlow."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mixedtf"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Every mixedtf module ``path`` imports, at module level or inside a function:
    ``from a.b import c`` is ``a.b.c`` when that is a module, else ``a.b``."""
    is_package = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = name.split(".")
                parent = parent if is_package else parent[:-1]
                parent = parent[: len(parent) - (node.level - 1)]
                base = ".".join([*parent, base] if base else parent)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        out |= {t for t in targets if t in modules and t != name}
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    modules = _modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    # a package's __init__ may re-export its own submodules; a submodule importing its
    # package's __init__ (or an ancestor's) back would close a cycle, and is caught
    assert _cycles(graph) == []


def test_no_module_over_600_lines():
    long = {
        name: n for name, p in _modules().items() if (n := len(p.read_text().splitlines())) > 600
    }
    assert long == {}


def test_fit_has_estimator_subpackages_and_few_flat_modules():
    fit = PACKAGE / "fit"
    assert {p.name for p in fit.iterdir() if p.is_dir() and (p / "__init__.py").exists()} >= {
        "exact",
        "laplace",
        "mcem",
    }
    flat = sorted(p.name for p in fit.glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= 4, flat


@pytest.mark.parametrize(
    "modules",
    [
        "mixedtf.families, mixedtf.linalg, mixedtf.fit.exact, mixedtf.fit.laplace, mixedtf.fit",
        "mixedtf.results",
    ],
)
def test_numpy_stages_import_no_tensorflow(modules):
    code = (
        f"import sys, {modules}\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tensorflow_probability'))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
