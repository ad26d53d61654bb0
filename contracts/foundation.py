"""PH1.F foundation: identities, devices, sessions and the conversation ledger.

Identity, device and session writes are audit events of engines PH1.F and PH1.L: appended to the audit
ledger (so they are replayable) and projected into ``os_core.identities``, ``devices`` and ``sessions``.
Their aggregate is the user, so a user's identity, devices and sessions share one partition and arrive in
the order they were published (a device never overtakes the identity it belongs to).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts.audit import AUDIT_EVENTS, Attributes, AuditPayload
from contracts.envelope import Ident, LedgerSpec, Payload, ShortText, StorableText, define_event
from contracts.reasons import ReasonCode
from contracts.slice import LedgerColumns, SliceContract


class _UserScoped(AuditPayload):
    """Required user: the aggregate (and so the partition) is the user's, see ``AuditPayload``."""

    user_id: Ident


class IdentityUpserted(_UserScoped):
    """An identity is created or changed."""

    display_name: ShortText | None = None
    status: Literal["ACTIVE", "DISABLED"] = "ACTIVE"


class DeviceRegistered(_UserScoped):
    """A device is bound to a user (and so to the user's tenant)."""

    device_id: Ident
    device_type: Ident


class DeviceRevoked(_UserScoped):
    device_id: Ident


class SessionOpened(_UserScoped):
    device_id: Ident
    session_id: Ident


class SessionClosed(_UserScoped):
    device_id: Ident
    session_id: Ident


IdentityUpsertedEvent = define_event(AUDIT_EVENTS, "IDENTITY_UPSERTED", IdentityUpserted)
DeviceRegisteredEvent = define_event(AUDIT_EVENTS, "DEVICE_REGISTERED", DeviceRegistered)
DeviceRevokedEvent = define_event(AUDIT_EVENTS, "DEVICE_REVOKED", DeviceRevoked)
SessionOpenedEvent = define_event(AUDIT_EVENTS, "SESSION_OPENED", SessionOpened)
SessionClosedEvent = define_event(AUDIT_EVENTS, "SESSION_CLOSED", SessionClosed)

CONVERSATION_LEDGER = LedgerSpec(
    name="conversation_ledger",
    table="conversation.conversation_ledger",
    id_column="conversation_turn_id",
    idempotency_scope=("tenant_id", "correlation_id", "idempotency_key"),
    contract_invalid=ReasonCode.EVENT_SCHEMA_INVALID,
    tenant_violation=ReasonCode.EVENT_TENANT_MISMATCH,
    duplicate=ReasonCode.IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.PH1_F_CONVERSATION_APPEND_ONLY_VIOLATION,
)


class ConversationTurn(Payload):
    """One message of a conversation turn, by the user or by Selene."""

    speaker: Literal["USER", "SELENE"]
    source: Literal["VOICE", "TEXT", "SYSTEM"]
    text: StorableText = Field(max_length=8192)
    user_id: Ident | None = None
    device_id: Ident | None = None
    session_id: Ident | None = None
    metadata: Attributes = Field(default_factory=dict)


ConversationTurnEvent = define_event(CONVERSATION_LEDGER, "CONVERSATION_TURN_RECORDED", ConversationTurn)

SLICE = SliceContract(
    name="foundation",
    engines=("PH1.F", "PH1.L"),
    kind="custom",
    seed_row=1,
    doc="docs/DB_WIRING/PH1_F.md",
    acceptance="AT-PH1-F-DB",
    ledgers=(
        LedgerColumns(
            CONVERSATION_LEDGER, ConversationTurn, exclude=("metadata",), renamed_fields=(("text", "text_body"),)
        ),
    ),
    events=(
        IdentityUpsertedEvent,
        DeviceRegisteredEvent,
        DeviceRevokedEvent,
        SessionOpenedEvent,
        SessionClosedEvent,
        ConversationTurnEvent,
    ),
    reasons=(ReasonCode.PH1_F_CONVERSATION_APPEND_ONLY_VIOLATION,),
    requires=("audit",),
)
