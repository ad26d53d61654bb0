"""PH1.POSITION end to end on real Kafka and PostgreSQL: the shared AT-POSITION-DB-01..04, the sheet's own
readings of DB-01, DB-03 and DB-04, and the lifecycle's refusals through the writer (dead-lettered with their
reason, never appended)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.position import PositionReader
from contracts.envelope import LedgerEvent, new_event
from contracts.position import (
    PositionActivateEvent,
    PositionCreateDraftEvent,
    PositionRetireOrSuspendEvent,
    TenantCompanyUpsertedEvent,
)
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e


def ev(model: type[LedgerEvent], tenant: str, position: str, key: str | None = None, **payload: Any) -> LedgerEvent:
    common = {"tenant_id": tenant, "correlation_id": f"c-{position}", "idempotency_key": key}
    if model is TenantCompanyUpsertedEvent:
        return new_event(model, engine_id="PH1.ONB.BIZ", occurred_at=datetime.now(UTC), payload=payload, **common)
    if model is PositionCreateDraftEvent:
        payload = {
            "company_id": "company_1",
            "position_title": f"Driver {position}",
            "department": "Logistics",
            "jurisdiction": "US-CA",
            "schedule_type": "SHIFT",
            "permission_profile_ref": "perm:driver",
            "compensation_band_ref": "band:L2",
            **payload,
        }
    return new_event(
        model,
        engine_id="PH1.POSITION",
        occurred_at=datetime.now(UTC),
        payload={"position_id": position, "actor_user_id": "u-alice", **payload},
        **common,
    )


def company(tenant: str) -> LedgerEvent:
    return ev(
        TenantCompanyUpsertedEvent,
        tenant,
        "company_1",
        reason_code="ONB_BIZ_COMPANY_UPSERT",
        company_id="company_1",
        legal_name="Acme Logistics Ltd",
        jurisdiction="US-CA",
        lifecycle_state="ACTIVE",
    )


async def test_at_position_db_01_another_tenant_cannot_read_or_activate(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    await publish(topics, [company(a), ev(PositionCreateDraftEvent, a, "pos_1")])
    await drain(topics)
    # Tenant b activates "pos_1": in its tenant there is no such position.
    stray = ev(PositionActivateEvent, b, "pos_1", from_state="DRAFT")
    await publish(topics, [stray])
    assert (await drain(topics)).result.dead_lettered == Counter({ReasonCode.POSITION_NOT_FOUND: 1})
    reader = PositionReader(reader_db)
    assert await reader.position(b, "pos_1") is None
    found = await reader.position(a, "pos_1")
    assert found is not None and found.lifecycle_state == "DRAFT"
    assert (len(await reader.events(a, "pos_1")), len(await reader.events(b, "pos_1"))) == (1, 0)


async def test_at_position_db_03_create_and_activate_twice_with_the_same_keys(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    create = ev(PositionCreateDraftEvent, tenant, "pos_1", key="create-1")
    activate = ev(PositionActivateEvent, tenant, "pos_1", key="activate-1", from_state="DRAFT")
    retries = [new_event(type(e), **e.model_dump(exclude={"event_id"})) for e in (create, activate)]
    await publish(topics, [company(tenant), create, retries[0], activate, retries[1]])
    stats = await drain(topics)
    assert (stats.result.deduplicated, stats.result.dead_lettered) == (2, Counter())
    reader = PositionReader(reader_db)
    position = await reader.position(tenant, "pos_1")
    assert position is not None and position.lifecycle_state == "ACTIVE"
    assert [e.event_uuid for e in await reader.events(tenant, "pos_1")] == [create.event_id, activate.event_id]


async def test_at_position_db_04_current_table_consistency_with_lifecycle_ledger(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    flow = [
        ev(PositionCreateDraftEvent, tenant, "pos_1"),
        ev(PositionActivateEvent, tenant, "pos_1", from_state="DRAFT"),
        ev(PositionRetireOrSuspendEvent, tenant, "pos_1", from_state="ACTIVE", action="SUSPEND", to_state="SUSPENDED"),
    ]
    await publish(topics, [company(tenant), *flow])
    assert not (await drain(topics)).result.dead_lettered
    reader = PositionReader(reader_db)
    position = await reader.position(tenant, "pos_1")
    events = await reader.events(tenant, "pos_1")
    assert position is not None and position.lifecycle_state == "SUSPENDED"
    assert [(e.action, e.from_state, e.to_state) for e in events] == [
        ("CREATE_DRAFT", "DRAFT", "DRAFT"),
        ("ACTIVATE", "DRAFT", "ACTIVE"),
        ("SUSPEND", "ACTIVE", "SUSPENDED"),
    ]
    assert [e.simulation_id for e in events] == [e.event_type for e in flow]
    assert [p.position_id for p in await reader.positions_of_company(tenant, "company_1")] == ["pos_1"]
    listed = await reader.company(tenant, "company_1")
    assert listed is not None and listed.lifecycle_state == "ACTIVE"
    assert await rebuild_equals_live(topics, [tenant]) == []


async def test_refused_commits_are_dead_lettered_and_never_appended(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    refused = [
        # the same natural key under another id (upstream's DuplicateKey): the first stands
        ev(PositionCreateDraftEvent, tenant, "pos_2", position_title="Driver pos_1"),
        # retire a draft
        ev(PositionRetireOrSuspendEvent, tenant, "pos_1", from_state="ACTIVE", action="RETIRE", to_state="RETIRED"),
    ]
    held = ev(PositionActivateEvent, tenant, "pos_1", from_state="DRAFT")  # behind the refused retire
    # pos_1 first: pos_2's create is another aggregate, whose order against pos_1's Kafka does not define.
    await publish(topics, [company(tenant), ev(PositionCreateDraftEvent, tenant, "pos_1")])
    assert not (await drain(topics)).result.dead_lettered
    await publish(topics, [*refused, held])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {
            ReasonCode.POSITION_DUPLICATE_KEY: 1,
            ReasonCode.POSITION_INVALID_TRANSITION: 1,
            ReasonCode.HELD_BEHIND_DEAD_LETTER: 1,
        }
    )
    reader = PositionReader(reader_db)
    assert [e.action for e in await reader.events(tenant, "pos_1")] == ["CREATE_DRAFT"]
    assert await reader.position(tenant, "pos_2") is None
    assert await rebuild_equals_live(topics, [tenant]) == []


class TestAtPositionDb(SliceAcceptance):
    """The shared AT-POSITION-DB-01..04 (tests/e2e/acceptance.py); the tests above are what is special to it."""

    slice_name = "position"
