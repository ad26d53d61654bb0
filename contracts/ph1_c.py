"""PH1.C (seed 000 row 13): the transcript gate. Each commit is two audit rows and, when the transcript is
accepted, the user's turn in the conversation ledger.

- transcript_ok: ``TRANSCRIPT_OK`` (only ``transcript_hash``), ``STT_CANDIDATE_EVAL`` (``decision=TRANSCRIPT_OK``,
  language tag, confidence bucket) and a ``VOICE_TRANSCRIPT_RECORDED`` row of ``conversation_ledger`` (role
  USER, source voice, privacy scope PUBLIC_CHAT, the text and its hash);
- transcript_reject: ``TRANSCRIPT_REJECT`` (optional ``transcript_hash``, the caller's ``STT_FAIL_*`` reason)
  and ``STT_CANDIDATE_EVAL`` (``decision=TRANSCRIPT_REJECT``, retry advice).

``transcript_ok`` and ``transcript_reject`` build a commit's events from the caller's idempotency key (the
audit rows' keys take the sheet's suffixes); ``producers.ph1_c.TranscriptGate`` publishes them, audit rows
first. Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import ConfigDict, model_validator

from contracts.audit import AUDIT_EVENTS
from contracts.audit_decisions import EngineDecision, Info, Text64, Text128, Warn
from contracts.envelope import Ident, LedgerEvent, define_event, new_event
from contracts.foundation import CONVERSATION_LEDGER, ConversationTurn
from contracts.slice import ExampleContext, SliceContract

C_ENGINE = "PH1.C"
TRANSCRIPT_OK = "TRANSCRIPT_OK"
TRANSCRIPT_REJECT = "TRANSCRIPT_REJECT"
STT_CANDIDATE_EVAL = "STT_CANDIDATE_EVAL"
VOICE_TRANSCRIPT_RECORDED = "VOICE_TRANSCRIPT_RECORDED"


class CReason(StrEnum):
    """PH1.C's codes (upstream ``ph1c.rs``; hex placeholders in the comments). The three fixed codes of the
    gate's own rows have no upstream name: named here in the ``STT_`` family of their numbers."""

    STT_FAIL_EMPTY = "STT_FAIL_EMPTY"  # 0x43000001
    STT_FAIL_LOW_CONFIDENCE = "STT_FAIL_LOW_CONFIDENCE"  # 0x43000002
    STT_FAIL_LOW_COVERAGE = "STT_FAIL_LOW_COVERAGE"  # 0x43000003
    STT_FAIL_GARBLED = "STT_FAIL_GARBLED"  # 0x43000004
    STT_FAIL_LANGUAGE_MISMATCH = "STT_FAIL_LANGUAGE_MISMATCH"  # 0x43000005
    STT_FAIL_AUDIO_DEGRADED = "STT_FAIL_AUDIO_DEGRADED"  # 0x43000006
    STT_FAIL_BUDGET_EXCEEDED = "STT_FAIL_BUDGET_EXCEEDED"  # 0x43000007
    STT_TRANSCRIPT_OK = "STT_TRANSCRIPT_OK"  # 0x43001001, the TRANSCRIPT_OK row
    STT_CANDIDATE_EVAL_OK = "STT_CANDIDATE_EVAL_OK"  # 0x43001002
    STT_CANDIDATE_EVAL_REJECT = "STT_CANDIDATE_EVAL_REJECT"  # 0x43002001


RejectReason = Literal[
    CReason.STT_FAIL_EMPTY,
    CReason.STT_FAIL_LOW_CONFIDENCE,
    CReason.STT_FAIL_LOW_COVERAGE,
    CReason.STT_FAIL_GARBLED,
    CReason.STT_FAIL_LANGUAGE_MISMATCH,
    CReason.STT_FAIL_AUDIO_DEGRADED,
    CReason.STT_FAIL_BUDGET_EXCEEDED,
]
ConfidenceBucket = Literal["HIGH", "MED", "LOW"]
RetryAdvice = Literal["REPEAT", "SPEAK_SLOWER", "MOVE_CLOSER", "QUIET_ENV"]


