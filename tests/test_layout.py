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


# The rows of the README's table of enas/: a module imports only from its own row or above.
LAYERS = (
    ("errors", "search_space", "arc", "precision", "recipes", "child_config", "config", "distribute"),
    ("data_common", "data_utils", "data_utils_cifar"),
    ("common_ops", "micro_ops", "micro_cell", "micro_child"),
    ("controller", "micro_controller"),
    ("layer_paths", "run_dir", "summaries", "log_format"),
    ("model_summary", "export", "tflite_export", "draw", "plots", "cost"),
    ("child_trainer", "run_loop", "train_fixed", "search_cost", "search", "ranking", "study"),
    ("flags", "command", "cli", "tf_log"),
)


def test_enas_modules_import_only_from_lower_layers():
    row = {f"enas.{name}": i for i, names in enumerate(LAYERS) for name in names}
    graph = _graph()
    listed = {m for m in graph if m.startswith("enas.")}
    assert listed == set(row), sorted(listed ^ set(row))  # the table names every module
    upward = {m: sorted(d for d in deps if d in row and row[d] > row[m])
              for m, deps in graph.items() if m in row}
    assert not {m: d for m, d in upward.items() if d}, upward
