"""Engine capability maps (seed 003) end to end on real Kafka and PostgreSQL: AT-ECM-DB-01..04 and the
version rule come from the shared suite (``TestAtEcmDb``); the module keeps what is the slice's own.

Every event goes through the product path: publisher -> Kafka -> ledger writer -> ledger and current table,
read back with the typed repositories.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from consumers.repositories.slice_reads import CurrentReader
from contracts.engine_capability_maps import (
    ENGINE_CAPABILITY_MAPS,
    SLICE,
    CapabilityMapActivatedEvent,
    CapabilityMapDeprecatedEvent,
    CapabilityMapPublishedEvent,
    EngineCapabilityMapEventInput,
)
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import TenantScopeViolation
from contracts.settings import Settings
from producers.ledger_writes import LedgerAppends, LedgerWrites
from producers.publisher import Publisher
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, running_writer

pytestmark = pytest.mark.e2e

LEDGER = "os_process.engine_capability_maps"
CURRENT = "os_process.engine_capability_maps_current"
ENGINE = "SELENE_OS_CORE_TABLES"
APPEND = "OS_WORK_ORDER_LEDGER_APPEND"
CANCEL = "WORKORDER_CANCEL"


def routes(conn: asyncpg.Connection) -> CurrentReader[EngineCapabilityMapEventInput]:
    """The generic typed reads, bound to this slice by its declaration."""
    return CurrentReader(conn, SLICE, EngineCapabilityMapEventInput)


def ecm(
    model: type[LedgerEvent],
    tenant: str,
    version: int,
    *,
    capability: str = APPEND,
    key: str | None = None,
    publisher: str = "SELENE_OS",
    **route: str,
) -> LedgerEvent:
    payload: dict[str, Any] = {
        "engine_id": ENGINE,
        "capability_id": capability,
        "capability_map_version": version,
        "reason_code": "ECM_GOVERNANCE_APPROVED",
        "capability_name": "Append work order ledger event",
        "input_schema": "WorkOrderLedgerEventInput",
        "output_schema": f"Result<work_order_event_id, StorageError> v{version}",
        "allowed_callers": "SELENE_OS_ONLY",
        "side_effects": "DECLARED (DB_WRITE)",
        **route,
    }
    return new_event(
        model,
        tenant_id=tenant,
        engine_id=publisher,
        correlation_id=f"gov-{capability}-{version}",
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload=payload,
    )


async def scoped(conn: asyncpg.Connection, tenant: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with conn.transaction():
        await conn.execute(SCOPE, tenant)
        return await conn.fetch(sql, *args)


async def test_a_current_row_points_only_at_an_event_of_its_own_capability(
    topics: Settings, writer_db: asyncpg.Connection, owner_db: asyncpg.Connection, run_id: str
) -> None:
    """The current table may change (it is a projection), but its foreign key to the ledger includes the key."""
    tenant = f"t-{run_id}"
    other = ecm(CapabilityMapPublishedEvent, tenant, 1, capability=CANCEL, capability_name="Cancel")
    await publish(topics, [ecm(CapabilityMapPublishedEvent, tenant, 1), other])
    assert (await drain(topics)).result.appended == 2
    sql = f"SELECT engine_capability_map_event_id FROM {LEDGER} WHERE event_uuid = $1"
    foreign_id = (await scoped(owner_db, tenant, sql, other.event_id))[0][0]
    for bad_id in (foreign_id, foreign_id + 1_000_000):
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await scoped(
                writer_db,
                tenant,
                f"UPDATE {CURRENT} SET source_event_id = $2 WHERE tenant_id = $1 AND capability_id = $3",
                tenant,
                bad_id,
                APPEND,
            )


async def test_appends_replay_conflict_and_the_version_in_the_idempotency_scope(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    first = ecm(CapabilityMapPublishedEvent, tenant, 1, key="publish-v1")
    retry = new_event(type(first), **first.model_dump(exclude={"event_id"}))  # a new event id, same key and content
    conflicting = ecm(CapabilityMapPublishedEvent, tenant, 1, key="publish-v1", capability_name="Something else")
    next_version = ecm(CapabilityMapPublishedEvent, tenant, 2, key="publish-v1")  # the version is in the scope
    async with running_writer(topics) as stats, Publisher(topics) as publisher:
        writer = LedgerAppends(LedgerWrites(publisher, reader_db, timeout=60), ENGINE_CAPABILITY_MAPS)
        written = await writer.append(first)
        assert written.outcome == "APPENDED" and written.event_uuid == first.event_id
        replayed = await writer.append(retry)
        assert (replayed.event_id, replayed.event_uuid, replayed.outcome) == (
            written.event_id,
            first.event_id,
            "IDEMPOTENCY_REPLAY",
        )
        redelivered = await writer.append(first)  # the very same event again
        assert (redelivered.event_id, redelivered.outcome) == (written.event_id, "APPENDED")
        conflict = await writer.append(conflicting)
        assert (conflict.event_id, conflict.outcome) == (written.event_id, "IDEMPOTENCY_CONFLICT")
        second = await writer.append(next_version)
        assert second.outcome == "APPENDED" and second.event_id > written.event_id
    # A replay's verdict is known from the original row, before the writer reaches the retried record:
    # drain the rest, then count what the writer did with every record.
    stats.result.add((await drain(topics)).result)
    assert stats.result.appended == 2
    assert stats.result.deduplicated == 2
    assert stats.result.dead_lettered == Counter({"IDEMPOTENCY_CONFLICT": 1})
    reader = routes(reader_db)
    events = await reader.events(tenant, ENGINE, APPEND)
    assert [(e.event_uuid, e.payload.capability_map_version) for e in events] == [
        (first.event_id, 1),
        (next_version.event_id, 2),
    ]
    assert events[0].payload.capability_name == "Append work order ledger event"  # the original stands
    current = await reader.current(tenant, ENGINE, APPEND)
    assert current is not None and (current.version, current.source_event_id) == (2, second.event_id)
    dead = await operator_db.fetchrow(
        "SELECT reason_code, status FROM selene_ops.dead_letters WHERE event_uuid = $1", conflicting.event_id
    )
    assert dead is not None and dict(dead) == {"reason_code": "IDEMPOTENCY_CONFLICT", "status": "REJECTED"}


async def test_reads_keep_both_engines_the_status_of_each_event_type_and_pages(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """What the shared suite's version rule does not show: the derived status, the publisher beside the mapped
    engine, key-prefix reads and keyset pages, and a reader refusing a tenant that is not one tenant."""
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    v1 = [ecm(CapabilityMapPublishedEvent, a, 1), ecm(CapabilityMapActivatedEvent, a, 1)]
    v2 = [ecm(CapabilityMapPublishedEvent, a, 2), ecm(CapabilityMapActivatedEvent, a, 2)]
    cancel = ecm(CapabilityMapPublishedEvent, a, 1, capability=CANCEL, capability_name="Cancel one work order")
    other_tenant = [ecm(CapabilityMapPublishedEvent, b, 5), ecm(CapabilityMapDeprecatedEvent, b, 5)]
    await publish(topics, [*v1, *v2, cancel, *other_tenant])
    stats = await drain(topics)
    assert stats.result.appended == 7 and not stats.result.dead_lettered

    reader = routes(reader_db)
    current = await reader.current(a, ENGINE, APPEND)
    events = await reader.events(a, ENGINE, APPEND)
    assert [e.event_uuid for e in events] == [e.event_id for e in (*v1, *v2)]
    # The envelope's engine is the publisher (publisher_engine_id in this ledger); the payload's, the mapped one.
    assert (events[0].engine_id, events[0].payload.engine_id) == ("SELENE_OS", ENGINE)
    assert current is not None
    assert (current.version, current.derived, current.payload.status) == (2, {"status": "ACTIVE"}, "ACTIVE")
    assert current.source_event_id == events[3].ledger_id
    assert [r.key for r in await reader.current_page(a, ENGINE)] == [(ENGINE, APPEND), (ENGINE, CANCEL)]
    assert [r.key for r in await reader.current_page(a, ENGINE, after=(APPEND,))] == [(ENGINE, CANCEL)]
    assert len(await reader.events(a, ENGINE)) == 5  # the engine's events, a prefix of the key
    route_b = await reader.current(b, ENGINE, APPEND)
    assert route_b is not None and route_b.derived["status"] == "DEPRECATED"
    # One tenant per read: a list, an empty or a malformed tenant is refused before any query.
    for bad in (f"{a},{b}", "", f"{a} "):
        with pytest.raises(TenantScopeViolation):
            await reader.current(bad, ENGINE, APPEND)


class TestAtEcmDb(SliceAcceptance):
    """The shared AT-ECM-DB-01..04 and the ledger_current checks (typed repositories, the version rule with the
    route immutable within a version, contract refusals: tests/e2e/acceptance.py); the tests above are what
    is special to this slice."""

    slice_name = "engine_capability_maps"
