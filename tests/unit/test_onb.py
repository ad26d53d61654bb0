"""PH1.ONB's preconditions without I/O (``consumers.projections.onb.decide``): each commit applied on the
session state it needs, and refused on the state just short of it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from consumers.projections.base import Rejection
from consumers.projections.onb import SESSIONS, decide
from contracts.envelope import LedgerEvent, new_event
from contracts.onb import (
    OnbAccessInstanceEvent,
    OnbCompleteEvent,
    OnbEmployeePhotoEvent,
    OnbPrimaryDeviceEvent,
    OnbSenderVerifyEvent,
    OnbTermsAcceptEvent,
    onboarding_session_id,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
NEW = {**dict.fromkeys(SESSIONS.column_names), "status": "DRAFT_CREATED", "updated_at": NOW}
TERMS = {**NEW, "status": "TERMS_ACCEPTED", "terms_status": "ACCEPTED", "primary_device_confirmed": False}
PENDING = {**TERMS, "status": "VERIFICATION_PENDING", "verification_status": "PENDING", "sender_user_id": "u-a"}
VERIFIED = {**PENDING, "status": "VERIFICATION_CONFIRMED", "verification_status": "CONFIRMED"}
DEVICE = {**VERIFIED, "status": "PRIMARY_DEVICE_CONFIRMED", "primary_device_confirmed": True}
ACCESS = {**DEVICE, "status": "ACCESS_INSTANCE_CREATED", "access_engine_instance_id": "accinst_1"}


def commit(model: type[LedgerEvent], **payload: Any) -> LedgerEvent:
    ids = {"scope_id": onboarding_session_id("l"), "link_id": "l", "draft_id": "d", "write_hash": "w"}
    return new_event(
        model, tenant_id="t", engine_id="PH1.ONB.CORE", correlation_id="c", occurred_at=NOW, payload={**ids, **payload}
    )


# (commit, the state it applies on, its status after, a state it is refused on); sessions are EMPLOYEE's.
CASES = [
    (commit(OnbTermsAcceptEvent, terms_version_id="v", accepted=False), NEW, "TERMS_DECLINED", TERMS),
    (commit(OnbEmployeePhotoEvent, photo_blob_ref="b", sender_user_id="u-a"), TERMS, "VERIFICATION_PENDING", NEW),
    (commit(OnbSenderVerifyEvent, sender_user_id="u-a", decision="REJECTED"), PENDING, "VERIFICATION_REJECTED", TERMS),
    (commit(OnbSenderVerifyEvent, sender_user_id="u-b", decision="CONFIRMED"), None, None, PENDING),
    (
        commit(OnbPrimaryDeviceEvent, device_id="x", proof_type="PASSCODE", proof_ok=True),
        VERIFIED,
        "PRIMARY_DEVICE_CONFIRMED",
        NEW,
    ),
    (
        commit(OnbPrimaryDeviceEvent, device_id="x", proof_type="PASSCODE", proof_ok=False),
        TERMS,
        "TERMS_ACCEPTED",
        None,
    ),
    (
        commit(OnbAccessInstanceEvent, user_id="u", role_id="r"),
        DEVICE,
        "ACCESS_INSTANCE_CREATED",
        {**PENDING, "primary_device_confirmed": True},
    ),
    (commit(OnbAccessInstanceEvent, user_id="u", role_id="r"), None, None, VERIFIED),
    (commit(OnbCompleteEvent), ACCESS, "COMPLETE", DEVICE),
    (commit(OnbCompleteEvent), None, None, {**ACCESS, "status": "COMPLETE"}),
]


@pytest.mark.parametrize(("event", "applies_on", "status", "refused_on"), CASES)
def test_each_commit_needs_its_state(
    event: LedgerEvent, applies_on: dict[str, Any] | None, status: str | None, refused_on: dict[str, Any] | None
) -> None:
    employee = {"invitee_type": "EMPLOYEE"}
    if applies_on is not None:
        assert decide(event, {**applies_on, **employee})["status"] == status
    if refused_on is not None:
        with pytest.raises(Rejection) as info:
            decide(event, {**refused_on, **employee})
        assert info.value.reason_code == "ONB_REFUSE_INVALID"


def test_a_household_skips_verification_and_a_missing_session_is_not_found() -> None:
    access = commit(OnbAccessInstanceEvent, user_id="u", role_id="r")
    household = {**TERMS, "invitee_type": "HOUSEHOLD", "primary_device_confirmed": True}
    assert decide(access, household)["access_engine_instance_id"].startswith("accinst_")
    with pytest.raises(Rejection) as info:
        decide(commit(OnbEmployeePhotoEvent, photo_blob_ref="b", sender_user_id="u"), household)
    assert info.value.reason_code == "ONB_REFUSE_INVALID"
    with pytest.raises(Rejection) as info:
        decide(access, None)
    assert info.value.reason_code == "ONB_REFUSE_NOT_FOUND"
    other = new_event(
        type(access), **{**access.model_dump(), "payload": {**access.payload.model_dump(), "link_id": "m"}}
    )
    with pytest.raises(Rejection) as info:  # a session id that is not its link's
        decide(other, household)
    assert info.value.reason_code == "ONB_REFUSE_INVALID"
