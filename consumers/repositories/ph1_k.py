"""Reads of PH1.K: a device's current audio runtime row and its runtime events in append order.
Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, fields
from datetime import datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class AudioRuntime:
    """A row of ``audio_runtime_current``: the device's streams, state, timings and flags as its events left them."""

    tenant_id: str
    device_id: str
    session_id: str | None
    last_event_id: int
    processed_stream_id: str | None
    raw_stream_id: str | None
    pre_roll_buffer_id: int | None
    selected_mic: str | None
    selected_speaker: str | None
    device_health: str | None
    jitter_ms_milli: int | None
    drift_ppm_milli: int | None
    buffer_depth_ms_milli: int | None
    underruns: int | None
    overruns: int | None
    tts_playback_active: bool
    capture_degraded: bool
    aec_unstable: bool
    device_changed: bool
    stream_gap_detected: bool
    last_interrupt_phrase: str | None
    last_interrupt_reason_code: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class AudioRuntimeEventRow:
    """A row of ``audio_runtime_events`` (the kind's fields are in the row's columns and its payload)."""

    event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    device_id: str
    session_id: str | None
    event_kind: str
    idempotency_key: str | None
    occurred_at: datetime


_CURRENT = ", ".join(f.name for f in fields(AudioRuntime))
_EVENT = ", ".join(f.name for f in fields(AudioRuntimeEventRow))

SELECT_CURRENT = f"SELECT {_CURRENT} FROM os_core.audio_runtime_current WHERE tenant_id = $1 AND device_id = $2"
SELECT_EVENTS = f"""
SELECT {_EVENT} FROM os_core.audio_runtime_events WHERE tenant_id = $1 AND device_id = $2 AND event_id > $3
ORDER BY event_id LIMIT $4
"""


class AudioRuntimeReader:
    """Typed reads of one tenant's audio runtime state, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def current(self, tenant_id: str, device_id: str) -> AudioRuntime | None:
        """The device's current row, or None if the tenant has no event of it."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CURRENT, tenant_id, device_id)
        return AudioRuntime(**dict(row)) if row is not None else None

    async def events(
        self, tenant_id: str, device_id: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[AudioRuntimeEventRow]:
        """The device's ledger rows in append order, a page after ``after_event_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_EVENTS, tenant_id, device_id, after_event_id, limit)
        return [AudioRuntimeEventRow(**dict(r)) for r in rows]
