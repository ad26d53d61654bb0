"""The peer's records (``bench.peer``): what Connect's JsonConverter gets must fit the schema the records
declare, for every event the bench stream carries, or the Debezium JDBC sink task fails on the first one
(``Invalid null value for required STRING field``: the slices' examples without an idempotency key, found by
the lead's run at c2986e8)."""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest

from bench.peer import VALUE_SCHEMA, _expected_rows, json_with_schema
from bench.peer_fair import CONNECT_TYPES, busiest_ledger, row_record, row_schema
from bench.stream import Template, as_records, build_template
from consumers.pipeline import Pipeline
from contracts.settings import Settings

KINDS = {"string": str, "int32": int}


@pytest.fixture(scope="module")
def template() -> Template:
    # Small, but with every declared slice's examples (at least one per user) and duplicates.
    return build_template(600)


def _rows(template: Template) -> list[dict[str, Any]]:
    return [json.loads(json_with_schema(r)) for r in template.records]


def test_every_record_fits_its_declared_schema(template: Template) -> None:
    docs = _rows(template)
    assert {d["payload"]["ledger"] for d in docs} >= {"audit_events", "conversation_ledger", "memory_ledger"}
    fields: list[dict[str, Any]] = VALUE_SCHEMA["fields"]  # type: ignore[assignment]
    bad = []
    for doc in docs:
        assert doc["schema"] == VALUE_SCHEMA
        row = doc["payload"]
        assert set(row) == {f["field"] for f in fields}
        for f in fields:
            value = row[f["field"]]
            if value is None and f["optional"]:
                continue
            if not isinstance(value, KINDS[f["type"]]):
                bad.append((row["ledger"], row["event_type"], f["field"], value))
    assert not bad, bad[:5]


def test_one_peer_row_per_unique_event(template: Template) -> None:
    """Keyless events keep one row each (their event id is their key), and re-sends collapse: the peer's
    row count, which its clock waits for, is the stream's unique rows; and no two of them share the second
    unique index (tenant, event id)."""
    rows = [d["payload"] for d in _rows(template)]
    assert _expected_rows(template.records) == template.counts["unique_rows"]
    assert len({(r["tenant_id"], r["event_uuid"]) for r in rows}) == template.counts["unique_rows"]
    keyless = [r for r in rows if r["idempotency_key"].startswith("event:")]
    assert keyless
    assert all(r["idempotency_key"] == f"event:{r['event_uuid']}" for r in keyless)


def test_fair_peer_records_carry_the_writers_rows(template: Template) -> None:
    """The fair peer's records are the writer's own rows (``LedgerTable.row``) in Connect's JSON: every column
    the writer inserts, of a Connect type its PostgreSQL type maps to, byte for byte where it matters (the
    content digest and chain hash as base64 of the same bytes)."""
    settings = Settings()
    pipeline = Pipeline(settings)
    for table in pipeline.ledger_tables.values():
        assert {t for _, t in table.columns} <= set(CONNECT_TYPES), table.spec.table
    body = [r for r in template.records if not r.foundation and not r.duplicate]
    rows = [i.row for i in pipeline.decode(as_records(body, settings.topic_prefix, 3)) if i.row is not None]
    assert busiest_ledger(rows) in {"conversation_ledger", "audit_events"}
    for row in rows[:300]:
        row.values.update(chain_seq=1, row_hash=bytes(32))  # as ``stamp`` sets them
        table = pipeline.ledger_tables[row.event.ledger]
        doc = json.loads(row_record(table, row_schema(table), row))
        assert [f["field"] for f in doc["schema"]["fields"]] == list(table.column_names)
        got = doc["payload"]
        assert base64.b64decode(got["content_sha256"]) == row.values["content_sha256"]
        assert uuid.UUID(got["event_uuid"]) == row.event.event_id
        assert got["payload"] == row.values["payload"]
        assert got["source_offset"] == row.values["source_offset"]
