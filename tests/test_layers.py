"""The packages of ferkit import only those below them (README, "How the code is laid out")."""

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "ferkit"
# Lowest first; a package may import packages of lower layers only (none of its own layer but itself).
LAYERS = (
    ("errors",),
    ("labels", "preprocessing", "extras"),
    ("models", "detection"),
    ("data",),
    ("inference",),
    ("explain", "video"),
    ("evaluation", "batch"),
    ("training",),
    ("finetune",),
    ("serve", "app"),
    ("cli", "__init__", "__main__"),
)
LAYER = {name: level for level, names in enumerate(LAYERS) for name in names}


def _package(path: Path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else path.stem


def imports() -> list[tuple[str, str, str]]:
    """(importing package, imported package, file) for every `ferkit.X` import, lazy ones included."""
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level else (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("ferkit."):
                    found.append((_package(path), name.split(".")[1], str(path.relative_to(SRC))))
    return found


def test_every_package_has_a_layer():
    packages = {_package(p) for p in SRC.rglob("*.py")}
    assert packages <= set(LAYER), f"give these a layer: {sorted(packages - set(LAYER))}"


def test_no_package_imports_one_above_it_or_beside_it():
    wrong = [f"{file}: {source} imports {target}" for source, target, file in imports()
             if source != target and LAYER[target] >= LAYER[source]]
    assert not wrong, "\n".join(wrong)


def test_the_check_sees_lazy_imports():
    # recognizer.py once imported explain inside a method: the walk must see imports in functions
    assert any(file.startswith("cli") and target == "training" for _, target, file in imports())


@pytest.mark.parametrize("module", ["ferkit.inference.recognizer", "ferkit.batch.workers"])
def test_the_layers_hold_for_what_python_imports(module: str):
    import subprocess
    import sys

    code = (f"import sys, {module}; "
            "print(sorted({m.split('.')[1] for m in sys.modules if m.startswith('ferkit.')}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    level = LAYER[module.split(".")[1]]
    for name in ast.literal_eval(loaded):
        assert LAYER[name] <= level, f"importing {module} loads ferkit.{name}"
