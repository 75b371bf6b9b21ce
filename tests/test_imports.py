"""The import graph of ecgedge, drawn from the source with ``ast``: no loops, and the layering holds.

Layers, lowest first: ``config``/``errors`` -> ``manifest`` (the artefact format) -> ``export`` /
``runtime`` -> ``stream`` / ``bench`` / ``serve`` -> ``cli``; ``bridge`` (the wire) sits on
``config``/``errors`` only, below ``stream``. Every import counts, at any level
(inside functions too: a lazy import is still a dependency), except a script's
``if __name__ == "__main__":`` block: that code runs as the ``__main__`` module, never as the
module that holds it, so it cannot close a loop (``python -m ecgedge.cli.serve`` runs the command that way).
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ecgedge"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _is_main_guard(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return (isinstance(node, ast.If) and isinstance(test, ast.Compare) and isinstance(test.left, ast.Name)
            and test.left.id == "__name__" and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators))


def _imported_names(module: str, path: Path) -> set[str]:
    """Every dotted name ``module`` imports, at any level, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_main_guard(node):
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1] + [node.module or ""]).strip(".") if node.level else node.module
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # ``from pkg import mod`` imports pkg.mod
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return names


@cache
def module_graph() -> dict[str, frozenset[str]]:
    """ecgedge module -> the ecgedge modules it imports (a module's parent packages run first: they count)."""
    modules = _modules()
    graph = {}
    for module, path in modules.items():
        targets = set()
        for name in _imported_names(module, path):
            parts = name.split(".")
            for i in range(2, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in modules and target != module and not module.startswith(target + "."):
                    targets.add(target)
        graph[module] = frozenset(targets)
    return graph


def third_party_imports(module: str) -> set[str]:
    """Top-level names of what ``module`` imports from outside ecgedge, at any level."""
    return {name.split(".")[0] for name in _imported_names(module, _modules()[module]) if name.split(".")[0] != "ecgedge"}


def unit(module: str) -> str:
    """The package a module belongs to (``ecgedge.export``), or the module itself when it sits at the top (``ecgedge.config``)."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (PACKAGE / parts[-1]).is_dir() else module


# Modules known to sit in the wrong package (work in progress), each with the way out. They count as
# units of their own; the test fails once one no longer closes a loop from its package, so the list cannot go stale.
MISPLACED: dict[str, str] = {}


def unit_graph(*, misplaced: bool = True) -> dict[str, set[str]]:
    """Packages and top-level modules -> those they import (:data:`MISPLACED` modules apart unless ``misplaced`` is False)."""
    def of(module: str) -> str:
        return module if misplaced and module in MISPLACED else unit(module)

    graph: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        graph.setdefault(of(module), set()).update(of(t) for t in targets if of(t) != of(module))
    return graph


def find_cycle(graph) -> list[str] | None:
    """One cycle of ``graph`` as a path whose last node is its first, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := dfs(start)):
            return found
    return None


