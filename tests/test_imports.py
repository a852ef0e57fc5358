"""The package's modules import each other without cycles (module-level imports, TYPE_CHECKING aside)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "audio_vqvae"


def _module(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports at module level (relative or absolute)."""
    name, found = _module(path), set()
    statements = []
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            continue
        statements.append(node)
    for node in statements:
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith("audio_vqvae"):
            found |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("audio_vqvae")}
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            found |= (
                {".".join(base + [node.module])} if node.module else {".".join(base + [a.name]) for a in node.names}
            )
    return found


def test_no_import_cycles():
    graph = {_module(p): _imports(p) for p in PACKAGE.rglob("*.py")}
    # Importing a.b.c runs the packages a.b's and a's __init__ first: they are dependencies too.
    parents = {
        m: {".".join(d.split(".")[:i]) for d in deps for i in range(2, d.count(".") + 1)} for m, deps in graph.items()
    }
    graph = {
        m: {d for d in deps | parents[m] if d in graph and d != m and not m.startswith(d + ".")}
        for m, deps in graph.items()
    }
    assert len(graph) > 30 and graph["audio_vqvae.inference.synthesis"] >= {
        "audio_vqvae.generation",
        "audio_vqvae.models.vqvae",
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(graph[module]):
            assert state.get(dep) != 1, "import cycle: " + " -> ".join(path[path.index(dep) :] + [dep])
            if dep not in state:
                visit(dep, path + [dep])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
