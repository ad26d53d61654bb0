"""Reads of PH1.PERSONA's decision trace (seed 004). PH1.PERSONA owns no table: its decisions are audit rows,
and the trace of one correlation is those rows in append order. Tenant-scoped, see ``consumers.repositories``.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from consumers.repositories import one_tenant
from contracts.persona import PERSONA_ENGINE, PERSONA_PROFILE_COMMIT


@dataclass(frozen=True, slots=True)
class PersonaDecision:
    """One ``PERSONA_PROFILE_COMMIT`` as recorded in ``os_core.audit_events``."""

    event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    correlation_id: str
    turn_id: str
    idempotency_key: str | None
    reason_code: str
    user_id: str
    device_id: str
    session_id: str | None
    style_profile_ref: str
    delivery_policy_ref: str
    preferences_snapshot_ref: str
    occurred_at: datetime
    recorded_at: datetime


# ix_audit_events_tenant_correlation_event serves this read.
SELECT_TRACE = """
SELECT event_id, event_uuid, tenant_id, correlation_id, turn_id, idempotency_key, reason_code, user_id, device_id,
       session_id, payload, occurred_at, recorded_at
FROM os_core.audit_events
WHERE tenant_id = $1 AND correlation_id = $2 AND engine_id = $3 AND event_type = $4
ORDER BY event_id
"""
_REFS = ("style_profile_ref", "delivery_policy_ref", "preferences_snapshot_ref")


def _decision(row: asyncpg.Record) -> PersonaDecision:
    fields: dict[str, Any] = dict(row)
    payload = fields.pop("payload")
    payload = json.loads(payload) if isinstance(payload, str) else payload
    return PersonaDecision(**fields, **{ref: payload[ref] for ref in _REFS})


class PersonaReader:
    """Typed reads of one tenant's PH1.PERSONA decisions, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def decision_trace(self, tenant_id: str, correlation_id: str) -> list[PersonaDecision]:
        """The correlation's profile commits in the order they were appended: the replayable trace."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_TRACE, tenant_id, correlation_id, PERSONA_ENGINE, PERSONA_PROFILE_COMMIT)
        return [_decision(r) for r in rows]
