"""PH1.WRITE (seed 000 row 17): how a response was formatted for the user, as an audit row.

Upstream records it with audit engine ``Other`` and type ``Other``; here the engine is ``PH1.WRITE`` and the
type ``WRITE_FORMAT`` (the event type selects the payload model, docs/DB_WIRING/PH1_WRITE.md). The sheet
names no reason codes for PH1.WRITE. Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from typing import Literal

from contracts.audit import AUDIT_EVENTS
from contracts.audit_decisions import EngineDecision, Info, Text64, decision_examples
from contracts.envelope import Ident, LedgerEvent, define_event
from contracts.slice import ExampleContext, SliceContract

WRITE_ENGINE = "PH1.WRITE"
WRITE_FORMAT = "WRITE_FORMAT"


class WriteEvent(LedgerEvent):
    """The envelope of PH1.WRITE decisions: published by PH1.WRITE only, about one turn, with a dedupe key."""

    engine_id: Literal["PH1.WRITE"]
    turn_id: Ident
    idempotency_key: Ident


class WriteFormat(EngineDecision):
    """``format_mode`` is e.g. ``FORMATTED_TEXT`` or ``FALLBACK_ORIGINAL`` (the sheet's examples, not a
    closed list)."""

    directive: Literal["format"]
    format_mode: Text64
    severity: Info = "INFO"


WriteFormatEvent = define_event(AUDIT_EVENTS, WRITE_FORMAT, WriteFormat, base=WriteEvent)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """A formatted answer, then one that fell back to the original text."""
    return decision_examples(
        ctx,
        WRITE_ENGINE,
        [
            (
                WriteFormatEvent,
                {"reason_code": "WRITE_FORMATTED", "directive": "format", "format_mode": "FORMATTED_TEXT"},
            ),
            (
                WriteFormatEvent,
                {"reason_code": "WRITE_FALLBACK", "directive": "format", "format_mode": "FALLBACK_ORIGINAL"},
            ),
        ],
    )


SLICE = SliceContract(
    name="ph1_write",
    engines=(WRITE_ENGINE,),
    kind="audit_backed",
    seed_row=17,
    doc="docs/DB_WIRING/PH1_WRITE.md",
    acceptance="AT-WRITE-DB",
    events=(WriteFormatEvent,),
    requires=("audit", "foundation"),
    examples=examples,
)
