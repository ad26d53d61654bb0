"""The layering of CONVENTIONS.md, held by a test: contracts/ imports nothing of ours; producers/ and
consumers/ depend on contracts/ and never on each other. Read from the source (every ``import`` and
``from ... import``, at any depth, including imports inside functions), so a lazy import cannot hide."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = {"contracts", "producers", "consumers", "cli", "bench", "services", "sql", "tests"}
ALLOWED = {
    "contracts": {"contracts"},
    "producers": {"contracts", "producers", "sql"},
    "consumers": {"contracts", "consumers", "sql"},
}


def imported_packages(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layers_import_only_what_they_may(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {k: v for k, v in wrong.items() if v} == {}


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from consumers import writer\n    import producers.publisher\n")
    assert imported_packages(module) == {"consumers", "producers"}
