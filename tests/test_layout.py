"""The architecture as the imports show it: data flows one way, and each stage keeps to its own.

Read from the source with `ast`, so a violation fails here before it becomes a habit:
- no import cycle among `qa` modules (imports at module level, outside `if TYPE_CHECKING:`);
- the reader (`qa/read/`) never imports the store: it reads the evidence it is handed;
- the faces (`qa/cli.py`, `qa/chat/`) never import the store: they go through the pipeline.
"""

from __future__ import annotations

import ast
from pathlib import Path

QA = Path(__file__).resolve().parents[1] / "qa"


def module_name(path: Path) -> str:
    parts = path.relative_to(QA.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module_level_only: bool) -> set[str]:
    """The `qa` modules `path` imports (`from qa.x import y` counts qa.x and qa.x.y when that is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    nodes: list[ast.AST] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if module_level_only and isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                nodes.extend(child.orelse)
                continue
            nodes.append(child)
            visit(child)

    visit(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names}
    return {m for m in found if m == "qa" or m.startswith("qa.")}


MODULES = {module_name(p): p for p in QA.rglob("*.py")}


def test_no_import_cycle_among_modules():
    graph = {name: {m for m in imported(path, True) if m in MODULES and m != name} for name, path in MODULES.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1 and not nxt.startswith(node + ".") and not node.startswith(nxt + "."):
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)


def test_the_reader_never_imports_the_store():
    for path in (QA / "read").rglob("*.py"):
        assert not any(m == "qa.store" or m.startswith("qa.store.") for m in imported(path, False)), path


def test_the_faces_reach_the_store_only_through_the_pipeline():
    for path in [QA / "cli.py", *(QA / "chat").rglob("*.py")]:
        assert not any(m == "qa.store" or m.startswith("qa.store.") for m in imported(path, False)), path


def test_the_checks_see_imports():
    """The checks above would pass on files they cannot read: they must see what is there."""
    assert "qa.store" in imported(QA / "pipeline.py", True)
    assert "qa.read.span" in imported(QA / "read" / "verdict.py", True)
    assert "qa.pipeline" in imported(QA / "cli.py", False) and "qa.pipeline" not in imported(QA / "cli.py", True)
