"""The README's compose table describes docker-compose.yml: same services, images, ports, profiles, deps."""

from __future__ import annotations

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
