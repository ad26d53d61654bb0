"""Reads of PH1.WRITE's decision trace (seed 000 row 17): its audit rows by correlation and turn, each with its
typed decision (``WriteFormat``). See ``audit_decisions``."""

from __future__ import annotations

from typing import ClassVar

from consumers.repositories.audit_decisions import Decision, DecisionReader
from contracts.envelope import LedgerEvent
from contracts.ph1_write import SLICE, WRITE_ENGINE, WriteFormat

WriteDecision = Decision[WriteFormat]


class WriteReader(DecisionReader[WriteFormat]):
    """Typed reads of one tenant's PH1.WRITE decisions."""

    engine: ClassVar[str] = WRITE_ENGINE
    events: ClassVar[tuple[type[LedgerEvent], ...]] = SLICE.events
