"""PH1.ACCESS.001 + PH2.ACCESS.002 end to end: the shared AT-ACCESS-DB-01..04, then the sheet's readings (an
override cannot reach another tenant's instance; an instance upsert's key keeps the first values; one ACTIVE
grant per scope; the gate reads and writes nothing) through the writer and the typed repositories."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.repositories.access import AccessReader, gate
from contracts.access import access_instance_id, examples
from contracts.envelope import new_event
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from contracts.slice import ExampleContext
from producers.access import AccessWriter
from producers.ledger_writes import LedgerWrites, WriteRefused
from producers.publisher import Publisher
from tests.e2e.acceptance import SliceAcceptance, onboarding
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer

pytestmark = pytest.mark.e2e
INSTANCE = {
    "role_template_id": "role:clerk",
    "effective_access_mode": "R",
    "baseline_permissions_json": {"financial_auth": False},
    "identity_verified": True,
    "verification_level": "PASSCODE_TIME",
    "device_trust_level": "DTL3",
    "lifecycle_state": "ACTIVE",
    "policy_snapshot_ref": "policy:v1",
}


async def test_access_overrides_instances_and_gate(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b, now = f"ta-{run_id}", f"tb-{run_id}", datetime.now(UTC)
    users = [ExampleContext(t, f"u-{t}", f"d-{t}", f"s-{t}", 0, now) for t in (a, b)]
    await publish(topics, [e for u in users for e in onboarding(u)])
    assert not (await drain(topics)).result.dead_lettered
    inst_a = access_instance_id(a, f"u-{a}")
    grant: dict[str, Any] = {
        "approved_by_user_id": f"u-{a}",
        "approved_via_simulation_id": "ACCESS_SIM",
        "starts_at": now,
    }
    async with running_writer(topics), Publisher(topics) as publisher:
        writer = AccessWriter(LedgerWrites(publisher, reader_db, timeout=60))
        first = await writer.upsert_instance(a, f"u-{a}", "k-inst", **INSTANCE)
        again = await writer.upsert_instance(a, f"u-{a}", "k-inst", **{**INSTANCE, "effective_access_mode": "X"})
        assert (again.outcome, again.event_id) == ("IDEMPOTENCY_CONFLICT", first.event_id)  # AT-ACCESS-DB-03
        await writer.upsert_instance(b, f"u-{b}", "k-inst", **INSTANCE)
        perm = await writer.override(
            "PERMANENT", tenant_id=a, user_id=f"u-{a}", scope={"grant_mode": "W"}, idempotency_key="k-perm", **grant
        )
        assert (
            await writer.override(
                "PERMANENT", tenant_id=a, user_id=f"u-{a}", scope={"grant_mode": "W"}, idempotency_key="k-perm", **grant
            )
        ).event_id == perm.event_id
        # AT-ACCESS-DB-01: an override under tenant b naming tenant a's instance.
        cross = examples(ExampleContext(a, f"u-{a}", "", "", 7, now))[1]
        cross = new_event(type(cross), **{**cross.model_dump(exclude={"event_id"}), "tenant_id": b})
        with pytest.raises(WriteRefused) as info:
            await writer.writes.write(cross, (inst_a, cross.idempotency_key))
        assert info.value.reason_code == ReasonCode.ACCESS_TENANT_SCOPE_VIOLATION
        # The same scope ACTIVE twice (the unique index), and an expired grant whose window overlaps the ACTIVE one.
        for i, window in enumerate(
            [{}, {"starts_at": now - timedelta(days=1), "expires_at": now + timedelta(milliseconds=1)}]
        ):
            with pytest.raises(WriteRefused) as info:
                await writer.override(
                    "TEMPORARY",
                    tenant_id=a,
                    user_id=f"u-{a}",
                    scope={"grant_mode": "W"},
                    idempotency_key=f"k-{i}",
                    **{**grant, **window},
                )
            assert info.value.reason_code == ReasonCode.ACCESS_OVERRIDE_SCOPE_CONFLICT
        await writer.override(
            "REVOKE", tenant_id=a, user_id=f"u-{a}", scope={"grant_mode": "W"}, idempotency_key="k-revoke", **grant
        )
    reader = AccessReader(reader_db)
    instance = await reader.instance(a, inst_a)
    assert instance is not None and (instance.effective_access_mode, instance.idempotency_key) == ("R", "k-inst")
    assert await reader.instance(b, inst_a) is None
    overrides = await reader.overrides(a, inst_a)
    assert [(o.override_type, o.status) for o in overrides] == [("PERMANENT", "ACTIVE"), ("REVOKE", "REVOKED")]
    assert overrides[0].access_override_event_id == perm.event_id
    # AT-ACCESS-DB-04: the gate allows W (raised by the grant; the revocation is not read) and writes nothing.
    decision = await gate(reader, a, inst_a, user_id=f"u-{a}", mode="W", at=datetime.now(UTC))
    assert (decision.decision, decision.reason_code, decision.effective_access_mode) == ("ALLOW", "ACCESS_ALLOWED", "W")
    assert await reader.overrides(a, inst_a) == overrides
    assert await rebuild_equals_live(topics, [a, b]) == []


async def test_a_grant_whose_id_is_not_derived_is_refused_and_holds_the_instance(topics: Settings, run_id: str) -> None:
    ctx = ExampleContext(f"t-{run_id}", f"u-{run_id}", f"d-{run_id}", f"s-{run_id}", 0, datetime.now(UTC))
    instance, grant, _ = examples(ctx)
    forged = new_event(type(grant), **{**grant.model_dump(exclude={"event_id"}), "idempotency_key": "another-key"})
    await publish(topics, [*onboarding(ctx), instance, forged, grant])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED: 1, ReasonCode.HELD_BEHIND_DEAD_LETTER: 1}
    )


class TestAtAccessDb(SliceAcceptance):
    """The shared AT-ACCESS-DB-01..04 (tests/e2e/acceptance.py); the tests above are what is special to it."""

    slice_name = "access"
