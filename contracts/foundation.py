"""PH1.F foundation: identities, devices, sessions and the conversation ledger.

Identity, device and session writes are audit events of engines PH1.F and PH1.L: appended to the audit
ledger (so they are replayable) and projected into ``os_core.identities``, ``devices`` and ``sessions``.
Their aggregate is the user, so a user's identity, devices and sessions share one partition and arrive in
the order they were published (a device never overtakes the identity it belongs to).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from contracts.audit import AUDIT_EVENTS, Attributes, AuditPayload, Hash128, LedgerRef
from contracts.envelope import (
    IDENT_PATTERN,
    Ident,
    LedgerSpec,
    Payload,
    ReasonText,
    ShortText,
    StorableText,
    UniqueKey,
    define_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import LedgerColumns, SeedRow, SliceContract


def _is_none(value: Any) -> bool:
    return value is None


#: A language tag (upstream's ``primary_language``, at most 32 characters).
Language = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=IDENT_PATTERN)]


class _UserScoped(AuditPayload):
    """Required user: the aggregate (and so the partition) is the user's, see ``AuditPayload``."""

    user_id: Ident


class IdentityUpserted(_UserScoped):
    """An identity is created or changed (every field replaced). ``speaker_id`` and ``primary_language``
    came after the wire contract: left out of the canonical payload while unset."""

    display_name: ShortText | None = None
    status: Literal["ACTIVE", "DISABLED"] = "ACTIVE"
    speaker_id: Ident | None = Field(default=None, exclude_if=_is_none)
    primary_language: Language | None = Field(default=None, exclude_if=_is_none)


class DeviceRegistered(_UserScoped):
    """A device is bound to a user (and so to the user's tenant). ``last_seen_at`` (the event's time when
    absent) and ``audio_profile_ref`` came after the wire contract, as ``speaker_id`` did."""

    device_id: Ident
    device_type: Ident
    audio_profile_ref: Ident | None = Field(default=None, exclude_if=_is_none)
    last_seen_at: AwareDatetime | None = Field(default=None, exclude_if=_is_none)


class DeviceRevoked(_UserScoped):
    device_id: Ident


#: PH1.L's session states and the edges between them (a state to itself is always allowed).
SessionState = Literal["OPEN", "ACTIVE", "SOFT_CLOSED", "CLOSED", "SUSPENDED"]
SESSION_TRANSITIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "CLOSED": frozenset({"OPEN"}),
        "OPEN": frozenset({"ACTIVE", "SOFT_CLOSED", "CLOSED", "SUSPENDED"}),
        "ACTIVE": frozenset({"SOFT_CLOSED", "CLOSED", "SUSPENDED"}),
        "SOFT_CLOSED": frozenset({"ACTIVE", "CLOSED", "SUSPENDED"}),
        "SUSPENDED": frozenset({"ACTIVE", "CLOSED"}),
    }
)


class SessionLifecycle(_UserScoped):
    """A PH1.L event: the session's user and device (immutable per session) and, optionally, when it last
    saw activity (the event's time when absent; it never moves back). ``STATE`` is where the event type
    takes the session; ``FROM``, where it must be."""

    device_id: Ident
    session_id: Ident
    last_activity_at: AwareDatetime | None = Field(default=None, exclude_if=_is_none)
    STATE: ClassVar[str] = "OPEN"
    FROM: ClassVar[str | None] = None


class SessionOpened(SessionLifecycle):
    """SESSION_OPENED (upstream's SESSION_OPEN): opens a new session, or reopens a closed one."""


class SessionClosed(SessionLifecycle):
    STATE = "CLOSED"


class SessionSoftClosed(SessionLifecycle):
    STATE = "SOFT_CLOSED"


class SystemSuspended(SessionLifecycle):
    STATE = "SUSPENDED"


class SystemResumed(SessionLifecycle):
    STATE = "ACTIVE"
    FROM = "SUSPENDED"


class SessionStateTransition(SessionLifecycle):
    """STATE_TRANSITION: any allowed edge, with upstream's payload keys ``state_from`` and ``state_to``
    (``state_from`` must be the session's state)."""

    state_from: SessionState
    state_to: SessionState


IdentityUpsertedEvent = define_event(AUDIT_EVENTS, "IDENTITY_UPSERTED", IdentityUpserted)
DeviceRegisteredEvent = define_event(AUDIT_EVENTS, "DEVICE_REGISTERED", DeviceRegistered)
DeviceRevokedEvent = define_event(AUDIT_EVENTS, "DEVICE_REVOKED", DeviceRevoked)
SessionOpenedEvent = define_event(AUDIT_EVENTS, "SESSION_OPENED", SessionOpened)
SessionClosedEvent = define_event(AUDIT_EVENTS, "SESSION_CLOSED", SessionClosed)
SessionSoftClosedEvent = define_event(AUDIT_EVENTS, "SESSION_SOFT_CLOSE", SessionSoftClosed)
SystemSuspendedEvent = define_event(AUDIT_EVENTS, "SYSTEM_SUSPEND", SystemSuspended)
SystemResumedEvent = define_event(AUDIT_EVENTS, "SYSTEM_RESUME", SystemResumed)
SessionStateTransitionEvent = define_event(AUDIT_EVENTS, "STATE_TRANSITION", SessionStateTransition)

