"""PBS tables (seed 000 row 4) end to end on real Kafka and PostgreSQL: AT-PBS-DB-01..04 from the shared suite,
then the registry's status table, one intent per blueprint version, the writer's ids and the contract's
refusals."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.repositories.pbs import BlueprintReader
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.pbs import ProcessBlueprintRecordedEvent
from contracts.settings import Settings
from producers.ledger_writes import LedgerWrites
from producers.pbs import BlueprintWriter
from producers.publisher import Publisher
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer, send_raw

pytestmark = pytest.mark.e2e

INTENT = "LINK_INVITE"


def bp(tenant: str, status: str, process: str, version: int, *, intent: str = INTENT, **kw: Any) -> LedgerEvent:
    key = kw.pop("key", None)
    return new_event(
        ProcessBlueprintRecordedEvent,
        tenant_id=tenant,
        engine_id="SELENE_OS",
        correlation_id=f"pbs-{process}-{version}",
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={
            "process_id": process,
            "blueprint_version": version,
            "intent_type": intent,
            "status": status,
            "ordered_step_count": 5,
            "confirmation_step_count": 2,
            "simulation_requirements_hash": f"sims-{process}-{version}",
            "reason_code": "PBS_TEST",
            **kw,
        },
    )


class TestAtPbsDb(SliceAcceptance):
    """The shared AT-PBS-DB-01..04 (tests/e2e/acceptance.py); the tests below are what is special to it."""

    slice_name = "pbs"


async def test_the_registry_follows_upstreams_status_table(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    steps = [
        (bp(tenant, "RETIRED", "P", 1), None),  # no row: a retirement is skipped
        (bp(tenant, "DRAFT", "P", 1), ("P", 1, "DRAFT")),  # no row: a draft applies
        (bp(tenant, "ACTIVE", "P", 1), ("P", 1, "ACTIVE")),
        (bp(tenant, "DRAFT", "P", 1), ("P", 1, "ACTIVE")),  # never over an ACTIVE row
        (bp(tenant, "DRAFT", "P", 2), ("P", 1, "ACTIVE")),  # nor over another blueprint
        (bp(tenant, "ACTIVE", "P", 2), ("P", 2, "ACTIVE")),  # ACTIVE always wins
        (bp(tenant, "RETIRED", "P", 1), ("P", 2, "ACTIVE")),  # not the row's blueprint
        (bp(tenant, "RETIRED", "P", 2), ("P", 2, "RETIRED")),
        (bp(tenant, "DRAFT", "P", 2), ("P", 2, "DRAFT")),  # the same blueprint, not ACTIVE
    ]
    reader = BlueprintReader(reader_db)
    for event, expected in steps:  # one at a time: each step reads the registry the previous one left
        await publish(topics, [event])
        assert (await drain(topics)).result.appended == 1
        got = await reader.for_intent(tenant, INTENT)
        assert (None if got is None else (got.process_id, got.blueprint_version, got.status)) == expected, event
    events = await reader.events(tenant, INTENT)
    assert [e.event_uuid for e in events] == [e.event_id for e, _ in steps]  # every event is in the ledger
    current = await reader.for_intent(tenant, INTENT)
    assert current is not None and current.source_event_id == events[-1].process_blueprint_event_id
    assert await rebuild_equals_live(topics, [tenant]) == []


async def test_a_blueprint_version_serves_one_intent_per_tenant(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    taken = bp(a, "ACTIVE", "P", 1, intent="LINK_INVITE")
    second_intent = bp(a, "ACTIVE", "P", 1, intent="LINK_REVOKE")  # the same process version, another intent
    moved = bp(a, "ACTIVE", "P", 2, intent="LINK_INVITE")  # LINK_INVITE moves on to v2 ...
    now_free = bp(a, "DRAFT", "P", 1, intent="LINK_REVOKE")  # ... so v1 may serve LINK_REVOKE
    other_tenant = bp(b, "ACTIVE", "P", 1, intent="LINK_REVOKE")  # the rule is per tenant
    # Two intents are two aggregates (two partitions, no order between them): one step at a time.
    dead: Counter[str] = Counter()
    for step in ([taken, other_tenant], [second_intent], [moved], [now_free]):
        await publish(topics, step)
        stats = await drain(topics)
        dead += stats.result.dead_lettered
    assert dead == Counter({"PBS_PROCESS_VERSION_CONFLICT": 1})
    reader = BlueprintReader(reader_db)
    for tenant, intent, expected in [
        (a, "LINK_INVITE", ("P", 2, "ACTIVE")),
        (a, "LINK_REVOKE", ("P", 1, "DRAFT")),
        (b, "LINK_REVOKE", ("P", 1, "ACTIVE")),
        (b, "LINK_INVITE", None),
    ]:
        got = await reader.for_intent(tenant, intent)
        assert (None if got is None else (got.process_id, got.blueprint_version, got.status)) == expected
    assert await rebuild_equals_live(topics, [a, b]) == []


async def test_writer_returns_the_original_id_on_a_replay(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    first = bp(tenant, "DRAFT", "P", 1, key="bp-1")
    retry = new_event(ProcessBlueprintRecordedEvent, **first.model_dump(exclude={"event_id"}))
    async with running_writer(topics), Publisher(topics) as publisher:
        writer = BlueprintWriter(LedgerWrites(publisher, reader_db, timeout=60))
        written = await writer.append(first)
        replayed = await writer.append(retry)
    assert written.outcome == "APPENDED"
    assert (replayed.event_id, replayed.outcome) == (written.event_id, "IDEMPOTENCY_REPLAY")
    assert [e.process_blueprint_event_id for e in await BlueprintReader(reader_db).events(tenant, INTENT)] == [
        written.event_id
    ]


BAD_FIELDS: list[dict[str, Any]] = [
    {"status": "ARCHIVED"},
    {"ordered_step_count": 0},
    {"ordered_step_count": 65536},
    {"confirmation_step_count": 6},  # more than the 5 ordered steps
    {"process_id": "p" * 97},
    {"simulation_requirements_hash": ""},
]


async def test_contract_violations_are_dead_lettered_with_the_slice_code(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    records = []
    for i, bad in enumerate(BAD_FIELDS):
        record = encode(bp(tenant, "DRAFT", f"P{i}", 1, intent=f"INTENT_{i}"))
        doc = json.loads(record.value)
        doc["payload"].update(bad)
        records.append(RawRecord("process_blueprints", record.key, json.dumps(doc).encode(), ""))
    await send_raw(topics, records)
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({"PBS_CONTRACT_VALIDATION_FAILED": len(BAD_FIELDS)})
    reader = BlueprintReader(reader_db)
    for i in range(len(BAD_FIELDS)):
        assert await reader.for_intent(tenant, f"INTENT_{i}") is None
        assert await reader.events(tenant, f"INTENT_{i}") == []
