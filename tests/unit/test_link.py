"""PH1.LINK's rules without I/O: every commit from every link status (``consumers.projections.link.decide``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.projections.base import Rejection
from consumers.projections.link import decide
from contracts.envelope import new_event
from contracts.link import (
    LinkDeliveryFailureHandlingEvent,
    LinkExpiredRecoveryEvent,
    LinkForwardBlockEvent,
    LinkOpenActivateEvent,
    LinkRevokeEvent,
    LinkSendCommitEvent,
)

NOW = datetime(2026, 1, 10, tzinfo=UTC)
SMS = {"delivery_method": "SMS", "recipient_contact_hash": "c"}
COMMITS: dict[str, tuple[Any, dict[str, Any]]] = {
    "send": (LinkSendCommitEvent, SMS),
    "retry_fail": (LinkDeliveryFailureHandlingEvent, {**SMS, "attempt": 4}),
    "open_fp1": (LinkOpenActivateEvent, {"device_fingerprint_hash": "fp1"}),
    "open_fp2": (LinkOpenActivateEvent, {"device_fingerprint_hash": "fp2"}),
    "forward_fp2": (LinkForwardBlockEvent, {"presented_fingerprint_hash": "fp2"}),
    "revoke": (LinkRevokeEvent, {"revoked_reason": "r"}),
    "recover": (LinkExpiredRecoveryEvent, {"new_link_id": "l2", "token_signature": "s"}),
}
STATUSES = ("DRAFT_CREATED", "SENT", "ACTIVATED", "BLOCKED", "EXPIRED", "REVOKED", "CONSUMED")
# (commit, status) -> the status it leads to; every pair not listed is LINK_REFUSE_INVALID.
# ACTIVATED is bound to fp1: fp1 again stays ACTIVATED, fp2 is BLOCKED (opened or presented).
ALLOWED = {
    **{("send", s): "SENT" if s == "DRAFT_CREATED" else s for s in ("DRAFT_CREATED", "SENT", "ACTIVATED", "BLOCKED")},
    **{("retry_fail", s): s for s in ("DRAFT_CREATED", "SENT", "ACTIVATED", "BLOCKED")},
    **{(o, s): "ACTIVATED" for o in ("open_fp1", "open_fp2") for s in ("DRAFT_CREATED", "SENT")},
    ("open_fp1", "ACTIVATED"): "ACTIVATED",
    ("open_fp2", "ACTIVATED"): "BLOCKED",
    **{("forward_fp2", s): "BLOCKED" for s in ("ACTIVATED", "BLOCKED")},
    **{("revoke", s): "REVOKED" for s in STATUSES if s not in ("REVOKED", "CONSUMED")},
    ("recover", "EXPIRED"): "DRAFT_CREATED",
}


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("commit", COMMITS)
def test_every_commit_from_every_status(commit: str, status: str) -> None:
    model, payload = COMMITS[commit]
    event = new_event(
        model,
        tenant_id="t",
        engine_id="PH1.LINK",
        correlation_id="c",
        occurred_at=NOW,
        payload={"scope_id": "l1", "draft_id": "d1", "write_hash": "w", **payload},
    )
    bound = "fp1" if status in ("ACTIVATED", "BLOCKED") else None
    token = {"draft_id": "d1", "status": status, "bound_device_fingerprint_hash": bound, "updated_at": NOW}
    token["expires_at"] = NOW + timedelta(days=1)
    if (commit, status) not in ALLOWED:
        with pytest.raises(Rejection) as info:
            decide(event, token, {})
        assert info.value.reason_code == "LINK_REFUSE_INVALID"
        return
    assert decide(event, token, {})["status"] == ALLOWED[commit, status]
    if commit.startswith("open"):  # the same open past the link's expiry expires it
        assert decide(event, {**token, "expires_at": NOW - timedelta(seconds=1)}, {})["status"] == "EXPIRED"


def test_a_commit_on_a_missing_link_or_another_drafts_link_is_not_found() -> None:
    model, payload = COMMITS["send"]
    event = new_event(
        model,
        tenant_id="t",
        engine_id="PH1.LINK",
        correlation_id="c",
        occurred_at=NOW,
        payload={"scope_id": "l1", "draft_id": "d1", "write_hash": "w", **payload},
    )
    for token in (None, {"draft_id": "d2"}):
        with pytest.raises(Rejection) as info:
            decide(event, token, None)
        assert info.value.reason_code == "LINK_REFUSE_NOT_FOUND"
