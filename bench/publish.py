"""Publisher mode: ``producers.Publisher.publish_many`` against raw aiokafka ``send_batch``, same payloads.

Both use the Publisher's producer settings (idempotent, acks=all, linger 5 ms, 1 MiB batches) and wait for
every acknowledgement. The raw side sends the pre-encoded bytes (no validation) partitioned by Kafka's
default partitioner into per-partition batches; the Publisher makes sure the writer will accept each event
(the record of an event pydantic validated, re-checked where validation cannot vouch for it, or the full
round trip) and sends per-partition batches too. Its events are decoded from the stream, untimed, so
pydantic validated each (``contracts.envelope.validated``), as it validates what an engine builds.

The two sides alternate, a raw pass then a publisher pass, until each has run ``min_seconds``: on a shared
machine the load changes from second to second, and measuring one side after the other measured the load
as much as the publisher. The inputs (the stream and its decoded events, ~700 MB of objects for the default
stream) are frozen out of the cyclic garbage collector before the first pass (``gc.freeze``): they are the
benchmark's set-up, held only to be sent again, and a full collection, which the publisher's allocations
trigger and raw's do not, traversed all of them (2.6 s per collection, about one per publisher pass, on the
default stream: measured with ``gc.callbacks``). An engine's heap is its own; the publisher's part is the
objects it allocates per event, and those it still pays for.
"""

from __future__ import annotations

import asyncio
import gc
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


class _Side:
    """One side's running totals over its passes."""

    def __init__(self) -> None:
        self.sent = self.refused = self.passes = 0
        self.seconds = 0.0

    def result(self, **extra: Any) -> Result:
        return rate_result(self.sent, self.seconds, passes=self.passes, **extra)


async def _alternate(
    spec: Spec, stream: Sequence[StreamRecord], events: Sequence[LedgerEvent]
) -> tuple[Result, Result]:
    """Raw and publisher passes in turn until each side has run ``min_seconds`` (one pass each at least)."""
    prefix = str(spec.params["raw_prefix"])
    raw, pub = _Side(), _Side()
    producer = AIOKafkaProducer(**producer_options(spec.settings))
    await producer.start()
    try:
        async with Publisher(spec.settings) as publisher:
            while raw.passes == 0 or raw.seconds < spec.min_seconds or pub.seconds < spec.min_seconds:
                started = time.perf_counter()
                raw.sent += await send_batches(producer, stream_items(stream, prefix))
                raw.seconds += time.perf_counter() - started
                raw.passes += 1
                started = time.perf_counter()
                ok, bad = await publisher.publish_many(events)
                pub.seconds += time.perf_counter() - started
                pub.sent, pub.refused, pub.passes = pub.sent + len(ok), pub.refused + len(bad), pub.passes + 1
    finally:
        await producer.stop()
    return raw.result(), pub.result(refused=pub.refused)


async def run_publisher(spec: Spec) -> Result:
    template = Template.load(spec.template)
    stream = list(template.records)
    decoder = Decoder(spec.settings.max_event_bytes)
    events = [decoder.decode(r.value) for r in stream]
    gc.collect()
    gc.freeze()  # the inputs are set-up: see the module's docstring
    try:
        raw, published = await _alternate(spec, stream, events)
    finally:
        gc.unfreeze()
    return {
        "raw": raw,
        "publisher": published,
        "records": published["records"],
        "seconds": published["seconds"],
        "rate": published["rate"],
    }
