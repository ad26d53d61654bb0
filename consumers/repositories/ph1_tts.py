"""Reads of PH1.TTS's decision trace (seed 000 row 18): its audit rows by correlation and turn, each with its
typed decision (one model per event type). See ``audit_decisions``."""

from __future__ import annotations

from typing import ClassVar

from consumers.repositories.audit_decisions import Decision, DecisionReader
from contracts.envelope import LedgerEvent
from contracts.ph1_tts import SLICE, TTS_ENGINE, TtsCanceled, TtsFailed, TtsRenderSummary, TtsStarted

TtsDecision = Decision[TtsRenderSummary | TtsStarted | TtsCanceled | TtsFailed]


class TtsReader(DecisionReader[TtsRenderSummary | TtsStarted | TtsCanceled | TtsFailed]):
    """Typed reads of one tenant's PH1.TTS decisions."""

    engine: ClassVar[str] = TTS_ENGINE
    events: ClassVar[tuple[type[LedgerEvent], ...]] = SLICE.events
