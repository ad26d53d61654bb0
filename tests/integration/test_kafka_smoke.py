"""The broker the tests run on really is Kafka with idempotent producers and consumer groups."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from contracts.settings import Settings

pytestmark = pytest.mark.integration


async def test_idempotent_producer_and_consumer_group(migrated: Settings) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=migrated.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 2, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=migrated.kafka_bootstrap_servers, enable_idempotence=True, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, f"v{i}".encode(), key=f"k{i % 4}".encode()) for i in range(40)]
    finally:
        await producer.stop()
    assert {md.partition for md in sent} == {0, 1}
    group = f"smoke-group-{uuid.uuid4().hex[:6]}"
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=migrated.kafka_bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        for _ in range(60):
            batch = await consumer.getmany(timeout_ms=500)
            got += [m.value for msgs in batch.values() for m in msgs]
            if len(got) >= 40:
                break
        await consumer.commit()
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    assert sorted(got) == sorted(f"v{i}".encode() for i in range(40))
    assert sum(committed.values()) == 40
