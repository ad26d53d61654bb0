"""The PH1.CAPREQ reducer without I/O: every transition of the sheet's status machine and every refusal, with
its reason code and blocking policy, driven as the pipeline drives it (apply, then commit or discard)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.projections.base import Rejection, RowView
from consumers.projections.capreq import CAPREQ_CURRENT, CapreqProjection
from contracts.capreq import EVENT_OF_ACTION, CapreqApproveEvent, CapreqCreateDraftEvent
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ContractViolation, ReasonCode, policy

T0 = datetime(2026, 2, 11, 9, 0, tzinfo=UTC)
OK = "OK"
NOT_FOUND, INVALID, TERMINAL = (
    ReasonCode.CAPREQ_NOT_FOUND,
    ReasonCode.CAPREQ_INVALID_TRANSITION,
    ReasonCode.CAPREQ_TERMINAL_STATE,
)
# The sheet's table, written out: (action, status before) -> the status after, or the refusal's reason.
# Rows: the request's status (None = no request yet); columns: the action.
ACTIONS = ("CREATE_DRAFT", "SUBMIT_FOR_APPROVAL", "APPROVE", "REJECT", "FULFILL", "CANCEL")
EXPECTED: dict[str | None, tuple[Any, ...]] = {
    None: ("DRAFT", NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND, NOT_FOUND),
    "DRAFT": (INVALID, "PENDING_APPROVAL", INVALID, INVALID, INVALID, "CANCELED"),
    "PENDING_APPROVAL": (INVALID, INVALID, "APPROVED", "REJECTED", INVALID, "CANCELED"),
    "APPROVED": (INVALID, INVALID, INVALID, INVALID, "FULFILLED", "CANCELED"),
    "REJECTED": (TERMINAL,) * 6,
    "FULFILLED": (TERMINAL,) * 6,
    "CANCELED": (TERMINAL,) * 6,
}
# How to bring a request to each status through allowed actions only.
PATH: dict[str | None, tuple[str, ...]] = {
    None: (),
    "DRAFT": ("CREATE_DRAFT",),
    "PENDING_APPROVAL": ("CREATE_DRAFT", "SUBMIT_FOR_APPROVAL"),
    "APPROVED": ("CREATE_DRAFT", "SUBMIT_FOR_APPROVAL", "APPROVE"),
    "REJECTED": ("CREATE_DRAFT", "SUBMIT_FOR_APPROVAL", "REJECT"),
    "FULFILLED": ("CREATE_DRAFT", "SUBMIT_FOR_APPROVAL", "APPROVE", "FULFILL"),
    "CANCELED": ("CREATE_DRAFT", "CANCEL"),
}


class Request:
    """One request's events applied in order to one RowView, a second apart."""

    def __init__(self, capreq_id: str = "capreq_1", tenant: str = "tenant-a") -> None:
        self.view = RowView({})
        self.projection = CapreqProjection()
        self.capreq_id, self.tenant = capreq_id, tenant
        self.at = T0

    def event(self, action: str, actor: str = "u-alice") -> LedgerEvent:
        self.at += timedelta(seconds=1)
        return new_event(
            EVENT_OF_ACTION[action],
            tenant_id=self.tenant,
            engine_id="PH1.CAPREQ",
            correlation_id="c-1",
            idempotency_key=f"k-{action}",
            occurred_at=self.at,
            payload={"capreq_id": self.capreq_id, "requester_user_id": actor, "payload_hash": f"h-{action}"},
        )

    def apply(self, event: LedgerEvent) -> dict[str, Any] | None:
        try:
            self.projection.apply(self.view, event)
        except Rejection:
            self.view.discard_event()
            raise
        self.view.commit_event()
        return self.row()

    def row(self) -> dict[str, Any] | None:
        return self.view.get(CAPREQ_CURRENT, (self.tenant, self.capreq_id))


