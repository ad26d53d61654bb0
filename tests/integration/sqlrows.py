"""Minimal valid rows for each ledger table, inserted with plain SQL, for the database-level tests.

These tests exercise what PostgreSQL itself enforces (RLS, triggers, privileges, unique keys), so they go
around the Python writer on purpose.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

SCOPE = "SELECT set_config('selene.tenant_ids', $1, true)"


def audit_row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
    return {
        "event_uuid": uuid.uuid4(),
        "tenant_id": tenant,
        "engine_id": "PH1.J",
        "event_type": "AUDIT_RECORDED",
        "reason_code": "TEST_REASON",
        "schema_version": 1,
        "correlation_id": correlation,
        "turn_id": None,
        "idempotency_key": key,
        "occurred_at": datetime.now(UTC),
        "payload": json.dumps({"reason_code": "TEST_REASON", "summary": "x"}),
        "content_sha256": hashlib.sha256(b"x").digest(),
        # Each row its own one-row chain: these rows bypass the writer, which links real chains.
        "source_topic": f"test-{uuid.uuid4().hex}",
        "chain_seq": 1,
        "row_hash": hashlib.sha256(uuid.uuid4().bytes).digest(),
        "source_partition": 0,
        "source_offset": 0,
    }


def conversation_row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
    row = audit_row(tenant, correlation, key)
    del row["reason_code"]
    row.update(
        {
            "engine_id": "PH1.C",
            "event_type": "CONVERSATION_TURN_RECORDED",
            "speaker": "USER",
            "source": "TEXT",
            "text_body": "hello",
            "payload": json.dumps({"speaker": "USER", "source": "TEXT", "text": "hello"}),
        }
    )
    return row


def work_order_row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
    """Idempotency is scoped by work order: the ``correlation`` argument picks the work order too."""
    row = audit_row(tenant, correlation, key)
    row.update(
        {
            "engine_id": "SELENE_OS",
            "event_type": "WORK_ORDER_CREATED",
            "work_order_id": f"wo-{correlation}",
            "payload": json.dumps({"work_order_id": f"wo-{correlation}"}),
        }
    )
    return row


def engine_capability_map_row(tenant: str, correlation: str = "c-1", key: str | None = "k-1") -> dict[str, Any]:
    """This ledger's idempotency is scoped by capability and version, not correlation: the ``correlation``
    argument (another scope, in the shared tests) picks the capability too."""
    payload = {
        "engine_id": "SELENE_OS_CORE_TABLES",
        "capability_id": f"CAP_{correlation}".upper().replace("-", "_"),
        "capability_map_version": 1,
        "reason_code": "TEST_REASON",
        "capability_name": "Test capability",
        "input_schema": "In",
        "output_schema": "Out",
        "allowed_callers": "SELENE_OS_ONLY",
        "side_effects": "NONE",
    }
    row = audit_row(tenant, correlation, key)
    row.update(payload)
    row.update(
        {"publisher_engine_id": "SELENE_OS", "event_type": "CAPABILITY_MAP_PUBLISHED", "payload": json.dumps(payload)}
    )
    return row


LEDGER_ROWS = {
    "os_core.audit_events": audit_row,
    "conversation.conversation_ledger": conversation_row,
    "os_core.work_order_ledger": work_order_row,
    "os_process.engine_capability_maps": engine_capability_map_row,
}


async def insert(conn: asyncpg.Connection, table: str, row: dict[str, Any], scope: str | None) -> None:
    """Insert ``row`` in its own transaction with ``scope`` as the tenant setting (None: unset)."""
    cols = list(row)
    casts = ["::jsonb" if c == "payload" else "" for c in cols]
    sql = (
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
        f"({', '.join(f'${i}{cast}' for i, cast in enumerate(casts, start=1))})"
    )
    async with conn.transaction():
        if scope is not None:
            await conn.execute(SCOPE, scope)
        await conn.execute(sql, *[row[c] for c in cols])


async def count(conn: asyncpg.Connection, table: str, scope: str | None, where: str = "true", *args: Any) -> int:
    async with conn.transaction():
        if scope is not None:
            await conn.execute(SCOPE, scope)
        n: int = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args)
        return n
