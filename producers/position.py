"""Writes of PH1.POSITION: publish a lifecycle commit and get its ledger id, or why it was refused.

A dedupe hit (same tenant, position, state entered and key) returns the original event's id and appends
nothing, as upstream's commits do; a refused commit raises ``WriteRefused`` with the writer's reason
(``POSITION_NOT_FOUND``, ``POSITION_INVALID_TRANSITION``, ``POSITION_DUPLICATE_KEY``).
"""

from __future__ import annotations

from contracts.envelope import LedgerEvent
from contracts.position import PositionEventInput
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


class PositionWriter:
    """Typed appends to ``os_core.position_lifecycle_events``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def append(self, event: LedgerEvent) -> Written:
        """Publish a ``POSITION_SIM_*`` commit and wait until the writer appended it (or its original)."""
        p = event.payload
        if not isinstance(p, PositionEventInput):
            raise ContractViolation(
                f"{event.event_type} is not a position lifecycle event", ReasonCode.POSITION_CONTRACT_VALIDATION_FAILED
            )
        return await self.writes.write(event, (p.position_id, p.to_state, event.idempotency_key))
