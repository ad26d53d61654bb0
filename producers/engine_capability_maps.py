"""Writes of the engine capability maps (seed 003): publish a capability map event and get its ledger id.

An idempotency replay (same tenant, engine, capability, version and key) returns the original event's id
and changes nothing, as the seed asks; so does a conflicting retry (same key, other content), reported as
``IDEMPOTENCY_CONFLICT`` so that the caller can tell.
"""

from __future__ import annotations

from contracts.engine_capability_maps import EngineCapabilityMapEventInput
from contracts.envelope import LedgerEvent
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


class EngineCapabilityMapWriter:
    """Typed appends to ``os_process.engine_capability_maps``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def append(self, event: LedgerEvent) -> Written:
        """Publish a ``CAPABILITY_MAP_*`` event and wait until the writer appended it (or its original)."""
        p = event.payload
        if not isinstance(p, EngineCapabilityMapEventInput):
            raise ContractViolation(
                f"{event.event_type} is not a capability map event", ReasonCode.ECM_CONTRACT_VALIDATION_FAILED
            )
        return await self.writes.write(
            event, (p.engine_id, p.capability_id, p.capability_map_version, event.idempotency_key)
        )
