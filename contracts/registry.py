"""Every slice's contracts, imported in one place: the single list to extend when an engine is added."""

from __future__ import annotations

from contracts import audit, engine_capability_maps, foundation, persona, work_orders
from contracts.envelope import EVENT_TYPES, LEDGERS, EventType, LedgerSpec

SLICES = (audit, foundation, work_orders, engine_capability_maps, persona)

__all__ = ["EVENT_TYPES", "LEDGERS", "SLICES", "EventType", "LedgerSpec"]
