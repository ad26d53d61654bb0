"""Engine capability maps (seed 003) end to end on real Kafka and PostgreSQL: AT-ECM-DB-01..04.

Every event goes through the product path: publisher -> Kafka -> ledger writer -> ledger and current table,
read back with the typed repositories.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.db import connect
from consumers.rebuild import Rebuilder
from consumers.repositories.slice_reads import CurrentReader
from contracts.codec import encode
from contracts.engine_capability_maps import (
    ENGINE_CAPABILITY_MAPS,
    SLICE,
    CapabilityMapActivatedEvent,
    CapabilityMapDeprecatedEvent,
    CapabilityMapPublishedEvent,
    EngineCapabilityMapEventInput,
)
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ReasonCode, TenantScopeViolation
from contracts.settings import Settings
from producers.ledger_writes import LedgerAppends, LedgerWrites
from producers.publisher import Publisher
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer, send_raw

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


async def test_at_ecm_db_01_tenant_isolation_enforced(
    topics: Settings, reader_db: asyncpg.Connection, writer_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    # Both tenants map the same engine and capability, differently.
    await publish(
        topics,
        [
            ecm(CapabilityMapActivatedEvent, a, 1, allowed_callers="SELENE_OS_ONLY"),
            ecm(CapabilityMapActivatedEvent, b, 3, allowed_callers="ANY_ENGINE"),
        ],
    )
    # A record whose key claims tenant b for an event of tenant a.
    forged = ecm(CapabilityMapDeprecatedEvent, a, 9)
    await send_raw(
        topics, [RawRecord("engine_capability_maps", f"{b}/ecm:{ENGINE}:{APPEND}".encode(), encode(forged).value, "")]
    )
    stats = await drain(topics)
    assert stats.result.appended == 2
    assert stats.result.dead_lettered == Counter({"ECM_TENANT_SCOPE_VIOLATION": 1})

    reader = routes(reader_db)
    route_a, route_b = await reader.current(a, ENGINE, APPEND), await reader.current(b, ENGINE, APPEND)
    assert route_a is not None and (route_a.tenant_id, route_a.version) == (a, 1)
    assert route_b is not None and (route_b.tenant_id, route_b.version) == (b, 3)
    assert route_a.payload.allowed_callers == "SELENE_OS_ONLY" and route_b.payload.allowed_callers == "ANY_ENGINE"
    assert [e.tenant_id for e in await reader.events(a, ENGINE, APPEND)] == [a]
    # Row-level security, not the WHERE clause, keeps each tenant's rows: scoped to a, b's rows do not exist.
    for table in (LEDGER, CURRENT):
        for conn in (reader_db, writer_db):
            rows = await scoped(conn, a, f"SELECT tenant_id FROM {table} WHERE tenant_id = ANY($1)", [a, b])
            assert [r["tenant_id"] for r in rows] == [a]
    # One tenant per read: a list, an empty or a malformed tenant is refused before any query.
    for bad in (f"{a},{b}", "", f"{a} "):
        with pytest.raises(TenantScopeViolation):
            await reader.current(bad, ENGINE, APPEND)
    # The writer, scoped to a, can neither write b's current row nor see it to change it.
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        async with writer_db.transaction():
            await writer_db.execute(SCOPE, a)
            await writer_db.execute(f"UPDATE {CURRENT} SET tenant_id = $1 WHERE tenant_id = $2", b, a)
    async with writer_db.transaction():
        await writer_db.execute(SCOPE, a)
        assert await writer_db.execute(f"UPDATE {CURRENT} SET status = 'DEPRECATED' WHERE tenant_id = $1", b) == (
            "UPDATE 0"
        )


async def test_at_ecm_db_02_append_only_enforced(
    topics: Settings, writer_db: asyncpg.Connection, owner_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    await publish(topics, [ecm(CapabilityMapPublishedEvent, tenant, 1), ecm(CapabilityMapActivatedEvent, tenant, 1)])
    assert (await drain(topics)).result.appended == 2
    before = await scoped(owner_db, tenant, f"SELECT * FROM {LEDGER} WHERE tenant_id = $1 ORDER BY 1", tenant)
    statements = [
        f"UPDATE {LEDGER} SET capability_map_version = 99 WHERE tenant_id = $1",
        f"DELETE FROM {LEDGER} WHERE tenant_id = $1",
    ]
    # The writer role has no such privilege at all.
    for sql in statements:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await scoped(writer_db, tenant, sql, tenant)
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await writer_db.execute(f"TRUNCATE {LEDGER}")
    # The owner hits the trigger, which names the slice's reason code.
    for sql in [*statements, f"TRUNCATE {LEDGER} CASCADE"]:
        with pytest.raises(asyncpg.PostgresError) as info:
            await scoped(owner_db, tenant, sql, *([tenant] if "$1" in sql else []))
        assert (info.value.sqlstate, info.value.detail) == ("SLA01", ReasonCode.ECM_APPEND_ONLY_VIOLATION)
    after = await scoped(owner_db, tenant, f"SELECT * FROM {LEDGER} WHERE tenant_id = $1 ORDER BY 1", tenant)
    assert after == before and len(after) == 2
    # The current table may change (it is a projection), but only to point at an event of its own capability.
    other = ecm(CapabilityMapPublishedEvent, tenant, 1, capability=CANCEL, capability_name="Cancel")
    await publish(topics, [other])
    await drain(topics)
    foreign_id = (await scoped(owner_db, tenant, f"SELECT max(engine_capability_map_event_id) FROM {LEDGER}"))[0][0]
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


async def test_at_ecm_db_03_idempotency_dedupe_works(
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


async def test_at_ecm_db_04_rebuild_current_from_ledger(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    v1 = [ecm(CapabilityMapPublishedEvent, a, 1), ecm(CapabilityMapActivatedEvent, a, 1)]
    v2 = [ecm(CapabilityMapPublishedEvent, a, 2), ecm(CapabilityMapActivatedEvent, a, 2)]
    retire_v1 = ecm(CapabilityMapDeprecatedEvent, a, 1)  # older than current: history only
    changed_v2 = ecm(CapabilityMapActivatedEvent, a, 2, input_schema="SomethingElse")  # a version is immutable
    cancel = ecm(CapabilityMapPublishedEvent, a, 1, capability=CANCEL, capability_name="Cancel one work order")
    other_tenant = [ecm(CapabilityMapPublishedEvent, b, 5), ecm(CapabilityMapDeprecatedEvent, b, 5)]
    await publish(topics, [*v1, *v2, retire_v1, changed_v2, cancel, *other_tenant])
    stats = await drain(topics)
    assert stats.result.appended == 8
    assert stats.result.dead_lettered == Counter({"ECM_VERSION_ROUTE_CONFLICT": 1})

    reader = routes(reader_db)
    current = await reader.current(a, ENGINE, APPEND)
    events = await reader.events(a, ENGINE, APPEND)
    assert [e.event_uuid for e in events] == [e.event_id for e in (*v1, *v2, retire_v1)]
    # The envelope's engine is the publisher (publisher_engine_id in this ledger); the payload's, the mapped one.
    assert (events[0].engine_id, events[0].payload.engine_id) == ("SELENE_OS", ENGINE)
    assert current is not None
    assert (current.version, current.derived, current.payload.status) == (2, {"status": "ACTIVE"}, "ACTIVE")
    assert current.source_event_id == events[3].ledger_id
    assert [r.key for r in await reader.current_page(a, ENGINE)] == [(ENGINE, APPEND), (ENGINE, CANCEL)]
    assert [r.key for r in await reader.current_page(a, ENGINE, after=(APPEND,))] == [(ENGINE, CANCEL)]
    assert len(await reader.events(a, ENGINE)) == 6  # the engine's events, a prefix of the key
    route_b = await reader.current(b, ENGINE, APPEND)
    assert route_b is not None and route_b.derived["status"] == "DEPRECATED"

    assert await rebuild_equals_live(topics, [a, b]) == []
    # Damage the live projection; a rebuild from the ledger finds it and puts it back.
    writer = await connect(topics.database_url)
    try:
        async with writer.transaction():
            await writer.execute(SCOPE, a)
            await writer.execute(f"DELETE FROM {CURRENT} WHERE tenant_id = $1 AND capability_id = $2", a, CANCEL)
            await writer.execute(f"UPDATE {CURRENT} SET status = 'PUBLISHED' WHERE tenant_id = $1", a)
    finally:
        await writer.close()
    found = await rebuild_equals_live(topics, [a])
    assert len(found) == 1 and CURRENT in found[0]
    result = await Rebuilder(topics, tenant=a).run(verify=False, apply=True)
    assert result.applied and result.per_ledger == {"engine_capability_maps": 6}
    assert await rebuild_equals_live(topics, [a, b]) == []
    assert await reader.current(a, ENGINE, APPEND) == current
    restored = await reader.current(a, ENGINE, CANCEL)
    assert restored is not None and restored.payload.capability_name == "Cancel one work order"


class TestAtEcmDb(SliceAcceptance):
    """The shared AT-ECM-DB-01..04 (tests/e2e/acceptance.py); the tests above are what is special to it."""

    slice_name = "engine_capability_maps"
