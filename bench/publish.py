"""Publisher mode: ``producers.Publisher.publish_many`` against raw aiokafka ``send_batch``, same payloads.

Both use the Publisher's producer settings (idempotent, acks=all, linger 5 ms, 1 MiB batches) and wait for
every acknowledgement. The raw side sends the pre-encoded bytes (no validation) partitioned by Kafka's
default partitioner into per-partition batches; the Publisher makes sure the writer will accept each event
(the record of an event pydantic validated, re-checked where validation cannot vouch for it, or the full
round trip) and sends per-partition batches too. Its events are decoded from the stream, untimed, so
pydantic validated each (``contracts.envelope.validated``), as it validates what an engine builds. Each
side repeats passes over the same events until ``min_seconds`` have passed, the raw side first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.child import Result, Spec, rate_result
from bench.stream import StreamRecord, Template, partition_of
from contracts.codec import Decoder
from contracts.envelope import LedgerEvent
from contracts.kafka_clients import producer_options
from contracts.settings import Settings
from producers.publisher import Publisher

Item = tuple[str, bytes, bytes, Sequence[tuple[str, bytes]]]  # topic, key, value, headers


async def send_batches(producer: AIOKafkaProducer, items: Iterable[Item]) -> int:
    """Pre-encoded records with ``send_batch``, one batch per partition at a time (Kafka's default
    partitioner); returns once every batch is acknowledged."""
    partitions: dict[str, int] = {}
    batches: dict[tuple[str, int], Any] = {}
    futures = []
    sent = 0
    for topic, key, value, headers in items:
        if topic not in partitions:
            partitions[topic] = len(await producer.partitions_for(topic))
        where = (topic, partition_of(key, partitions[topic]))
        batch = batches.get(where)
        if batch is None:
            batch = batches[where] = producer.create_batch()
        if batch.append(key=key, value=value, timestamp=None, headers=list(headers)) is None:
            futures.append(await producer.send_batch(batch, where[0], partition=where[1]))
            batch = batches[where] = producer.create_batch()
            batch.append(key=key, value=value, timestamp=None, headers=list(headers))
        sent += 1
    for (topic, part), batch in batches.items():
        if batch.record_count():
            futures.append(await producer.send_batch(batch, topic, partition=part))
    await asyncio.gather(*futures)
    return sent


def stream_items(stream: Sequence[StreamRecord], prefix: str) -> Iterator[Item]:
    return ((r.topic(prefix), r.key, r.value, r.headers) for r in stream)


async def produce(settings: Settings, items: Iterable[Item]) -> int:
    """Fill topics (untimed set-up): a producer with the Publisher's settings, batches per partition."""
    producer = AIOKafkaProducer(**producer_options(settings))
    await producer.start()
    try:
        return await send_batches(producer, items)
    finally:
        await producer.stop()


async def _raw(spec: Spec, stream: Sequence[StreamRecord]) -> Result:
    producer = AIOKafkaProducer(**producer_options(spec.settings))
    await producer.start()
    sent, seconds, passes = 0, 0.0, 0
    try:
        prefix = str(spec.params["raw_prefix"])
        while passes == 0 or seconds < spec.min_seconds:
            started = time.perf_counter()
            sent += await send_batches(producer, stream_items(stream, prefix))
            seconds += time.perf_counter() - started
            passes += 1
    finally:
        await producer.stop()
    return rate_result(sent, seconds, passes=passes)


async def _publisher(spec: Spec, events: Sequence[LedgerEvent]) -> Result:
    sent, refused, seconds, passes = 0, 0, 0.0, 0
    async with Publisher(spec.settings) as publisher:
        while passes == 0 or seconds < spec.min_seconds:
            started = time.perf_counter()
            ok, bad = await publisher.publish_many(events)
            seconds += time.perf_counter() - started
            sent, refused, passes = sent + len(ok), refused + len(bad), passes + 1
    return rate_result(sent, seconds, passes=passes, refused=refused)


async def run_publisher(spec: Spec) -> Result:
    template = Template.load(spec.template)
    stream = list(template.records)
    decoder = Decoder(spec.settings.max_event_bytes)
    events = [decoder.decode(r.value) for r in stream]
    raw = await _raw(spec, stream)
    published = await _publisher(spec, events)
    return {
        "raw": raw,
        "publisher": published,
        "records": published["records"],
        "seconds": published["seconds"],
        "rate": published["rate"],
    }
