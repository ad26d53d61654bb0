"""The README says what is true: its compose table describes docker-compose.yml (same services, images, ports,
profiles, deps), and its publishing section's example and pointers hold."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _readme_table() -> dict[str, list[str]]:
    text = (ROOT / "README.md").read_text()
    start = text.index("| service | image | host port |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = cells
    return rows


def test_readme_compose_table_matches_compose_file() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    table = _readme_table()
    assert set(table) == set(compose)
    for name, (_, image, port, deps, profile, _command) in table.items():
        service = compose[name]
        assert image.strip("`") == service.get("image"), name
        assert (port.strip("`") if port != "-" else None) == (service.get("ports") or [None])[0], name
        named = sorted(re.findall(r"([a-z]+) \(", deps))
        assert named == sorted(service.get("depends_on") or {}), name
        assert (profile if profile != "-" else None) == ((service.get("profiles") or [None])[0]), name


def _section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(title)
    end = text.find("\n#", start + len(title))
    return text[start : end if end != -1 else None]


def test_readme_python_publishing_example_is_python_with_an_async_context_manager_and_a_typed_event() -> None:
    """Static half; tests/e2e/test_readme_publish.py runs the same block against Kafka and the writer."""
    match = re.search(r"```python\n(.*?)```", _section("### From Python"), re.DOTALL)
    assert match
    tree = ast.parse(match.group(1))
    assert any(isinstance(n, ast.AsyncWith) for n in ast.walk(tree))
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    assert {"new_event", "Publisher", "AuditRecorded"} <= calls
    for node in tree.body:  # every import the example makes resolves
        if isinstance(node, ast.ImportFrom):
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                assert hasattr(module, alias.name), f"{node.module}.{alias.name}"


def test_readme_points_other_languages_at_the_wire_format_and_asyncapi() -> None:
    section = _section("### From other languages")
    assert "(docs/WIRE_FORMAT.md)" in section
    assert (ROOT / "docs" / "WIRE_FORMAT.md").is_file()
    assert "asyncapi.json" in section
    assert "schema export" in section
