"""Reads of the engine capability maps (seed 003): a capability's current route, an engine's routes, and a
capability's events in append order (its replay path). Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class CapabilityRoute:
    """A row of ``engine_capability_maps_current``: the route callers use for one capability."""

    tenant_id: str
    engine_id: str
    capability_id: str
    capability_map_version: int
    status: str
    reason_code: str
    capability_name: str
    input_schema: str
    output_schema: str
    allowed_callers: str
    side_effects: str
    publisher_engine_id: str
    updated_at: datetime
    source_event_id: int


@dataclass(frozen=True, slots=True)
class CapabilityMapEvent:
    """A row of the ``engine_capability_maps`` ledger."""

    engine_capability_map_event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    event_type: str
    engine_id: str
    capability_id: str
    capability_map_version: int
    reason_code: str
    capability_name: str
    input_schema: str
    output_schema: str
    allowed_callers: str
    side_effects: str
    publisher_engine_id: str
    correlation_id: str
    turn_id: str | None
    idempotency_key: str | None
    occurred_at: datetime
    recorded_at: datetime


_ROUTE_COLUMNS = ", ".join(f.name for f in fields(CapabilityRoute))
_EVENT_COLUMNS = ", ".join(f.name for f in fields(CapabilityMapEvent))

SELECT_CURRENT = f"""
SELECT {_ROUTE_COLUMNS} FROM os_process.engine_capability_maps_current
WHERE tenant_id = $1 AND engine_id = $2 AND capability_id = $3
"""
SELECT_CURRENT_OF_ENGINE = f"""
SELECT {_ROUTE_COLUMNS} FROM os_process.engine_capability_maps_current
WHERE tenant_id = $1 AND engine_id = $2 ORDER BY capability_id
"""
SELECT_EVENTS = f"""
SELECT {_EVENT_COLUMNS} FROM os_process.engine_capability_maps
WHERE tenant_id = $1 AND engine_id = $2 AND capability_id = $3 AND engine_capability_map_event_id > $4
ORDER BY engine_capability_map_event_id LIMIT $5
"""


class EngineCapabilityMapReader:
    """Typed reads of one tenant's capability maps, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def current(self, tenant_id: str, engine_id: str, capability_id: str) -> CapabilityRoute | None:
        """The capability's current route, or None if the tenant has none."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CURRENT, tenant_id, engine_id, capability_id)
        return CapabilityRoute(**dict(row)) if row is not None else None

    async def current_of_engine(self, tenant_id: str, engine_id: str) -> list[CapabilityRoute]:
        """Every current route of one engine, by capability id."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_CURRENT_OF_ENGINE, tenant_id, engine_id)
        return [CapabilityRoute(**dict(r)) for r in rows]

    async def events(
        self, tenant_id: str, engine_id: str, capability_id: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[CapabilityMapEvent]:
        """The capability's ledger rows in append order, a page after ``after_event_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_EVENTS, tenant_id, engine_id, capability_id, after_event_id, limit)
        return [CapabilityMapEvent(**dict(r)) for r in rows]
