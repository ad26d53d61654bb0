"""Reads of PH1.J's audit ledger ``os_core.audit_events`` (seed 000 row 2): one correlation's rows in append
order, one row by its envelope event id, and the row standing for a scoped idempotency key (the seeds'
"repeat -> original event id"): (correlation, key), or (work order, key) for a work order's rows.

Tenant-scoped like every repository (``consumers.repositories``): each read names its tenant and runs in a
read-only transaction declaring that tenant alone, so row-level security keeps it inside. The writes are in
``producers/audit.py``: they go through Kafka and the ledger writer like every other append.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from consumers.repositories import one_tenant
from contracts.reasons import ContractViolation, ReasonCode

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AuditEventRecord:
    """A row of ``os_core.audit_events`` (without its hash chain and Kafka provenance columns)."""

    event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    engine_id: str
    event_type: str
    reason_code: str
    schema_version: int
    correlation_id: str
    turn_id: str | None
    idempotency_key: str | None
    user_id: str | None
    device_id: str | None
    session_id: str | None
    work_order_id: str | None
    severity: str
    evidence_ref: dict[str, Any] | None
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]


_COLUMNS = ", ".join(f.name for f in fields(AuditEventRecord))
# ix_audit_events_tenant_correlation_event serves this read.
SELECT_BY_CORRELATION = f"""
SELECT {_COLUMNS} FROM os_core.audit_events
WHERE tenant_id = $1 AND correlation_id = $2 AND event_id > $3
ORDER BY event_id LIMIT $4
"""
# ux_audit_events_tenant_event_uuid
SELECT_BY_EVENT_UUID = f"SELECT {_COLUMNS} FROM os_core.audit_events WHERE tenant_id = $1 AND event_uuid = $2"
# ux_audit_events_tenant_correlation_idempotency: the dedupe scope of rows outside a work order
SELECT_BY_IDEMPOTENCY_KEY = f"""
SELECT {_COLUMNS} FROM os_core.audit_events
WHERE tenant_id = $1 AND correlation_id = $2 AND idempotency_key = $3 AND work_order_id IS NULL
"""
# ux_audit_tenant_work_order_idempotency: the dedupe scope of a work order's rows
SELECT_BY_WORK_ORDER_KEY = f"""
SELECT {_COLUMNS} FROM os_core.audit_events
WHERE tenant_id = $1 AND work_order_id = $2 AND idempotency_key = $3
"""


def _record(row: asyncpg.Record) -> AuditEventRecord:
    """jsonb as Python values, also on a connection without the project's codec."""
    values = dict(row)
    for column in ("payload", "evidence_ref"):
        if isinstance(values[column], str):
            values[column] = json.loads(values[column])
    return AuditEventRecord(**values)


def check_page(limit: int) -> None:
    """A page is 1..MAX_PAGE rows: an unbounded read of a ledger is not a repository call."""
    if not 1 <= limit <= MAX_PAGE:
        raise ContractViolation(f"limit must be 1..{MAX_PAGE}, got {limit}", ReasonCode.EVENT_SCHEMA_INVALID)


class AuditReader:
    """Typed, tenant-scoped reads of the audit ledger on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def events(
        self, tenant_id: str, correlation_id: str, *, after_event_id: int = 0, limit: int = MAX_PAGE
    ) -> list[AuditEventRecord]:
        """The correlation's audit rows in append order (``event_id``, never timestamps), a page after
        ``after_event_id``: the replayable trace of one thread of work."""
        check_page(limit)
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_BY_CORRELATION, tenant_id, correlation_id, after_event_id, limit)
        return [_record(r) for r in rows]

    async def event(self, tenant_id: str, event_uuid: uuid.UUID) -> AuditEventRecord | None:
        """The row appended for the envelope event id ``event_uuid``, or None."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_BY_EVENT_UUID, tenant_id, event_uuid)
        return _record(row) if row is not None else None

    async def by_idempotency_key(
        self, tenant_id: str, correlation_id: str, idempotency_key: str
    ) -> AuditEventRecord | None:
        """The row standing for a scoped idempotency key of a row outside a work order (a replay of it returns
        this row's id), or None."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_BY_IDEMPOTENCY_KEY, tenant_id, correlation_id, idempotency_key)
        return _record(row) if row is not None else None

    async def by_work_order_key(
        self, tenant_id: str, work_order_id: str, idempotency_key: str
    ) -> AuditEventRecord | None:
        """The row standing for an idempotency key of a work order's rows, whatever its correlation, or None."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_BY_WORK_ORDER_KEY, tenant_id, work_order_id, idempotency_key)
        return _record(row) if row is not None else None
