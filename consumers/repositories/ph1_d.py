"""Reads of PH1.D's decision trace (seed 000 row 15): its audit rows by correlation and turn, each with its
typed decision (one model per outcome). See ``audit_decisions``."""

from __future__ import annotations

from typing import ClassVar

from consumers.repositories.audit_decisions import Decision, DecisionReader
from contracts.envelope import LedgerEvent
from contracts.ph1_d import D_ENGINE, SLICE, DAnalysis, DChat, DClarify, DFailClosed, DIntent

DDecision = Decision[DChat | DIntent | DClarify | DAnalysis | DFailClosed]


class DReader(DecisionReader[DChat | DIntent | DClarify | DAnalysis | DFailClosed]):
    """Typed reads of one tenant's PH1.D decisions."""

    engine: ClassVar[str] = D_ENGINE
    events: ClassVar[tuple[type[LedgerEvent], ...]] = SLICE.events
