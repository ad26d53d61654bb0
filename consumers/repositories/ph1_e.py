"""Reads of PH1.E's decision trace (seed 000 row 19): its audit rows by correlation and turn, each with its
typed decision (``ToolOk`` or ``ToolFail``). See ``audit_decisions``."""

from __future__ import annotations

from typing import ClassVar

from consumers.repositories.audit_decisions import Decision, DecisionReader
from contracts.envelope import LedgerEvent
from contracts.ph1_e import E_ENGINE, SLICE, ToolFail, ToolOk

EDecision = Decision[ToolOk | ToolFail]


class EReader(DecisionReader[ToolOk | ToolFail]):
    """Typed reads of one tenant's PH1.E decisions."""

    engine: ClassVar[str] = E_ENGINE
    events: ClassVar[tuple[type[LedgerEvent], ...]] = SLICE.events
