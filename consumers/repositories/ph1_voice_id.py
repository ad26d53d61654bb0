"""Reads of PH1.VOICE.ID: an enrollment session, its samples in order, and the voice profile bound to an
(onboarding session, device). Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class VoiceEnrollmentSession:
    """A row of ``voice_enrollment_sessions``."""

    tenant_id: str
    voice_enrollment_session_id: str
    onboarding_session_id: str
    device_id: str
    voice_profile_id: str | None
    voice_enroll_status: str
    lock_after_consecutive_passes: int
    consecutive_passes: int
    attempt_count: int
    max_total_attempts: int
    max_session_enroll_time_ms: int
    reason_code: str | None
    deferred_until: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class VoiceEnrollmentSample:
    """A row of ``voice_enrollment_samples``."""

    sample_id: int
    voice_enrollment_session_id: str
    sample_seq: int
    attempt_index: int
    audio_sample_ref: str
    result: str
    reason_code: str | None
    idempotency_key: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class VoiceProfileBinding:
    """The voice profile bound to an (onboarding session, device), from ``voice_profile_bindings``."""

    tenant_id: str
    onboarding_session_id: str
    device_id: str
    voice_profile_id: str
    created_at: datetime


def _columns(cls: type) -> str:
    return ", ".join(f.name for f in fields(cls))


SELECT_SESSION = f"""
SELECT {_columns(VoiceEnrollmentSession)} FROM os_core.voice_enrollment_sessions
WHERE tenant_id = $1 AND voice_enrollment_session_id = $2
"""
SELECT_SAMPLES = f"""
SELECT {_columns(VoiceEnrollmentSample)} FROM os_core.voice_enrollment_samples
WHERE tenant_id = $1 AND voice_enrollment_session_id = $2 ORDER BY sample_seq, sample_id
"""
SELECT_BINDING = f"""
SELECT {_columns(VoiceProfileBinding)} FROM os_core.voice_profile_bindings
WHERE tenant_id = $1 AND onboarding_session_id = $2 AND device_id = $3
"""


class VoiceIdReader:
    """Typed reads of one tenant's voice enrollment, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def session(self, tenant_id: str, voice_enrollment_session_id: str) -> VoiceEnrollmentSession | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_SESSION, tenant_id, voice_enrollment_session_id)
        return VoiceEnrollmentSession(**dict(row)) if row is not None else None

    async def samples(self, tenant_id: str, voice_enrollment_session_id: str) -> list[VoiceEnrollmentSample]:
        """The session's samples in order (a session holds at most ``max_total_attempts`` <= 20 of them)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_SAMPLES, tenant_id, voice_enrollment_session_id)
        return [VoiceEnrollmentSample(**dict(r)) for r in rows]

    async def binding(self, tenant_id: str, onboarding_session_id: str, device_id: str) -> VoiceProfileBinding | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_BINDING, tenant_id, onboarding_session_id, device_id)
        return VoiceProfileBinding(**dict(row)) if row is not None else None
