"""The package layout: ``enas/`` is split into sub-packages by job, each importing only from
itself and the sub-packages below it; the library never imports a top-level script; no two
modules import each other (directly or through others), counting imports inside functions too."""

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("enas", "quantize", "binarize", "ternarize")
SCRIPTS = {p.stem for p in REPO.glob("*.py")}

# enas's sub-packages from the bottom up (the table in enas/__init__.py): a module of one imports
# only modules of its own or of those before it. ``errors`` is the one plain module at the bottom.
LAYERS = ("errors", "space", "config", "data", "child", "controller", "cost", "run", "viz", "search",
          "deploy", "cli")
# Importable without TensorFlow or Keras (validation and arc parsing happen before TensorFlow starts).
NO_TENSORFLOW = ("errors", "space", "config")


def _module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(tree, package, top_level_only=False):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def _imports(path, modules):
    """Modules (of ``modules`` or the scripts) that the file at ``path`` imports anywhere."""
    package = _module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else _module_name(path)
    tree = ast.parse(path.read_text(), str(path))
    return {name for name in _imported_names(tree, package) if name in modules or name in SCRIPTS}


def _files():
    return [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]


def _graph():
    modules = {_module_name(p): p for p in _files()}
    return {name: _imports(path, modules) - {name} for name, path in modules.items()}


def _layer(module):
    """Index in LAYERS of an ``enas.*`` module's sub-package, or None for ``enas`` itself."""
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else None


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
    """The checks would pass vacuously if the parser found nothing."""
    graph = _graph()
    assert "enas.config.run_config" in graph["enas.cli.script"] and "quantize.base" in graph["binarize.binary_ops"]
    assert "quantize.storage" in graph["quantize.base"]
    assert "enas.child.replicas" in graph["enas.child.micro_ops"]  # a sibling in the same sub-package


def test_enas_is_split_into_the_listed_sub_packages():
    """Every module of enas/ sits in a sub-package of LAYERS (only errors.py and __init__.py at the
    top), and every sub-package has an __init__ whose docstring says what it holds."""
    top = sorted(p.name for p in (REPO / "enas").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    assert top == sorted(["__init__.py", "errors.py", *(name for name in LAYERS if name != "errors")]), top
    for name in LAYERS[1:]:
        init = REPO / "enas" / name / "__init__.py"
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc.split()) >= 20, f"{init}: a one-paragraph docstring saying what the sub-package holds"
        for module in (REPO / "enas" / name).glob("*.py"):
            if module.name != "__init__.py":
                assert module.stem in doc, f"{init}'s docstring does not mention {module.stem}"


def test_enas_sub_packages_import_only_downwards():
    graph = _graph()
    upward = {}
    for module, deps in graph.items():
        if not module.startswith("enas.") or _layer(module) is None:
            continue
        bad = sorted(d for d in deps if d.startswith("enas.") and _layer(d) is not None
                     and _layer(d) > _layer(module))
        if bad:
            upward[module] = bad
    assert not upward, upward
    # quantize/, binarize/, ternarize/ are the layers' library: they never import enas.
    assert not {m: d for m, d in graph.items() if not m.startswith("enas") and any(x.startswith("enas") for x in d)}


def test_space_and_config_import_no_tensorflow():
    """Importing errors, space and config (as a script does to validate its flags) loads neither
    TensorFlow nor Keras."""
    modules = ["enas.errors"] + [_module_name(p) for name in NO_TENSORFLOW[1:] for p in (REPO / "enas" / name).glob("*.py")]
    code = (f"import sys\nfor m in {modules!r}:\n    __import__(m)\n"
            "print(sorted(m for m in ('tensorflow', 'keras') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]", (modules, result.stdout)
