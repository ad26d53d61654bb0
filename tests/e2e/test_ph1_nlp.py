"""PH1.NLP (seed 000 row 14) end to end on real Kafka and PostgreSQL: AT-NLP-DB-01..04 (the shared suite) and
the sheet's failure classes (tests/e2e/audit_decisions.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.ph1_nlp import NlpReader
from contracts.ph1_nlp import NlpClarifyEvent, NlpIntentDraftEvent
from contracts.settings import Settings
from contracts.slice import ExampleContext
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.audit_decisions import decider, refusals_while_good_decisions_flow

pytestmark = pytest.mark.e2e


draft = decider(
    NlpIntentDraftEvent,
    {
        "reason_code": "N_INTENT_OK",
        "decision": "INTENT_DRAFT",
        "intent_type": "SET_TIMER",
        "overall_confidence": "0.92",
    },
)


async def test_nlp_refusals_dead_lettered_while_good_decisions_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    bad: list[dict[str, Any]] = [
        {"intent_type": "x" * 65},  # over its bound
        {"overall_confidence": "0.123456789"},  # over 8
        {"intent_type": "   "},  # blank
        {"intent_type": None},  # a draft without its intent type
        {"decision": "CHAT"},  # chat with a draft's fields
        {"reason_code": "N_CLARIFY_AMBIGUOUS"},  # a clarify code on a draft
        {"decision": "CLARIFY"},  # CLARIFY is its own event type
    ]
    await refusals_while_good_decisions_flow(topics, NlpReader(reader_db), operator_db, run_id, draft, bad)


def test_chat_reuses_the_intent_draft_type() -> None:
    """The sheet's ambiguity: chat has no event type of its own upstream; it is an NLP_INTENT_DRAFT."""
    p = ExampleContext("t", "u", "d", "s", 0, datetime.now(UTC))
    chat = draft(
        p,
        "c",
        "k",
        {"decision": "CHAT", "reason_code": "N_CHAT_NO_INTENT", "intent_type": None, "overall_confidence": None},
    )
    assert (chat.event_type, chat.payload.severity) == ("NLP_INTENT_DRAFT", "INFO")  # type: ignore[attr-defined]
    assert NlpClarifyEvent.model_fields["event_type"].annotation.__args__ == ("NLP_CLARIFY",)  # type: ignore[union-attr]


class TestAtNlpDb(SliceAcceptance):
    """The shared AT-NLP-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "ph1_nlp"
