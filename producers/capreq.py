"""Writes of PH1.CAPREQ: publish a capability request action and get its ledger id, or why it was refused.

An idempotency replay (same tenant, request and key) returns the original event's id and changes nothing, as
upstream's dedupe does; a conflicting retry (same key, other content) is reported as ``IDEMPOTENCY_CONFLICT``.
An action the request's status does not allow raises ``WriteRefused`` with the writer's reason
(``CAPREQ_NOT_FOUND``, ``CAPREQ_INVALID_TRANSITION``, ``CAPREQ_TERMINAL_STATE``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from contracts.capreq import ENGINE_ID, EVENT_OF_ACTION, Action, CapreqEventInput
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


class CapreqWriter:
    """Typed appends to ``os_process.capreq_ledger``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def append(self, event: LedgerEvent) -> Written:
        """Publish a ``CAPREQ_*`` event and wait until the writer appended it (or its original)."""
        p = event.payload
        if not isinstance(p, CapreqEventInput):
            raise ContractViolation(
                f"{event.event_type} is not a capability request event", ReasonCode.CAPREQ_CONTRACT_VALIDATION_FAILED
            )
        return await self.writes.write(event, (p.capreq_id, event.idempotency_key))

    async def act(
        self,
        action: Action,
        *,
        tenant_id: str,
        capreq_id: str,
        actor_user_id: str,
        payload_hash: str,
        idempotency_key: str,
        correlation_id: str,
    ) -> Written:
        """One action on a request, as upstream's OS calls it (each commit carries an idempotency key)."""
        event = new_event(
            EVENT_OF_ACTION[action],
            tenant_id=tenant_id,
            engine_id=ENGINE_ID,
            correlation_id=correlation_id,
            idempotency_key=idempotency_key,
            occurred_at=datetime.now(UTC),
            payload={"capreq_id": capreq_id, "requester_user_id": actor_user_id, "payload_hash": payload_hash},
        )
        return await self.append(event)
