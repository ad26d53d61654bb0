"""Derived rows (a projection's emissions, e.g. the PH1.J audit row of a work-order event) against rows that
already hold their keys, on real Kafka and PostgreSQL (issue 13 item 5).

An audit event published with the scoped key the work-order projection derives for its audit row
(``work_order_ledger:<event id>``) used to make every attempt at the work-order event's batch skip the derived
row and raise CONCURRENT_APPEND, so the writer retried that batch for ever. Now a derived row is deduplicated
and conflict-checked like a published one: a conflict dead-letters the source event, an identical row is a
no-op, and what follows flows.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from consumers.pipeline import Item, Pipeline, Record
from consumers.projections.work_orders import audit_event
from consumers.replay import Replayer
from consumers.writer import WriterStats
from contracts.audit import AuditRecordedEvent
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import IdentityUpsertedEvent
from contracts.settings import Settings
from contracts.work_orders import FieldsSetEvent, WorkOrderCreatedEvent
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e
#: Today's fix drains each of these in a few seconds; before it, the writer retried the batch without end.
DRAIN_TIMEOUT_S = 30.0
AT = datetime.now(UTC) - timedelta(hours=1)


def identity(tenant: str, user: str) -> LedgerEvent:
    return new_event(
        IdentityUpsertedEvent,
        tenant_id=tenant,
        engine_id="PH1.F",
        correlation_id=f"id-{user}",
        idempotency_key=f"identity-{user}",
        occurred_at=AT,
        payload={"reason_code": "IDENTITY_UPSERTED", "user_id": user, "display_name": user},
    )


def work_order(tenant: str, wo: str, n: int = 1, **payload: object) -> LedgerEvent:
    """A work-order event of ``wo`` (created when ``n == 1``, a fields change after)."""
    model = WorkOrderCreatedEvent if n == 1 else FieldsSetEvent
    extra = {"requester_user_id": "u-1", "intent_type": "BOOK_TABLE"} if n == 1 else {"fields": {"n": n}}
    return new_event(
        model,
        tenant_id=tenant,
        engine_id="SELENE_OS",
        correlation_id=f"thread-{wo}",
        turn_id=f"turn-{n}",
        idempotency_key=f"{wo}-{n}",
        occurred_at=AT + timedelta(seconds=n),
        payload={"work_order_id": wo, **extra, **payload},
    )


def squatter(source: LedgerEvent, summary: str = "an engine's own row") -> LedgerEvent:
    """An engine's audit event that takes the scoped key the work-order projection derives for ``source``: a
    row naming a work order dedupes on (tenant, work order, key) (docs/DB_WIRING/PH1_J.md), so it names it."""
    return new_event(
        AuditRecordedEvent,
        tenant_id=source.tenant_id,
        engine_id="PH1.NLP",
        correlation_id=source.correlation_id,
        idempotency_key=f"work_order_ledger:{source.event_id}",
        occurred_at=AT,
        payload={
            "reason_code": "NLP_OK",
            "summary": summary,
            "work_order_id": source.payload.model_dump()["work_order_id"],
        },
    )


async def drain_within(settings: Settings) -> WriterStats:
    """Drain the topics; a writer stuck retrying one batch fails the test instead of hanging it."""
    async with asyncio.timeout(DRAIN_TIMEOUT_S):
        return await drain(settings)


async def dead_letters(conn: asyncpg.Connection, settings: Settings) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT event_uuid, reason_code, status, error_detail FROM selene_ops.dead_letters "
        "WHERE source_topic LIKE $1 || '%' ORDER BY dead_letter_id",
        settings.topic_prefix,
    )


async def count(conn: asyncpg.Connection, table: str, tenant: str, where: str = "true") -> int:
    n: int = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1 AND {where}", tenant)
    return n


async def audit_row(conn: asyncpg.Connection, tenant: str, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT event_uuid, engine_id, event_type FROM os_core.audit_events WHERE tenant_id = $1 "
        "AND idempotency_key = $2",
        tenant,
        key,
    )


async def test_derived_conflict_dead_letters_the_source_and_the_partition_flows(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant, wo = f"t-{run_id}", f"wo-{run_id}"
    created = work_order(tenant, wo)
    taken = squatter(created)
    await publish(topics, [identity(tenant, f"u-{run_id}"), taken])
    first = await drain_within(topics)
    assert first.result.appended == 2

    # The work order's next event is refused too: its work order was never created.
    await publish(topics, [created, work_order(tenant, wo, 2)])
    stats = await drain_within(topics)
    assert stats.result.dead_lettered == Counter({"IDEMPOTENCY_CONFLICT": 1, "OS_WORK_ORDER_NOT_FOUND": 1})
    assert (stats.result.appended, stats.result.emitted) == (0, 0)
    # The audit event stands; the work-order event is a dead letter with its reason, and no work order exists.
    row = await audit_row(operator_db, tenant, f"work_order_ledger:{created.event_id}")
    assert row is not None and (row["event_uuid"], row["engine_id"]) == (taken.event_id, "PH1.NLP")
    dead, _ = await dead_letters(operator_db, topics)
    assert (dead["event_uuid"], dead["reason_code"], dead["status"]) == (
        created.event_id,
        "IDEMPOTENCY_CONFLICT",
        "REJECTED",
    )
    assert "audit_events" in dead["error_detail"]
    assert await count(operator_db, "os_core.work_orders_current", tenant) == 0
    assert await count(operator_db, "os_core.work_order_ledger", tenant) == 0

    # Later events flow: another work order of the tenant is appended with its audit row.
    other = work_order(tenant, f"{wo}-b")
    await publish(topics, [other, work_order(tenant, f"{wo}-b", 2)])
    later = await drain_within(topics)
    assert (later.result.appended, later.result.emitted, later.result.dead_total) == (2, 2, 0)
    assert await rebuild_equals_live(topics, [tenant]) == []
    replayed = await Replayer(topics, tenant=tenant).run(verify=True)
    assert replayed.equal, (replayed.stats.unaccounted, [c for c in replayed.comparisons if not c.equal])


async def apply_in_order(settings: Settings, conn: asyncpg.Connection, events: list[LedgerEvent]) -> list[Item]:
    """``events`` as one batch in exactly this order (the writer's batches interleave topics as fetched),
    through the writer's pipeline on a real PostgreSQL transaction."""
    records = []
    for offset, event in enumerate(events):
        enc = encode(event)
        records.append(
            Record(event.spec.topic(settings.topic_prefix), 0, offset, enc.key, enc.value, tuple(enc.headers))
        )
    pipeline = Pipeline(settings)
    items = pipeline.decode(records)
    async with conn.transaction():
        await pipeline.apply(conn, items)
    return items


async def test_derived_conflicts_within_one_batch_either_order(
    settings: Settings, writer_db: asyncpg.Connection, run_id: str
) -> None:
    """A published row first in the batch makes the derived row conflict (its source is refused); the derived
    row first makes the published one conflict (it stands); an identical one is a no-op either way."""
    tenant = f"t-{run_id}"
    wo1, wo2, wo3 = (work_order(tenant, f"wo-{n}-{run_id}") for n in (1, 2, 3))
    events = [squatter(wo1), wo1, wo2, squatter(wo2), audit_event(wo3, "DRAFT"), wo3]
    items = await apply_in_order(settings, writer_db, events)
    outcomes = [(i.outcome, i.reason and str(i.reason), i.emitted, i.emitted_duplicates) for i in items]
    assert outcomes == [
        ("appended", None, 0, 0),
        ("dead", "IDEMPOTENCY_CONFLICT", 0, 0),
        ("appended", None, 1, 0),
        ("dead", "IDEMPOTENCY_CONFLICT", 0, 0),
        ("appended", None, 0, 0),
        ("appended", None, 0, 1),
    ]
    assert "audit_events row it derives" in items[1].detail and items[1].status == "REJECTED"


async def test_derived_row_identical_to_an_existing_one_is_a_counted_no_op(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant, wo = f"t-{run_id}", f"wo-{run_id}"
    created = work_order(tenant, wo)
    # The very row the projection will derive, published first (e.g. an engine relaying the audit topic).
    await publish(topics, [audit_event(created, "DRAFT")])
    assert (await drain_within(topics)).result.appended == 1

    await publish(topics, [created, work_order(tenant, wo, 2)])
    stats = await drain_within(topics)
    assert (stats.result.appended, stats.result.emitted, stats.result.dead_total) == (2, 1, 0)
    assert stats.result.emitted_duplicates == 1
    assert await count(operator_db, "os_core.audit_events", tenant, "engine_id = 'SELENE_OS_CORE_TABLES'") == 2
    assert await rebuild_equals_live(topics, [tenant]) == []
