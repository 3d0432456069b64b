"""The package keeps the architecture of ARCHITECTURE.md.

The import graph of ``skasd`` (every ``import`` statement, at module level and inside functions,
read with ``ast``) has no cycle and no edge into the command line; the inlier detectors, the
fusion and the command line's start import no torch; scikit-learn's private API is imported in
one module; function-local imports are kept for optional or heavy dependencies only; the
documentation, examples and benchmarks use public names only.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skasd"

# What a function may import lazily: optional dependencies (matplotlib, Dask, Accelerate) and
# torch where its importer must load without it (the log-mel backend, the model-file codec).
LAZY_ALLOWED = ("matplotlib", "librosa.display", "distributed", "dask", "accelerate", "torch", "skorch", "transformers",
                "skasd.plot", "skasd.utils._torch_compat")
SKLEARN_COMPAT = "skasd.utils._sklearn_compat"
# The dependency rule of ARCHITECTURE.md: the subpackages each one may import (besides itself
# and the package root). Nothing imports the command line.
BASE = {"utils", "exceptions"}
MAY_IMPORT = {
    "utils": set(),
    "exceptions": set(),
    "features": BASE,
    "datasets": BASE,
    "metrics": BASE,
    "model_selection": BASE,
    "models": BASE | {"features"},
    "io": BASE | {"features"},
    "inspection": BASE | {"features", "models"},
    "plot": BASE | {"models", "metrics", "features", "inspection"},
    "report": BASE | {"features", "inspection", "io", "metrics", "models", "plot"},
    "workflow": BASE | {"datasets", "features", "inspection", "io", "metrics", "model_selection", "models", "plot",
                        "report"},
    "cli": BASE | {"datasets", "features", "inspection", "io", "metrics", "model_selection", "models", "plot",
                   "report", "workflow"},
}


def _modules():
    """``{dotted module name: path}`` of the package (a package is its ``__init__``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """``(imported name, line, inside a function)`` for every import statement of a module;
    ``from m import a`` gives ``m.a`` (trimmed to ``m`` later where ``a`` is not a module)."""
    tree = ast.parse(path.read_text(), str(path))
    local = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            local.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno, id(node) in local
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            for alias in node.names:
                yield f"{module}.{alias.name}", node.lineno, id(node) in local


def _owner(target):
    """The skasd module an imported name belongs to (``skasd.io.save`` -> ``skasd.io``), else None."""
    while target and target not in MODULES:
        target = target.rpartition(".")[0]
    return target or None


def _graph():
    """``{module: {imported skasd module: line}}``; importing ``a.b.c`` imports ``a.b`` and ``a``
    (their ``__init__``) too, except the importer's own packages, which are loading already."""
    graph = {}
    for name, path in MODULES.items():
        edges = graph.setdefault(name, {})
        for target, line, _ in _imports(name, path):
            owner = _owner(target) if target.split(".")[0] == "skasd" else None
            while owner:
                if owner != name and not name.startswith(owner + "."):
                    edges.setdefault(owner, line)
                owner = owner.rpartition(".")[0]
    return graph


def _cycles(graph):
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
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
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read():
    graph = _graph()
    assert len(MODULES) > 50
    assert "skasd.models._base" in graph["skasd.models._inlier"]
    assert "skasd.workflow" in graph["skasd.cli._commands"]


def test_no_import_cycle():
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_nothing_imports_the_cli():
    graph = _graph()
    offenders = [f"{m} (line {line})" for m, edges in graph.items() if not m.startswith("skasd.cli")
                 for t, line in edges.items() if t.startswith("skasd.cli")]
    assert not offenders, f"library modules importing the command line: {offenders}"


def _layer(module):
    """The subpackage (or top-level module) of a skasd module: ``skasd.io._codec`` -> ``io``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_subpackages_follow_the_dependency_rule():
    assert set(MAY_IMPORT) == {_layer(m) for m in MODULES} - {""}
    offenders = [f"{m} -> {t} (line {line})" for m, edges in _graph().items() for t, line in edges.items()
                 if _layer(m) and _layer(t) and _layer(t) != _layer(m) and _layer(t) not in MAY_IMPORT[_layer(m)]]
    assert not offenders, f"imports against the dependency rule (ARCHITECTURE.md): {offenders}"


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_inlier_detectors_import_without_torch():
    out = _run(
        "import sys, skasd; skasd.KNNDetector; skasd.MahalanobisDetector; skasd.GMMDetector; skasd.ScoreFusion; "
        "print('torch' in sys.modules, 'skorch' in sys.modules)"
    )
    assert out == ["False", "False"]


@pytest.mark.parametrize("module", ["skasd", "skasd.features", "skasd.io", "skasd.metrics", "skasd.cli"])
def test_importing_loads_no_torch(module):
    assert _run(f"import sys, {module}; print('torch' in sys.modules)") == ["False"]


def test_sklearn_private_api_only_in_the_compat_module():
    private = re.compile(r"^sklearn(\.[A-Za-z]\w*)*\._|^sklearn\.[\w.]*\b_\w")
    offenders = [f"{name}:{line} {target}" for name, path in MODULES.items() if name != SKLEARN_COMPAT
                 for target, line, _ in _imports(name, path) if private.match(target)]
    assert not offenders, f"scikit-learn private API imported outside {SKLEARN_COMPAT}: {offenders}"


def test_function_local_imports_only_for_optional_dependencies():
    offenders = [f"{name}:{line} {target}" for name, path in MODULES.items()
                 for target, line, local in _imports(name, path)
                 if local and not any(target == a or target.startswith(a + ".") for a in LAZY_ALLOWED)]
    assert not offenders, f"function-local imports of required modules: {offenders}"


def test_tests_live_outside_the_package():
    assert not [p for p in PACKAGE.rglob("*") if p.is_dir() and p.name == "tests"]
    assert not list(PACKAGE.rglob("conftest.py")) and not list(PACKAGE.rglob("test_*.py"))


@pytest.mark.parametrize("folder", ["docs", "examples", "benchmarks"])
def test_public_material_imports_public_names_only(folder):
    private = re.compile(r"skasd(\.\w+)*\._(?!_)\w|from skasd[\w.]* import [^\n]*\b_(?!_)\w")
    files = [p for p in (ROOT / folder).glob("*") if p.suffix in (".py", ".rst", ".md", ".txt")]
    if not files:
        pytest.skip(f"{folder}/ not in this checkout")
    offenders = [f"{p.name}:{i}" for p in files for i, line in enumerate(p.read_text().splitlines(), 1)
                 if private.search(line)]
    assert not offenders, f"private skasd names in {folder}/: {offenders}"
