"""Imports point one way (DESIGN.md): pure math <- models <- sampling engine / data <- evaluation,
training <- recipes <- cli. Nothing imports recipes or cli; execution imports no torch."""
import ast
from pathlib import Path

import diffucode

PKG = Path(diffucode.__file__).parent

# package -> packages it must not import
FORBIDDEN = {
    "config": {"models", "diffusion", "sampling", "rl", "execution", "evaluation", "analysis", "data", "training", "recipes", "cli", "benchmarks", "serving"},
    "diffusion": {"models", "sampling", "rl", "evaluation", "training", "recipes", "cli", "data", "benchmarks", "serving"},
    "rl": {"recipes", "cli", "training", "benchmarks", "serving"},
    "models": {"sampling", "rl", "evaluation", "training", "recipes", "cli", "analysis", "benchmarks", "serving"},
    "sampling": {"evaluation", "training", "recipes", "cli", "rl", "benchmarks", "serving"},
    "execution": {"models", "diffusion", "sampling", "rl", "evaluation", "analysis", "data", "training", "recipes", "cli", "benchmarks", "serving"},
    "evaluation": {"recipes", "cli", "training", "benchmarks", "serving"},
    "analysis": {"recipes", "cli", "training", "benchmarks", "serving"},
    "data": {"recipes", "cli", "training", "evaluation", "benchmarks", "serving"},
    "training": {"recipes", "cli", "benchmarks", "serving"},
    "recipes": {"cli"},  # recipes/bench.py imports benchmarks (the only importer; tests/test_bench_cli.py checks that)
    "benchmarks": {"recipes", "cli"},
    # run-directory plumbing (atomic writes, locks): standard library only
    "fileio": {"config", "models", "diffusion", "sampling", "rl", "execution", "evaluation", "analysis", "data",
               "training", "recipes", "cli", "benchmarks", "serving"},
    "serving": {"recipes", "cli", "training", "rl", "evaluation", "benchmarks"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            if node.module == "diffucode":
                names.update(f"diffucode.{a.name}" for a in node.names)
    return names


def test_import_direction():
    bad = []
    files = list(PKG.rglob("*.py"))
    assert len(files) > 10
    for f in files:
        rel = f.relative_to(PKG)
        top = rel.parts[0].removesuffix(".py")
        for name in _imports(f):
            parts = name.split(".")
            if parts[0] == "torch" and top == "execution":
                bad.append(f"{rel} imports torch")
            if parts[0] != "diffucode" or len(parts) < 2:
                continue
            if parts[1] in FORBIDDEN.get(top, set()):
                bad.append(f"{rel} imports {name}")
    assert not bad, bad
