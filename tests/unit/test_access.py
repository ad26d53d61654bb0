"""PH2.ACCESS.002's write rules and PH1.ACCESS.001's decision order, without I/O."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from consumers.projections.access import ACCESS_INSTANCES, AccessInstances, decide_override
from consumers.projections.base import Rejection, RowView
from consumers.repositories.access import AccessInstance, decide
from contracts.access import access_instance_upsert, examples
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CTX = ExampleContext("t1", "u1", "d1", "s1", 0, NOW)
INSTANCE, GRANT, _ = examples(CTX)
ACTIVE = {"override_id": "accessovr_x", "starts_at": NOW, "expires_at": NOW + timedelta(days=1)}


def grant(key: str | None = "grant-0", **payload: Any) -> LedgerEvent:
    fields = GRANT.model_dump(exclude={"event_id"})
    return new_event(type(GRANT), **{**fields, "idempotency_key": key, "payload": {**fields["payload"], **payload}})


@pytest.mark.parametrize(
    ("event", "active", "reason"),
    [
        (grant(), None, None),
        (grant(), ACTIVE, ReasonCode.ACCESS_OVERRIDE_SCOPE_CONFLICT),
        (
            new_event(type(GRANT), **{**GRANT.model_dump(exclude={"event_id"}), "tenant_id": "t2"}),
            None,
            ReasonCode.ACCESS_TENANT_SCOPE_VIOLATION,
        ),
        (grant("other-key"), None, ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED),
        (grant(None), None, ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED),
        (grant(status="EXPIRED"), None, ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED),
        (grant(expires_at=NOW), None, ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED),
        (grant(scope_json={"grant_mode": "Z"}), None, ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED),
        # An expired grant next to the ACTIVE one: refused if the windows overlap, else recorded.
        (grant(status="EXPIRED", starts_at=NOW - timedelta(days=2), expires_at=NOW), ACTIVE, None),
        (
            grant(status="EXPIRED", starts_at=NOW - timedelta(days=2), expires_at=NOW),
            {**ACTIVE, "starts_at": NOW - timedelta(days=1)},
            ReasonCode.ACCESS_OVERRIDE_SCOPE_CONFLICT,
        ),
    ],
)
def test_override_rules(event: LedgerEvent, active: dict[str, Any] | None, reason: ReasonCode | None) -> None:
    if reason is None:
        decide_override(active, event)
        return
    with pytest.raises(Rejection) as info:
        decide_override(active, event)
    assert info.value.reason_code == reason


def test_an_upsert_with_the_rows_key_leaves_it_unchanged_and_created_at_is_kept() -> None:
    view, projection = RowView({ACCESS_INSTANCES: {}}), AccessInstances()
    fields = INSTANCE.payload.model_dump(exclude={"reason_code", "user_id", "access_instance_id"})
    for at, key, mode in ((NOW, "k1", "W"), (NOW + timedelta(1), "k1", "X"), (NOW + timedelta(2), "k2", "R")):
        ctx = replace(CTX, at=at)
        projection.apply(view, access_instance_upsert(ctx, key, **{**fields, "effective_access_mode": mode}))
        view.commit_event()
    row = view.get(ACCESS_INSTANCES, (INSTANCE.payload.access_instance_id,))  # type: ignore[attr-defined]
    assert row is not None
    assert (row["effective_access_mode"], row["created_at"], row["updated_at"]) == ("R", NOW, NOW + timedelta(2))


def test_gate_decision_order() -> None:
    p = INSTANCE.payload.model_dump(exclude={"reason_code", "device_id", "session_id"})
    base = AccessInstance(**p, tenant_id="t1", created_at=NOW, updated_at=NOW, idempotency_key=None)

    def ask(instance: AccessInstance | None, mode: str, **kw: Any) -> tuple[str, str]:
        d = decide(instance, kw.pop("granted", []), user_id=kw.pop("user_id", "u1"), mode=mode, **kw)
        return d.decision, d.reason_code

    assert ask(None, "R") == ("DENY", "ACCESS_INSTANCE_MISSING")
    assert ask(base, "R", user_id="u2") == ("DENY", "ACCESS_SCOPE_MISMATCH")
    assert ask(replace(base, lifecycle_state="SUSPENDED"), "R") == ("DENY", "ACCESS_DENIED")
    assert ask(replace(base, identity_verified=False), "R") == ("ESCALATE", "ACCESS_ESCALATE_REQUIRED")
    assert ask(replace(base, baseline_permissions_json={}), "R", sensitive=True) == ("DENY", "ACCESS_SENSITIVE_DENY")
    assert ask(replace(base, device_trust_level="DTL2"), "A") == ("ESCALATE", "ACCESS_DEVICE_UNTRUSTED")
    assert ask(base, "W", sensitive=True) == ("ALLOW", "ACCESS_ALLOWED")
    assert ask(base, "A") == ("ESCALATE", "ACCESS_AP_REQUIRED")
    assert ask(base, "A", granted=["A"]) == ("ALLOW", "ACCESS_ALLOWED")
