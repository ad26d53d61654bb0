"""PH1.TTS (seed 000 row 18): what speech rendering did for an answer (render summary, started, canceled,
failed), as audit rows. The engine is stored as ``PH1.TTS`` (upstream's doc spells it ``PH1.Tts``; its
enum value is ``Ph1Tts``). Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from contracts.audit_decisions import EngineDecision, Error, Info, Text32, Text64, Text96, decisions, examples
from contracts.slice import SliceContract

TTS_ENGINE = "PH1.TTS"


class TtsReason(StrEnum):
    """The codes upstream's ``ph1tts.rs`` names (hex placeholders in the comments)."""

    TTS_FAIL_INVALID_REQUEST = "TTS_FAIL_INVALID_REQUEST"  # 0x54540001
    TTS_FAIL_PROVIDER = "TTS_FAIL_PROVIDER"  # 0x54540002
    TTS_FAIL_POLICY_RESTRICTED = "TTS_FAIL_POLICY_RESTRICTED"  # 0x54540003


class TtsRenderSummary(EngineDecision):
    route_class_used: Text32
    mode_used: Text32
    voice_id: Text96
    severity: Info = "INFO"


class TtsStarted(EngineDecision):
    answer_id: Text96
    severity: Info = "INFO"


class TtsCanceled(EngineDecision):
    answer_id: Text96
    stop_reason: Text64
    severity: Info = "INFO"


class TtsFailed(EngineDecision):
    """Rendering failed: the reason is one of PH1.TTS's ``TTS_FAIL_*`` codes."""

    reason_code: Literal[
        TtsReason.TTS_FAIL_INVALID_REQUEST, TtsReason.TTS_FAIL_PROVIDER, TtsReason.TTS_FAIL_POLICY_RESTRICTED
    ]
    answer_id: Text96
    fail_code: Text64
    severity: Error = "ERROR"


EVENTS = decisions(TTS_ENGINE, TtsRenderSummary, TtsStarted, TtsCanceled, TtsFailed)
TtsRenderSummaryEvent, TtsStartedEvent, TtsCanceledEvent, TtsFailedEvent = EVENTS

SLICE = SliceContract(
    name="ph1_tts",
    engines=(TTS_ENGINE,),
    kind="audit_backed",
    seed_row=18,
    events=EVENTS,
    examples=examples(  # an answer rendered and started, a second one canceled (barge-in), a third failed
        (
            TtsRenderSummaryEvent,
            "TTS_RENDERED",
            {"route_class_used": "ON_DEVICE", "mode_used": "NORMAL", "voice_id": "voice:alto/2"},
        ),
        (TtsStartedEvent, "TTS_STARTED", {"answer_id": "answer-{n}-1"}),
        (TtsCanceledEvent, "TTS_CANCELED", {"answer_id": "answer-{n}-2", "stop_reason": "BARGE_IN"}),
        (TtsFailedEvent, "TTS_FAIL_PROVIDER", {"answer_id": "answer-{n}-3", "fail_code": "PROVIDER_DOWN"}),
    ),
)
