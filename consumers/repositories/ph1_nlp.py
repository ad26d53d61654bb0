"""Reads of PH1.NLP's decision trace (seed 000 row 14): its audit rows by correlation and turn, each with its
typed decision (``NlpIntentDraft`` for intent drafts and chat, ``NlpClarify``). See ``audit_decisions``."""

from __future__ import annotations

from typing import ClassVar

from consumers.repositories.audit_decisions import Decision, DecisionReader
from contracts.envelope import LedgerEvent
from contracts.ph1_nlp import NLP_ENGINE, SLICE, NlpClarify, NlpIntentDraft

NlpDecision = Decision[NlpIntentDraft | NlpClarify]


class NlpReader(DecisionReader[NlpIntentDraft | NlpClarify]):
    """Typed reads of one tenant's PH1.NLP decisions."""

    engine: ClassVar[str] = NLP_ENGINE
    events: ClassVar[tuple[type[LedgerEvent], ...]] = SLICE.events
