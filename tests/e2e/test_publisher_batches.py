"""``Publisher.publish_many`` sends per-partition batches: on real Kafka, every accepted event lands on the
partition Kafka's default partitioner gives its key, each partition holds its events in input order at the
offsets reported, and the refusals are those of the writer's round trip (``validate_strict``), by index.
"""

from __future__ import annotations

import gc
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import ConversationTurnEvent
from contracts.reasons import ContractViolation
from contracts.settings import Settings
from producers.publisher import Published, Publisher, Refused

pytestmark = pytest.mark.e2e


def turn(tenant: str, correlation: str, text: str) -> LedgerEvent:
    return new_event(
        ConversationTurnEvent,
        tenant_id=tenant,
        engine_id="PH1.C",
        correlation_id=correlation,
        occurred_at=datetime.now(UTC),
        payload={"speaker": "USER", "source": "TEXT", "text": text},
    )


def workload(run: str, big_every: int = 0) -> list[LedgerEvent]:
    """Interleaved aggregates (a key each), some events bad in ways only the round trip sees."""
    events: list[LedgerEvent] = []
    aggregates = [(f"t{run}{a % 3}", f"c-{run}-{a}") for a in range(12)]
    for i in range(600):
        tenant, correlation = aggregates[i % len(aggregates)]
        text = f"turn {i}" + ("x" * 6000 if big_every and i % big_every == 0 else "")
        event = turn(tenant, correlation, text)
        if i % 97 == 5:
            event = event.model_copy(update={"tenant_id": "not a tenant"})
        elif i % 101 == 7:
            event = event.model_copy(update={"occurred_at": datetime(2025, 1, 1)})  # naive
        events.append(event)
    return events


def expected_refusals(publisher: Publisher, events: list[LedgerEvent]) -> list[Refused]:
    refused = []
    for index, event in enumerate(events):
        try:
            publisher.validate_strict(event)
        except ContractViolation as exc:
            refused.append(Refused(index, exc.reason_code, exc.detail))
    return refused


async def read_back(settings: Settings, topic: str) -> dict[int, list[tuple[int, bytes | None]]]:
    """Every record of the topic, per partition, as (offset, value)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        enable_auto_commit=False,
        **settings.kafka_security.client_kwargs(),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        got: dict[int, list[tuple[int, bytes | None]]] = defaultdict(list)
        while sum(len(v) for v in got.values()) < sum(ends.values()):
            for tp, messages in (await consumer.getmany(timeout_ms=1000)).items():
                got[tp.partition] += [(m.offset, m.value) for m in messages]
        return got
    finally:
        await consumer.stop()


def check(
    events: list[LedgerEvent], published: list[Published], refused: list[Refused], expected: list[Refused], n: int
) -> dict[int, list[Published]]:
    """What ``publish_many`` returned, against the input: the acks per partition, in input order."""
    assert refused == expected and refused, "the round trip's refusals, by index"
    refused_at = {r.index for r in refused}
    accepted = [e for i, e in enumerate(events) if i not in refused_at]
    assert [p.event for p in published] == accepted, "published in input order"
    partitions = list(range(n))
    per_partition: dict[int, list[Published]] = defaultdict(list)
    for p in published:
        assert p.partition == DefaultPartitioner()(p.event.kafka_key, partitions, partitions)
        per_partition[p.partition].append(p)
    for ps in per_partition.values():
        offsets = [p.offset for p in ps]
        assert offsets == list(range(offsets[0], offsets[0] + len(offsets))), "input order, no gaps"
    return per_partition


@pytest.mark.parametrize(
    ("options", "big_every"),
    [({}, 0), ({"max_batch_size": 16384}, 0), ({"max_batch_size": 4096}, 50)],
    ids=["default", "small-batches", "records-over-a-batch"],
)
async def test_batches_keep_partition_order_offsets_and_refusals(
    topics: Settings, options: dict[str, int], big_every: int
) -> None:
    run = uuid.uuid4().hex[:6]
    events = workload(run, big_every)
    topic = ConversationTurnEvent.spec.topic(topics.topic_prefix)
    async with Publisher(topics, **options) as publisher:
        expected = expected_refusals(publisher, events)
        published, refused = await publisher.publish_many(events)
        # A second call on the same producer continues each partition where the first stopped.
        again, _ = await publisher.publish_many(events[:50])
    per_partition = check(events, published, refused, expected, topics.topic_partitions)
    on_topic = await read_back(topics, topic)
    for partition, ps in per_partition.items():
        stored = dict(on_topic[partition])
        assert [stored[p.offset] for p in ps] == [encode(p.event).value for p in ps]
    for p in again:
        assert dict(on_topic[p.partition])[p.offset] == encode(p.event).value
        assert p.offset > max(q.offset for q in per_partition[p.partition])


async def test_publish_many_holds_no_object_per_event_while_it_runs(topics: Settings) -> None:
    """``publish_many`` keeps nothing the garbage collector tracks per accepted event while it runs (but the
    events it was given): what lives through a call is promoted to the oldest generation, and enough of it
    triggers a full collection of the caller's whole heap (2.6 s each on the benchmark's heap of decoded
    events; BENCHMARKS.md, "Publisher vs raw"). Counted once the input is exhausted, the collector paused."""
    run = uuid.uuid4().hex[:6]
    events = [turn(f"t{run}{i % 3}", f"c-{run}-{i % 12}", f"turn {i}") for i in range(3000)]
    counted: list[int] = []

    def feed() -> Iterator[LedgerEvent]:
        counted.append(len(gc.get_objects()))
        yield from events
        counted.append(len(gc.get_objects()))

    async with Publisher(topics) as publisher:
        await publisher.publish_many(events[:10])  # topic metadata and the partitioner's answers, once
        gc.collect()
        gc.disable()
        try:
            published, refused = await publisher.publish_many(feed())
        finally:
            gc.enable()
    assert not refused
    assert len(published) == len(events)
    grown = counted[1] - counted[0]
    assert grown < len(events) // 10, f"{grown} objects held for {len(events)} events"
