"""Reads of PH1.POSITION: a position, a company's positions, a position's lifecycle events in append order,
and the tenant's companies (PH1.ONB.BIZ). Tenant-scoped, see ``consumers.repositories``: another tenant's
position is "not found"."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class Position:
    """A row of ``positions``."""

    tenant_id: str
    position_id: str
    company_id: str
    position_title: str
    department: str
    jurisdiction: str
    schedule_type: str
    permission_profile_ref: str
    compensation_band_ref: str
    lifecycle_state: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PositionLifecycleEvent:
    """A row of the ``position_lifecycle_events`` ledger."""

    event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    event_type: str
    position_id: str
    action: str
    from_state: str
    to_state: str
    reason_code: str
    simulation_id: str
    actor_user_id: str
    correlation_id: str
    idempotency_key: str | None
    occurred_at: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class TenantCompany:
    """A row of ``tenant_companies``."""

    tenant_id: str
    company_id: str
    legal_name: str
    jurisdiction: str
    lifecycle_state: str
    created_at: datetime
    updated_at: datetime


def _columns(record: type) -> str:
    return ", ".join(f.name for f in fields(record))


SELECT_POSITION = f"SELECT {_columns(Position)} FROM os_core.positions WHERE tenant_id = $1 AND position_id = $2"
SELECT_COMPANY_POSITIONS = f"""
SELECT {_columns(Position)} FROM os_core.positions WHERE tenant_id = $1 AND company_id = $2 AND position_id > $3
ORDER BY position_id LIMIT $4
"""
SELECT_EVENTS = f"""
SELECT {_columns(PositionLifecycleEvent)} FROM os_core.position_lifecycle_events
WHERE tenant_id = $1 AND position_id = $2 AND event_id > $3 ORDER BY event_id LIMIT $4
"""
SELECT_COMPANY = (
    f"SELECT {_columns(TenantCompany)} FROM os_core.tenant_companies WHERE tenant_id = $1 AND company_id = $2"
)


class PositionReader:
    """Typed reads of one tenant's positions and companies, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def position(self, tenant_id: str, position_id: str) -> Position | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_POSITION, tenant_id, position_id)
        return Position(**dict(row)) if row is not None else None

    async def positions_of_company(
        self, tenant_id: str, company_id: str, *, after_position_id: str = "", limit: int = 1000
    ) -> list[Position]:
        """A company's positions by id, a page after ``after_position_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_COMPANY_POSITIONS, tenant_id, company_id, after_position_id, limit)
        return [Position(**dict(r)) for r in rows]

    async def events(
        self, tenant_id: str, position_id: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[PositionLifecycleEvent]:
        """The position's lifecycle events in append order, a page after ``after_event_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_EVENTS, tenant_id, position_id, after_event_id, limit)
        return [PositionLifecycleEvent(**dict(r)) for r in rows]

    async def company(self, tenant_id: str, company_id: str) -> TenantCompany | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_COMPANY, tenant_id, company_id)
        return TenantCompany(**dict(row)) if row is not None else None
