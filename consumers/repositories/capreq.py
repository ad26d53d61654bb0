"""Reads of PH1.CAPREQ: a capability request's current row and its lifecycle events in append order.
Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class CapabilityRequest:
    """A row of ``capreq_current``: the request as its latest allowed action left it."""

    tenant_id: str
    capreq_id: str
    requester_user_id: str
    status: str
    last_action: str
    payload_hash: str
    source_event_id: int
    updated_at: datetime
    last_reason_code: str


@dataclass(frozen=True, slots=True)
class CapreqEvent:
    """A row of the ``capreq_ledger``."""

    capreq_event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    engine_id: str
    event_type: str
    capreq_id: str
    requester_user_id: str
    action: str
    status: str
    reason_code: str
    payload_hash: str
    correlation_id: str
    turn_id: str | None
    idempotency_key: str | None
    occurred_at: datetime
    recorded_at: datetime


_CURRENT_COLUMNS = ", ".join(f.name for f in fields(CapabilityRequest))
_EVENT_COLUMNS = ", ".join(f.name for f in fields(CapreqEvent))

SELECT_CURRENT = f"""
SELECT {_CURRENT_COLUMNS} FROM os_process.capreq_current WHERE tenant_id = $1 AND capreq_id = $2
"""
SELECT_BY_STATUS = f"""
SELECT {_CURRENT_COLUMNS} FROM os_process.capreq_current WHERE tenant_id = $1 AND status = $2
AND capreq_id > $3 ORDER BY capreq_id LIMIT $4
"""
SELECT_EVENTS = f"""
SELECT {_EVENT_COLUMNS} FROM os_process.capreq_ledger
WHERE tenant_id = $1 AND capreq_id = $2 AND capreq_event_id > $3
ORDER BY capreq_event_id LIMIT $4
"""


class CapreqReader:
    """Typed reads of one tenant's capability requests, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def current(self, tenant_id: str, capreq_id: str) -> CapabilityRequest | None:
        """The request's current row, or None if the tenant has no such request."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CURRENT, tenant_id, capreq_id)
        return CapabilityRequest(**dict(row)) if row is not None else None

    async def with_status(
        self, tenant_id: str, status: str, *, after_capreq_id: str = "", limit: int = 1000
    ) -> list[CapabilityRequest]:
        """The tenant's requests in ``status`` (e.g. those pending approval), by id, a page after
        ``after_capreq_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_BY_STATUS, tenant_id, status, after_capreq_id, limit)
        return [CapabilityRequest(**dict(r)) for r in rows]

    async def events(
        self, tenant_id: str, capreq_id: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[CapreqEvent]:
        """The request's ledger rows in append order, a page after ``after_event_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_EVENTS, tenant_id, capreq_id, after_event_id, limit)
        return [CapreqEvent(**dict(r)) for r in rows]
