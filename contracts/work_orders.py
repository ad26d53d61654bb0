"""SELENE_OS_CORE_TABLES (seeds 001 and 002): the work-order ledger and its typed input contract.

Every event of ``os_core.work_order_ledger`` is about one work order (``work_order_id``), which is also its
aggregate: all events of a work order share a partition and are applied in publish order, so the status
machine, the never-ask-twice rules and the approval wait are decided on the order the engine produced.

``WorkOrderLedgerEventInput`` is the seed's input contract of ``OS_WORK_ORDER_LEDGER_APPEND``: the common
envelope class of every work-order event model below, whose payload is always a ``WorkOrderPayload``.

The writer records each appended event on the PH1.J audit ledger too (seed 002's audit emissions), as
``WORK_ORDER_*`` audit events of engine ``SELENE_OS_CORE_TABLES``; their models are declared here so that
anything reading the audit ledger (a rebuild, another engine) can decode them.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AwareDatetime, ConfigDict, Field, StringConstraints, model_validator

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.envelope import (
    STORABLE_TEXT_PATTERN,
    Ident,
    LedgerEvent,
    LedgerSpec,
    Payload,
    ReasonText,
    define_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import LedgerColumns, SliceContract

WORK_ORDER_LEDGER = LedgerSpec(
    name="work_order_ledger",
    table="os_core.work_order_ledger",
    id_column="work_order_event_id",
    idempotency_scope=("tenant_id", "work_order_id", "idempotency_key"),
    contract_invalid=ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.OS_WORK_ORDER_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.OS_WORK_ORDER_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.OS_WORK_ORDER_APPEND_ONLY_VIOLATION,
)

#: The engine id of the audit rows this slice emits (seed 001's engine header).
ENGINE_ID = "SELENE_OS_CORE_TABLES"
#: Seed 002's ``allowed_callers: SELENE_OS_ONLY`` on every work-order capability: the engine ids whose
#: work-order events the writer accepts (others: ``OS_WORK_ORDER_CALLER_NOT_ALLOWED``). Not the slice's own
#: ``ENGINE_ID``: that one names the storage engine and its audit rows, never a caller.
ALLOWED_CALLERS: frozenset[str] = frozenset({"SELENE_OS"})

WorkOrderStatus = Literal["DRAFT", "CLARIFY", "CONFIRM", "EXECUTING", "DONE", "FAILED", "CANCELED"]
PENDING_STATUSES: frozenset[str] = frozenset({"DRAFT", "CLARIFY", "CONFIRM"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"DONE", "FAILED", "CANCELED"})
#: The status machine (the seeds name the statuses, not the transitions; see the DB wiring doc). CANCELED is
#: reachable from every non-terminal status; terminal statuses have no way out.
TRANSITIONS: dict[str, frozenset[str]] = {
    "DRAFT": frozenset({"CLARIFY", "CONFIRM", "EXECUTING", "CANCELED"}),
    "CLARIFY": frozenset({"DRAFT", "CONFIRM", "EXECUTING", "CANCELED"}),
    "CONFIRM": frozenset({"DRAFT", "CLARIFY", "EXECUTING", "CANCELED"}),
    "EXECUTING": frozenset({"CLARIFY", "DONE", "FAILED", "CANCELED"}),
    "DONE": frozenset(),
    "FAILED": frozenset(),
    "CANCELED": frozenset(),
}

# Bounds of the continuity maps (the CHECK constraints of sql/0005 hold a margin above these).
MAX_FIELDS = 64
MAX_DEDUPE_KEYS = 64
MAX_MAP_BYTES = 16384

FieldKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]
# Plain JSON scalars; no floats, so that a value reads back exactly as it was written (amounts as strings).
FieldValue = (
    Annotated[str, StringConstraints(max_length=1024, pattern=STORABLE_TEXT_PATTERN)]
    | Annotated[int, Field(ge=-(2**53), le=2**53)]
    | bool
    | None
)
FieldMap = Annotated[dict[FieldKey, FieldValue], Field(max_length=MAX_FIELDS)]
IntentType = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")]
AttemptNo = Annotated[int, Field(ge=1, le=1000)]
PromptKind = Literal["MISSING_FIELD", "CONFLICT"]


class WorkOrderPayload(Payload):
    """Base of every work-order payload: the work order is the aggregate (and the dedupe scope)."""

    work_order_id: Ident

    def aggregate_id(self, event: LedgerEvent) -> str:
        return self.work_order_id


class WorkOrderLedgerEventInput(LedgerEvent):
    """The typed input of ``OS_WORK_ORDER_LEDGER_APPEND``: the envelope of every work-order event.

    ``turn_id`` is required: seeds 001 (section 6) and 002 list it among the audit correlation keys of every
    append and cancel, and the PH1.J row each event gets carries the event's turn id."""

    payload: WorkOrderPayload
    turn_id: Ident


