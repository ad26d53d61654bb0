"""PH1.WRITE (seed 000 row 17): how a response was formatted for the user, as an audit row.

Upstream records it with audit engine ``Other`` and type ``Other``; here the engine is ``PH1.WRITE`` and the
type ``WRITE_FORMAT`` (the event type selects the payload model, docs/DB_WIRING/PH1_WRITE.md). The sheet
names no reason codes for PH1.WRITE. Rules shared with rows 13-19: ``contracts.audit_decisions``.
"""

from __future__ import annotations

from typing import Literal

from contracts.audit_decisions import EngineDecision, Info, Text64, decisions, examples
from contracts.slice import SliceContract

WRITE_ENGINE = "PH1.WRITE"


class WriteFormat(EngineDecision):
    """``format_mode`` is e.g. ``FORMATTED_TEXT`` or ``FALLBACK_ORIGINAL`` (the sheet's examples, not a
    closed list)."""

    directive: Literal["format"]
    format_mode: Text64
    severity: Info = "INFO"


(WriteFormatEvent,) = EVENTS = decisions(WRITE_ENGINE, WriteFormat)

SLICE = SliceContract(
    name="ph1_write",
    engines=(WRITE_ENGINE,),
    kind="audit_backed",
    seed_row=17,
    events=EVENTS,
    examples=examples(  # a formatted answer, then one that fell back to the original text
        (WriteFormatEvent, "WRITE_FORMATTED", {"format_mode": "FORMATTED_TEXT"}),
        (WriteFormatEvent, "WRITE_FALLBACK", {"format_mode": "FALLBACK_ORIGINAL"}),
    ),
)
