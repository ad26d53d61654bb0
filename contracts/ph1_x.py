"""PH1.X (seed 000 row 16): the orchestrator's directive for a turn (confirm, clarify, respond, dispatch,
wait), as audit rows.

``X_CONFIRM`` and ``X_DISPATCH`` are upstream's types; clarify, respond and wait are upstream's ``Other``,
made specific here (``X_CLARIFY``, ``X_RESPOND``, ``X_WAIT``) because the event type selects the payload
model (docs/DB_WIRING/PH1_X.md). Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from contracts.audit_decisions import EngineDecision, Info, Text64, Warn, decisions, examples
from contracts.slice import SliceContract

X_ENGINE = "PH1.X"


class XReason(StrEnum):
    """The codes upstream's ``selene_os/src/ph1x.rs`` names (hex placeholders, which collide with
    PH1.EXPLAIN's, in the comments: names are what this project stores)."""

    X_SESSION_NOT_ACTIVE = "X_SESSION_NOT_ACTIVE"  # 0x58000001
    X_INTERRUPT_CANCEL = "X_INTERRUPT_CANCEL"  # 0x58000002
    X_LAST_FAILURE = "X_LAST_FAILURE"  # 0x58000003
    X_NLP_CLARIFY = "X_NLP_CLARIFY"  # 0x58000004
    X_NLP_CHAT = "X_NLP_CHAT"  # 0x58000005
    X_CONFIRM_REQUIRED = "X_CONFIRM_REQUIRED"  # 0x58000006
    X_DISPATCH_TOOL = "X_DISPATCH_TOOL"  # 0x58000007


class XConfirm(EngineDecision):
    directive: Literal["confirm"]
    confirm_kind: Text64
    severity: Info = "INFO"


class XClarify(EngineDecision):
    directive: Literal["clarify"]
    what_is_missing: Text64
    severity: Warn = "WARN"


class XRespond(EngineDecision):
    directive: Literal["respond"]
    response_kind: Text64
    severity: Info = "INFO"


class XDispatch(EngineDecision):
    directive: Literal["dispatch"]
    dispatch_target: Text64
    severity: Info = "INFO"


class XWait(EngineDecision):
    directive: Literal["wait"]
    wait_kind: Text64
    severity: Info = "INFO"


EVENTS = decisions(X_ENGINE, XConfirm, XClarify, XRespond, XDispatch, XWait)
XConfirmEvent, XClarifyEvent, XRespondEvent, XDispatchEvent, XWaitEvent = EVENTS

SLICE = SliceContract(
    name="ph1_x",
    engines=(X_ENGINE,),
    kind="audit_backed",
    seed_row=16,
    events=EVENTS,
    examples=examples(  # a turn through each directive: clarify, confirm, dispatch, wait, respond
        (XClarifyEvent, "X_NLP_CLARIFY", {"what_is_missing": "recipient"}),
        (XConfirmEvent, "X_CONFIRM_REQUIRED", {"confirm_kind": "SEND_MESSAGE"}),
        (XDispatchEvent, "X_DISPATCH_TOOL", {"dispatch_target": "PH1.E"}),
        (XWaitEvent, "X_DISPATCH_TOOL", {"wait_kind": "TOOL_RESULT"}),
        (XRespondEvent, "X_NLP_CHAT", {"response_kind": "ANSWER"}),
    ),
)