class WorkOrderCreated(WorkOrderPayload):
    """A work order starts in DRAFT, bound to the envelope's correlation id (its thread) for good."""

    requester_user_id: Ident
    intent_type: IntentType
    fields: FieldMap = Field(default_factory=dict)
    #: values known from context (profile, earlier turns): never asked for.
    prefilled: FieldMap = Field(default_factory=dict)


class FieldsSet(WorkOrderPayload):
    """Field values given or changed (merged into ``fields_json``)."""

    fields: Annotated[dict[FieldKey, FieldValue], Field(min_length=1, max_length=MAX_FIELDS)]


class PromptAsked(WorkOrderPayload):
    """Selene OS asks the user for a missing field or to settle a conflict. Recorded only if allowed by the
    never-ask-twice rules; otherwise refused with ``OS_WORK_ORDER_PROMPT_SUPPRESSED``."""

    field_key: FieldKey
    prompt_dedupe_key: Ident
    kind: PromptKind = "MISSING_FIELD"


class ClarificationResolved(WorkOrderPayload):
    """The answer to a clarification or a conflict: sets the field and records the resolution."""

    field_key: FieldKey
    value: FieldValue
    kind: PromptKind = "MISSING_FIELD"
    resolved_by: Literal["USER", "POLICY", "CONTEXT"] = "USER"


class StatusChanged(WorkOrderPayload):
    """A status transition; to CANCELED it needs a reason code (seed 001, cancel path)."""

    # The validator below, for other languages' validators (contracts.schema_export exports it).
    model_config = ConfigDict(
        json_schema_extra={
            "if": {"properties": {"to_status": {"const": "CANCELED"}}, "required": ["to_status"]},
            "then": {"properties": {"reason_code": {"type": "string"}}, "required": ["reason_code"]},
        }
    )

    to_status: WorkOrderStatus
    reason_code: ReasonText | None = None

    @model_validator(mode="after")
    def _cancel_has_reason(self) -> StatusChanged:
        if self.to_status == "CANCELED" and self.reason_code is None:
            raise ValueError("a STATUS_CHANGED to CANCELED needs a reason_code")
        return self


class WorkOrderCanceled(WorkOrderPayload):
    """WORKORDER_CANCEL: the work order is canceled from a non-terminal status, for a reason."""

    reason_code: ReasonText


class StepAttemptStarted(WorkOrderPayload):
    """An attempt of a step starts (the work order must be EXECUTING; attempts are numbered 1, 2, ...)."""

    step_id: Ident
    attempt_no: AttemptNo
    lease_id: Ident | None = None


class StepAttemptFinished(WorkOrderPayload):
    """A started attempt ends (also after the work order became terminal: a running step may still end)."""

    step_id: Ident
    attempt_no: AttemptNo
    outcome: Literal["SUCCEEDED", "FAILED"]
    reason_code: ReasonText | None = None


