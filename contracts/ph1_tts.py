"""PH1.TTS (seed 000 row 18): what speech rendering did for an answer (render summary, started, canceled,
failed), as audit rows. The engine is stored as ``PH1.TTS`` (upstream's doc spells it ``PH1.Tts``; its
enum value is ``Ph1Tts``). Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from contracts.audit import AUDIT_EVENTS
from contracts.audit_decisions import EngineDecision, Error, Info, Text32, Text64, Text96, decision_examples
from contracts.envelope import Ident, LedgerEvent, define_event
from contracts.slice import ExampleContext, SliceContract

TTS_ENGINE = "PH1.TTS"


class TtsReason(StrEnum):
    """The codes upstream's ``ph1tts.rs`` names (hex placeholders in the comments)."""

    TTS_FAIL_INVALID_REQUEST = "TTS_FAIL_INVALID_REQUEST"  # 0x54540001
    TTS_FAIL_PROVIDER = "TTS_FAIL_PROVIDER"  # 0x54540002
    TTS_FAIL_POLICY_RESTRICTED = "TTS_FAIL_POLICY_RESTRICTED"  # 0x54540003


class TtsEvent(LedgerEvent):
    """The envelope of PH1.TTS decisions: published by PH1.TTS only, about one turn, with a dedupe key."""

    engine_id: Literal["PH1.TTS"]
    turn_id: Ident
    idempotency_key: Ident


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


TtsRenderSummaryEvent = define_event(AUDIT_EVENTS, "TTS_RENDER_SUMMARY", TtsRenderSummary, base=TtsEvent)
TtsStartedEvent = define_event(AUDIT_EVENTS, "TTS_STARTED", TtsStarted, base=TtsEvent)
TtsCanceledEvent = define_event(AUDIT_EVENTS, "TTS_CANCELED", TtsCanceled, base=TtsEvent)
TtsFailedEvent = define_event(AUDIT_EVENTS, "TTS_FAILED", TtsFailed, base=TtsEvent)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """An answer rendered and started, a second one canceled (barge-in), a third failed."""
    a = f"answer-{ctx.n}"
    return decision_examples(
        ctx,
        TTS_ENGINE,
        [
            (
                TtsRenderSummaryEvent,
                {
                    "reason_code": "TTS_RENDERED",
                    "route_class_used": "ON_DEVICE",
                    "mode_used": "NORMAL",
                    "voice_id": "voice:alto/2",
                },
            ),
            (TtsStartedEvent, {"reason_code": "TTS_STARTED", "answer_id": f"{a}-1"}),
            (TtsCanceledEvent, {"reason_code": "TTS_CANCELED", "answer_id": f"{a}-2", "stop_reason": "BARGE_IN"}),
            (TtsFailedEvent, {"reason_code": "TTS_FAIL_PROVIDER", "answer_id": f"{a}-3", "fail_code": "PROVIDER_DOWN"}),
        ],
    )


SLICE = SliceContract(
    name="ph1_tts",
    engines=(TTS_ENGINE,),
    kind="audit_backed",
    seed_row=18,
    doc="docs/DB_WIRING/PH1_TTS.md",
    acceptance="AT-TTS-DB",
    events=(TtsRenderSummaryEvent, TtsStartedEvent, TtsCanceledEvent, TtsFailedEvent),
    requires=("audit", "foundation"),
    examples=examples,
)
