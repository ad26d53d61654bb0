"""Every slice's contracts, imported in one place: the single list to extend when an engine is added."""

from __future__ import annotations

from contracts import audit, foundation
from contracts.envelope import EVENT_TYPES, LEDGERS, EventType, LedgerSpec

SLICES = (audit, foundation)

__all__ = ["EVENT_TYPES", "LEDGERS", "SLICES", "EventType", "LedgerSpec"]
