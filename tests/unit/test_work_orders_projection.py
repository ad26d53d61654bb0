"""The work-order reducers without I/O: status machine, cancel, never-ask-twice, approval wait, steps, leases,
and the PH1.J audit emission, driven exactly as the pipeline drives them (apply, then commit or discard)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from consumers.pipeline import Item, Pipeline, Record
from consumers.projections.base import Rejection, RowView
from consumers.projections.work_orders import (
    LEASES,
    STEP_ATTEMPTS,
    WORK_ORDERS,
    WorkOrderAuditEmitter,
    WorkOrderProjection,
    audit_event,
)
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import IdentityUpsertedEvent
from contracts.reasons import ContractViolation, ReasonCode, policy
from contracts.settings import Settings
from contracts.work_orders import (
    ALLOWED_CALLERS,
    MAX_DEDUPE_KEYS,
    WORK_ORDER_AUDIT_MODELS,
    WORK_ORDER_EVENT_MODELS,
    ClarificationResolvedEvent,
    ExternalApprovalAnsweredEvent,
    ExternalApprovalRequestedEvent,
    FieldsSetEvent,
    LeaseAcquiredEvent,
    LeaseReleasedEvent,
    PromptAskedEvent,
    StatusChangedEvent,
    StepAttemptFinishedEvent,
    StepAttemptStartedEvent,
    WaitNoticeEmittedEvent,
    WorkOrderCanceledEvent,
    WorkOrderCreatedEvent,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PROJECTIONS = (WorkOrderProjection(), WorkOrderAuditEmitter())


class Flow:
    """One work order's events applied in order to one RowView, with a clock that moves a second per event."""

    def __init__(self, wo: str = "wo-1", tenant: str = "tenant-a", corr: str = "thread-1") -> None:
        self.view = RowView({})
        self.wo, self.tenant, self.corr = wo, tenant, corr
        self.engine = "SELENE_OS"
        self.at = T0
        self.emitted: list[LedgerEvent] = []

    def event(self, model: type[LedgerEvent], *, at: datetime | None = None, **payload: Any) -> LedgerEvent:
        self.at = at or self.at + timedelta(seconds=1)
        return new_event(
            model,
            tenant_id=self.tenant,
            engine_id=self.engine,
            correlation_id=self.corr,
            turn_id="turn-1",
            idempotency_key=f"k-{uuid.uuid4().hex[:8]}",
            occurred_at=self.at,
            payload={"work_order_id": self.wo, **payload},
        )

    def apply(self, event: LedgerEvent) -> dict[str, Any]:
        try:
            for p in PROJECTIONS:
                if p.handles(event):
                    p.apply(self.view, event)
        except Rejection:
            self.view.discard_event()
            raise
        self.view.commit_event()
        self.emitted += self.view.take_emitted()
        return self.current

    def send(self, model: type[LedgerEvent], **payload: Any) -> dict[str, Any]:
        return self.apply(self.event(model, **payload))

    def refused(self, code: ReasonCode, model: type[LedgerEvent], **payload: Any) -> None:
        """The event is refused with ``code``; nothing changes and nothing is emitted."""
        before, emitted = self.current_or_none(), len(self.emitted)
        with pytest.raises(Rejection) as info:
            self.send(model, **payload)
        assert info.value.reason_code == code, info.value.detail
        assert self.current_or_none() == before
        assert len(self.emitted) == emitted

    def current_or_none(self) -> dict[str, Any] | None:
        row = self.view.get(WORK_ORDERS, (self.wo,))
        return dict(row) if row is not None else None

    @property
    def current(self) -> dict[str, Any]:
        row = self.current_or_none()
        assert row is not None
        return row

    def create(self, **payload: Any) -> dict[str, Any]:
        return self.send(WorkOrderCreatedEvent, **{"requester_user_id": "u-1", "intent_type": "BOOK_TABLE", **payload})


@pytest.fixture
def flow() -> Flow:
    f = Flow()
    f.create(fields={"party_size": 2}, prefilled={"city": "Lisbon"})
    return f


def test_create_starts_in_draft_with_empty_continuity_fields(flow: Flow) -> None:
    wo = flow.current
    assert wo["status"] == "DRAFT" and wo["state_version"] == 0
    assert wo["fields_json"] == {"party_size": 2} and wo["prefilled_json"] == {"city": "Lisbon"}
    assert wo["asked_fields_json"] == wo["resolved_fields_json"] == wo["prompt_dedupe_keys_json"] == {}
    assert wo["external_approval_pending"] is False
    assert wo["correlation_id"] == "thread-1" and wo["tenant_id"] == "tenant-a"


