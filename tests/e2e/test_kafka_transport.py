"""What Kafka itself does to records on their way to the writer: compression codecs, producer
transactions (aborted ones must never reach a ledger) and the markers they leave in the log.

Written with aiokafka's own producer options, not the publisher's, because an engine in any language may
set them; tests/e2e/test_foreign_producers.py does the same with Kafka's Java client.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from consumers.db import connect
from consumers.status import lag
from contracts.audit import AuditRecordedEvent
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.registry import LEDGERS
from contracts.settings import Settings
from tests.e2e.helpers import drain, event_ids

pytestmark = pytest.mark.e2e

CODECS = ["gzip", "snappy", "lz4", "zstd"]


def audits(tenant: str, n: int, tag: str) -> list[LedgerEvent]:
    return [
        new_event(
            AuditRecordedEvent,
            tenant_id=tenant,
            engine_id="PH1.NLP",
            correlation_id=f"{tag}-{i}",
            idempotency_key=f"{tag}-{i}",
            occurred_at=datetime.now(UTC),
            payload={"reason_code": "NLP_OK", "summary": f"{tag} {i}"},
        )
        for i in range(n)
    ]


async def send(producer: AIOKafkaProducer, settings: Settings, events: list[LedgerEvent]) -> None:
    for e in events:
        enc = encode(e)
        await producer.send(LEDGERS[e.ledger].topic(settings.topic_prefix), enc.value, key=enc.key, headers=enc.headers)
    await producer.flush()


async def lag_total(settings: Settings) -> int:
    conn = await connect(settings.database_operator_url)
    try:
        return sum(p.lag for p in await lag(settings, conn))
    finally:
        await conn.close()


@pytest.mark.parametrize("codec", CODECS)
async def test_compressed_batches_are_written(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str, codec: str
) -> None:
    tenant = f"tc{run_id}"
    events = audits(tenant, 60, codec)
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.kafka_bootstrap_servers, compression_type=codec, linger_ms=20, acks="all"
    )
    await producer.start()
    try:
        await send(producer, topics, events)
    finally:
        await producer.stop()
    stats = await drain(topics)
    assert stats.result.appended == len(events)
    assert sorted(await event_ids(operator_db, "os_core.audit_events", [tenant])) == sorted(
        str(e.event_id) for e in events
    )
    assert await lag_total(topics) == 0


async def test_aborted_transaction_never_reaches_the_ledger_and_caught_up_is_prompt(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """50 events sent and aborted, then 50 sent and committed: only the committed 50 are in the ledger,
    and ``until_caught_up`` returns promptly although markers, not records, end every partition."""
    tenant = f"tx{run_id}"
    aborted, committed = audits(tenant, 50, "aborted"), audits(tenant, 50, "committed")
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.kafka_bootstrap_servers, transactional_id=f"engine-{run_id}", acks="all"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        await send(producer, topics, aborted)
        await producer.abort_transaction()
        await producer.begin_transaction()
        await send(producer, topics, committed)
        await producer.commit_transaction()
    finally:
        await producer.stop()
    started = time.monotonic()
    stats = await asyncio.wait_for(drain(topics), 60)  # fails, not hangs, if caught up is never reached
    took = time.monotonic() - started
    assert sorted(await event_ids(operator_db, "os_core.audit_events", [tenant])) == sorted(
        str(e.event_id) for e in committed
    )
    assert stats.result.consumed == len(committed)
    assert took < 30, f"until_caught_up took {took:.1f} s"
    assert await lag_total(topics) == 0  # stored offsets passed the markers too


async def test_open_transaction_is_not_left_to_read(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """Caught up means nothing committed is left: records of a transaction still open are not waited for
    (nor written); once it commits they are."""
    tenant = f"to{run_id}"
    before, pending = audits(tenant, 10, "before"), audits(tenant, 10, "pending")
    producer = AIOKafkaProducer(
        bootstrap_servers=topics.kafka_bootstrap_servers, transactional_id=f"open-{run_id}", acks="all"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        await send(producer, topics, before)
        await producer.commit_transaction()
        await producer.begin_transaction()
        await send(producer, topics, pending)
        started = time.monotonic()
        await asyncio.wait_for(drain(topics), 60)
        assert time.monotonic() - started < 30
        assert sorted(await event_ids(operator_db, "os_core.audit_events", [tenant])) == sorted(
            str(e.event_id) for e in before
        )
        await producer.commit_transaction()
    finally:
        await producer.stop()
    await drain(topics)
    assert sorted(await event_ids(operator_db, "os_core.audit_events", [tenant])) == sorted(
        str(e.event_id) for e in before + pending
    )
    assert await lag_total(topics) == 0
