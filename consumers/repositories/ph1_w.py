"""Reads of PH1.W: an enrollment session, its samples in order, a device's profile bindings (the active one
first) and its runtime events. Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class WakeEnrollmentSession:
    """A row of ``wake_enrollment_sessions``."""

    tenant_id: str
    wake_enrollment_session_id: str
    user_id: str
    device_id: str
    onboarding_session_id: str | None
    wake_enroll_status: str
    pass_target: int
    pass_count: int
    attempt_count: int
    max_attempts: int
    enrollment_timeout_ms: int
    reason_code: str | None
    wake_profile_id: str | None
    deferred_until: datetime | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


@dataclass(frozen=True, slots=True)
class WakeEnrollmentSample:
    """A row of ``wake_enrollment_samples`` (``occurred_at`` is upstream's ``captured_at``)."""

    sample_id: int
    wake_enrollment_session_id: str
    sample_seq: int
    sample_duration_ms: int
    vad_coverage: float
    snr_db: float
    clipping_pct: float
    rms_dbfs: float
    noise_floor_dbfs: float
    peak_dbfs: float
    overlap_ratio: float
    result: str
    reason_code: str | None
    idempotency_key: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class WakeProfileBinding:
    """A row of ``wake_profile_bindings``."""

    tenant_id: str
    user_id: str
    device_id: str
    wake_profile_id: str
    artifact_version: str
    active: bool
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class WakeRuntimeEvent:
    """A row of ``wake_runtime_events`` (``occurred_at`` is upstream's ``created_at``)."""

    runtime_event_id: int
    wake_event_id: str
    session_id: str | None
    user_id: str | None
    device_id: str
    accepted: bool
    reason_code: str
    wake_profile_id: str | None
    tts_active_at_trigger: bool
    media_playback_active_at_trigger: bool
    suppression_reason_code: str | None
    idempotency_key: str
    occurred_at: datetime


def _columns(cls: type) -> str:
    return ", ".join(f.name for f in fields(cls))


SELECT_SESSION = f"""
SELECT {_columns(WakeEnrollmentSession)} FROM os_core.wake_enrollment_sessions
WHERE tenant_id = $1 AND wake_enrollment_session_id = $2
"""
SELECT_SAMPLES = f"""
SELECT {_columns(WakeEnrollmentSample)} FROM os_core.wake_enrollment_samples
WHERE tenant_id = $1 AND wake_enrollment_session_id = $2 ORDER BY sample_seq
"""
SELECT_BINDINGS = f"""
SELECT {_columns(WakeProfileBinding)} FROM os_core.wake_profile_bindings
WHERE tenant_id = $1 AND user_id = $2 AND device_id = $3 ORDER BY active DESC, updated_at DESC, wake_profile_id
"""
SELECT_RUNTIME = f"""
SELECT {_columns(WakeRuntimeEvent)} FROM os_core.wake_runtime_events
WHERE tenant_id = $1 AND device_id = $2 ORDER BY occurred_at, runtime_event_id LIMIT $3
"""


class WakeReader:
    """Typed reads of one tenant's wake enrollment and runtime, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def session(self, tenant_id: str, wake_enrollment_session_id: str) -> WakeEnrollmentSession | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_SESSION, tenant_id, wake_enrollment_session_id)
        return WakeEnrollmentSession(**dict(row)) if row is not None else None

    async def samples(self, tenant_id: str, wake_enrollment_session_id: str) -> list[WakeEnrollmentSample]:
        """The session's samples in order (at most ``max_attempts`` <= 20 of them)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_SAMPLES, tenant_id, wake_enrollment_session_id)
        return [WakeEnrollmentSample(**dict(r)) for r in rows]

    async def bindings(self, tenant_id: str, user_id: str, device_id: str) -> list[WakeProfileBinding]:
        """The device's profiles for the user: the active one first (at most one is), then the newest."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_BINDINGS, tenant_id, user_id, device_id)
        return [WakeProfileBinding(**dict(r)) for r in rows]

    async def runtime_events(self, tenant_id: str, device_id: str, limit: int = 100) -> list[WakeRuntimeEvent]:
        """The device's wake decisions, oldest first, at most ``limit``."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_RUNTIME, tenant_id, device_id, limit)
        return [WakeRuntimeEvent(**dict(r)) for r in rows]
