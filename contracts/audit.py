"""PH1.J: the audit ledger ``os_core.audit_events`` and its generic audit event.

Many engines record their decisions here (PH1.PERSONA, PH1.NLP, ...), each with its own typed payload that
extends ``AuditPayload``. Dedupe is scoped to (tenant, correlation, idempotency key), so the Kafka key's
aggregate is the correlation id by default: one writer owns a scope, in order.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from contracts.envelope import (
    STORABLE_TEXT_PATTERN,
    Ident,
    LedgerEvent,
    LedgerSpec,
    Payload,
    ReasonText,
    ShortText,
    StorableText,
    define_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import LedgerColumns, SliceContract

AUDIT_EVENTS = LedgerSpec(
    name="audit_events",
    table="os_core.audit_events",
    id_column="event_id",
    idempotency_scope=("tenant_id", "correlation_id", "idempotency_key"),
    contract_invalid=ReasonCode.EVENT_SCHEMA_INVALID,
    tenant_violation=ReasonCode.EVENT_TENANT_MISMATCH,
    duplicate=ReasonCode.IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.PH1_J_AUDIT_APPEND_ONLY_VIOLATION,
)

AttributeValue = StorableText | int | bool | None
AttributeName = Annotated[str, StringConstraints(max_length=64, pattern=STORABLE_TEXT_PATTERN)]
Attributes = Annotated[dict[AttributeName, AttributeValue], Field(max_length=32)]


class AuditPayload(Payload):
    """Fields every audit row has as columns: the reason code and the optional subject references."""

    reason_code: ReasonText
    user_id: Ident | None = None
    device_id: Ident | None = None
    session_id: Ident | None = None

    def aggregate_id(self, event: LedgerEvent) -> str:
        """An audit row about a user shares the user's partition with the identity, device and session
        events it references, so it can never overtake them; other rows follow their correlation."""
        return f"user:{self.user_id}" if self.user_id else event.correlation_id


class AuditRecorded(AuditPayload):
    """A generic engine decision: a short summary and a bounded map of attributes."""

    summary: ShortText
    attributes: Attributes = Field(default_factory=dict)


AuditRecordedEvent = define_event(AUDIT_EVENTS, "AUDIT_RECORDED", AuditRecorded)

SLICE = SliceContract(
    name="audit",
    engines=("PH1.J",),
    kind="ledger_only",
    seed_row=2,
    doc="docs/DB_WIRING/PH1_J.md",
    acceptance="AT-PH1-J-DB",
    ledgers=(LedgerColumns(AUDIT_EVENTS, AuditPayload),),
    events=(AuditRecordedEvent,),
    reasons=(ReasonCode.PH1_J_AUDIT_APPEND_ONLY_VIOLATION,),
)
