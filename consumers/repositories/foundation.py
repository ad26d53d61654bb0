"""Reads of PH1.F (seed 000 row 1): the identities, devices and sessions current tables and the conversation
ledger.

Tenant-scoped like every repository (``consumers.repositories``): each read names its tenant and runs in a
read-only transaction declaring that tenant alone, so row-level security keeps it inside; an id of another
tenant finds nothing. The writes are in ``producers/foundation.py``: identity, device and session changes are
PH1.F/PH1.L audit events, conversation turns conversation-ledger events, all through Kafka and the writer.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from consumers.repositories import one_tenant
from consumers.repositories.audit import MAX_PAGE, check_page

R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class IdentityRecord:
    """A row of ``os_core.identities``."""

    user_id: str
    tenant_id: str
    display_name: str | None
    status: str
    speaker_id: str | None
    primary_language: str | None
    created_at: datetime
    updated_at: datetime
    last_event_id: int


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A row of ``os_core.devices``: a device bound to one user (and so one tenant) for good."""

    device_id: str
    tenant_id: str
    user_id: str
    device_type: str
    status: str
    last_seen_at: datetime
    audio_profile_ref: str | None
    created_at: datetime
    updated_at: datetime
    last_event_id: int


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A row of ``os_core.sessions``."""

    session_id: str
    tenant_id: str
    user_id: str
    device_id: str
    session_state: str
    opened_at: datetime
    closed_at: datetime | None
    last_activity_at: datetime
    last_event_id: int


@dataclass(frozen=True, slots=True)
class ConversationTurnRecord:
    """A row of ``conversation.conversation_ledger`` (without its hash chain and Kafka provenance columns)."""

    conversation_turn_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    engine_id: str
    event_type: str
    schema_version: int
    correlation_id: str
    turn_id: str | None
    idempotency_key: str | None
    user_id: str | None
    device_id: str | None
    session_id: str | None
    speaker: str
    source: str
    text_body: str
    text_hash: str | None
    privacy_scope: str
    tombstone_of_conversation_turn_id: int | None
    tombstone_reason_code: str | None
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]


def _columns(record: type) -> str:
    return ", ".join(f.name for f in fields(record))


SELECT_IDENTITY = f"SELECT {_columns(IdentityRecord)} FROM os_core.identities WHERE tenant_id = $1 AND user_id = $2"
SELECT_DEVICE = f"SELECT {_columns(DeviceRecord)} FROM os_core.devices WHERE tenant_id = $1 AND device_id = $2"
# ix_devices_tenant_user
SELECT_DEVICES_OF_USER = f"""
SELECT {_columns(DeviceRecord)} FROM os_core.devices WHERE tenant_id = $1 AND user_id = $2 ORDER BY device_id
"""
SELECT_SESSION = f"SELECT {_columns(SessionRecord)} FROM os_core.sessions WHERE tenant_id = $1 AND session_id = $2"
# ix_sessions_tenant_user_device
SELECT_SESSIONS_OF_DEVICE = f"""
SELECT {_columns(SessionRecord)} FROM os_core.sessions WHERE tenant_id = $1 AND user_id = $2 AND device_id = $3
ORDER BY opened_at, session_id
"""
# ix_sessions_user_state_last_activity / ix_sessions_device_state_last_activity /
# ix_sessions_state_last_activity: PH1.L's reads, most recently active first
SELECT_SESSIONS_OF_USER_IN_STATE = f"""
SELECT {_columns(SessionRecord)} FROM os_core.sessions WHERE tenant_id = $1 AND user_id = $2 AND session_state = $3
ORDER BY last_activity_at DESC, session_id LIMIT $4
"""
SELECT_SESSIONS_OF_DEVICE_IN_STATE = f"""
SELECT {_columns(SessionRecord)} FROM os_core.sessions WHERE tenant_id = $1 AND device_id = $2 AND session_state = $3
ORDER BY last_activity_at DESC, session_id LIMIT $4
"""
SELECT_SESSIONS_IN_STATE = f"""
SELECT {_columns(SessionRecord)} FROM os_core.sessions WHERE tenant_id = $1 AND session_state = $2
ORDER BY last_activity_at DESC, session_id LIMIT $3
"""
# ix_conversation_ledger_tenant_correlation_turn
SELECT_CONVERSATION = f"""
SELECT {_columns(ConversationTurnRecord)} FROM conversation.conversation_ledger
WHERE tenant_id = $1 AND correlation_id = $2 AND conversation_turn_id > $3
ORDER BY conversation_turn_id LIMIT $4
"""
# ux_conversation_ledger_tenant_correlation_turn_id (turns with a text_hash; older ones may repeat a turn id)
SELECT_TURN = f"""
SELECT {_columns(ConversationTurnRecord)} FROM conversation.conversation_ledger
WHERE tenant_id = $1 AND correlation_id = $2 AND turn_id = $3 ORDER BY conversation_turn_id
"""


def _record(cls: type[R], row: asyncpg.Record) -> R:
    """jsonb as Python values, also on a connection without the project's codec."""
    values = dict(row)
    if isinstance(values.get("payload"), str):
        values["payload"] = json.loads(values["payload"])
    return cls(**values)


