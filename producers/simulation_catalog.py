"""Writes of the simulation catalog (seed 000 row 5): publish a catalog event and get its ledger id.

A retry with the same (tenant, simulation, version, key) returns the original event's id and changes
nothing, as upstream does; a conflicting retry (same key, other content) too, reported as
``IDEMPOTENCY_CONFLICT`` so that the caller can tell.
"""

from __future__ import annotations

from contracts.envelope import LedgerEvent
from contracts.reasons import ContractViolation, ReasonCode
from contracts.simulation_catalog import SimulationCatalogEventInput
from producers.ledger_writes import LedgerWrites, Written


class SimulationCatalogWriter:
    """Typed appends to ``os_process.simulation_catalog``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def append(self, event: LedgerEvent) -> Written:
        """Publish a ``SIMULATION_CATALOG_EVENT`` and wait until the writer appended it (or its original)."""
        p = event.payload
        if not isinstance(p, SimulationCatalogEventInput):
            raise ContractViolation(
                f"{event.event_type} is not a simulation catalog event", ReasonCode.SIMCAT_CONTRACT_VALIDATION_FAILED
            )
        return await self.writes.write(event, (p.simulation_id, p.simulation_version, event.idempotency_key))
