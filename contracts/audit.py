"""PH1.J: the audit ledger ``os_core.audit_events`` and its generic audit event.

Many engines record their decisions here (PH1.PERSONA, PH1.NLP, ...), each with its own typed payload that
extends ``AuditPayload``. Dedupe is scoped to (tenant, correlation, idempotency key), so the Kafka key's
aggregate is the correlation id by default: one writer owns a scope, in order. A row of a work order dedupes
on (tenant, work order, idempotency key) instead, across correlations (docs/DB_WIRING/PH1_J.md).

``work_order_id``, ``severity`` and ``evidence_ref`` came after the wire contract: an event without them is
what it was (they are left out of its canonical payload while they hold their default, so its content hash,
and so its dedupe, is unchanged), and PostgreSQL generates their columns from the stored payload.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, WithJsonSchema

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
    preferred_scope=("tenant_id", "work_order_id", "idempotency_key"),
)

AttributeValue = StorableText | int | bool | None
AttributeName = Annotated[str, StringConstraints(max_length=64, pattern=STORABLE_TEXT_PATTERN)]
Attributes = Annotated[dict[AttributeName, AttributeValue], Field(max_length=32)]

#: Non-blank text (spelled out as in ``contracts.audit_decisions``, which explains why).
_SPACE = r"\t\n\u000b\u000c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
NON_BLANK = rf"^[^\u0000]*[^\u0000{_SPACE}][^\u0000]*$"
Hash128 = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=NON_BLANK)]
LedgerRef = Annotated[int, Field(ge=1, le=2**63 - 1)]
Severity = Literal["INFO", "WARN", "ERROR"]

#: Upstream's ``payload_min``: at most 16 entries, lower_snake ASCII keys of at most 64 characters, non-blank
#: values of at most 256, keys and values at most 2,048 bytes together (checked by ``check_payload_min``).
PayloadMinKey = Annotated[str, StringConstraints(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
PayloadMinValue = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=NON_BLANK)]
PayloadMin = Annotated[dict[PayloadMinKey, PayloadMinValue], Field(max_length=16)]


def check_payload_min(entries: dict[str, str]) -> None:
    """The 2,048-byte bound of a ``payload_min`` (UTF-8 bytes of its keys and values)."""
    if sum(len(k.encode()) + len(v.encode()) for k, v in entries.items()) > 2048:
        raise ValueError("payload_min: keys and values exceed 2048 bytes")


def _is_none(value: Any) -> bool:
    return value is None


EvidenceKey = Annotated[str, StringConstraints(pattern=r"^(transcript_hash|memory_ledger_id|conversation_turn_id)$")]


def _check_evidence_ref(ref: dict[str, str | int]) -> dict[str, str | int]:
    for key, value in ref.items():
        if (key == "transcript_hash") != isinstance(value, str):
            raise ValueError(f"evidence_ref: {key} is {'a hash' if key == 'transcript_hash' else 'a ledger id'}")
    return ref


#: Reference-only evidence (upstream ``evidence_ref``): a transcript hash and ledger ids, never content; at
#: least one. A bounded map rather than a nested model: a dict keeps the publisher's fast path (its values are
#: re-checked at publish, see ``producers.round_trip``).
EvidenceRef = Annotated[
    dict[EvidenceKey, Hash128 | LedgerRef],
    Field(min_length=1, max_length=3),
    AfterValidator(_check_evidence_ref),
    # What the validator checks, as JSON Schema: each key with its own type.
    WithJsonSchema(
        {
            "type": "object",
            "properties": {
                "transcript_hash": {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NON_BLANK},
                "memory_ledger_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
                "conversation_turn_id": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            },
            "additionalProperties": False,
            "minProperties": 1,
        }
    ),
]


class AuditPayload(Payload):
    """Fields every audit row has as columns: the reason code and the optional subject references."""

    reason_code: ReasonText
    user_id: Ident | None = None
    device_id: Ident | None = None
    session_id: Ident | None = None
    #: the work order the row is about: its dedupe scope is then (tenant, work order, key), not the correlation.
    work_order_id: Ident | None = Field(default=None, exclude_if=_is_none)
    severity: Severity = Field(default="INFO", exclude_if=lambda v: v == "INFO")
    evidence_ref: EvidenceRef | None = Field(default=None, exclude_if=_is_none)

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
    ledgers=(LedgerColumns(AUDIT_EVENTS, AuditPayload, generated=("work_order_id", "severity", "evidence_ref")),),
    events=(AuditRecordedEvent,),
)
