"""Two writer transactions deciding on one projection row at once (issue 14 item 1).

Projection keys are global (a user, a device, a work order) while Kafka orders only one aggregate, so two
writers of one group (or a writer and ``dlq redrive``) can load the same row in two transactions. Each test
interleaves two ``Pipeline.apply`` transactions on two writer connections deterministically: transaction 1
applies and holds; transaction 2 starts in a task and is seen waiting on a lock in ``pg_stat_activity``;
transaction 1 commits; transaction 2 finishes as the writer would run it (a ``RetriableError`` retries the
batch on fresh state, a database refusal isolates it event by event). What must come out is what the two
batches give one after the other: the second decided on the first's row, with the projection's own reason.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from cli.workload import topic_of
from consumers.db import connect
from consumers.pipeline import Item, Pipeline, Record, _is_data_error
from contracts.audit import AuditRecordedEvent
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import DeviceRegisteredEvent, IdentityUpsertedEvent
from contracts.reasons import ReasonCode, RetriableError
from contracts.settings import Settings
from contracts.work_orders import FieldsSetEvent, WorkOrderCreatedEvent
from tests.e2e.helpers import rebuild_equals_live

pytestmark = pytest.mark.integration

AT = datetime.now(UTC) - timedelta(hours=1)
WAITING = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"
_offsets = itertools.count(1)


# -- events ---------------------------------------------------------------------------------------------------
def identity(tenant: str, user: str) -> LedgerEvent:
    return new_event(
        IdentityUpsertedEvent, tenant_id=tenant, engine_id="PH1.F", correlation_id=f"id-{user}",
        idempotency_key=f"identity-{tenant}-{user}", occurred_at=AT,
        payload={"reason_code": "IDENTITY_UPSERTED", "user_id": user, "display_name": user},
    )  # fmt: skip


def device(tenant: str, user: str, dev: str) -> LedgerEvent:
    return new_event(
        DeviceRegisteredEvent, tenant_id=tenant, engine_id="PH1.F", correlation_id=f"dev-{user}-{dev}",
        idempotency_key=f"device-{user}-{dev}", occurred_at=AT + timedelta(seconds=1),
        payload={"reason_code": "DEVICE_REGISTERED", "user_id": user, "device_id": dev, "device_type": "PHONE"},
    )  # fmt: skip


def filler(tenant: str, n: str) -> LedgerEvent:
    return new_event(
        AuditRecordedEvent, tenant_id=tenant, engine_id="PH1.NLP", correlation_id=f"filler-{n}",
        idempotency_key=f"filler-{n}", occurred_at=AT, payload={"reason_code": "NLP_OK", "summary": n},
    )  # fmt: skip


def work_order(tenant: str, wo: str, n: int = 1) -> LedgerEvent:
    """Work order ``wo`` created (``n == 1``) or its field ``f<n>`` set."""
    model = WorkOrderCreatedEvent if n == 1 else FieldsSetEvent
    extra = {"requester_user_id": "u-1", "intent_type": "BOOK_TABLE"} if n == 1 else {"fields": {f"f{n}": n}}
    return new_event(
        model, tenant_id=tenant, engine_id="SELENE_OS", correlation_id=f"thread-{wo}", turn_id=f"turn-{n}",
        idempotency_key=f"{wo}-{n}", occurred_at=AT + timedelta(seconds=n), payload={"work_order_id": wo, **extra},
    )  # fmt: skip


# -- a writer's transaction, held open on demand ------------------------------------------------------------------
def records(settings: Settings, events: Sequence[LedgerEvent], partition: int) -> list[Record]:
    """The events as Kafka records of ``partition`` (each writer of a group owns its own partitions)."""
    out = []
    for e in events:
        enc = encode(e)
        topic = topic_of(e.ledger, settings.topic_prefix)
        out.append(Record(topic, partition, next(_offsets), enc.key, enc.value, tuple(enc.headers)))
    return out


@dataclass
class Outcome:
    items: list[Item]
    #: what ended each failed attempt, in order: "retriable" (a lost race) or the database's SQLSTATE
    failures: list[str] = field(default_factory=list)
    isolated: bool = False


async def attempt(conn: asyncpg.Connection, pipeline: Pipeline, recs: list[Record]) -> Outcome:
    """One batch as ``LedgerWriter`` runs it: a transaction per attempt; a ``RetriableError`` retries it on
    fresh state, a database refusal redoes it event by event (``apply_isolated``)."""
    outcome = Outcome([])
    for _ in range(5):
        tx = conn.transaction()
        await tx.start()
        items = pipeline.decode(recs)
        try:
            await pipeline.apply(conn, items)
            await pipeline.store_dead_letters(conn, items)
            await tx.commit()
            outcome.items = items
            return outcome
        except RetriableError:
            await tx.rollback()
            outcome.failures.append("retriable")
        except asyncpg.PostgresError as exc:
            await tx.rollback()
            if not _is_data_error(exc):
                raise
            outcome.failures.append(exc.sqlstate or "?")
            async with conn.transaction():
                items = pipeline.decode(recs)
                await pipeline.apply_isolated(conn, items)
                await pipeline.store_dead_letters(conn, items)
            outcome.items, outcome.isolated = items, True
            return outcome
    raise AssertionError(f"no attempt landed: {outcome.failures}")


async def waits_on_lock(observer: asyncpg.Connection, pid: int, task: asyncio.Task[Outcome], limit: float = 10) -> bool:
    """True once backend ``pid`` waits on a lock; False if ``task`` ended first (it did not block)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if task.done():
            return False
        if await observer.fetchval(WAITING, pid) == "Lock":
            return True
        await asyncio.sleep(0.02)
    raise AssertionError(f"transaction 2 neither blocked nor finished within {limit}s")


