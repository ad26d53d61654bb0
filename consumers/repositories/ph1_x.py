"""Reads of PH1.X's decision trace (seed 000 row 16): its audit rows by correlation and turn, each with its
typed decision (one model per directive). See ``audit_decisions``."""

from __future__ import annotations

from typing import ClassVar

from consumers.repositories.audit_decisions import Decision, DecisionReader
from contracts.envelope import LedgerEvent
from contracts.ph1_x import SLICE, X_ENGINE, XClarify, XConfirm, XDispatch, XRespond, XWait

XDecision = Decision[XConfirm | XClarify | XRespond | XDispatch | XWait]


class XReader(DecisionReader[XConfirm | XClarify | XRespond | XDispatch | XWait]):
    """Typed reads of one tenant's PH1.X decisions."""

    engine: ClassVar[str] = X_ENGINE
    events: ClassVar[tuple[type[LedgerEvent], ...]] = SLICE.events
