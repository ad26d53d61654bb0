"""Reads of the simulation catalog (seed 000 row 5): a simulation's current version and state, and its
events in append order (its replay path). Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class SimulationEntry:
    """A row of ``simulation_catalog_current``: the simulation's highest version, as its latest event left it."""

    tenant_id: str
    simulation_id: str
    simulation_version: int
    simulation_type: str
    status: str
    owning_domain: str
    publisher_engine_id: str
    updated_at: datetime
    source_event_id: int


@dataclass(frozen=True, slots=True)
class SimulationCatalogRecord:
    """A row of the ``simulation_catalog`` ledger."""

    simulation_catalog_event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    engine_id: str
    simulation_id: str
    simulation_version: int
    simulation_type: str
    status: str
    owning_domain: str
    reads_tables_hash: str
    writes_tables_hash: str
    reason_code: str
    correlation_id: str
    idempotency_key: str | None
    occurred_at: datetime
    recorded_at: datetime


_CURRENT_COLUMNS = ", ".join(f.name for f in fields(SimulationEntry))
_EVENT_COLUMNS = ", ".join(f.name for f in fields(SimulationCatalogRecord))

SELECT_CURRENT = f"""
SELECT {_CURRENT_COLUMNS} FROM os_process.simulation_catalog_current WHERE tenant_id = $1 AND simulation_id = $2
"""
SELECT_EVENTS = f"""
SELECT {_EVENT_COLUMNS} FROM os_process.simulation_catalog
WHERE tenant_id = $1 AND simulation_id = $2 AND simulation_catalog_event_id > $3
ORDER BY simulation_catalog_event_id LIMIT $4
"""


class SimulationCatalogReader:
    """Typed reads of one tenant's simulation catalog, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def current(self, tenant_id: str, simulation_id: str) -> SimulationEntry | None:
        """The simulation's current entry, or None if the tenant has none."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CURRENT, tenant_id, simulation_id)
        return SimulationEntry(**dict(row)) if row is not None else None

    async def events(
        self, tenant_id: str, simulation_id: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[SimulationCatalogRecord]:
        """The simulation's ledger rows in append order, a page after ``after_event_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_EVENTS, tenant_id, simulation_id, after_event_id, limit)
        return [SimulationCatalogRecord(**dict(r)) for r in rows]
