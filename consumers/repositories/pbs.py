"""Reads of the PBS tables (seed 000 row 4): the blueprint serving an intent, and an intent's blueprint
events in append order. Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class RegisteredBlueprint:
    """A row of ``blueprint_registry``: the blueprint that serves one intent."""

    tenant_id: str
    intent_type: str
    process_id: str
    blueprint_version: int
    status: str
    source_event_id: int
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BlueprintRecord:
    """A row of the ``process_blueprints`` ledger."""

    process_blueprint_event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    engine_id: str
    process_id: str
    blueprint_version: int
    intent_type: str
    status: str
    ordered_step_count: int
    confirmation_step_count: int
    simulation_requirements_hash: str
    reason_code: str
    correlation_id: str
    idempotency_key: str | None
    occurred_at: datetime
    recorded_at: datetime


_REGISTRY_COLUMNS = ", ".join(f.name for f in fields(RegisteredBlueprint))
_EVENT_COLUMNS = ", ".join(f.name for f in fields(BlueprintRecord))

SELECT_FOR_INTENT = f"""
SELECT {_REGISTRY_COLUMNS} FROM os_process.blueprint_registry WHERE tenant_id = $1 AND intent_type = $2
"""
SELECT_EVENTS = f"""
SELECT {_EVENT_COLUMNS} FROM os_process.process_blueprints
WHERE tenant_id = $1 AND intent_type = $2 AND process_blueprint_event_id > $3
ORDER BY process_blueprint_event_id LIMIT $4
"""


class BlueprintReader:
    """Typed reads of one tenant's blueprints, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def for_intent(self, tenant_id: str, intent_type: str) -> RegisteredBlueprint | None:
        """The blueprint that serves the intent, or None."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_FOR_INTENT, tenant_id, intent_type)
        return RegisteredBlueprint(**dict(row)) if row is not None else None

    async def events(
        self, tenant_id: str, intent_type: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[BlueprintRecord]:
        """The intent's blueprint events in append order, a page after ``after_event_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_EVENTS, tenant_id, intent_type, after_event_id, limit)
        return [BlueprintRecord(**dict(r)) for r in rows]
