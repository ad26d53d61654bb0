"""PH1.NLP (seed 000 row 14): intent drafts, clarifications and chat decisions, as audit rows.

Three commits, two event types (the sheet's): ``NLP_INTENT_DRAFT`` carries an intent draft or, with
``decision=CHAT``, the decision that the turn is plain chat (upstream has no chat type and reuses this one);
``NLP_CLARIFY`` asks for what is missing. Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import ConfigDict, model_validator

from contracts.audit_decisions import EngineDecision, Info, Text8, Text64, Warn, decisions, examples
from contracts.slice import SliceContract

NLP_ENGINE = "PH1.NLP"


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


NlpIntentDraftEvent, NlpClarifyEvent = EVENTS = decisions(NLP_ENGINE, NlpIntentDraft, NlpClarify)
_DRAFT = {"decision": "INTENT_DRAFT", "intent_type": "CREATE_REMINDER", "overall_confidence": "HIGH"}

SLICE = SliceContract(
    name="ph1_nlp",
    engines=(NLP_ENGINE,),
    kind="audit_backed",
    seed_row=14,
    events=EVENTS,
    examples=examples(  # one conversation of the user: a clarification, then the intent draft, then a chat turn
        (NlpClarifyEvent, "N_CLARIFY_MISSING_FIELD", {"what_is_missing": "meeting_time"}),
        (NlpIntentDraftEvent, "N_INTENT_OK", _DRAFT),
        (NlpIntentDraftEvent, "N_CHAT_GREETING", {"decision": "CHAT"}),
    ),
)