CONVERSATION_LEDGER = LedgerSpec(
    name="conversation_ledger",
    table="conversation.conversation_ledger",
    id_column="conversation_turn_id",
    idempotency_scope=("tenant_id", "correlation_id", "idempotency_key"),
    contract_invalid=ReasonCode.EVENT_SCHEMA_INVALID,
    tenant_violation=ReasonCode.EVENT_TENANT_MISMATCH,
    duplicate=ReasonCode.IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.PH1_F_CONVERSATION_APPEND_ONLY_VIOLATION,
    # Upstream's UNIQUE (correlation_id, turn_id), for the turns in upstream's shape (with a text_hash): a turn
    # without one is the original wire contract, under which a turn id could repeat (docs/DB_WIRING/PH1_F.md).
    unique_keys=(UniqueKey(("tenant_id", "correlation_id", "turn_id"), when=("text_hash",)),),
)

REDACTED = "[REDACTED]"


class ConversationTurn(Payload):
    """One message of a conversation turn, by the user or by Selene. A redaction is a new ``TOMBSTONE`` row
    by Selene with the text ``[REDACTED]`` naming the row it redacts (which stays).

    The fields after ``metadata`` came after the wire contract: left out of the canonical payload while they
    hold their default (an older event's content hash is unchanged); PostgreSQL generates their columns.
    The tombstone rules are in the exported JSON Schema too, so a foreign producer's validator agrees."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"source": {"const": "TOMBSTONE"}}, "required": ["source"]},
            "then": {
                "required": ["tombstone_of_conversation_turn_id", "tombstone_reason_code"],
                "properties": {
                    "speaker": {"const": "SELENE"},
                    "text": {"const": REDACTED},
                    "tombstone_of_conversation_turn_id": {"not": {"type": "null"}},
                    "tombstone_reason_code": {"not": {"type": "null"}},
                },
            },
            "else": {
                "properties": {
                    "tombstone_of_conversation_turn_id": {"type": "null"},
                    "tombstone_reason_code": {"type": "null"},
                }
            },
        }
    )

    speaker: Literal["USER", "SELENE"]
    source: Literal["VOICE", "TEXT", "SYSTEM", "TOMBSTONE"]
    text: StorableText = Field(max_length=8192)
    user_id: Ident | None = None
    device_id: Ident | None = None
    session_id: Ident | None = None
    metadata: Attributes = Field(default_factory=dict)
    text_hash: Hash128 | None = Field(default=None, exclude_if=_is_none)
    privacy_scope: Literal["PUBLIC_CHAT", "PRIVATE_DELIVERY"] = Field(
        default="PUBLIC_CHAT", exclude_if=lambda v: v == "PUBLIC_CHAT"
    )
    tombstone_of_conversation_turn_id: LedgerRef | None = Field(default=None, exclude_if=_is_none)
    tombstone_reason_code: ReasonText | None = Field(default=None, exclude_if=_is_none)

    @model_validator(mode="after")
    def _tombstone_rules(self) -> ConversationTurn:
        fields = (self.tombstone_of_conversation_turn_id, self.tombstone_reason_code)
        if self.source != "TOMBSTONE":
            if fields != (None, None):
                raise ValueError("only a TOMBSTONE row names a tombstoned turn and its reason")
        elif None in fields or self.speaker != "SELENE" or self.text != REDACTED:
            raise ValueError(
                "a TOMBSTONE row is Selene's, its text is [REDACTED], and it names the turn and the reason"
            )
        return self


ConversationTurnEvent = define_event(CONVERSATION_LEDGER, "CONVERSATION_TURN_RECORDED", ConversationTurn)

SLICE = SliceContract(
    name="foundation",
    engines=("PH1.F", "PH1.L"),
    kind="custom",
    seed_row=1,
    doc="docs/DB_WIRING/PH1_F.md",
    acceptance="AT-PH1-F-DB",
    also=(SeedRow(8, ("PH1.L",), ("os_core.sessions",), "AT-L-DB", "docs/DB_WIRING/PH1_L.md"),),
    ledgers=(
        LedgerColumns(
            CONVERSATION_LEDGER,
            ConversationTurn,
            exclude=("metadata",),
            renamed_fields=(("text", "text_body"),),
            generated=("text_hash", "privacy_scope", "tombstone_of_conversation_turn_id", "tombstone_reason_code"),
        ),
    ),
    events=(
        IdentityUpsertedEvent,
        DeviceRegisteredEvent,
        DeviceRevokedEvent,
        SessionOpenedEvent,
        SessionClosedEvent,
        SessionSoftClosedEvent,
        SystemSuspendedEvent,
        SystemResumedEvent,
        SessionStateTransitionEvent,
        ConversationTurnEvent,
    ),
    reasons=(
        ReasonCode.PH1_L_INVALID_TRANSITION,
        ReasonCode.PH1_L_IMMUTABLE_FIELD_CHANGED,
        ReasonCode.PH1_L_ACTIVITY_WENT_BACK,
    ),
    # A refused session change leaves the session as it was; the user's later events (the aggregate is the
    # user) do not depend on it and are judged on their own.
    non_blocking=frozenset(
        {
            ReasonCode.PH1_L_INVALID_TRANSITION,
            ReasonCode.PH1_L_IMMUTABLE_FIELD_CHANGED,
            ReasonCode.PH1_L_ACTIVITY_WENT_BACK,
        }
    ),
    requires=("audit",),
)
