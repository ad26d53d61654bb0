"""Writes of PH1.PERSONA (seed 004): publish a profile commit and get its audit row's id.

Dedupe is the audit ledger's: (tenant, correlation id, idempotency key). A replay returns the original row's
id and writes nothing. A commit naming a device of another user or tenant, or a session that does not match
its user and device, is dead-lettered by the writer and raised here as ``WriteRefused`` with that reason.
"""

from __future__ import annotations

from contracts.envelope import LedgerEvent
from contracts.persona import PersonaProfileCommit
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


class PersonaWriter:
    """Typed appends of ``PERSONA_PROFILE_COMMIT`` to ``os_core.audit_events``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def commit(self, event: LedgerEvent) -> Written:
        """Publish a profile commit and wait until the writer appended it (or its original)."""
        if not isinstance(event.payload, PersonaProfileCommit):
            raise ContractViolation(
                f"{event.event_type} is not a persona profile commit", ReasonCode.EVENT_SCHEMA_INVALID
            )
        return await self.writes.write(event, (event.correlation_id, event.idempotency_key))
