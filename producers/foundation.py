"""Writes of PH1.F (seed 000 row 1): identities, devices and sessions (PH1.F/PH1.L audit events projected into
their current tables) and conversation turns (the conversation ledger), each published and awaited until the
writer has appended it.

Dedupe is each ledger's scoped key, (tenant, correlation id, idempotency key): a replay returns the original
row's id and writes nothing. A write the writer refuses (a device of another user or tenant, a session of an
unknown or revoked device, a reference to an unknown identity) raises ``WriteRefused`` with its reason code.
"""

from __future__ import annotations

from contracts.envelope import LedgerEvent, Payload
from contracts.foundation import (
    ConversationTurn,
    DeviceRegistered,
    DeviceRevoked,
    IdentityUpserted,
    SessionClosed,
    SessionLifecycle,
    SessionOpened,
)
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


def _expect(event: LedgerEvent, payload: type[Payload]) -> None:
    """The typed methods take only their own event type: a wrong one is a programming error, refused here."""
    if type(event.payload) is not payload:
        raise ContractViolation(
            f"{event.event_type} is not a {payload.__name__} event", ReasonCode.EVENT_SCHEMA_INVALID
        )


class FoundationWriter:
    """Typed appends of PH1.F's events; ``Written.event_id`` is the ledger row's id (``event_id`` of
    ``os_core.audit_events``, or ``conversation_turn_id``)."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def _write(self, event: LedgerEvent, payload: type[Payload]) -> Written:
        _expect(event, payload)
        return await self.writes.write(event, (event.correlation_id, event.idempotency_key))

    async def upsert_identity(self, event: LedgerEvent) -> Written:
        return await self._write(event, IdentityUpserted)

    async def register_device(self, event: LedgerEvent) -> Written:
        return await self._write(event, DeviceRegistered)

    async def revoke_device(self, event: LedgerEvent) -> Written:
        return await self._write(event, DeviceRevoked)

    async def open_session(self, event: LedgerEvent) -> Written:
        return await self._write(event, SessionOpened)

    async def close_session(self, event: LedgerEvent) -> Written:
        return await self._write(event, SessionClosed)

    async def change_session(self, event: LedgerEvent) -> Written:
        """PH1.L: any session lifecycle event (``SESSION_SOFT_CLOSE``, ``SYSTEM_SUSPEND``, ``SYSTEM_RESUME``,
        ``STATE_TRANSITION``, and the open and close above). A refused change raises ``WriteRefused`` with
        ``PH1_L_INVALID_TRANSITION``, ``PH1_L_IMMUTABLE_FIELD_CHANGED`` or ``PH1_L_ACTIVITY_WENT_BACK``."""
        if not isinstance(event.payload, SessionLifecycle):
            raise ContractViolation(f"{event.event_type} is not a session event", ReasonCode.EVENT_SCHEMA_INVALID)
        return await self.writes.write(event, (event.correlation_id, event.idempotency_key))

    async def record_turn(self, event: LedgerEvent) -> Written:
        """Append one conversation turn (``CONVERSATION_TURN_RECORDED``)."""
        return await self._write(event, ConversationTurn)