def test_create_twice_other_thread_binding_other_tenant_and_unknown_work_order(flow: Flow) -> None:
    flow.refused(
        ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION, WorkOrderCreatedEvent, requester_user_id="u", intent_type="X"
    )
    second = Flow(wo="wo-2", corr="thread-1")
    second.view = flow.view
    second.refused(
        ReasonCode.OS_WORK_ORDER_CORRELATION_CONFLICT, WorkOrderCreatedEvent, requester_user_id="u", intent_type="X"
    )
    intruder = Flow(tenant="tenant-b", corr="other")
    intruder.view = flow.view
    intruder.refused(ReasonCode.OS_WORK_ORDER_TENANT_SCOPE_VIOLATION, FieldsSetEvent, fields={"x": 1})
    ghost = Flow(wo="wo-ghost")
    ghost.view = flow.view
    with pytest.raises(Rejection) as info:
        ghost.send(FieldsSetEvent, fields={"x": 1})
    assert info.value.reason_code == ReasonCode.OS_WORK_ORDER_NOT_FOUND
    # A thread freed by a refused creation stays free: the staged binding was discarded with it.
    third = Flow(wo="wo-3", corr="thread-3")
    third.view = flow.view
    third.create()
    assert third.current["correlation_id"] == "thread-3"


def test_status_machine(flow: Flow) -> None:
    flow.refused(ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION, StatusChangedEvent, to_status="DONE")
    for status in ("CLARIFY", "CONFIRM", "EXECUTING", "DONE"):
        assert flow.send(StatusChangedEvent, to_status=status)["status"] == status
    assert flow.current["state_version"] == 4
    flow.refused(ReasonCode.OS_WORK_ORDER_TERMINAL_STATE, StatusChangedEvent, to_status="CLARIFY")
    flow.refused(ReasonCode.OS_WORK_ORDER_TERMINAL_STATE, FieldsSetEvent, fields={"party_size": 3})
    assert not policy(ReasonCode.OS_WORK_ORDER_TERMINAL_STATE).blocks_aggregate
    assert policy(ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION).blocks_aggregate


def test_cancel_from_non_terminal_with_reason(flow: Flow) -> None:
    flow.send(StatusChangedEvent, to_status="CLARIFY")
    wo = flow.send(WorkOrderCanceledEvent, reason_code="USER_CANCELED")
    assert (wo["status"], wo["status_reason_code"]) == ("CANCELED", "USER_CANCELED")
    # Cancel again, or by status change: invalid state, nothing changes, and it does not block.
    flow.refused(ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE, WorkOrderCanceledEvent, reason_code="AGAIN")
    flow.refused(
        ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE, StatusChangedEvent, to_status="CANCELED", reason_code="X"
    )
    assert not policy(ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE).blocks_aggregate


def test_cancel_needs_a_reason_code(flow: Flow) -> None:
    # The contract refuses a cancel without a reason (the publisher never sends it) ...
    with pytest.raises(ContractViolation):
        flow.event(StatusChangedEvent, to_status="CANCELED")
    with pytest.raises(ContractViolation):
        flow.event(WorkOrderCanceledEvent)
    # ... and the reducer refuses one that got around the contract.
    event = flow.event(StatusChangedEvent, to_status="CLARIFY")
    forged = event.model_copy(update={"payload": event.payload.model_copy(update={"to_status": "CANCELED"})})
    with pytest.raises(Rejection) as info:
        flow.apply(forged)
    assert info.value.reason_code == ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE
    assert flow.current["status"] == "DRAFT"


def test_cancel_by_status_change_and_from_executing(flow: Flow) -> None:
    flow.send(StatusChangedEvent, to_status="EXECUTING")
    wo = flow.send(StatusChangedEvent, to_status="CANCELED", reason_code="POLICY_STOP")
    assert (wo["status"], wo["status_reason_code"]) == ("CANCELED", "POLICY_STOP")


def test_never_ask_for_a_known_field(flow: Flow) -> None:
    suppressed = ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED
    flow.refused(suppressed, PromptAskedEvent, field_key="party_size", prompt_dedupe_key="ask-party")
    flow.refused(suppressed, PromptAskedEvent, field_key="city", prompt_dedupe_key="ask-city")
    assert not policy(suppressed).blocks_aggregate


