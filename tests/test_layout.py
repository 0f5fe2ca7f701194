"""The package's layout: the rules ARCHITECTURE.rst states, checked on the source."""

import ast
from pathlib import Path

import pytest

import sklearn_dnn2gp

PACKAGE = Path(sklearn_dnn2gp.__file__).parent
# ARCHITECTURE.rst: small modules with one job each.
MAX_LINES = 500


def _modules():
    """``{dotted name: path}`` of every module of the package."""
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.with_suffix("").relative_to(PACKAGE.parent).parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _relative_imports(name, path):
    """``(target module, imported names)`` of each relative import of a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
            yield target, [alias.name for alias in node.names]


def test_no_module_is_over_the_limit():
    lengths = {name: len(path.read_text().splitlines()) for name, path in _modules().items()}
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_imports_have_no_cycle():
    modules = _modules()
    edges = {name: set() for name in modules}
    for name, path in modules.items():
        for target, names in _relative_imports(name, path):
            for candidate in [target] + [f"{target}.{n}" for n in names]:
                if candidate in modules and candidate != name:
                    edges[name].add(candidate)
    state, cycles = {}, []

    def visit(node, stack):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(modules):
        if node not in state:
            visit(node, [])
    assert cycles == []


def _subpackage(name):
    parts = name.split(".")
    return parts[1] if len(parts) > 2 else None  # None: the top level


def test_no_underscored_name_crosses_a_subpackage():
    # A subpackage's private helpers stay inside it; what another part of the package
    # needs from a module is a name without an underscore.
    modules = _modules()
    crossing = []
    for name, path in modules.items():
        for target, names in _relative_imports(name, path):
            if target in modules and _subpackage(target) != _subpackage(name):
                crossing += [f"{name} <- {target}.{n}" for n in names
                             if n.startswith("_") and not n.startswith("__")]
    assert crossing == []


@pytest.mark.parametrize("estimator", [sklearn_dnn2gp.DNN2GPRegressor,
                                       sklearn_dnn2gp.DNN2GPClassifier])
def test_the_posterior_parameter_is_the_registry(estimator):
    from sklearn_dnn2gp.posteriors import POSTERIOR_OPTIONS, POSTERIORS

    (constraint,) = estimator._parameter_constraints["posterior"]
    assert constraint.options is POSTERIOR_OPTIONS
    assert POSTERIOR_OPTIONS == {"auto", *POSTERIORS}