@dataclass
class Pair:
    pipeline: Pipeline
    one: asyncpg.Connection
    two: asyncpg.Connection
    observer: asyncpg.Connection


@pytest.fixture
async def pair(settings: Settings) -> AsyncIterator[Pair]:
    conns = [await connect(settings.database_url) for _ in range(3)]
    try:
        yield Pair(Pipeline(settings), *conns)
    finally:
        for c in conns:
            await c.close()


async def interleave(
    pair: Pair, first: list[Record], second: list[Record], *, second_blocks: bool = True
) -> tuple[Outcome, Outcome]:
    """Transaction 1 applies ``first`` and holds; transaction 2 applies ``second`` and is seen blocking;
    transaction 1 commits; transaction 2 finishes (retried or isolated as the writer would)."""
    release = asyncio.Event()
    applied = asyncio.Event()
    t1 = asyncio.create_task(_held(pair, first, applied, release))
    await asyncio.wait_for(applied.wait(), 30)
    t2 = asyncio.create_task(attempt(pair.two, pair.pipeline, second))
    blocked = await waits_on_lock(pair.observer, pair.two.get_server_pid(), t2)
    release.set()
    out1 = await asyncio.wait_for(t1, 30)
    out2 = await asyncio.wait_for(t2, 30)
    assert blocked == second_blocks, "transaction 2 did not wait for transaction 1's row"
    return out1, out2


async def _held(pair: Pair, recs: list[Record], applied: asyncio.Event, release: asyncio.Event) -> Outcome:
    """Transaction 1: apply, signal ``applied``, hold until ``release``, commit."""
    tx = pair.one.transaction()
    await tx.start()
    items = pair.pipeline.decode(recs)
    try:
        await pair.pipeline.apply(pair.one, items)
        await pair.pipeline.store_dead_letters(pair.one, items)
    except BaseException:
        await tx.rollback()
        applied.set()
        raise
    applied.set()
    await release.wait()
    await tx.commit()
    return Outcome(items)


async def setup(pair: Pair, settings: Settings, events: Sequence[LedgerEvent]) -> None:
    out = await attempt(pair.one, pair.pipeline, records(settings, events, 9))
    assert [i.outcome for i in out.items] == ["appended"] * len(events), [(i.reason, i.detail) for i in out.items]


async def count_events(owner: asyncpg.Connection, table: str, where: str, *args: object) -> int:
    return int(await owner.fetchval(f"SELECT count(*) FROM {table} WHERE {where}", *args))


