"""SELENE_OS_CORE_TABLES: the work-order ledger's row mapping, its projections, and its PH1.J audit emission.

``WorkOrderProjection`` derives ``work_orders_current``, ``work_order_step_attempts`` and
``work_order_leases`` from the ledger (so all three are rebuildable from it) and enforces the seeds' rules:

- the status machine (``contracts.work_orders.TRANSITIONS``); cancel only from a non-terminal status and
  with a reason code, else ``OS_WORK_ORDER_CANCEL_INVALID_STATE`` and nothing changes;
- never ask twice: a missing-field prompt for a field already known (``fields_json``, prefilled context, or a
  resolved clarification), a conflict prompt once that field's conflict was asked (or resolved), or a
  repeated ``prompt_dedupe_key``
  while the work order's state has not changed since that key was used, is refused with
  ``OS_WORK_ORDER_PROMPT_SUPPRESSED``;
- the external approval wait: while an approval is pending, one wait notice; further notices and prompts
  are refused (``OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED``) until the approval is answered or expires, or its
  timeout has passed.

"Suppressed" means refused: the event is not appended and becomes a non-blocking dead letter (REJECTED) with
its reason, so the ledger holds only what Selene OS actually said, the refusal is visible and counted, and a
producer awaiting the write learns why (``producers.ledger_writes.WriteRefused``). Refusals that leave the
work order consistent do not block its later events (see ``contracts.reasons._NON_BLOCKING``).

Time is the events' ``occurred_at``, never a clock, so a rebuild decides exactly as the writer did.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from consumers.projections.base import Projection, Rejection, RowRef, RowView, derived_event_id
from consumers.tables import Row, TableSpec
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ReasonCode
from contracts.work_orders import (
    ALLOWED_CALLERS,
    ENGINE_ID,
    MAX_DEDUPE_KEYS,
    MAX_FIELDS,
    MAX_MAP_BYTES,
    TERMINAL_STATUSES,
    TRANSITIONS,
    WORK_ORDER_AUDIT_MODELS,
    WORK_ORDER_LEDGER,
    ClarificationResolved,
    ExternalApprovalAnswered,
    ExternalApprovalExpired,
    ExternalApprovalRequested,
    FieldsSet,
    LeaseAcquired,
    LeaseReleased,
    PromptAsked,
    StatusChanged,
    StepAttemptFinished,
    StepAttemptStarted,
    WaitNoticeEmitted,
    WorkOrderCanceled,
    WorkOrderCreated,
    WorkOrderPayload,
)


def _wo(e: LedgerEvent) -> WorkOrderPayload:
    assert isinstance(e.payload, WorkOrderPayload)
    return e.payload


WORK_ORDERS = TableSpec(
    "os_core.work_orders_current",
    columns=(
        ("work_order_id", "text"),
        ("tenant_id", "text"),
        ("correlation_id", "text"),
        ("requester_user_id", "text"),
        ("intent_type", "text"),
        ("status", "text"),
        ("status_reason_code", "text"),
        ("state_version", "bigint"),
        ("fields_json", "jsonb"),
        ("prefilled_json", "jsonb"),
        ("asked_fields_json", "jsonb"),
        ("resolved_fields_json", "jsonb"),
        ("prompt_dedupe_keys_json", "jsonb"),
        ("external_approval_pending", "boolean"),
        ("external_approval_request_id", "text"),
        ("external_approval_target_user_id", "text"),
        ("external_approval_expires_at", "timestamptz"),
        ("external_approval_wait_notice_at", "timestamptz"),
        ("external_approval_outcome", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("last_event_id", "bigint"),
    ),
    key=("work_order_id",),
)
# The thread binding (tenant, correlation) -> work order, read to refuse a second work order on one thread.
WORK_ORDERS_BY_CORRELATION = TableSpec(
    "os_core.work_orders_current",
    columns=(("tenant_id", "text"), ("correlation_id", "text"), ("work_order_id", "text")),
    key=("tenant_id", "correlation_id"),
)
STEP_ATTEMPTS = TableSpec(
    "os_core.work_order_step_attempts",
    columns=(
        ("work_order_id", "text"),
        ("step_id", "text"),
        ("attempt_no", "integer"),
        ("tenant_id", "text"),
        ("status", "text"),
        ("lease_id", "text"),
        ("started_at", "timestamptz"),
        ("finished_at", "timestamptz"),
        ("outcome_reason_code", "text"),
        ("last_event_id", "bigint"),
    ),
    key=("work_order_id", "step_id", "attempt_no"),
)
LEASES = TableSpec(
    "os_core.work_order_leases",
    columns=(
        ("work_order_id", "text"),
        ("tenant_id", "text"),
        ("lease_id", "text"),
        ("holder_id", "text"),
        ("status", "text"),
        ("acquired_at", "timestamptz"),
        ("expires_at", "timestamptz"),
        ("released_at", "timestamptz"),
        ("last_event_id", "bigint"),
    ),
    key=("work_order_id",),
)


def _iso(at: datetime) -> str:
    """Times inside JSON maps in UTC: a rebuild reads ``occurred_at`` back from PostgreSQL in UTC, and the
    map must come out byte-identical whatever offset the engine published."""
    return at.astimezone(UTC).isoformat()


def _bounded(name: str, value: dict[str, Any], max_keys: int) -> dict[str, Any]:
    """Refuse a change that would outgrow a bounded map (the table's CHECK holds a margin above this)."""
    if len(value) > max_keys or len(json.dumps(value)) > MAX_MAP_BYTES:
        raise Rejection(
            ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED,
            f"{name} would exceed its bound ({max_keys} entries, {MAX_MAP_BYTES} bytes)",
        )
    return value


def _refuse(code: ReasonCode, wo: Row, detail: str) -> Rejection:
    return Rejection(code, f"work order {wo['work_order_id']} ({wo['status']}): {detail}")


def _open(wo: Row, what: str) -> None:
    """Nothing but a finishing step or a lease release may follow a terminal status."""
    if wo["status"] in TERMINAL_STATUSES:
        raise _refuse(ReasonCode.OS_WORK_ORDER_TERMINAL_STATE, wo, f"{what} after a terminal status")


def _changed(wo: Row, **changes: Any) -> Row:
    """``wo`` with ``changes`` and one more state version: a change prompts may depend on."""
    return {**wo, **changes, "state_version": wo["state_version"] + 1}


def _in_wait_posture(wo: Row, at: datetime) -> bool:
    expires = wo["external_approval_expires_at"]
    return bool(wo["external_approval_pending"]) and expires is not None and at < expires


class WorkOrderProjection(Projection):
    """work_orders_current, work_order_step_attempts, work_order_leases <- the work-order ledger."""

    name = "work_orders"
    writes = (WORK_ORDERS, STEP_ATTEMPTS, LEASES)
    indexes = (WORK_ORDERS_BY_CORRELATION,)
    ledgers = frozenset({WORK_ORDER_LEDGER.name})

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        p = _wo(event)
        yield WORK_ORDERS, (p.work_order_id,)
        if isinstance(p, WorkOrderCreated):
            yield WORK_ORDERS_BY_CORRELATION, (event.tenant_id, event.correlation_id)
        if isinstance(p, StepAttemptStarted | StepAttemptFinished):
            yield STEP_ATTEMPTS, (p.work_order_id, p.step_id, p.attempt_no)
            if p.attempt_no > 1:
                yield STEP_ATTEMPTS, (p.work_order_id, p.step_id, p.attempt_no - 1)
        if isinstance(p, LeaseAcquired | LeaseReleased):
            yield LEASES, (p.work_order_id,)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p = _wo(event)
        if event.engine_id not in ALLOWED_CALLERS:
            # Here rather than in the contract: a contract failure blocks the work order, and another engine's
            # event must not hold Selene OS's own events behind it; and the refusal names the rule.
            raise Rejection(
                ReasonCode.OS_WORK_ORDER_CALLER_NOT_ALLOWED,
                f"engine {event.engine_id} may not publish {event.event_type} for work order {p.work_order_id}: "
                f"the work-order capabilities allow {', '.join(sorted(ALLOWED_CALLERS))} only (SELENE_OS_ONLY)",
            )
        wo = view.get(WORK_ORDERS, (p.work_order_id,))
        if wo is not None and wo["tenant_id"] != event.tenant_id:
            raise Rejection(
                ReasonCode.OS_WORK_ORDER_TENANT_SCOPE_VIOLATION,
                f"work order {p.work_order_id} belongs to another tenant",
            )
        if isinstance(p, WorkOrderCreated):
            view.put(WORK_ORDERS, self._create(view, event, p, wo))
            view.put(
                WORK_ORDERS_BY_CORRELATION,
                {
                    "tenant_id": event.tenant_id,
                    "correlation_id": event.correlation_id,
                    "work_order_id": p.work_order_id,
                },
            )
            return
        if wo is None:
            raise Rejection(ReasonCode.OS_WORK_ORDER_NOT_FOUND, f"no work order {p.work_order_id} was created")
        new = self._next(view, event, wo)
        new["updated_at"] = max(wo["updated_at"], event.occurred_at)
        new["last_event_id"] = event.event_id
        view.put(WORK_ORDERS, new)

    # -- one method per event kind; each returns the work order's next row or raises Rejection -----------------
    def _create(self, view: RowView, event: LedgerEvent, p: WorkOrderCreated, wo: Row | None) -> Row:
        if wo is not None:
            raise _refuse(ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION, wo, "created twice")
        bound = view.get(WORK_ORDERS_BY_CORRELATION, (event.tenant_id, event.correlation_id))
        if bound is not None:
            raise Rejection(
                ReasonCode.OS_WORK_ORDER_CORRELATION_CONFLICT,
                f"correlation {event.correlation_id} is already bound to work order {bound['work_order_id']}",
            )
        at = event.occurred_at
        return {
            "work_order_id": p.work_order_id,
            "tenant_id": event.tenant_id,
            "correlation_id": event.correlation_id,
            "requester_user_id": p.requester_user_id,
            "intent_type": p.intent_type,
            "status": "DRAFT",
            "status_reason_code": None,
            "state_version": 0,
            "fields_json": _bounded("fields_json", dict(p.fields), MAX_FIELDS),
            "prefilled_json": _bounded("prefilled_json", dict(p.prefilled), MAX_FIELDS),
            "asked_fields_json": {},
            "resolved_fields_json": {},
            "prompt_dedupe_keys_json": {},
            "external_approval_pending": False,
            "external_approval_request_id": None,
            "external_approval_target_user_id": None,
            "external_approval_expires_at": None,
            "external_approval_wait_notice_at": None,
            "external_approval_outcome": None,
            "created_at": at,
            "updated_at": at,
            "last_event_id": event.event_id,
        }

    def _next(self, view: RowView, event: LedgerEvent, wo: Row) -> Row:
        p, at = event.payload, event.occurred_at
        if isinstance(p, FieldsSet):
            _open(wo, "setting fields")
            fields = _bounded("fields_json", {**wo["fields_json"], **p.fields}, MAX_FIELDS)
            return _changed(wo, fields_json=fields) if fields != wo["fields_json"] else dict(wo)
        if isinstance(p, PromptAsked):
            return self._prompt(wo, p, at)
        if isinstance(p, ClarificationResolved):
            _open(wo, "resolving a clarification")
            resolution = {"value": p.value, "kind": p.kind, "resolved_by": p.resolved_by, "resolved_at": _iso(at)}
            return _changed(
                wo,
                fields_json=_bounded("fields_json", {**wo["fields_json"], p.field_key: p.value}, MAX_FIELDS),
                resolved_fields_json=_bounded(
                    "resolved_fields_json", {**wo["resolved_fields_json"], p.field_key: resolution}, MAX_FIELDS
                ),
            )
        if isinstance(p, WorkOrderCanceled) or (isinstance(p, StatusChanged) and p.to_status == "CANCELED"):
            return self._cancel(wo, p.reason_code)
        if isinstance(p, StatusChanged):
            _open(wo, f"a change to {p.to_status}")
            if p.to_status not in TRANSITIONS[wo["status"]]:
                raise _refuse(ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION, wo, f"no transition to {p.to_status}")
            ends_wait = p.to_status in TERMINAL_STATUSES
            return _changed(
                wo,
                status=p.to_status,
                status_reason_code=p.reason_code,
                external_approval_pending=wo["external_approval_pending"] and not ends_wait,
            )
        if isinstance(p, StepAttemptStarted | StepAttemptFinished):
            self._step(view, event, wo)
            return dict(wo)
        if isinstance(p, LeaseAcquired | LeaseReleased):
            self._lease(view, event, wo)
            return dict(wo)
        return self._approval(wo, event)

    def _prompt(self, wo: Row, p: PromptAsked, at: datetime) -> Row:
        _open(wo, "a prompt")
        if _in_wait_posture(wo, at):
            raise _refuse(
                ReasonCode.OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED,
                wo,
                f"waiting for approval; no prompt for {p.field_key}",
            )
        field, suppressed = p.field_key, ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED
        resolved = wo["resolved_fields_json"].get(field)
        # A resolved field is never asked as missing; a conflict only once its conflict was resolved: one that
        # appears after a missing-field clarification is asked once (seed 001, rule 3).
        if resolved is not None and (p.kind == "MISSING_FIELD" or resolved["kind"] == "CONFLICT"):
            raise _refuse(suppressed, wo, f"{field} was resolved already")
        known = field in wo["fields_json"] or field in wo["prefilled_json"]
        if p.kind == "MISSING_FIELD" and known:
            raise _refuse(suppressed, wo, f"{field} is known already")
        asked = wo["asked_fields_json"].get(field)
        conflict_asked = asked is not None and asked["kind"] == "CONFLICT"
        if p.kind == "CONFLICT" and conflict_asked:
            raise _refuse(suppressed, wo, f"the conflict on {field} was asked once already")
        keys = dict(wo["prompt_dedupe_keys_json"])
        if keys.get(p.prompt_dedupe_key) == wo["state_version"]:
            raise _refuse(suppressed, wo, f"prompt {p.prompt_dedupe_key} repeated with no state change since")
        keys[p.prompt_dedupe_key] = wo["state_version"]
        while len(keys) > MAX_DEDUPE_KEYS:  # forget the key used longest ago (lowest state version, then name)
            del keys[min(keys, key=lambda k: (keys[k], k))]
        attempts = (asked["attempts"] if asked else 0) + 1
        return {
            **wo,
            "asked_fields_json": _bounded(
                "asked_fields_json",
                # "kind" stays CONFLICT once the field's conflict was asked, so it is never asked twice.
                {
                    **wo["asked_fields_json"],
                    field: {
                        "asked_at": _iso(at),
                        "attempts": attempts,
                        "kind": "CONFLICT" if conflict_asked else p.kind,
                    },
                },
                MAX_FIELDS,
            ),
            "prompt_dedupe_keys_json": _bounded("prompt_dedupe_keys_json", keys, MAX_DEDUPE_KEYS),
        }

    def _cancel(self, wo: Row, reason_code: str | None) -> Row:
        if wo["status"] in TERMINAL_STATUSES or reason_code is None:
            raise _refuse(
                ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE,
                wo,
                "only a non-terminal work order can be canceled, with a reason code",
            )
        return _changed(wo, status="CANCELED", status_reason_code=reason_code, external_approval_pending=False)

    def _step(self, view: RowView, event: LedgerEvent, wo: Row) -> None:
        p, at = event.payload, event.occurred_at
        assert isinstance(p, StepAttemptStarted | StepAttemptFinished)
        invalid = ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION
        attempt = view.get(STEP_ATTEMPTS, (p.work_order_id, p.step_id, p.attempt_no))
        if isinstance(p, StepAttemptFinished):
            if attempt is None or attempt["status"] != "STARTED":
                raise _refuse(invalid, wo, f"step {p.step_id} attempt {p.attempt_no} is not running")
            view.put(
                STEP_ATTEMPTS,
                {**attempt, "status": p.outcome, "finished_at": at, "outcome_reason_code": p.reason_code,
                 "last_event_id": event.event_id},
            )  # fmt: skip
            return
        _open(wo, "starting a step")
        if wo["status"] != "EXECUTING":
            raise _refuse(invalid, wo, f"step {p.step_id} can only start while EXECUTING")
        previous = view.get(STEP_ATTEMPTS, (p.work_order_id, p.step_id, p.attempt_no - 1))
        if attempt is not None or (p.attempt_no > 1 and (previous is None or previous["status"] == "STARTED")):
            raise _refuse(invalid, wo, f"step {p.step_id} attempt {p.attempt_no} is out of sequence")
        view.put(
            STEP_ATTEMPTS,
            {
                "work_order_id": p.work_order_id,
                "step_id": p.step_id,
                "attempt_no": p.attempt_no,
                "tenant_id": event.tenant_id,
                "status": "STARTED",
                "lease_id": p.lease_id,
                "started_at": at,
                "finished_at": None,
                "outcome_reason_code": None,
                "last_event_id": event.event_id,
            },
        )

    def _lease(self, view: RowView, event: LedgerEvent, wo: Row) -> None:
        p, at = event.payload, event.occurred_at
        assert isinstance(p, LeaseAcquired | LeaseReleased)
        lease = view.get(LEASES, (p.work_order_id,))
        held = lease is not None and lease["status"] == "HELD"
        conflict = ReasonCode.OS_WORK_ORDER_LEASE_CONFLICT
        if isinstance(p, LeaseReleased):
            if lease is None or not held or lease["lease_id"] != p.lease_id:
                raise _refuse(conflict, wo, f"lease {p.lease_id} is not held")
            view.put(LEASES, {**lease, "status": "RELEASED", "released_at": at, "last_event_id": event.event_id})
            return
        _open(wo, "acquiring a lease")
        if p.expires_at <= at:
            raise _refuse(ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED, wo, "a lease must expire later")
        renew = lease is not None and held and lease["lease_id"] == p.lease_id
        if renew and lease is not None and lease["holder_id"] != p.holder_id:
            raise _refuse(conflict, wo, f"lease {p.lease_id} belongs to {lease['holder_id']}")
        if lease is not None and held and not renew and at < lease["expires_at"]:
            raise _refuse(conflict, wo, f"lease {lease['lease_id']} is held by {lease['holder_id']}")
        view.put(
            LEASES,
            {
                "work_order_id": p.work_order_id,
                "tenant_id": event.tenant_id,
                "lease_id": p.lease_id,
                "holder_id": p.holder_id,
                "status": "HELD",
                "acquired_at": lease["acquired_at"] if renew and lease is not None else at,
                "expires_at": p.expires_at,
                "released_at": None,
                "last_event_id": event.event_id,
            },
        )

    def _approval(self, wo: Row, event: LedgerEvent) -> Row:
        p, at = event.payload, event.occurred_at
        assert isinstance(
            p, ExternalApprovalRequested | ExternalApprovalAnswered | ExternalApprovalExpired | WaitNoticeEmitted
        )
        _open(wo, event.event_type)
        if isinstance(p, ExternalApprovalRequested):
            if wo["external_approval_pending"]:
                raise _refuse(ReasonCode.OS_WORK_ORDER_INVALID_TRANSITION, wo, "an approval is pending already")
            if p.expires_at <= at:
                raise _refuse(ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED, wo, "an approval must expire later")
            return _changed(
                wo,
                external_approval_pending=True,
                external_approval_request_id=p.approval_request_id,
                external_approval_target_user_id=p.target_user_id,
                external_approval_expires_at=p.expires_at,
                external_approval_wait_notice_at=None,
                external_approval_outcome=None,
            )
        if not wo["external_approval_pending"] or wo["external_approval_request_id"] != p.approval_request_id:
            raise _refuse(
                ReasonCode.OS_WORK_ORDER_APPROVAL_NOT_PENDING, wo, f"approval {p.approval_request_id} is not pending"
            )
        if isinstance(p, WaitNoticeEmitted):
            notice, expires = wo["external_approval_wait_notice_at"], wo["external_approval_expires_at"]
            # One notice while waiting; one more once the timeout has passed (the wait is over, say so).
            if notice is not None and not (at >= expires > notice):
                raise _refuse(ReasonCode.OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED, wo, "the wait notice was given already")
            return {**wo, "external_approval_wait_notice_at": at}
        outcome = p.decision if isinstance(p, ExternalApprovalAnswered) else "EXPIRED"
        return _changed(wo, external_approval_pending=False, external_approval_outcome=outcome)


class WorkOrderAuditEmitter(Projection):
    """PH1.J: every appended work-order event gets its audit row on ``os_core.audit_events``, in the same
    transaction (seed 002's audit emissions for OS_WORK_ORDER_LEDGER_APPEND and WORKORDER_CANCEL).

    Live only: the audit rows are ledger rows that a rebuild finds in the audit ledger; re-emitting them
    there would be wrong. Runs after ``WorkOrderProjection``, so it sees the status the event led to, and
    only for events that projection accepted (a refused event is not appended, so it is not audited here:
    its dead letter is its record).
    """

    name = "work_order_audit"
    ledgers = frozenset({WORK_ORDER_LEDGER.name})
    live_only = True

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield WORK_ORDERS, (_wo(event).work_order_id,)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        wo = view.get(WORK_ORDERS, (_wo(event).work_order_id,))
        assert wo is not None, "WorkOrderProjection runs first and refuses events of unknown work orders"
        view.emit(audit_event(event, wo["status"]))


def audit_event(event: LedgerEvent, status: str) -> LedgerEvent:
    """The PH1.J audit event of a work-order event: same tenant, correlation, turn and time; its id is derived
    from the work-order event's id, so it is emitted once whatever happens to the source record."""
    p = _wo(event)
    reason = getattr(p, "reason_code", None)
    cancel = isinstance(p, WorkOrderCanceled) or (isinstance(p, StatusChanged) and p.to_status == "CANCELED")
    capability = "WORKORDER_CANCEL" if cancel else "OS_WORK_ORDER_LEDGER_APPEND"
    return new_event(
        WORK_ORDER_AUDIT_MODELS[event.event_type],
        event_id=derived_event_id(event, "PH1.J"),
        tenant_id=event.tenant_id,
        engine_id=ENGINE_ID,
        correlation_id=event.correlation_id,
        turn_id=event.turn_id,
        # A row naming a work order dedupes on (tenant, work order, key): a key of its own, so that an engine's
        # key about the same work order can never collide with it. The work-order event's key is in the payload.
        idempotency_key=f"{event.ledger}:{event.event_id}",
        occurred_at=event.occurred_at,
        payload={
            "reason_code": reason or capability,
            "capability": capability,
            "work_order_id": p.work_order_id,
            "work_order_event_type": event.event_type,
            "source_event_id": event.event_id,
            "idempotency_key": event.idempotency_key,
            "status": status,
        },
    )


PROJECTIONS: tuple[Projection, ...] = (WorkOrderProjection(), WorkOrderAuditEmitter())
