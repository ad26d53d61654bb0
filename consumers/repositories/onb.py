"""Reads of PH1.ONB: a session (by id or by its link) and its state transitions (PH1.ONB's audit rows).
Tenant-scoped, see ``consumers.repositories``: another tenant's session is "not found"."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class OnboardingSession:
    """A row of ``onboarding_sessions``."""

    tenant_id: str
    onboarding_session_id: str
    link_id: str
    invitee_type: str
    prefilled_context_ref: str | None
    device_fingerprint_hash: str
    status: str
    created_at: datetime
    updated_at: datetime
    terms_version_id: str | None
    terms_status: str | None
    photo_blob_ref: str | None
    photo_proof_ref: str | None
    sender_user_id: str | None
    verification_status: str | None
    primary_device_device_id: str | None
    primary_device_proof_type: str | None
    primary_device_confirmed: bool
    access_engine_instance_id: str | None


@dataclass(frozen=True, slots=True)
class StateTransition:
    """An ``ONB_STATE_TRANSITION`` row of the audit ledger."""

    event_id: int
    commit: str
    state_from: str | None
    state_to: str
    occurred_at: datetime


_COLUMNS = ", ".join(f.name for f in fields(OnboardingSession))
SELECT_SESSION = f"""
SELECT {_COLUMNS} FROM os_core.onboarding_sessions WHERE tenant_id = $1 AND onboarding_session_id = $2
"""
SELECT_SESSION_OF_LINK = f"SELECT {_COLUMNS} FROM os_core.onboarding_sessions WHERE tenant_id = $1 AND link_id = $2"
SELECT_TRANSITIONS = """
SELECT event_id, payload->>'commit' AS commit, payload->>'state_from' AS state_from,
       payload->>'state_to' AS state_to, occurred_at
FROM os_core.audit_events
WHERE tenant_id = $1 AND event_type = 'ONB_STATE_TRANSITION' AND payload->>'onboarding_session_id' = $2
ORDER BY event_id
"""


class OnbReader:
    """Typed reads of one tenant's onboarding sessions, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def session(self, tenant_id: str, onboarding_session_id: str) -> OnboardingSession | None:
        """The session, or None (also for another tenant's: PH1.VOICE.ID and PH1.W check references here)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_SESSION, tenant_id, onboarding_session_id)
        return OnboardingSession(**dict(row)) if row is not None else None

    async def session_of_link(self, tenant_id: str, link_id: str) -> OnboardingSession | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_SESSION_OF_LINK, tenant_id, link_id)
        return OnboardingSession(**dict(row)) if row is not None else None

    async def transitions(self, tenant_id: str, onboarding_session_id: str) -> list[StateTransition]:
        """The session's audit rows in append order."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_TRANSITIONS, tenant_id, onboarding_session_id)
        return [StateTransition(**dict(r)) for r in rows]