class FoundationReader:
    """Typed, tenant-scoped reads of PH1.F's tables on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def identity(self, tenant_id: str, user_id: str) -> IdentityRecord | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_IDENTITY, tenant_id, user_id)
        return _record(IdentityRecord, row) if row is not None else None

    async def device(self, tenant_id: str, device_id: str) -> DeviceRecord | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_DEVICE, tenant_id, device_id)
        return _record(DeviceRecord, row) if row is not None else None

    async def devices(self, tenant_id: str, user_id: str) -> list[DeviceRecord]:
        """The user's devices, revoked ones included (a revocation keeps the row with its status)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_DEVICES_OF_USER, tenant_id, user_id)
        return [_record(DeviceRecord, r) for r in rows]

    async def session(self, tenant_id: str, session_id: str) -> SessionRecord | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_SESSION, tenant_id, session_id)
        return _record(SessionRecord, row) if row is not None else None

    async def sessions(self, tenant_id: str, user_id: str, device_id: str) -> list[SessionRecord]:
        """The sessions of a user on a device, oldest first, closed ones included."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_SESSIONS_OF_DEVICE, tenant_id, user_id, device_id)
        return [_record(SessionRecord, r) for r in rows]

    async def sessions_in_state(
        self,
        tenant_id: str,
        session_state: str,
        *,
        user_id: str | None = None,
        device_id: str | None = None,
        limit: int = MAX_PAGE,
    ) -> list[SessionRecord]:
        """PH1.L: the tenant's sessions in ``session_state`` (of one user, or one device, when given), most
        recently active first (``last_activity_at``), at most ``limit``."""
        check_page(limit)
        async with one_tenant(self.conn, tenant_id) as conn:
            if user_id is not None:
                rows = await conn.fetch(SELECT_SESSIONS_OF_USER_IN_STATE, tenant_id, user_id, session_state, limit)
            elif device_id is not None:
                rows = await conn.fetch(SELECT_SESSIONS_OF_DEVICE_IN_STATE, tenant_id, device_id, session_state, limit)
            else:
                rows = await conn.fetch(SELECT_SESSIONS_IN_STATE, tenant_id, session_state, limit)
        return [_record(SessionRecord, r) for r in rows]

    async def conversation(
        self, tenant_id: str, correlation_id: str, *, after_conversation_turn_id: int = 0, limit: int = MAX_PAGE
    ) -> list[ConversationTurnRecord]:
        """The thread's turns in append order (``conversation_turn_id``, never timestamps), a page after
        ``after_conversation_turn_id``."""
        check_page(limit)
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_CONVERSATION, tenant_id, correlation_id, after_conversation_turn_id, limit)
        return [_record(ConversationTurnRecord, r) for r in rows]

    async def turn(self, tenant_id: str, correlation_id: str, turn_id: str) -> list[ConversationTurnRecord]:
        """The rows of one turn of a thread, in append order: one for a turn in upstream's shape (its turn id
        is unique in the correlation), possibly several for turns recorded without a text hash."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_TURN, tenant_id, correlation_id, turn_id)
        return [_record(ConversationTurnRecord, r) for r in rows]
