"""The rules seed 000 rows 13-19 share: seven engines (PH1.C, PH1.NLP, PH1.D, PH1.X, PH1.WRITE, PH1.TTS,
PH1.E) whose decisions are typed rows of the audit ledger ``os_core.audit_events``, and no table of their own.

Each engine's module (``contracts/ph1_<x>.py``) pins its envelope (engine id, a required turn id and
idempotency key) and extends ``EngineDecision`` once per decision. What is common lives here:
- every decision names its user and device (the session stays optional), so the reference guard of PH1.F
  checks, before the append, that they exist in the tenant, that the device is the user's and that a session
  matches both (``consumers/projections/foundation.py``);
- the payload is the sheet's ``payload_min``: a few named text fields, each non-blank and bounded. Typed
  fields give the key rules (lower_snake ASCII names, no other key) and the bounds keep the whole map far
  under its 2,048 bytes and 16 entries;
- the severity the sheet fixes per decision (``INFO``/``WARN``/``ERROR``) is a constant of each decision's
  model, stored in the payload, so a row says its severity without a column (see docs/DB_WIRING/PH1_NLP.md).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import StringConstraints

from contracts.audit import AuditPayload
from contracts.envelope import Ident, LedgerEvent, new_event
from contracts.slice import ExampleContext

#: Non-blank: at least one character that is neither whitespace nor U+0000. The whitespace is spelled out
#: (ASCII and Unicode spaces) so that Python, Rust's regex (pydantic) and ECMA-262 (the exported schemas)
#: read the pattern alike: their ``\s`` classes differ.
_SPACE = r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NON_BLANK_PATTERN = rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"

Text8 = Annotated[str, StringConstraints(min_length=1, max_length=8, pattern=NON_BLANK_PATTERN)]
Text16 = Annotated[str, StringConstraints(min_length=1, max_length=16, pattern=NON_BLANK_PATTERN)]
Text32 = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=NON_BLANK_PATTERN)]
Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=NON_BLANK_PATTERN)]
Text96 = Annotated[str, StringConstraints(min_length=1, max_length=96, pattern=NON_BLANK_PATTERN)]
Text128 = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NON_BLANK_PATTERN)]

Info = Literal["INFO"]
Warn = Literal["WARN"]
Error = Literal["ERROR"]


class EngineDecision(AuditPayload):
    """One decision of an audit-backed engine of rows 13-19: about a user's turn on one of their devices."""

    user_id: Ident
    device_id: Ident


def decision_examples(
    ctx: ExampleContext, engine: str, decisions: list[tuple[type[LedgerEvent], dict[str, Any]]]
) -> list[LedgerEvent]:
    """One correlation of the user's (distinct per ``ctx.n``) with one decision per turn, in order: the shape of
    every example of rows 13-19."""
    prefix = engine.lower().replace(".", "-")
    refs = {"user_id": ctx.user_id, "device_id": ctx.device_id, "session_id": ctx.session_id}
    return [
        new_event(
            model,
            tenant_id=ctx.tenant_id,
            engine_id=engine,
            correlation_id=f"{prefix}-{ctx.user_id}-{ctx.n}",
            turn_id=f"turn-{i + 1}",
            idempotency_key=f"{prefix}-{i + 1}",
            occurred_at=ctx.at + timedelta(milliseconds=i),
            payload={**payload, **refs},
        )
        for i, (model, payload) in enumerate(decisions)
    ]
