"""PH1.X (seed 000 row 16): the orchestrator's directive for a turn (confirm, clarify, respond, dispatch,
wait), as audit rows.

``X_CONFIRM`` and ``X_DISPATCH`` are upstream's types; clarify, respond and wait are upstream's ``Other``,
made specific here (``X_CLARIFY``, ``X_RESPOND``, ``X_WAIT``) because the event type selects the payload
model (docs/DB_WIRING/PH1_X.md). Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from contracts.audit import AUDIT_EVENTS
from contracts.audit_decisions import EngineDecision, Info, Text64, Warn, decision_examples
from contracts.envelope import Ident, LedgerEvent, define_event
from contracts.slice import ExampleContext, SliceContract

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


class XEvent(LedgerEvent):
    """The envelope of PH1.X directives: published by PH1.X only, about one turn, with a dedupe key."""

    engine_id: Literal["PH1.X"]
    turn_id: Ident
    idempotency_key: Ident


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


XConfirmEvent = define_event(AUDIT_EVENTS, "X_CONFIRM", XConfirm, base=XEvent)
XClarifyEvent = define_event(AUDIT_EVENTS, "X_CLARIFY", XClarify, base=XEvent)
XRespondEvent = define_event(AUDIT_EVENTS, "X_RESPOND", XRespond, base=XEvent)
XDispatchEvent = define_event(AUDIT_EVENTS, "X_DISPATCH", XDispatch, base=XEvent)
XWaitEvent = define_event(AUDIT_EVENTS, "X_WAIT", XWait, base=XEvent)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """A turn through each directive: clarify, confirm, dispatch, wait, respond."""
    return decision_examples(
        ctx,
        X_ENGINE,
        [
            (XClarifyEvent, {"reason_code": "X_NLP_CLARIFY", "directive": "clarify", "what_is_missing": "recipient"}),
            (
                XConfirmEvent,
                {"reason_code": "X_CONFIRM_REQUIRED", "directive": "confirm", "confirm_kind": "SEND_MESSAGE"},
            ),
            (XDispatchEvent, {"reason_code": "X_DISPATCH_TOOL", "directive": "dispatch", "dispatch_target": "PH1.E"}),
            (XWaitEvent, {"reason_code": "X_DISPATCH_TOOL", "directive": "wait", "wait_kind": "TOOL_RESULT"}),
            (XRespondEvent, {"reason_code": "X_NLP_CHAT", "directive": "respond", "response_kind": "ANSWER"}),
        ],
    )


SLICE = SliceContract(
    name="ph1_x",
    engines=(X_ENGINE,),
    kind="audit_backed",
    seed_row=16,
    doc="docs/DB_WIRING/PH1_X.md",
    acceptance="AT-X-DB",
    events=(XConfirmEvent, XClarifyEvent, XRespondEvent, XDispatchEvent, XWaitEvent),
    requires=("audit", "foundation"),
    examples=examples,
)