def reachable(graph, start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def test_the_graph_sees_every_kind_of_import():
    """A sanity check of the parser on modules whose imports are known (lazy, relative-free, from-package)."""
    graph = module_graph()
    assert "ecgedge.manifest" in graph["ecgedge.runtime.loader"]
    assert "ecgedge.runtime.tensorrt_runner" in graph["ecgedge.runtime.loader"]  # imported inside a function
    assert "ecgedge.runtime" in graph["ecgedge.runtime.triton_runner"] or "ecgedge.runtime.loader" in graph["ecgedge.runtime.triton_runner"]
    assert "ecgedge.cli.serve" in graph["ecgedge.cli.main"]  # ``from ecgedge.cli import serve as serve_cli``
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_between_modules():
    cycle = find_cycle(module_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_packages():
    """Packages (ecgedge.export, ecgedge.runtime, ...) and top-level modules import each other one way only."""
    cycle = find_cycle(unit_graph())
    assert cycle is None, "import cycle between packages: " + " -> ".join(cycle)
    if MISPLACED:
        assert find_cycle(unit_graph(misplaced=False)), f"{', '.join(MISPLACED)} no longer close(s) a loop: empty MISPLACED"


@pytest.mark.parametrize("module, allowed", [
    ("ecgedge.errors", set()),
    ("ecgedge.config", {"ecgedge.errors"}),
    ("ecgedge.fsio", {"ecgedge.errors"}),  # the one atomic-write helper: everything that writes stands on it
    ("ecgedge.signing", {"ecgedge.errors", "ecgedge.fsio"}),
    ("ecgedge.manifest", {"ecgedge.config", "ecgedge.errors", "ecgedge.fsio", "ecgedge.hashing", "ecgedge.signing"}),
])
def test_the_bottom_layers_import_only_what_is_below_them(module, allowed):
    assert reachable(module_graph(), module) - {module} <= allowed


def test_the_layers_above_manifest():
    units = unit_graph()
    below = {"ecgedge.config", "ecgedge.errors", "ecgedge.manifest", "ecgedge.hashing", "ecgedge.signing", "ecgedge.paths", "ecgedge"}
    assert units["ecgedge.runtime"] <= below, "the runtime reads the format; it imports neither export nor anything above"
    for upper in ("ecgedge.stream", "ecgedge.bench", "ecgedge.serve", "ecgedge.export", "ecgedge.runtime"):
        assert "ecgedge.cli" not in reachable(units, upper), f"{upper} reaches the CLI"


def test_the_edge_path_sits_below_the_scoring_room():
    """Everything that scores (records, streams, the gate, the PyTorch reference) lives in
    ``ecgedge.evaluate``; the edge path (bridge, runtime, stream) sits below it and never reaches it."""
    units = unit_graph()
    for edge in ("ecgedge.bridge", "ecgedge.runtime", "ecgedge.stream"):
        assert "ecgedge.evaluate" not in reachable(units, edge), f"{edge} reaches ecgedge.evaluate"


# The PyTorch FP32 reference runner (export's parity and gate reference, training's scores, evaluate on a
# checkpoint, bench's baseline; torch inside its functions): no deployment backend, so it lives in the
# scoring room, and no edge path may reach it.
REFERENCE_ONLY = {"ecgedge.evaluate.reference"}


@pytest.mark.parametrize("start", ["ecgedge.manifest", "ecgedge.runtime", "ecgedge.bridge", "ecgedge.stream.session", "ecgedge.stream.run", "ecgedge.stream.monitor", "ecgedge.stream.ward"])
def test_the_edge_path_imports_no_torch_at_any_level(start):
    """Statically, lazy imports included (tests/test_runtime.py runs the same path with torch blocked)."""
    graph = module_graph()
    modules = reachable(graph, start) | {m for m in graph if m.startswith(start + ".")}
    with_torch = sorted(m for m in modules if "torch" in third_party_imports(m))
    assert not with_torch, f"{start} reaches modules that import torch: {', '.join(with_torch)}"
    assert not reachable(graph, start) & REFERENCE_ONLY, f"{start} reaches the torch reference runner"


def test_the_wire_sits_below_classification():
    """``ecgedge.bridge`` (frames, COBS, decoder, sequence tracker, byte sources) is the Python end of
    ``firmware_bridge/``: it reads the configuration, raises the error family and finds the installed
    ``ecgsim`` (``ecgedge.installation``, stdlib only), nothing else; ``ecgedge.stream`` classifies what
    it delivers."""
    units = unit_graph()
    allowed = {"ecgedge.config", "ecgedge.errors", "ecgedge.installation"}
    assert units["ecgedge.bridge"] <= allowed, units["ecgedge.bridge"]
    assert "ecgedge.bridge" in units["ecgedge.stream"]
    graph = module_graph()
    wire = {m for m in graph if m.startswith("ecgedge.bridge")}
    assert not {m for m in wire if third_party_imports(m) - {"numpy", "serial", "__future__"} - set(sys.stdlib_module_names)}


TESTS = PACKAGE.parent / "tests"


def test_no_test_module_imports_another():
    """Helpers that several test modules share live in ``tests/helpers.py`` (fixtures in ``conftest.py``):
    importing a test module from another runs its module-level code twice and ties their fixtures together."""
    offenders = []
    for path in sorted(TESTS.glob("test_*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0].startswith("test_")]
    assert not offenders, "; ".join(offenders)


def test_the_ward_sits_beside_the_cli_above_stream():
    """``ecgedge.ward`` (the gateway, its database and page) builds on ``stream`` and ``bridge``; nothing
    below the CLI reaches it, and the edge path never imports its web and database packages."""
    units = unit_graph()
    assert "ecgedge.stream" in units["ecgedge.ward"] and "ecgedge.cli" not in reachable(units, "ecgedge.ward")
    for below in ("ecgedge.stream", "ecgedge.bridge", "ecgedge.runtime", "ecgedge.manifest", "ecgedge.evaluate", "ecgedge.bench"):
        assert "ecgedge.ward" not in reachable(units, below), f"{below} reaches ecgedge.ward"
    graph = module_graph()
    web = {"starlette", "uvicorn", "fhir", "psycopg", "selenium"}
    for start in ("ecgedge.stream.session", "ecgedge.stream.run", "ecgedge.bridge", "ecgedge.runtime"):
        modules = reachable(graph, start) | {m for m in graph if m.startswith(start + ".")}
        assert not {m for m in modules if third_party_imports(m) & web}, f"{start} reaches the ward's dependencies"


def test_one_pytorch_reference_runner():
    """Every PyTorch reference path (export's parity and gate reference, training's held-out scores,
    ``evaluate`` on a checkpoint, bench's baseline) runs ``evaluate.reference``: no other module
    defines a Runner that imports torch, and the checkpoint rule (``unfinished_reason``) is asked
    only there (and where it is defined)."""
    offenders, rule = [], []
    for module, path in _modules().items():
        tree = ast.parse(path.read_text(), str(path))
        runners = [n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)
                   and any(getattr(b, "id", getattr(b, "attr", "")) == "Runner" for b in n.bases)]
        if runners and "torch" in third_party_imports(module) and module not in REFERENCE_ONLY:
            offenders.append(f"{module}: {', '.join(runners)}")
        if "unfinished_reason" in {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}:
            rule.append(module)
    assert not offenders, "PyTorch runners outside ecgedge.evaluate.reference: " + "; ".join(offenders)
    # train.classifier only records the reason of a CAE that --allow-incomplete-init let through
    assert set(rule) <= REFERENCE_ONLY | {"ecgedge.train.classifier"}, f"the checkpoint rule is asked outside evaluate.reference: {', '.join(sorted(rule))}"


def test_nothing_below_the_cli_imports_it_even_as_a_script():
    """No arrow runs back up to the CLI, not even from a ``python -m`` block: a module's command-line
    entry lives in ``ecgedge.cli`` (``python -m ecgedge.cli.serve``)."""
    offenders = []
    for module, path in _modules().items():
        if module.startswith("ecgedge.cli") or module in ("ecgedge", "ecgedge.__main__"):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{module}:{node.lineno}" for n in names if n.startswith("ecgedge.cli")]
    assert not offenders, "imports of the CLI from below it: " + ", ".join(offenders)


def test_the_data_face_names_every_public_home():
    """``ecgedge.data`` exports what other packages use, each from its one module, lazily: importing
    the package imports none of its modules."""
    import importlib
    import subprocess

    data = importlib.import_module("ecgedge.data")
    for name in data.__all__:
        value = getattr(data, name)
        assert value is getattr(importlib.import_module(f"ecgedge.data.{data._HOME[name]}"), name), name
    code = "import sys, ecgedge.data; print(sorted(m for m in sys.modules if m.startswith('ecgedge.data.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


FIRMWARE = PACKAGE.parent / "firmware_bridge"


def test_the_c_side_runs_only_the_documented_entry_points():
    """The C side calls back into the package by module path (``python -m MODULE``); no import graph
    sees that, so this does: each module a C source names exists, keeps its ``main`` and ``python -m``
    guard, and is named in firmware_bridge/README.md's table of entry points."""
    import re

    named: dict[str, set[str]] = {}
    for source in sorted((FIRMWARE / "sim").glob("*.c")):
        for module in re.findall(r'"(ecgedge(?:\.[a-z_0-9]+)+)"', source.read_text()):
            named.setdefault(module, set()).add(source.name)
    assert named == {"ecgedge.data.device_samples": {"ecgsim.c"}, "ecgedge.export.mcu_device": {"classify.c"}}, named
    readme = (FIRMWARE / "README.md").read_text()
    for module, sources in named.items():
        path = _modules().get(module)
        assert path is not None, f"{', '.join(sources)} runs python -m {module}, which no longer exists"
        tree = ast.parse(path.read_text(), str(path))
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), f"{module} has no main()"
        assert any(_is_main_guard(n) for n in tree.body), f"{module} has no python -m guard"
        assert f"`python -m {module}`" in readme, f"firmware_bridge/README.md does not name python -m {module}"


def test_no_private_name_crosses_a_file():
    """A name one module takes from another is public (no leading underscore): a private that several
    files need is made public or moved home. ``ecgedge._build_info`` is a generated module, not a name."""
    offenders = []
    for module, path in _modules().items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ecgedge") and not node.level:
                offenders += [f"{module} takes {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__") and a.name != "_build_info"]
    assert not offenders, "; ".join(offenders)
