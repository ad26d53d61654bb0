"""Reads of PH1.C's decision trace (seed 000 row 13): its audit rows by correlation and turn, each with its
typed decision (``TranscriptOk``, ``TranscriptReject``, ``SttCandidateEval``; see ``audit_decisions``), and
the transcripts it appended to the conversation ledger."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from consumers.repositories import one_tenant
from consumers.repositories.audit_decisions import Decision, DecisionReader
from contracts.envelope import LedgerEvent
from contracts.ph1_c import (
    C_ENGINE,
    SLICE,
    VOICE_TRANSCRIPT_RECORDED,
    SttCandidateEval,
    TranscriptOk,
    TranscriptReject,
)

CDecision = Decision[TranscriptOk | TranscriptReject | SttCandidateEval]


@dataclass(frozen=True, slots=True)
class TranscriptRecord:
    """A ``VOICE_TRANSCRIPT_RECORDED`` row of ``conversation.conversation_ledger``."""

    conversation_turn_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    correlation_id: str
    turn_id: str
    idempotency_key: str
    user_id: str
    device_id: str
    session_id: str | None
    text: str
    text_hash: str
    privacy_scope: str
    occurred_at: datetime


# ix_conversation_ledger_tenant_correlation_turn serves this read.
SELECT_TRANSCRIPTS = """
SELECT conversation_turn_id, event_uuid, tenant_id, correlation_id, turn_id, idempotency_key, user_id, device_id,
       session_id, text_body AS text, payload, occurred_at
FROM conversation.conversation_ledger
WHERE tenant_id = $1 AND correlation_id = $2 AND engine_id = $3 AND event_type = $4
  AND ($5::text IS NULL OR turn_id = $5)
ORDER BY conversation_turn_id
"""


class CReader(DecisionReader[TranscriptOk | TranscriptReject | SttCandidateEval]):
    """Typed reads of one tenant's PH1.C rows."""

    engine: ClassVar[str] = C_ENGINE
    events: ClassVar[tuple[type[LedgerEvent], ...]] = tuple(e for e in SLICE.events if e.spec.name == "audit_events")

    async def transcripts(
        self, tenant_id: str, correlation_id: str, turn_id: str | None = None
    ) -> list[TranscriptRecord]:
        """The correlation's accepted transcripts (of one turn if given), in append order."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(
                SELECT_TRANSCRIPTS, tenant_id, correlation_id, C_ENGINE, VOICE_TRANSCRIPT_RECORDED, turn_id
            )
        out = []
        for row in rows:
            fields: dict[str, Any] = dict(row)
            payload = fields.pop("payload")
            payload = json.loads(payload) if isinstance(payload, str) else payload
            out.append(
                TranscriptRecord(**fields, text_hash=payload["text_hash"], privacy_scope=payload["privacy_scope"])
            )
        return out
