"""What an operator asks first: how far behind is the writer, how much is in each ledger, what was refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.deadletters import counts_by_reason
from consumers.kafka import reader_options
from consumers.offsets import stored_offsets
from contracts.registry import LEDGERS
from contracts.settings import Settings


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    end_offset: int
    stored_offset: int

    @property
    def lag(self) -> int:
        return max(0, self.end_offset - self.stored_offset)


async def end_offsets(settings: Settings, topics: list[str]) -> dict[tuple[str, int], int]:
    """The last stable offset of every partition of ``topics`` (read committed: an open or aborted
    transaction's records are not "left to read"); no group, nothing committed."""
    consumer = AIOKafkaConsumer(**reader_options(settings))
    await consumer.start()
    try:
        tps = [
            TopicPartition(t, p)
            for t in topics
            for p in sorted(consumer.partitions_for_topic(t) or await _partitions(consumer, t))
        ]
        ends = await consumer.end_offsets(tps) if tps else {}
        return {(tp.topic, tp.partition): off for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return set(consumer.partitions_for_topic(topic) or ())


async def lag(settings: Settings, conn: asyncpg.Connection) -> list[PartitionLag]:
    topics = [spec.topic(settings.topic_prefix) for spec in LEDGERS.values()]
    ends = await end_offsets(settings, topics)
    stored = await stored_offsets(conn, settings.consumer_group)
    return [PartitionLag(t, p, end, stored.get((t, p), 0)) for (t, p), end in sorted(ends.items())]


async def ledger_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows per ledger (exact counts; run as the operator role, which reads every tenant)."""
    return {name: await conn.fetchval(f"SELECT count(*) FROM {spec.table}") for name, spec in LEDGERS.items()}


async def status(settings: Settings, conn: asyncpg.Connection) -> dict[str, Any]:
    lags = await lag(settings, conn)
    return {
        "lag": [
            {
                "topic": x.topic,
                "partition": x.partition,
                "end_offset": x.end_offset,
                "stored_offset": x.stored_offset,
                "lag": x.lag,
            }
            for x in lags
        ],
        "total_lag": sum(x.lag for x in lags),
        "ledgers": await ledger_counts(conn),
        "dead_letters": await counts_by_reason(conn),
    }
