"""Reads of PH1.M: a user's current memory (one key, or all of them) and a memory's events in append order.
Tenant-scoped, see ``consumers.repositories``. Expiry is stored, not applied: upstream names no rule for it on
reads, so a caller compares ``expires_at`` itself."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class Memory:
    """A row of ``memory_current``: a memory as its latest event left it (inactive = forgotten)."""

    tenant_id: str
    user_id: str
    memory_key: str
    memory_value: dict[str, Any] | None
    confidence: str
    sensitivity_flag: str
    last_seen_at: datetime
    active: bool
    use_policy: str
    expires_at: datetime | None
    provenance: dict[str, Any]
    source_ledger_id: int


@dataclass(frozen=True, slots=True)
class MemoryEvent:
    """A row of ``memory_ledger`` (the value and provenance are in ``payload``)."""

    ledger_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    event_type: str
    user_id: str
    memory_key: str
    kind: str
    layer: str
    consent: str
    reason_code: str
    use_policy: str
    expires_at: datetime | None
    idempotency_key: str | None
    occurred_at: datetime
    payload: dict[str, Any]


_CURRENT = ", ".join(f.name for f in fields(Memory))
_EVENT = ", ".join(f.name for f in fields(MemoryEvent))

SELECT_CURRENT = f"""
SELECT {_CURRENT} FROM os_core.memory_current WHERE tenant_id = $1 AND user_id = $2 AND memory_key = $3
"""
SELECT_CURRENT_OF_USER = f"""
SELECT {_CURRENT} FROM os_core.memory_current WHERE tenant_id = $1 AND user_id = $2 AND (active OR NOT $3)
ORDER BY memory_key
"""
SELECT_EVENTS = f"""
SELECT {_EVENT} FROM os_core.memory_ledger WHERE tenant_id = $1 AND user_id = $2 AND memory_key = $3
AND ledger_id > $4 ORDER BY ledger_id LIMIT $5
"""


def _decoded(row: asyncpg.Record, *columns: str) -> dict[str, Any]:
    """jsonb as Python values, also on a connection without the project's codec."""
    values = dict(row)
    for c in columns:
        if isinstance(values[c], str):
            values[c] = json.loads(values[c])
    return values


def _memory(row: asyncpg.Record) -> Memory:
    return Memory(**_decoded(row, "memory_value", "provenance"))


class MemoryReader:
    """Typed reads of one tenant's memories, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def current(self, tenant_id: str, user_id: str, memory_key: str) -> Memory | None:
        """The memory's current row (a tombstone if forgotten), or None if never written."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CURRENT, tenant_id, user_id, memory_key)
        return _memory(row) if row is not None else None

    async def of_user(self, tenant_id: str, user_id: str, *, active_only: bool = True) -> list[Memory]:
        """The user's memories by key: the active ones, or with ``active_only=False`` the tombstones too."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_CURRENT_OF_USER, tenant_id, user_id, active_only)
        return [_memory(r) for r in rows]

    async def events(
        self, tenant_id: str, user_id: str, memory_key: str, *, after_ledger_id: int = 0, limit: int = 1000
    ) -> list[MemoryEvent]:
        """The memory's ledger rows in append order, a page after ``after_ledger_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_EVENTS, tenant_id, user_id, memory_key, after_ledger_id, limit)
        return [MemoryEvent(**_decoded(r, "payload")) for r in rows]
