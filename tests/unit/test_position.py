"""The PH1.POSITION reducers without I/O: every lifecycle commit from every state, every refusal with its
reason and policy, the natural key, and the tenant companies' upsert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.projections.base import Rejection, RowView
from consumers.projections.position import (
    POSITIONS,
    TENANT_COMPANIES,
    PositionProjection,
    TenantCompanyProjection,
)
from contracts.envelope import LedgerEvent, new_event
from contracts.position import (
    PositionActivateEvent,
    PositionCreateDraftEvent,
    PositionRetireOrSuspendEvent,
    TenantCompanyUpsertedEvent,
)
from contracts.reasons import ContractViolation, ReasonCode, policy

T0 = datetime(2026, 2, 11, 9, 0, tzinfo=UTC)
DUP, MISSING, INVALID, CONTRACT = (
    ReasonCode.POSITION_DUPLICATE_KEY,
    ReasonCode.POSITION_NOT_FOUND,
    ReasonCode.POSITION_INVALID_TRANSITION,
    ReasonCode.POSITION_CONTRACT_VALIDATION_FAILED,
)
ACTIONS = ("CREATE_DRAFT", "ACTIVATE", "SUSPEND", "RETIRE")
# The sheet's transitions written out: the position's state (None: none yet) -> per action (a commit naming
# that state as its from_state), the state after or the refusal's reason. A commit from a state its type does
# not start from is refused by its contract.
EXPECTED: dict[str | None, tuple[Any, ...]] = {
    None: ("DRAFT", MISSING, MISSING, MISSING),
    "DRAFT": (DUP, "ACTIVE", CONTRACT, CONTRACT),
    "ACTIVE": (DUP, CONTRACT, "SUSPENDED", "RETIRED"),
    "SUSPENDED": (DUP, "ACTIVE", "SUSPENDED", "RETIRED"),
    "RETIRED": (DUP, CONTRACT, CONTRACT, CONTRACT),
}
PATH: dict[str | None, tuple[str, ...]] = {
    None: (),
    "DRAFT": ("CREATE_DRAFT",),
    "ACTIVE": ("CREATE_DRAFT", "ACTIVATE"),
    "SUSPENDED": ("CREATE_DRAFT", "ACTIVATE", "SUSPEND"),
    "RETIRED": ("CREATE_DRAFT", "ACTIVATE", "RETIRE"),
}
SNAPSHOT = {
    "company_id": "company_1",
    "position_title": "Delivery Driver",
    "department": "Logistics",
    "jurisdiction": "US-CA",
    "schedule_type": "FULL_TIME",
    "permission_profile_ref": "perm:driver",
    "compensation_band_ref": "band:L2",
}


class Position:
    def __init__(self, position_id: str = "pos_1", tenant: str = "tenant-a", view: RowView | None = None) -> None:
        self.view = view or RowView({})
        self.position_id, self.tenant = position_id, tenant
        self.at = T0

    def event(self, action: str, from_state: str | None = None, **snapshot: str) -> LedgerEvent:
        self.at += timedelta(seconds=1)
        row = self.row()
        # the position's state (an activate of no position: DRAFT; a retire or suspend of none: ACTIVE)
        state = from_state or (row["lifecycle_state"] if row else "DRAFT" if action == "ACTIVATE" else "ACTIVE")
        payload: dict[str, Any] = {"position_id": self.position_id, "actor_user_id": "u-alice"}
        if action == "CREATE_DRAFT":
            model, payload = PositionCreateDraftEvent, {**payload, **SNAPSHOT, **snapshot}
        elif action == "ACTIVATE":
            model = PositionActivateEvent
            payload["from_state"] = state
        else:
            model = PositionRetireOrSuspendEvent
            payload["from_state"] = state
            payload.update(action=action, to_state="SUSPENDED" if action == "SUSPEND" else "RETIRED")
        return new_event(
            model, tenant_id=self.tenant, engine_id="PH1.POSITION", correlation_id="c", occurred_at=self.at,
            payload=payload,
        )  # fmt: skip

    def apply(self, event: LedgerEvent) -> dict[str, Any] | None:
        try:
            PositionProjection().apply(self.view, event)
        except Rejection:
            self.view.discard_event()
            raise
        self.view.commit_event()
        return self.row()

    def row(self) -> dict[str, Any] | None:
        return self.view.get(POSITIONS, (self.tenant, self.position_id))


@pytest.mark.parametrize("before", list(EXPECTED), ids=str)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_commit_from_every_state(before: str | None, action: str) -> None:
    pos = Position()
    for step in PATH[before]:
        pos.apply(pos.event(step))
    start = pos.row()
    expected = EXPECTED[before][ACTIONS.index(action)]
    if expected == CONTRACT:
        with pytest.raises(ContractViolation) as refused:
            pos.event(action)
        assert refused.value.reason_code == CONTRACT
        return
    event = pos.event(action)
    if isinstance(expected, ReasonCode):
        with pytest.raises(Rejection) as info:
            pos.apply(event)
        assert info.value.reason_code == expected
        assert pos.row() == start
        return
    row = pos.apply(event)
    assert row is not None
    assert {k: row[k] for k in SNAPSHOT} == SNAPSHOT  # the create's snapshot stays
    assert (row["lifecycle_state"], row["updated_at"]) == (expected, event.occurred_at)
    assert row["created_at"] == (event.occurred_at if before is None else start and start["created_at"])


def test_from_state_must_be_the_positions_state() -> None:
    pos = Position()
    for step in PATH["SUSPENDED"]:
        pos.apply(pos.event(step))
    with pytest.raises(Rejection) as info:
        pos.apply(pos.event("ACTIVATE", from_state="DRAFT"))  # allowed from DRAFT, but it is SUSPENDED
    assert info.value.reason_code == INVALID


def test_natural_key_holds_one_position() -> None:
    first = Position("pos_1")
    first.apply(first.event("CREATE_DRAFT"))
    other = Position("pos_2", view=first.view)
    with pytest.raises(Rejection) as info:
        other.apply(other.event("CREATE_DRAFT"))
    assert info.value.reason_code == DUP and "pos_1" in info.value.detail
    other.apply(other.event("CREATE_DRAFT", department="Dispatch"))  # another department: another position
    elsewhere = Position("pos_1", tenant="tenant-b", view=first.view)
    elsewhere.apply(elsewhere.event("CREATE_DRAFT"))  # another tenant's


def test_contract_and_policies() -> None:
    # A retire-or-suspend never starts from DRAFT; SUSPEND never leads to RETIRED.
    for from_state, to_state in (("DRAFT", "SUSPENDED"), ("ACTIVE", "RETIRED")):
        with pytest.raises(ContractViolation) as info:
            new_event(
                PositionRetireOrSuspendEvent, tenant_id="t", engine_id="PH1.POSITION", correlation_id="c",
                occurred_at=T0, payload={"position_id": "p", "actor_user_id": "u", "from_state": from_state,
                                         "action": "SUSPEND", "to_state": to_state},
            )  # fmt: skip
        assert info.value.reason_code == ReasonCode.POSITION_CONTRACT_VALIDATION_FAILED
    assert policy(MISSING).blocks_aggregate and policy(INVALID).blocks_aggregate
    assert not policy(DUP).blocks_aggregate
    assert not policy(ReasonCode.POSITION_IDEMPOTENCY_REPLAY).blocks_aggregate


def test_tenant_company_upsert_keeps_created_at() -> None:
    view, projection = RowView({}), TenantCompanyProjection()

    def upsert(at: datetime, state: str) -> dict[str, Any] | None:
        event = new_event(
            TenantCompanyUpsertedEvent, tenant_id="t", engine_id="PH1.ONB.BIZ", correlation_id="c", occurred_at=at,
            payload={"reason_code": "R", "company_id": "company_1", "legal_name": "Acme Ltd", "jurisdiction": "US",
                     "lifecycle_state": state},
        )  # fmt: skip
        assert projection.handles(event)
        projection.apply(view, event)
        view.commit_event()
        return view.get(TENANT_COMPANIES, ("t", "company_1"))

    upsert(T0, "DRAFT")
    row = upsert(T0 + timedelta(seconds=5), "ACTIVE")
    assert row is not None
    assert (row["lifecycle_state"], row["created_at"], row["updated_at"]) == ("ACTIVE", T0, T0 + timedelta(seconds=5))