@pytest.mark.parametrize("before", list(EXPECTED), ids=str)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_action_from_every_status(before: str | None, action: str) -> None:
    req = Request()
    for step in PATH[before]:
        req.apply(req.event(step))
    start = req.row()
    assert (start or {}).get("status") == before
    expected = EXPECTED[before][ACTIONS.index(action)]
    event = req.event(action, actor="u-bob")
    if isinstance(expected, ReasonCode):
        with pytest.raises(Rejection) as info:
            req.apply(event)
        assert info.value.reason_code == expected
        assert req.row() == start  # nothing changed
        return
    row = req.apply(event)
    assert row == {
        "tenant_id": "tenant-a",
        "capreq_id": "capreq_1",
        "requester_user_id": "u-bob",  # the user acting
        "status": expected,
        "last_action": action,
        "payload_hash": f"h-{action}",
        "source_event_id": event.event_id,
        "updated_at": event.occurred_at,
        "last_reason_code": f"CAPREQ_OK_{action}",
    }


def test_upstream_db_04_sequence_is_refused_and_the_full_one_ends_approved() -> None:
    """Upstream's AT-CAPREQ-DB-04 appends CREATE_DRAFT then APPROVE; with the machine enforced the approval
    needs a submission first."""
    req = Request()
    req.apply(req.event("CREATE_DRAFT"))
    with pytest.raises(Rejection) as info:
        req.apply(req.event("APPROVE"))
    assert info.value.reason_code == ReasonCode.CAPREQ_INVALID_TRANSITION
    assert "APPROVE starts from PENDING_APPROVAL only" in info.value.detail
    req.apply(req.event("SUBMIT_FOR_APPROVAL"))
    approve = req.event("APPROVE")
    row = req.apply(approve)
    assert row is not None
    assert (row["status"], row["last_action"], row["source_event_id"]) == ("APPROVED", "APPROVE", approve.event_id)


def test_requests_are_kept_apart_by_tenant_and_id() -> None:
    a, b = Request(tenant="tenant-a"), Request(tenant="tenant-b")
    b.view = a.view  # one batch, two tenants, the same request id
    a.apply(a.event("CREATE_DRAFT"))
    b.apply(b.event("CREATE_DRAFT"))  # not "created twice": another tenant's request
    other = Request("capreq_2")
    other.view = a.view
    with pytest.raises(Rejection) as info:
        other.apply(other.event("SUBMIT_FOR_APPROVAL"))
    assert info.value.reason_code == ReasonCode.CAPREQ_NOT_FOUND


def test_refusal_policies() -> None:
    """Out of order blocks the request's later events; a late word on a closed request does not."""
    assert policy(ReasonCode.CAPREQ_NOT_FOUND).blocks_aggregate
    assert policy(ReasonCode.CAPREQ_INVALID_TRANSITION).blocks_aggregate
    assert not policy(ReasonCode.CAPREQ_TERMINAL_STATE).blocks_aggregate
    assert not policy(ReasonCode.CAPREQ_IDEMPOTENCY_REPLAY).blocks_aggregate
    assert policy(ReasonCode.CAPREQ_CONTRACT_VALIDATION_FAILED).blocks_aggregate


def test_an_event_type_fixes_its_action_and_status() -> None:
    common: dict[str, Any] = {
        "tenant_id": "t",
        "engine_id": "PH1.CAPREQ",
        "correlation_id": "c",
        "occurred_at": T0,
    }
    payload = {"capreq_id": "capreq_1", "requester_user_id": "u", "payload_hash": "h"}
    approve = new_event(CapreqApproveEvent, payload=payload, **common)
    assert (approve.payload.action, approve.payload.status) == ("APPROVE", "APPROVED")  # type: ignore[attr-defined]
    for wrong in ({"action": "APPROVE"}, {"status": "APPROVED"}, {"payload_hash": ""}, {"capreq_id": "x" * 129}):
        with pytest.raises(ContractViolation) as info:
            new_event(CapreqCreateDraftEvent, payload={**payload, **wrong}, **common)
        assert info.value.reason_code == ReasonCode.CAPREQ_CONTRACT_VALIDATION_FAILED
    assert approve.aggregate_id == "capreq:capreq_1"