class LeaseAcquired(WorkOrderPayload):
    """An executor takes (or, with the same lease id, renews) the work order's lease until ``expires_at``."""

    lease_id: Ident
    holder_id: Ident
    expires_at: AwareDatetime


class LeaseReleased(WorkOrderPayload):
    lease_id: Ident


class ExternalApprovalRequested(WorkOrderPayload):
    """The work order waits for another user's approval until ``expires_at`` (wait posture)."""

    approval_request_id: Ident
    target_user_id: Ident
    expires_at: AwareDatetime


class ExternalApprovalAnswered(WorkOrderPayload):
    approval_request_id: Ident
    decision: Literal["APPROVED", "DENIED"]
    answered_by_user_id: Ident | None = None


class ExternalApprovalExpired(WorkOrderPayload):
    approval_request_id: Ident


class WaitNoticeEmitted(WorkOrderPayload):
    """The one "waiting for approval" message of a pending request; repeats are refused until the approval
    state changes or its timeout passes (``OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED``)."""

    approval_request_id: Ident


def _register(event_type: str, payload: type[WorkOrderPayload]) -> type[WorkOrderLedgerEventInput]:
    model = define_event(WORK_ORDER_LEDGER, event_type, payload, base=WorkOrderLedgerEventInput)
    assert issubclass(model, WorkOrderLedgerEventInput)
    return model


WorkOrderCreatedEvent = _register("WORK_ORDER_CREATED", WorkOrderCreated)
FieldsSetEvent = _register("FIELDS_SET", FieldsSet)
PromptAskedEvent = _register("PROMPT_ASKED", PromptAsked)
ClarificationResolvedEvent = _register("CLARIFICATION_RESOLVED", ClarificationResolved)
StatusChangedEvent = _register("STATUS_CHANGED", StatusChanged)
WorkOrderCanceledEvent = _register("WORK_ORDER_CANCELED", WorkOrderCanceled)
StepAttemptStartedEvent = _register("STEP_ATTEMPT_STARTED", StepAttemptStarted)
StepAttemptFinishedEvent = _register("STEP_ATTEMPT_FINISHED", StepAttemptFinished)
LeaseAcquiredEvent = _register("LEASE_ACQUIRED", LeaseAcquired)
LeaseReleasedEvent = _register("LEASE_RELEASED", LeaseReleased)
ExternalApprovalRequestedEvent = _register("EXTERNAL_APPROVAL_REQUESTED", ExternalApprovalRequested)
ExternalApprovalAnsweredEvent = _register("EXTERNAL_APPROVAL_ANSWERED", ExternalApprovalAnswered)
ExternalApprovalExpiredEvent = _register("EXTERNAL_APPROVAL_EXPIRED", ExternalApprovalExpired)
WaitNoticeEmittedEvent = _register("WAIT_NOTICE_EMITTED", WaitNoticeEmitted)

WORK_ORDER_EVENT_MODELS: tuple[type[WorkOrderLedgerEventInput], ...] = (
    WorkOrderCreatedEvent,
    FieldsSetEvent,
    PromptAskedEvent,
    ClarificationResolvedEvent,
    StatusChangedEvent,
    WorkOrderCanceledEvent,
    StepAttemptStartedEvent,
    StepAttemptFinishedEvent,
    LeaseAcquiredEvent,
    LeaseReleasedEvent,
    ExternalApprovalRequestedEvent,
    ExternalApprovalAnsweredEvent,
    ExternalApprovalExpiredEvent,
    WaitNoticeEmittedEvent,
)
WORK_ORDER_EVENT_TYPES: tuple[str, ...] = tuple(
    m.model_fields["event_type"].annotation.__args__[0]  # type: ignore[union-attr]
    for m in WORK_ORDER_EVENT_MODELS
)


# -- PH1.J audit emissions ----------------------------------------------------------------------------------


