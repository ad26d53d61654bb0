"""PH1.D (seed 000 row 15): the outcome of PH1.D's output on a turn (chat, intent, clarify, analysis, fail
closed), as audit rows.

Upstream records all five as audit type ``Other`` (its closed enum has no PH1.D type). Here the event type
selects the payload model and one ledger holds every engine's rows, so each outcome is its own type
(``D_CHAT``, ``D_INTENT``, ``D_CLARIFY``, ``D_ANALYSIS``, ``D_FAIL_CLOSED``): "Other" made specific, as
PH1.PERSONA does (docs/DB_WIRING/PH1_D.md). Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from contracts.audit_decisions import EngineDecision, Error, Info, Text64, Warn, decisions, examples
from contracts.slice import SliceContract

D_ENGINE = "PH1.D"


class DReason(StrEnum):
    """The codes upstream's ``ph1d.rs`` names (hex placeholders in the comments)."""

    D_FAIL_INVALID_SCHEMA = "D_FAIL_INVALID_SCHEMA"  # 0x44000001
    D_FAIL_FORBIDDEN_OUTPUT = "D_FAIL_FORBIDDEN_OUTPUT"  # 0x44000002
    D_FAIL_SAFETY_BLOCK = "D_FAIL_SAFETY_BLOCK"  # 0x44000003
    D_FAIL_TIMEOUT = "D_FAIL_TIMEOUT"  # 0x44000004
    D_FAIL_BUDGET_EXCEEDED = "D_FAIL_BUDGET_EXCEEDED"  # 0x44000005
    D_CLARIFY_EVIDENCE_REQUIRED = "D_CLARIFY_EVIDENCE_REQUIRED"  # 0x44000100


class DChat(EngineDecision):
    decision: Literal["CHAT"]
    output_mode: Literal["chat"]
    severity: Info = "INFO"


class DIntent(EngineDecision):
    decision: Literal["INTENT"]
    refined_intent_type: Text64
    output_mode: Literal["intent"]
    severity: Info = "INFO"


class DClarify(EngineDecision):
    decision: Literal["CLARIFY"]
    what_is_missing: Text64
    output_mode: Literal["clarify"]
    severity: Warn = "WARN"


class DAnalysis(EngineDecision):
    decision: Literal["ANALYSIS"]
    analysis_kind: Text64
    output_mode: Literal["analysis"]
    severity: Info = "INFO"


class DFailClosed(EngineDecision):
    """PH1.D refused its own output: the reason is one of its ``D_FAIL_*`` codes."""

    reason_code: Literal[
        DReason.D_FAIL_INVALID_SCHEMA,
        DReason.D_FAIL_FORBIDDEN_OUTPUT,
        DReason.D_FAIL_SAFETY_BLOCK,
        DReason.D_FAIL_TIMEOUT,
        DReason.D_FAIL_BUDGET_EXCEEDED,
    ]
    decision: Literal["FAIL_CLOSED"]
    fail_code: Text64
    output_mode: Literal["fail"]
    severity: Error = "ERROR"


EVENTS = decisions(D_ENGINE, DChat, DIntent, DClarify, DAnalysis, DFailClosed)
DChatEvent, DIntentEvent, DClarifyEvent, DAnalysisEvent, DFailClosedEvent = EVENTS

SLICE = SliceContract(
    name="ph1_d",
    engines=(D_ENGINE,),
    kind="audit_backed",
    seed_row=15,
    events=EVENTS,
    examples=examples(  # one of each outcome, a turn each
        (DChatEvent, "D_CHAT_OK", {}),
        (DClarifyEvent, "D_CLARIFY_EVIDENCE_REQUIRED", {"what_is_missing": "source_document"}),
        (DIntentEvent, "D_INTENT_OK", {"refined_intent_type": "SEND_MESSAGE"}),
        (DAnalysisEvent, "D_ANALYSIS_OK", {"analysis_kind": "SUMMARY"}),
        (DFailClosedEvent, "D_FAIL_TIMEOUT", {"fail_code": "PROVIDER_TIMEOUT"}),
    ),
)