def test_never_ask_the_same_prompt_twice_without_a_state_change(flow: Flow) -> None:
    suppressed = ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED
    wo = flow.send(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    assert wo["asked_fields_json"]["time"]["attempts"] == 1
    assert wo["prompt_dedupe_keys_json"] == {"ask-time": 0}
    flow.refused(suppressed, PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    # Setting a field to the value it has is no state change: still suppressed.
    flow.send(FieldsSetEvent, fields={"party_size": 2})
    flow.refused(suppressed, PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    # A real change: the prompt may be repeated once more.
    flow.send(FieldsSetEvent, fields={"party_size": 4})
    wo = flow.send(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    assert wo["asked_fields_json"]["time"]["attempts"] == 2
    assert wo["prompt_dedupe_keys_json"] == {"ask-time": 1}
    flow.refused(suppressed, PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    # Once answered, never asked again.
    flow.send(FieldsSetEvent, fields={"time": "19:30"})
    flow.refused(suppressed, PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time-2")


def test_a_conflict_is_asked_once_and_its_resolution_kept(flow: Flow) -> None:
    suppressed = ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED
    wo = flow.send(PromptAskedEvent, field_key="party_size", prompt_dedupe_key="conflict-party", kind="CONFLICT")
    assert wo["asked_fields_json"]["party_size"]["kind"] == "CONFLICT"
    flow.send(FieldsSetEvent, fields={"party_size": 5})  # a state change does not reopen the conflict
    flow.refused(suppressed, PromptAskedEvent, field_key="party_size", prompt_dedupe_key="conflict-2", kind="CONFLICT")
    wo = flow.send(ClarificationResolvedEvent, field_key="party_size", value=3, kind="CONFLICT")
    assert wo["fields_json"]["party_size"] == 3
    assert wo["resolved_fields_json"]["party_size"]["value"] == 3
    assert wo["resolved_fields_json"]["party_size"]["resolved_at"] == flow.at.isoformat()
    for kind in ("CONFLICT", "MISSING_FIELD"):
        flow.refused(suppressed, PromptAskedEvent, field_key="party_size", prompt_dedupe_key=f"k-{kind}", kind=kind)


def test_a_conflict_after_a_missing_field_clarification_is_asked_once(flow: Flow) -> None:
    """Seed 001 rule 3: a conflict that appears later is asked once, its resolution written, then suppressed;
    an earlier missing-field clarification of the same field does not count as that conflict's resolution."""
    suppressed = ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED
    flow.send(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    wo = flow.send(ClarificationResolvedEvent, field_key="time", value="19:30")
    assert wo["resolved_fields_json"]["time"]["kind"] == "MISSING_FIELD"
    flow.refused(suppressed, PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time-2")
    flow.send(FieldsSetEvent, fields={"time": "21:00"})  # another source says otherwise: a conflict appears
    wo = flow.send(PromptAskedEvent, field_key="time", prompt_dedupe_key="conflict-time", kind="CONFLICT")
    assert wo["asked_fields_json"]["time"] == {"asked_at": flow.at.isoformat(), "attempts": 2, "kind": "CONFLICT"}
    flow.refused(suppressed, PromptAskedEvent, field_key="time", prompt_dedupe_key="conflict-2", kind="CONFLICT")
    wo = flow.send(ClarificationResolvedEvent, field_key="time", value="21:00", kind="CONFLICT")
    assert wo["resolved_fields_json"]["time"]["kind"] == "CONFLICT" and wo["fields_json"]["time"] == "21:00"
    for kind in ("CONFLICT", "MISSING_FIELD"):
        flow.refused(suppressed, PromptAskedEvent, field_key="time", prompt_dedupe_key=f"again-{kind}", kind=kind)


def test_a_conflict_stays_asked_once_across_a_missing_field_prompt(flow: Flow) -> None:
    """A missing-field prompt after the conflict on a field (unknown, so it may be asked) does not make the
    conflict askable again: the field's entry keeps saying its conflict was asked."""
    suppressed = ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED
    flow.send(PromptAskedEvent, field_key="venue", prompt_dedupe_key="conflict-venue", kind="CONFLICT")
    wo = flow.send(PromptAskedEvent, field_key="venue", prompt_dedupe_key="ask-venue")
    assert wo["asked_fields_json"]["venue"]["kind"] == "CONFLICT" and wo["asked_fields_json"]["venue"]["attempts"] == 2
    flow.refused(suppressed, PromptAskedEvent, field_key="venue", prompt_dedupe_key="conflict-2", kind="CONFLICT")


def test_only_selene_os_may_publish_work_order_events(flow: Flow) -> None:
    """Seed 002: every work-order capability has ``allowed_callers: SELENE_OS_ONLY``. Another engine's event is
    refused with its own reason, changes nothing and emits nothing, and does not block Selene OS's events."""
    assert frozenset({"SELENE_OS"}) == ALLOWED_CALLERS
    denied = ReasonCode.OS_WORK_ORDER_CALLER_NOT_ALLOWED
    for engine in ("PH1.NLP", "SELENE_OS_CORE_TABLES", "SELENE_OS.TEST"):
        flow.engine = engine
        flow.refused(denied, FieldsSetEvent, fields={"party_size": 9})
        flow.refused(denied, WorkOrderCanceledEvent, reason_code="USER_CANCELED")
        stranger = Flow(wo="wo-stranger", corr="thread-stranger")
        stranger.view, stranger.engine = flow.view, engine
        stranger.refused(denied, WorkOrderCreatedEvent, requester_user_id="u-1", intent_type="BOOK_TABLE")
        assert stranger.current_or_none() is None
    assert not policy(denied).blocks_aggregate
    flow.engine = "SELENE_OS"
    assert flow.send(FieldsSetEvent, fields={"party_size": 9})["fields_json"]["party_size"] == 9


def test_work_order_events_and_their_audit_rows_require_a_turn_id(flow: Flow) -> None:
    """Seeds 001 section 6 and 002: turn_id is an audit correlation key of every append and cancel."""
    for model in (*WORK_ORDER_EVENT_MODELS, *WORK_ORDER_AUDIT_MODELS.values()):
        assert model.model_fields["turn_id"].is_required(), model
    event = flow.event(WorkOrderCanceledEvent, reason_code="USER_CANCELED")
    for missing in ({}, {"turn_id": None}):
        data = {k: v for k, v in event.model_dump(mode="json").items() if k != "turn_id"} | missing
        with pytest.raises(ValidationError, match="turn_id"):
            WorkOrderCanceledEvent.model_validate(data)
        with pytest.raises(ContractViolation, match="turn_id") as info:
            new_event(WorkOrderCanceledEvent, **{k: v for k, v in data.items() if k != "event_type"})
        assert info.value.reason_code == ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED
    # The writer dead-letters such a record with the seed's contract code, blocking the work order.
    settings = Settings()
    encoded = encode(event)
    value = json.loads(encoded.value) | {"turn_id": None}
    record = Record(event.spec.topic(settings.topic_prefix), 0, 7, encoded.key, json.dumps(value).encode(),
                    tuple(encoded.headers))  # fmt: skip
    [item] = Pipeline(settings).decode([record])
    assert item.event is None and item.reason == ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED, item.detail
    assert "turn_id" in item.detail


def test_dedupe_keys_stay_bounded(flow: Flow) -> None:
    for i in range(MAX_DEDUPE_KEYS + 6):
        flow.send(PromptAskedEvent, field_key="time", prompt_dedupe_key=f"ask-{i:03d}")
        if i % 10 == 9:
            flow.send(FieldsSetEvent, fields={"note": f"n{i}"})
    keys = flow.current["prompt_dedupe_keys_json"]
    assert len(keys) == MAX_DEDUPE_KEYS
    assert "ask-000" not in keys and f"ask-{MAX_DEDUPE_KEYS + 5:03d}" in keys


def test_times_in_maps_are_utc_whatever_the_publisher_offset() -> None:
    f = Flow()
    f.create()
    plus_two = timezone(timedelta(hours=2))
    f.apply(
        f.event(PromptAskedEvent, at=datetime(2025, 3, 1, 14, 0, tzinfo=plus_two), field_key="t", prompt_dedupe_key="k")
    )
    assert f.current["asked_fields_json"]["t"]["asked_at"] == "2025-03-01T12:00:00+00:00"


def test_external_approval_wait_one_notice_then_silence(flow: Flow) -> None:
    expires = T0 + timedelta(hours=1)
    wo = flow.send(
        ExternalApprovalRequestedEvent, approval_request_id="ap-1", target_user_id="boss", expires_at=expires
    )
    assert wo["external_approval_pending"] and wo["external_approval_target_user_id"] == "boss"
    assert flow.send(WaitNoticeEmittedEvent, approval_request_id="ap-1")["external_approval_wait_notice_at"] == flow.at
    wait = ReasonCode.OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED
    flow.refused(wait, WaitNoticeEmittedEvent, approval_request_id="ap-1")
    flow.refused(wait, PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    flow.refused(ReasonCode.OS_WORK_ORDER_APPROVAL_NOT_PENDING, WaitNoticeEmittedEvent, approval_request_id="ap-other")
    flow.refused(
        ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION,
        ExternalApprovalRequestedEvent,
        approval_request_id="ap-2",
        target_user_id="boss",
        expires_at=expires,
    )
    assert not policy(wait).blocks_aggregate
    # The answer ends the wait; prompts resume; a late second answer changes nothing.
    wo = flow.send(ExternalApprovalAnsweredEvent, approval_request_id="ap-1", decision="APPROVED")
    assert (wo["external_approval_pending"], wo["external_approval_outcome"]) == (False, "APPROVED")
    assert wo["external_approval_request_id"] == "ap-1"
    flow.send(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    flow.refused(
        ReasonCode.OS_WORK_ORDER_APPROVAL_NOT_PENDING,
        ExternalApprovalAnsweredEvent,
        approval_request_id="ap-1",
        decision="DENIED",
    )


def test_external_approval_timeout_allows_one_more_notice_and_prompts(flow: Flow) -> None:
    expires = T0 + timedelta(minutes=10)
    flow.send(ExternalApprovalRequestedEvent, approval_request_id="ap-1", target_user_id="boss", expires_at=expires)
    flow.send(WaitNoticeEmittedEvent, approval_request_id="ap-1")
    late = expires + timedelta(seconds=1)
    flow.apply(flow.event(WaitNoticeEmittedEvent, at=late, approval_request_id="ap-1"))
    flow.refused(ReasonCode.OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED, WaitNoticeEmittedEvent, approval_request_id="ap-1")
    wo = flow.send(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
    assert wo["external_approval_pending"] is True  # still pending, but no longer a reason to stay silent


def test_steps_run_only_while_executing_and_in_sequence(flow: Flow) -> None:
    invalid = ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION
    flow.refused(invalid, StepAttemptStartedEvent, step_id="book", attempt_no=1)
    flow.send(StatusChangedEvent, to_status="EXECUTING")
    flow.send(StepAttemptStartedEvent, step_id="book", attempt_no=1)
    flow.refused(invalid, StepAttemptStartedEvent, step_id="book", attempt_no=2)
    flow.refused(invalid, StepAttemptStartedEvent, step_id="book", attempt_no=1)
    flow.send(StepAttemptFinishedEvent, step_id="book", attempt_no=1, outcome="FAILED", reason_code="TIMEOUT")
    flow.refused(invalid, StepAttemptFinishedEvent, step_id="book", attempt_no=1, outcome="SUCCEEDED")
    flow.send(StepAttemptStartedEvent, step_id="book", attempt_no=2)
    flow.send(WorkOrderCanceledEvent, reason_code="USER_CANCELED")
    # A running attempt may still finish after the cancel; a new one may not start.
    flow.send(StepAttemptFinishedEvent, step_id="book", attempt_no=2, outcome="FAILED")
    flow.refused(ReasonCode.OS_WORK_ORDER_TERMINAL_STATE, StepAttemptStartedEvent, step_id="book", attempt_no=3)
    first = flow.view.get(STEP_ATTEMPTS, ("wo-1", "book", 1))
    assert first is not None and (first["status"], first["outcome_reason_code"]) == ("FAILED", "TIMEOUT")


def test_leases_one_holder_at_a_time(flow: Flow) -> None:
    conflict = ReasonCode.OS_WORK_ORDER_LEASE_CONFLICT
    until = T0 + timedelta(minutes=5)
    flow.send(LeaseAcquiredEvent, lease_id="l-1", holder_id="exec-a", expires_at=until)
    acquired = flow.at
    flow.refused(conflict, LeaseAcquiredEvent, lease_id="l-2", holder_id="exec-b", expires_at=until)
    flow.refused(conflict, LeaseAcquiredEvent, lease_id="l-1", holder_id="exec-b", expires_at=until)
    flow.send(LeaseAcquiredEvent, lease_id="l-1", holder_id="exec-a", expires_at=until + timedelta(minutes=5))
    lease = flow.view.get(LEASES, ("wo-1",))
    assert lease is not None and lease["acquired_at"] == acquired  # a renewal keeps the acquisition time
    flow.refused(conflict, LeaseReleasedEvent, lease_id="l-2")
    # After expiry another executor takes over; the old holder's release is then refused.
    flow.apply(
        flow.event(
            LeaseAcquiredEvent,
            at=until + timedelta(minutes=6),
            lease_id="l-2",
            holder_id="exec-b",
            expires_at=until + timedelta(minutes=20),
        )
    )
    flow.refused(conflict, LeaseReleasedEvent, lease_id="l-1")
    flow.send(LeaseReleasedEvent, lease_id="l-2")
    lease = flow.view.get(LEASES, ("wo-1",))
    assert lease is not None and lease["status"] == "RELEASED" and lease["holder_id"] == "exec-b"


def test_every_accepted_event_emits_one_audit_event_with_a_derived_id(flow: Flow) -> None:
    created = flow.emitted[0]
    assert created.ledger == "audit_events" and created.event_type == "WORK_ORDER_CREATED"
    flow.send(FieldsSetEvent, fields={"time": "20:00"})
    cancel = flow.event(WorkOrderCanceledEvent, reason_code="USER_CANCELED")
    flow.apply(cancel)
    flow.refused(ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE, WorkOrderCanceledEvent, reason_code="AGAIN")
    assert [e.event_type for e in flow.emitted] == [
        "WORK_ORDER_CREATED",
        "WORK_ORDER_FIELDS_SET",
        "WORK_ORDER_CANCELED",
    ]
    audit = flow.emitted[-1]
    p = audit.payload
    assert audit.engine_id == "SELENE_OS_CORE_TABLES" and audit.tenant_id == "tenant-a"
    assert (audit.correlation_id, audit.turn_id, audit.occurred_at) == ("thread-1", "turn-1", cancel.occurred_at)
    assert p.reason_code == "USER_CANCELED" and p.capability == "WORKORDER_CANCEL"  # type: ignore[attr-defined]
    assert p.idempotency_key == cancel.idempotency_key and p.status == "CANCELED"  # type: ignore[attr-defined]
    assert p.source_event_id == cancel.event_id and p.work_order_id == "wo-1"  # type: ignore[attr-defined]
    # Deterministic: the same source event always derives the same audit event.
    assert audit_event(cancel, "CANCELED") == audit
    assert audit.event_id != cancel.event_id
    assert flow.emitted[1].payload.reason_code == "OS_WORK_ORDER_LEDGER_APPEND"  # type: ignore[attr-defined]


def _decoded(event: LedgerEvent, settings: Settings) -> Item:
    encoded = encode(event)
    record = Record(event.spec.topic(settings.topic_prefix), 2, 41, encoded.key, encoded.value, tuple(encoded.headers))
    [item] = Pipeline(settings).decode([record])
    assert item.event is not None, item.detail
    return item


def test_pipeline_appends_an_emission_with_its_source_provenance_and_refuses_wrong_ones(flow: Flow) -> None:
    settings = Settings()
    pipeline = Pipeline(settings)
    source = flow.event(FieldsSetEvent, fields={"time": "20:00"})
    item = _decoded(source, settings)
    row = pipeline._derived_row(item, audit_event(source, "DRAFT"))
    assert row.values["event_uuid"] == uuid.uuid5(source.event_id, "PH1.J")
    assert (row.provenance.topic, row.provenance.partition, row.provenance.offset) == (item.record.topic, 2, 41)
    assert (
        row.values["engine_id"] == "SELENE_OS_CORE_TABLES"
        and row.values["reason_code"] == "OS_WORK_ORDER_LEDGER_APPEND"
    )
    # Another tenant's row, or an event a projection consumes (live and rebuild would then differ): refused.
    with pytest.raises(ValueError, match="invalid"):
        pipeline._derived_row(item, audit_event(source, "DRAFT").model_copy(update={"tenant_id": "tenant-b"}))
    consumed = new_event(
        IdentityUpsertedEvent,
        tenant_id="tenant-a",
        engine_id="PH1.F",
        correlation_id="c",
        occurred_at=T0,
        payload={"reason_code": "IDENTITY_CREATED", "user_id": "u-1"},
    )
    with pytest.raises(ValueError, match="consumed"):
        pipeline._derived_row(item, consumed)