class WorkOrderAuditEvent(LedgerEvent):
    """The envelope of the audit rows this slice emits: engine SELENE_OS_CORE_TABLES, the work-order event's
    tenant, correlation and turn ids, and a derived event id (see consumers.projections.work_orders)."""

    engine_id: Literal["SELENE_OS_CORE_TABLES"]
    #: a correlation key of the audit rows of work-order appends and cancels (seeds 001 section 6 and 002).
    turn_id: Ident


class WorkOrderAudited(AuditPayload):
    """Seed 002's audit fields of a work-order append: with the envelope's tenant, correlation and turn ids,
    the audit row's event type and reason code, these are all of them. ``reason_code`` is the event's own
    (a cancel's reason) or the capability name when the event has none."""

    capability: Literal["OS_WORK_ORDER_LEDGER_APPEND", "WORKORDER_CANCEL"]
    work_order_id: Ident
    work_order_event_type: Ident
    #: the work-order event's envelope id (``work_order_ledger.event_uuid``) and idempotency key.
    source_event_id: uuid.UUID
    idempotency_key: Ident | None
    #: the work order's status once the event was applied.
    status: WorkOrderStatus


def audit_event_type(work_order_event_type: str) -> str:
    """The audit ledger's event type for a work-order event: the same name, prefixed ``WORK_ORDER_`` unless it
    already is (so a cancel is audited as ``WORK_ORDER_CANCELED``, as seed 002 asks)."""
    if work_order_event_type.startswith("WORK_ORDER_"):
        return work_order_event_type
    return f"WORK_ORDER_{work_order_event_type}"


WORK_ORDER_AUDIT_MODELS: dict[str, type[LedgerEvent]] = {
    t: define_event(AUDIT_EVENTS, audit_event_type(t), WorkOrderAudited, base=WorkOrderAuditEvent)
    for t in WORK_ORDER_EVENT_TYPES
}


SLICE = SliceContract(
    name="work_orders",
    engines=("SELENE_OS_CORE_TABLES",),
    kind="custom",
    seed_row=3,
    doc="docs/DB_WIRING/SELENE_OS_CORE_TABLES.md",
    acceptance="AT-OS-CORE-DB",
    ledgers=(LedgerColumns(WORK_ORDER_LEDGER, WorkOrderPayload, optional=(("reason_code", "text"),)),),
    events=(*WORK_ORDER_EVENT_MODELS, *WORK_ORDER_AUDIT_MODELS.values()),
    reasons=(
        ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE,
        ReasonCode.OS_WORK_ORDER_NOT_FOUND,
        ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION,
        ReasonCode.OS_WORK_ORDER_CORRELATION_CONFLICT,
        ReasonCode.OS_WORK_ORDER_TERMINAL_STATE,
        ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED,
        ReasonCode.OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED,
        ReasonCode.OS_WORK_ORDER_APPROVAL_NOT_PENDING,
        ReasonCode.OS_WORK_ORDER_LEASE_CONFLICT,
        ReasonCode.OS_WORK_ORDER_CALLER_NOT_ALLOWED,
    ),
    # Refusals that leave the work order as it was and that later events do not depend on: a duplicate, a
    # refused cancel, a suppressed prompt or wait notice, a late event after a terminal status, a late
    # approval answer, a lease another executor holds.
    non_blocking=frozenset(
        {
            ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE,
            ReasonCode.OS_WORK_ORDER_TERMINAL_STATE,
            ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED,
            ReasonCode.OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED,
            ReasonCode.OS_WORK_ORDER_APPROVAL_NOT_PENDING,
            ReasonCode.OS_WORK_ORDER_LEASE_CONFLICT,
            # An event another engine published (seed 002: SELENE_OS_ONLY) is no input of Selene OS's own
            # stream: it must not hold Selene OS's later events behind it.
            ReasonCode.OS_WORK_ORDER_CALLER_NOT_ALLOWED,
        }
    ),
    requires=("audit", "foundation"),
)
