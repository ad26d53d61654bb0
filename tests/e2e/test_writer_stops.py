"""What stops the writer rather than leave it running while it writes nothing."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable
from dataclasses import replace

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.record._crc32c import crc as crc32c

from consumers.kafka import UnreadableRecords
from consumers.offsets import Claim, TopicPartition
from consumers.writer import LedgerWriter
from contracts.registry import LEDGERS
from contracts.settings import Settings

pytestmark = pytest.mark.e2e


class ClaimRefused(Exception):
    pass


async def test_a_failed_claim_stops_the_writer(topics: Settings) -> None:
    """aiokafka logs and swallows what a rebalance listener raises; the writer must not go on with
    partitions assigned to it and never written (here it would wait for ever: nothing is claimed)."""
    writer = LedgerWriter(topics)

    async def refuse(conn: asyncpg.Connection, parts: Iterable[TopicPartition]) -> dict[TopicPartition, Claim]:
        raise ClaimRefused("the offsets table refused the claim")

    writer.offsets.claim = refuse  # type: ignore[method-assign,assignment]
    with pytest.raises(ClaimRefused):
        await asyncio.wait_for(writer.run(until_caught_up=True), 60)


async def test_a_header_key_that_is_not_utf8_stops_the_writer_naming_its_offset(topics: Settings) -> None:
    """Kafka's protocol defines a header key as a UTF-8 string; a client that sends other bytes (possible
    from Go) makes aiokafka's record reader raise inside the fetch, before the record reaches the pipeline.
    The writer cannot dead-letter what it cannot read, so it stops with the place named (it used to raise
    a bare UnicodeDecodeError from the fetch, a traceback on every restart)."""
    s = replace(topics, topic_partitions=1)
    topic = LEDGERS["audit_events"].topic(s.topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"not json", key=b"t/a", partition=0)
        batch = producer.create_batch()
        batch.append(key=b"t/a", value=b"not json", timestamp=None, headers=[("QQ", b"v")])
        raw = bytearray(batch._build())
        at = raw.index(b"QQ")
        raw[at : at + 2] = b"\xff\xfe"
        struct.pack_into(">I", raw, 17, crc32c(bytes(raw[21:])))  # a valid batch: only the key is not UTF-8
        batch._buffer = bytes(raw)
        await (await producer.send_batch(batch, topic, partition=0))
    finally:
        await producer.stop()
    with pytest.raises(UnreadableRecords) as stopped:
        await asyncio.wait_for(LedgerWriter(s).run(until_caught_up=True), 60)
    assert (stopped.value.topic, stopped.value.partition, stopped.value.offset) == (topic, 0, 1), str(stopped.value)
