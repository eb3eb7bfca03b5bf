"""The package's layers, read from the source: imports run one way, and no module imports itself back.

Every import counts, one inside a function too (a lazy import for start-up speed is fine; one that hides a cycle
is not). ``LAYERS`` is the architecture README.md draws: a module may import its own unit (a top-level module or
subpackage of ``orchestrator``) and any unit of a lower layer, never one of its own layer's other units above it
in the list or one of a higher layer.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "orchestrator"

#: Lowest first. Units within one layer may import each other only in the order listed (earlier ones lower).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("orchestrator", "errors", "config", "resources", "scratch", "families", "problems", "sd_scripts",
                    "clip_tokenizer")),
    ("data", ("spec", "suites")),
    ("kohya", ("kohya",)),
    ("storage", ("artifacts", "tracking")),
    ("datasets", ("datasets",)),
    ("services", ("base_model", "provenance", "history", "executors", "evaluation", "testmodel")),
    ("orchestration", ("runs", "launch", "sweeps")),
    ("interface", ("ui", "cli", "__main__")),  # the cli serves the ui: `orchestrator ui`
]
RANK = {unit: (layer, position) for layer, (_, units) in enumerate(LAYERS) for position, unit in enumerate(units)}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "orchestrator"


def import_graph() -> dict[str, dict[str, int]]:
    """module -> {imported module of the package: first line}; ``from pkg import sub`` counts as importing sub."""
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: dict[str, int] = {}

        def add(target: str, line: int) -> None:
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.setdefault(target, line)

        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    add(full if full in files else base, node.lineno)
        graph[name] = found
    return graph


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    wrong = []
    for module, targets in sorted(graph.items()):
        for target, line in sorted(targets.items()):
            here, there = unit_of(module), unit_of(target)
            if here in RANK and there in RANK and here != there and RANK[there] > RANK[here]:  # unknown: other test
                wrong.append(f"{module} line {line} imports {target} ({there} is above {here})")
    return wrong


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_every_unit_has_a_layer():
    assert sorted({unit_of(m) for m in import_graph()} - set(RANK)) == []


def test_imports_run_one_way():
    assert upward_imports(import_graph()) == []


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_spec_imports_nothing_of_kohya_evaluation_or_tracking():
    graph = import_graph()
    reachable, todo = set(), ["orchestrator.spec"]
    while todo:
        for target in graph[todo.pop()]:
            if target not in reachable:
                reachable.add(target)
                todo.append(target)
    assert sorted(m for m in reachable if unit_of(m) in ("kohya", "evaluation", "tracking", "launch")) == []


def test_cli_command_modules_use_only_the_output_module_of_the_cli():
    """The root registers the command modules; they share output.py and never import each other or the root."""
    graph = import_graph()
    commands = [m for m in graph if m.startswith("orchestrator.cli.") and m != "orchestrator.cli.output"]
    assert len(commands) >= 8, commands
    wrong = {m: sorted(t for t in graph[m] if unit_of(t) == "cli" and t != "orchestrator.cli.output")
             for m in commands}
    assert {m: t for m, t in wrong.items() if t} == {}
    assert sorted(t for t in graph["orchestrator.cli.output"] if unit_of(t) == "cli") == []


@pytest.mark.parametrize(("graph", "expected"), [
    ({"orchestrator.spec": {"orchestrator.kohya.validate": 3}, "orchestrator.kohya.validate": {}},
     ["orchestrator.spec line 3 imports orchestrator.kohya.validate (kohya is above spec)"]),
    ({"orchestrator.suites": {"orchestrator.spec": 1}, "orchestrator.spec": {"orchestrator.suites": 2}},
     ["orchestrator.spec line 2 imports orchestrator.suites (suites is above spec)"]),
    ({"orchestrator.kohya.plan": {"orchestrator.kohya.validate": 1}}, []),
])
def test_the_layer_check_itself(graph, expected):
    assert upward_imports(graph) == expected


def test_the_cycle_check_itself():
    graph = {"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {"a": 1}}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b": 1}, "b": {}}) == []
