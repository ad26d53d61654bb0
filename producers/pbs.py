"""Writes of the PBS tables (seed 000 row 4): publish a blueprint event and get its ledger id (the
original's on an idempotency replay or conflict, as upstream)."""

from __future__ import annotations

from contracts.envelope import LedgerEvent
from contracts.pbs import ProcessBlueprintEventInput
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


class BlueprintWriter:
    """Typed appends to ``os_process.process_blueprints``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def append(self, event: LedgerEvent) -> Written:
        """Publish a ``PROCESS_BLUEPRINT_RECORDED`` event and wait until the writer appended it (or its original)."""
        p = event.payload
        if not isinstance(p, ProcessBlueprintEventInput):
            raise ContractViolation(
                f"{event.event_type} is not a process blueprint event", ReasonCode.PBS_CONTRACT_VALIDATION_FAILED
            )
        return await self.writes.write(event, (p.process_id, p.blueprint_version, event.idempotency_key))