# -- the races ----------------------------------------------------------------------------------------------------
async def test_same_tenant_device_takeover_is_refused(
    pair: Pair, settings: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """DEVICE_REGISTERED(u1, d) and DEVICE_REGISTERED(u2, d), two users of one tenant (two aggregates, two
    partitions): d stays u1's, exactly one registration is appended, the other is dead-lettered with the
    projection's reason after a retry on fresh state."""
    tenant, u1, u2, dev = f"tenant-{run_id}", f"u1-{run_id}", f"u2-{run_id}", f"d-{run_id}"
    await setup(pair, settings, [identity(tenant, u1), identity(tenant, u2)])
    first = records(settings, [device(tenant, u1, dev)], 0)
    second = records(settings, [filler(tenant, f"f-{run_id}"), device(tenant, u2, dev)], 1)
    one, two = await interleave(pair, first, second)

    assert [i.outcome for i in one.items] == ["appended"]
    assert [i.outcome for i in two.items] == ["appended", "dead"]
    refused = two.items[1]
    assert refused.reason == ReasonCode.TENANT_SCOPE_VIOLATION
    assert refused.detail == f"device {dev} belongs to another user"  # the projection's verdict
    assert two.failures == ["retriable"] and not two.isolated
    owner = await operator_db.fetchval("SELECT user_id FROM os_core.devices WHERE device_id = $1", dev)
    assert owner == u1
    registered = await count_events(
        operator_db, "os_core.audit_events", "tenant_id = $1 AND device_id = $2 AND event_type = 'DEVICE_REGISTERED'",
        tenant, dev,
    )  # fmt: skip
    assert registered == 1
    assert await rebuild_equals_live(settings, [tenant]) == []


async def test_cross_tenant_identity_takeover_is_refused(
    pair: Pair, settings: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """Tenant B's IDENTITY_UPSERTED for the user tenant A is creating: refused by the projection after a
    retry (not by a foreign key or a row-level security error that happens to be in the way)."""
    a, b, user = f"tenant-a-{run_id}", f"tenant-b-{run_id}", f"u-{run_id}"
    first = records(settings, [identity(a, user)], 0)
    second = records(settings, [filler(b, f"f-{run_id}"), identity(b, user)], 1)
    one, two = await interleave(pair, first, second)

    assert [i.outcome for i in one.items] == ["appended"]
    assert [i.outcome for i in two.items] == ["appended", "dead"]
    refused = two.items[1]
    assert (refused.reason, refused.detail) == (
        ReasonCode.TENANT_SCOPE_VIOLATION,
        f"user {user} belongs to another tenant",
    )
    assert two.failures == ["retriable"] and not two.isolated, two.failures
    rows = await operator_db.fetch("SELECT tenant_id FROM os_core.identities WHERE user_id = $1", user)
    assert [r["tenant_id"] for r in rows] == [a]
    upserts = await count_events(
        operator_db, "os_core.audit_events", "user_id = $1 AND event_type = 'IDENTITY_UPSERTED'", user
    )
    assert upserts == 1
    assert await rebuild_equals_live(settings, [a, b]) == []


async def test_work_order_id_shared_across_tenants_is_refused(
    pair: Pair, settings: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """Two tenants create work order w at once (aggregates A/w and B/w): w stays A's; B's creation is
    refused with the work-order projection's reason, and no audit row is emitted for it."""
    a, b, wo = f"tenant-a-{run_id}", f"tenant-b-{run_id}", f"wo-{run_id}"
    first = records(settings, [work_order(a, wo)], 0)
    second = records(settings, [filler(b, f"f-{run_id}"), work_order(b, wo)], 1)
    one, two = await interleave(pair, first, second)

    assert [i.outcome for i in one.items] == ["appended"]
    assert [i.outcome for i in two.items] == ["appended", "dead"]
    refused = two.items[1]
    assert refused.reason == ReasonCode.OS_WORK_ORDER_TENANT_SCOPE_VIOLATION, (refused.reason, refused.detail)
    assert two.failures == ["retriable"] and not two.isolated, two.failures
    rows = await operator_db.fetch("SELECT tenant_id FROM os_core.work_orders_current WHERE work_order_id = $1", wo)
    assert [r["tenant_id"] for r in rows] == [a]
    created = await count_events(operator_db, "os_core.work_order_ledger", "work_order_id = $1", wo)
    assert created == 1
    assert await rebuild_equals_live(settings, [a, b]) == []


async def test_work_order_taken_over_by_a_batch_spanning_both_tenants(
    pair: Pair, settings: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """As above, but transaction 2's batch also holds an event of tenant A, so its tenant scope (row-level
    security) admits A's rows: nothing in the database stops the upsert from handing w to B any more."""
    a, b, wo = f"tenant-a-{run_id}", f"tenant-b-{run_id}", f"wo-{run_id}"
    first = records(settings, [work_order(a, wo)], 0)
    second = records(settings, [filler(a, f"fa-{run_id}"), filler(b, f"fb-{run_id}"), work_order(b, wo)], 1)
    one, two = await interleave(pair, first, second)

    assert [i.outcome for i in one.items] == ["appended"]
    assert [i.outcome for i in two.items] == ["appended", "appended", "dead"]
    assert two.items[2].reason == ReasonCode.OS_WORK_ORDER_TENANT_SCOPE_VIOLATION
    assert two.failures == ["retriable"] and not two.isolated, two.failures
    rows = await operator_db.fetch("SELECT tenant_id FROM os_core.work_orders_current WHERE work_order_id = $1", wo)
    assert [r["tenant_id"] for r in rows] == [a]
    created = await count_events(operator_db, "os_core.work_order_ledger", "work_order_id = $1", wo)
    assert created == 1
    assert await rebuild_equals_live(settings, [a, b]) == []


async def test_update_of_a_loaded_row_waits_for_the_other_writer(
    pair: Pair, settings: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """Two changes of one existing work order in two transactions (a writer and a re-drive): the second
    decides on the first's row, so neither change is lost and the state version counts both."""
    tenant, wo = f"tenant-{run_id}", f"wo-{run_id}"
    await setup(pair, settings, [work_order(tenant, wo)])
    first = records(settings, [work_order(tenant, wo, 2)], 0)
    second = records(settings, [work_order(tenant, wo, 3)], 1)
    one, two = await interleave(pair, first, second)

    assert [i.outcome for i in one.items] == ["appended"]
    assert [i.outcome for i in two.items] == ["appended"]
    row = await operator_db.fetchrow(
        "SELECT fields_json::text AS f, state_version FROM os_core.work_orders_current WHERE work_order_id = $1", wo
    )
    assert row is not None
    assert (row["f"], row["state_version"]) == ('{"f2": 2, "f3": 3}', 2)
    assert await rebuild_equals_live(settings, [tenant]) == []
