"""The package layout: the library never imports a top-level script, and no two of its modules
import each other (directly or through others), counting imports inside functions too."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("enas", "quantize", "binarize", "ternarize")
SCRIPTS = {p.stem for p in REPO.glob("*.py")}


def _module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, modules):
    """Modules (of ``modules`` or the scripts) that the file at ``path`` imports anywhere."""
    found = set()
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            if name in modules or name in SCRIPTS:
                found.add(name)
    return found


def _graph():
    files = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def test_library_imports_no_script():
    offenders = {m: sorted(deps & SCRIPTS) for m, deps in _graph().items() if deps & SCRIPTS}
    assert not offenders, offenders


def test_no_import_cycles():
    graph = _graph()
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                cycles.append(stack[stack.index(dep):] + [dep])
            elif dep not in state:
                visit(dep, stack + [dep])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, cycles


def test_the_graph_sees_imports():
    """The checks above would pass vacuously if the parser found nothing."""
    graph = _graph()
    assert "enas.config" in graph["enas.cli"] and "quantize.base" in graph["binarize.binary_ops"]
    assert "quantize.storage" in graph["quantize.base"]
