"""The rules seed 000 rows 13-19 share: seven engines (PH1.C, PH1.NLP, PH1.D, PH1.X, PH1.WRITE, PH1.TTS,
PH1.E) whose decisions are typed rows of the audit ledger ``os_core.audit_events``, and no table of their own.

Each engine's module (``contracts/ph1_<x>.py``) extends ``EngineDecision`` once per decision and declares its
event types with ``decisions`` (the envelope: its engine id, a required turn id and idempotency key) and
its examples with ``examples``. What is common lives here:
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

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import StringConstraints, create_model

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.envelope import Ident, LedgerEvent, Payload, define_event, new_event
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


def decisions(engine: str, *payloads: type[EngineDecision]) -> tuple[type[LedgerEvent], ...]:
    """The event models of ``engine``'s decisions, one per payload model, in order. Each event type is its
    model's name in upper snake case (``WriteFormat`` is ``WRITE_FORMAT``), as the sheets name them. The
    envelope is tightened as every engine of rows 13-19 has it: published by ``engine`` only, about one turn
    (required turn id), with a dedupe key (required idempotency key), so the publisher refuses what the writer
    would dead-letter."""
    fields: dict[str, Any] = {
        "engine_id": (Literal[engine], ...),
        "turn_id": (Ident, ...),
        "idempotency_key": (Ident, ...),
    }
    envelope = create_model(f"{engine.title().replace('.', '')}Envelope", __base__=LedgerEvent, **fields)
    return tuple(
        define_event(AUDIT_EVENTS, re.sub(r"(?<!^)(?=[A-Z])", "_", p.__name__).upper(), p, base=envelope)
        for p in payloads
    )


#: One example decision: its event model, its reason code and the payload fields that are not constant.
Example = tuple[type[LedgerEvent], str, dict[str, Any]]


def examples(*rows: Example) -> Callable[[ExampleContext], list[LedgerEvent]]:
    """A slice's ``examples``: one correlation of the user's (distinct per ``ctx.n``) with one decision per
    turn, in order, the shape of every example of rows 13-19. A payload's constant fields (a required
    one-value ``Literal``, e.g. ``directive``) are filled in; ``{n}`` in a text value is ``ctx.n``
    (``str.format``), for values that must differ between examples."""

    def build(ctx: ExampleContext) -> list[LedgerEvent]:
        refs = {"user_id": ctx.user_id, "device_id": ctx.device_id, "session_id": ctx.session_id}
        out: list[LedgerEvent] = []
        for i, (model, reason, fields) in enumerate(rows):
            engine = model.model_fields["engine_id"].annotation.__args__[0]  # type: ignore[union-attr]
            prefix = engine.lower().replace(".", "-")
            payload = {k: v.format(n=ctx.n) if isinstance(v, str) else v for k, v in fields.items()}
            out.append(
                new_event(
                    model,
                    tenant_id=ctx.tenant_id,
                    engine_id=engine,
                    correlation_id=f"{prefix}-{ctx.user_id}-{ctx.n}",
                    turn_id=f"turn-{i + 1}",
                    idempotency_key=f"{prefix}-{i + 1}",
                    occurred_at=ctx.at + timedelta(milliseconds=i),
                    payload={**_constants(model.payload_model), "reason_code": reason, **payload, **refs},
                )
            )
        return out

    return build


def _constants(payload: type[Payload]) -> dict[str, Any]:
    """The required fields of ``payload`` that admit one value only (a one-value ``Literal``), with it."""
    return {
        name: get_args(f.annotation)[0]
        for name, f in payload.model_fields.items()
        if f.is_required() and get_origin(f.annotation) is Literal and len(get_args(f.annotation)) == 1
    }
