"""PH1.M (seed 000 row 23): the user's memory, a ledger of memory events and the current memory per key.

A commit of PH1.M is one event on ``os_core.memory_ledger``: ``MEMORY_STORED`` (kind ``STORED`` or
``UPDATED``: upstream's ``M_STORE_OR_UPDATE_COMMIT``) carries the value; ``MEMORY_FORGOTTEN`` (upstream's
``M_FORGET_COMMIT``) carries none, since forgetting must not write down what is forgotten. Upstream's
``t_event`` is the envelope's ``occurred_at``. ``use_policy`` and ``expires_at`` are in the event (upstream
passed them beside it, so its rebuild had to guess them from the layer): a rebuild equals the live row.

The user must exist in the event's tenant (upstream's foreign key to ``identities``): the current row's
tenant-carrying foreign key refuses any other, and the writer dead-letters it as ``REFERENCE_UNKNOWN``.

Aggregate = (user, memory key): the current row's key, whose events must apply in publish order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, StringConstraints

from contracts.audit_decisions import NON_BLANK_PATTERN, Text128
from contracts.envelope import Ident, LedgerEvent, LedgerSpec, Payload, ReasonText, define_event, new_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

MEMORY_LEDGER = LedgerSpec(
    name="memory_ledger",
    table="os_core.memory_ledger",
    id_column="ledger_id",
    idempotency_scope=("tenant_id", "user_id", "idempotency_key"),
    contract_invalid=ReasonCode.M_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.M_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.M_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.M_APPEND_ONLY_VIOLATION,
)
ENGINE_ID = "PH1.M"

Text256 = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NON_BLANK_PATTERN)]


def _aware(value: datetime) -> datetime:
    if value.utcoffset() is None:
        raise ValueError("a time needs its UTC offset")
    return value


class MemoryEventInput(Payload):
    """Upstream's ``MemoryLedgerEvent``, flat (its ``memory_value`` is ``verbatim`` + ``normalized``, its
    ``provenance`` ``session_id`` + ``transcript_hash``), plus the append-time ``use_policy`` and ``expires_at``."""

    user_id: Ident
    memory_key: Text128
    kind: Literal["STORED", "UPDATED", "FORGOTTEN"]
    verbatim: Text256 | None
    normalized: Text256 | None = None
    evidence_quote: Text256 | None = None
    session_id: Ident | None = None
    transcript_hash: Ident | None = None
    layer: Literal["WORKING", "MICRO", "LONG_TERM"]
    sensitivity_flag: Literal["LOW", "SENSITIVE"]
    confidence: Literal["HIGH", "MED", "LOW"]
    consent: Literal["NOT_REQUESTED", "EXPLICIT_REMEMBER", "CONFIRMED", "DENIED"]
    reason_code: ReasonText
    use_policy: Literal["ALWAYS_USABLE", "REPEATED_OR_CONFIRMED", "CONTEXT_RELEVANT_ONLY", "USER_REQUESTED_ONLY"]
    expires_at: Annotated[datetime, AfterValidator(_aware)] | None = None

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"memory:{self.user_id}:{self.memory_key}"


class MemoryStored(MemoryEventInput):
    kind: Literal["STORED", "UPDATED"]
    verbatim: Text256


class MemoryForgotten(MemoryEventInput):
    """A tombstone: no value, no expiry."""

    kind: Literal["FORGOTTEN"] = "FORGOTTEN"
    verbatim: Literal[None] = None
    normalized: Literal[None] = None
    expires_at: Literal[None] = None
    reason_code: ReasonText = "M_FORGOTTEN"


MemoryStoredEvent = define_event(MEMORY_LEDGER, "MEMORY_STORED", MemoryStored)
MemoryForgottenEvent = define_event(MEMORY_LEDGER, "MEMORY_FORGOTTEN", MemoryForgotten)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """The user's preferred name is stored, then corrected."""
    common = {"tenant_id": ctx.tenant_id, "engine_id": ENGINE_ID, "occurred_at": ctx.at}
    memory = {
        "user_id": ctx.user_id,
        "memory_key": f"profile:preferred_name:{ctx.n}",
        "session_id": ctx.session_id,
        "layer": "LONG_TERM",
        "sensitivity_flag": "LOW",
        "confidence": "HIGH",
        "consent": "EXPLICIT_REMEMBER",
        "use_policy": "ALWAYS_USABLE",
    }
    return [
        new_event(
            MemoryStoredEvent,
            correlation_id=f"memory-{ctx.user_id}-{ctx.n}-{kind}",
            payload={**memory, "kind": kind, "verbatim": name, "reason_code": f"M_{kind}"},
            **common,
        )
        for kind, name in (("STORED", "Ana"), ("UPDATED", "Ana P"))
    ]


SLICE = SliceContract(
    name="ph1_m",
    engines=(ENGINE_ID,),
    kind="custom",
    seed_row=23,
    doc="docs/DB_WIRING/PH1_M.md",
    acceptance="AT-M-DB",
    ledgers=(LedgerColumns(MEMORY_LEDGER, MemoryEventInput),),
    events=(MemoryStoredEvent, MemoryForgottenEvent),
    requires=("foundation",),
    examples=examples,
)
