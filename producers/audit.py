"""Writes of PH1.J (seed 000 row 2): append an engine's decision to the audit ledger and wait for its row.

Dedupe is the audit ledger's scoped key (tenant, correlation id, idempotency key), or (tenant, work order,
idempotency key) for a row of a work order, across correlations: a replay returns the original row's id and
writes nothing (``Written.outcome`` ``IDEMPOTENCY_REPLAY``); the same key with other content is
``IDEMPOTENCY_CONFLICT``, the original row standing. Slices with a typed writer of their own (PH1.F identities,
PH1.PERSONA) keep using it; this one takes any audit event.
"""

from __future__ import annotations

from contracts.audit import AUDIT_EVENTS
from contracts.envelope import LedgerEvent
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


class AuditWriter:
    """Typed appends to ``os_core.audit_events``; ``Written.event_id`` is the row's ``event_id``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def record(self, event: LedgerEvent) -> Written:
        """Publish an audit event and wait until the writer appended it (or its original)."""
        if event.spec is not AUDIT_EVENTS:
            raise ContractViolation(f"{event.ledger} is not the audit ledger", ReasonCode.EVENT_SCHEMA_INVALID)
        work_order_id = getattr(event.payload, "work_order_id", None)
        if work_order_id is not None and event.idempotency_key is not None:
            return await self.writes.write(
                event, (work_order_id, event.idempotency_key), AUDIT_EVENTS.preferred_scope[1:]
            )
        return await self.writes.write(event, (event.correlation_id, event.idempotency_key))
