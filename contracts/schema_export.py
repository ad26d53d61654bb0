"""JSON Schema for every contract, so engines in other languages can validate before they publish."""

from __future__ import annotations

import json
from pathlib import Path

import contracts.registry  # noqa: F401 - registers every slice
from contracts.envelope import EVENT_TYPES


def export(directory: Path) -> list[Path]:
    """Write ``<ledger>/<EVENT_TYPE>.schema.json`` for every registered event type, plus an index."""
    written: list[Path] = []
    index = []
    for entry in sorted(EVENT_TYPES.values(), key=lambda e: e.tag):
        target = directory / entry.spec.name / f"{entry.name}.schema.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        schema = entry.model.model_json_schema(mode="validation")
        schema["$id"] = f"selene-ledger/{entry.spec.name}/{entry.name}"
        target.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(target)
        index.append(
            {
                "ledger": entry.spec.name,
                "event_type": entry.name,
                "table": entry.spec.table,
                "schema": str(target.relative_to(directory)),
            }
        )
    (directory / "index.json").write_text(json.dumps(index, indent=2) + "\n")
    written.append(directory / "index.json")
    return written
