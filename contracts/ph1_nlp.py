"""PH1.NLP (seed 000 row 14): intent drafts, clarifications and chat decisions, as audit rows.

Three commits, two event types (the sheet's): ``NLP_INTENT_DRAFT`` carries an intent draft or, with
``decision=CHAT``, the decision that the turn is plain chat (upstream has no chat type and reuses this one);
``NLP_CLARIFY`` asks for what is missing. Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, model_validator

from contracts.audit import AUDIT_EVENTS
from contracts.audit_decisions import EngineDecision, Info, Text8, Text64, Warn, decision_examples
from contracts.envelope import Ident, LedgerEvent, define_event
from contracts.slice import ExampleContext, SliceContract

NLP_ENGINE = "PH1.NLP"
NLP_INTENT_DRAFT = "NLP_INTENT_DRAFT"
NLP_CLARIFY = "NLP_CLARIFY"


class NlpReason(StrEnum):
    """The codes PH1.NLP decides with (upstream ``ph1n.rs``; its hex placeholders in the comments)."""

    N_INTENT_OK = "N_INTENT_OK"  # 0x4E000001
    N_CHAT_GREETING = "N_CHAT_GREETING"  # 0x4E000002
    N_CHAT_NO_INTENT = "N_CHAT_NO_INTENT"  # 0x4E000003
    N_CLARIFY_TOO_LONG = "N_CLARIFY_TOO_LONG"  # 0x4E000010
    N_CLARIFY_MISSING_FIELD = "N_CLARIFY_MISSING_FIELD"  # 0x4E000011
    N_CLARIFY_AMBIGUOUS = "N_CLARIFY_AMBIGUOUS"  # 0x4E000012
    N_CLARIFY_MULTI_INTENT = "N_CLARIFY_MULTI_INTENT"  # 0x4E000013
    N_CLARIFY_UNCERTAIN_SPAN = "N_CLARIFY_UNCERTAIN_SPAN"  # 0x4E000014


class NlpEvent(LedgerEvent):
    """The envelope of PH1.NLP decisions: published by PH1.NLP only, about one turn, with a dedupe key."""

    engine_id: Literal["PH1.NLP"]
    turn_id: Ident
    idempotency_key: Ident


class NlpIntentDraft(EngineDecision):
    """An intent draft (``INTENT_DRAFT``: intent type and overall confidence) or chat (``CHAT``: neither)."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"decision": {"const": "INTENT_DRAFT"}}},
            "then": {
                "required": ["intent_type", "overall_confidence"],
                "properties": {"intent_type": {"type": "string"}, "overall_confidence": {"type": "string"}},
            },
            "else": {"properties": {"intent_type": {"type": "null"}, "overall_confidence": {"type": "null"}}},
        }
    )

    reason_code: Literal[NlpReason.N_INTENT_OK, NlpReason.N_CHAT_GREETING, NlpReason.N_CHAT_NO_INTENT]
    decision: Literal["INTENT_DRAFT", "CHAT"]
    intent_type: Text64 | None = None
    overall_confidence: Text8 | None = None
    severity: Info = "INFO"

    @model_validator(mode="after")
    def _draft_or_chat(self) -> NlpIntentDraft:
        draft = self.decision == "INTENT_DRAFT"
        if draft != (self.intent_type is not None) or draft != (self.overall_confidence is not None):
            raise ValueError("INTENT_DRAFT carries intent_type and overall_confidence, CHAT neither")
        return self


class NlpClarify(EngineDecision):
    """The turn cannot be drafted: one question about what is missing."""

    reason_code: Literal[
        NlpReason.N_CLARIFY_TOO_LONG,
        NlpReason.N_CLARIFY_MISSING_FIELD,
        NlpReason.N_CLARIFY_AMBIGUOUS,
        NlpReason.N_CLARIFY_MULTI_INTENT,
        NlpReason.N_CLARIFY_UNCERTAIN_SPAN,
    ]
    decision: Literal["CLARIFY"]
    what_is_missing: Text64
    severity: Warn = "WARN"


NlpIntentDraftEvent = define_event(AUDIT_EVENTS, NLP_INTENT_DRAFT, NlpIntentDraft, base=NlpEvent)
NlpClarifyEvent = define_event(AUDIT_EVENTS, NLP_CLARIFY, NlpClarify, base=NlpEvent)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """One conversation of the user: a clarification, then the intent draft, then a chat turn."""
    clarify = {"reason_code": "N_CLARIFY_MISSING_FIELD", "decision": "CLARIFY", "what_is_missing": "meeting_time"}
    draft = {
        "reason_code": "N_INTENT_OK",
        "decision": "INTENT_DRAFT",
        "intent_type": "CREATE_REMINDER",
        "overall_confidence": "HIGH",
    }
    chat = {"reason_code": "N_CHAT_GREETING", "decision": "CHAT"}
    return decision_examples(
        ctx, NLP_ENGINE, [(NlpClarifyEvent, clarify), (NlpIntentDraftEvent, draft), (NlpIntentDraftEvent, chat)]
    )


SLICE = SliceContract(
    name="ph1_nlp",
    engines=(NLP_ENGINE,),
    kind="audit_backed",
    seed_row=14,
    doc="docs/DB_WIRING/PH1_NLP.md",
    acceptance="AT-NLP-DB",
    events=(NlpIntentDraftEvent, NlpClarifyEvent),
    requires=("audit", "foundation"),
    examples=examples,
)