class CEvent(LedgerEvent):
    """The envelope of PH1.C rows: published by PH1.C only, about one turn, with a dedupe key."""

    engine_id: Literal["PH1.C"]
    turn_id: Ident
    idempotency_key: Ident


class TranscriptOk(EngineDecision):
    """The transcript passed the gate. Upstream allows this type no payload key but ``transcript_hash``."""

    reason_code: Literal[CReason.STT_TRANSCRIPT_OK]
    transcript_hash: Text128
    severity: Info = "INFO"


class TranscriptReject(EngineDecision):
    """The transcript was refused, with the caller's reason; the hash only if there was a transcript."""

    reason_code: RejectReason
    transcript_hash: Text128 | None = None
    severity: Warn = "WARN"


class SttCandidateEval(EngineDecision):
    """How the candidate was judged: accepted (language tag, confidence bucket; ``INFO``) or rejected (retry
    advice; ``WARN``), each with its fixed reason code."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"decision": {"const": "TRANSCRIPT_OK"}}},
            "then": {
                "required": ["language_tag", "confidence_bucket"],
                "properties": {
                    "reason_code": {"const": "STT_CANDIDATE_EVAL_OK"},
                    "severity": {"const": "INFO"},
                    "language_tag": {"type": "string"},
                    "confidence_bucket": {"type": "string"},
                    "retry_advice": {"type": "null"},
                },
            },
            "else": {
                "required": ["retry_advice"],
                "properties": {
                    "reason_code": {"const": "STT_CANDIDATE_EVAL_REJECT"},
                    "severity": {"const": "WARN"},
                    "language_tag": {"type": "null"},
                    "confidence_bucket": {"type": "null"},
                    "retry_advice": {"type": "string"},
                },
            },
        }
    )

    reason_code: Literal[CReason.STT_CANDIDATE_EVAL_OK, CReason.STT_CANDIDATE_EVAL_REJECT]
    decision: Literal["TRANSCRIPT_OK", "TRANSCRIPT_REJECT"]
    language_tag: Text64 | None = None
    confidence_bucket: ConfidenceBucket | None = None
    retry_advice: RetryAdvice | None = None
    severity: Literal["INFO", "WARN"]

    @model_validator(mode="after")
    def _ok_or_reject(self) -> SttCandidateEval:
        ok = self.decision == "TRANSCRIPT_OK"
        expected = ("STT_CANDIDATE_EVAL_OK", "INFO") if ok else ("STT_CANDIDATE_EVAL_REJECT", "WARN")
        fields_ok = (self.language_tag is not None) == ok and (self.confidence_bucket is not None) == ok
        if (self.reason_code, self.severity) != expected or not fields_ok or (self.retry_advice is None) != ok:
            raise ValueError(
                "TRANSCRIPT_OK carries language_tag and confidence_bucket (STT_CANDIDATE_EVAL_OK, INFO); "
                "TRANSCRIPT_REJECT carries retry_advice (STT_CANDIDATE_EVAL_REJECT, WARN)"
            )
        return self


class VoiceTranscript(ConversationTurn):
    """The accepted transcript as the user's turn. Columns as every conversation row (``ConversationTurn``);
    ``text_hash`` and ``privacy_scope`` (PH1.F gaps, ``PH1_F_J_GAPS.md`` §3) stay in the payload.
    Upstream's ``source=VOICE_TRANSCRIPT`` is this ledger's ``VOICE``."""

    speaker: Literal["USER"]
    source: Literal["VOICE"]
    user_id: Ident
    device_id: Ident
    text_hash: Text128
    privacy_scope: Literal["PUBLIC_CHAT"]


TranscriptOkEvent = define_event(AUDIT_EVENTS, TRANSCRIPT_OK, TranscriptOk, base=CEvent)
TranscriptRejectEvent = define_event(AUDIT_EVENTS, TRANSCRIPT_REJECT, TranscriptReject, base=CEvent)
SttCandidateEvalEvent = define_event(AUDIT_EVENTS, STT_CANDIDATE_EVAL, SttCandidateEval, base=CEvent)
VoiceTranscriptEvent = define_event(CONVERSATION_LEDGER, VOICE_TRANSCRIPT_RECORDED, VoiceTranscript, base=CEvent)


@dataclass(frozen=True)
class Turn:
    """Where a commit goes: the user's turn, and the caller's idempotency key for the commit."""

    tenant_id: str
    correlation_id: str
    turn_id: str
    idempotency_key: str
    user_id: str
    device_id: str
    session_id: str | None
    at: datetime


def _event(model: type[LedgerEvent], turn: Turn, suffix: str, payload: dict[str, Any]) -> LedgerEvent:
    refs = {"user_id": turn.user_id, "device_id": turn.device_id, "session_id": turn.session_id}
    return new_event(
        model,
        tenant_id=turn.tenant_id,
        engine_id=C_ENGINE,
        correlation_id=turn.correlation_id,
        turn_id=turn.turn_id,
        idempotency_key=f"{turn.idempotency_key}{suffix}",
        occurred_at=turn.at,
        payload={**payload, **refs},
    )


def transcript_ok(
    turn: Turn, *, transcript: str, transcript_hash: str, language_tag: str, confidence_bucket: str
) -> list[LedgerEvent]:
    """The events of a transcript_ok commit: its two audit rows, then the conversation row (keyed by the
    caller's key itself). A derived key over 128 characters is a ``ContractViolation``."""
    return [
        _event(
            TranscriptOkEvent,
            turn,
            ":transcript_ok",
            {"reason_code": "STT_TRANSCRIPT_OK", "transcript_hash": transcript_hash},
        ),
        _event(
            SttCandidateEvalEvent,
            turn,
            ":candidate_eval_ok",
            {
                "reason_code": "STT_CANDIDATE_EVAL_OK",
                "decision": "TRANSCRIPT_OK",
                "language_tag": language_tag,
                "confidence_bucket": confidence_bucket,
                "severity": "INFO",
            },
        ),
        _event(
            VoiceTranscriptEvent,
            turn,
            "",
            {
                "speaker": "USER",
                "source": "VOICE",
                "text": transcript,
                "text_hash": transcript_hash,
                "privacy_scope": "PUBLIC_CHAT",
            },
        ),
    ]


def transcript_reject(
    turn: Turn, *, reason_code: str, retry_advice: str, transcript_hash: str | None = None
) -> list[LedgerEvent]:
    """The two audit rows of a transcript_reject commit; no conversation row."""
    return [
        _event(
            TranscriptRejectEvent,
            turn,
            ":transcript_reject",
            {"reason_code": reason_code, "transcript_hash": transcript_hash},
        ),
        _event(
            SttCandidateEvalEvent,
            turn,
            ":candidate_eval_reject",
            {
                "reason_code": "STT_CANDIDATE_EVAL_REJECT",
                "decision": "TRANSCRIPT_REJECT",
                "retry_advice": retry_advice,
                "severity": "WARN",
            },
        ),
    ]


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """One correlation of the user's: an accepted transcript, then a rejected one (the sheet's AT-C-DB-04)."""
    corr = f"ph1-c-{ctx.user_id}-{ctx.n}"

    def turn(i: int) -> Turn:
        at = ctx.at + timedelta(milliseconds=i)
        return Turn(ctx.tenant_id, corr, f"turn-{i}", f"stt-{i}", ctx.user_id, ctx.device_id, ctx.session_id, at)

    text = f"remind me to call the dentist at {ctx.n % 12 + 1} pm"
    return [
        *transcript_ok(
            turn(1),
            transcript=text,
            transcript_hash=f"sha256:{ctx.n:064x}",
            language_tag="en-US",
            confidence_bucket="HIGH",
        ),
        *transcript_reject(turn(2), reason_code="STT_FAIL_LOW_CONFIDENCE", retry_advice="SPEAK_SLOWER"),
    ]


SLICE = SliceContract(
    name="ph1_c",
    engines=(C_ENGINE,),
    kind="audit_backed",
    seed_row=13,
    doc="docs/DB_WIRING/PH1_C.md",
    acceptance="AT-C-DB",
    events=(TranscriptOkEvent, TranscriptRejectEvent, SttCandidateEvalEvent, VoiceTranscriptEvent),
    requires=("audit", "foundation"),
    examples=examples,
)
