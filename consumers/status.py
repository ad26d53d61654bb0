"""What an operator asks first: how far behind is the writer, how much is in each ledger, what was refused,
and whether a writer keeps retrying a batch (counted here by the writer, read back by ``status``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.deadletters import counts_by_reason
from consumers.offsets import Claim, stored_offsets
from contracts.envelope import LedgerEvent
from contracts.kafka_clients import reader_options
from contracts.reasons import SeleneError
from contracts.registry import LEDGERS, REGISTRY
from contracts.settings import Settings

log = logging.getLogger("selene.status")

# Only rows this writer still owns (the epoch it claimed): a zombie's failures are not the partition's.
RECORD_RETRIES = """
UPDATE selene_ops.consumer_offsets o
SET batch_retries = o.batch_retries + $5, batch_isolations = o.batch_isolations + $6,
    last_retry_at = now(), last_retry_reason = $7
FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, fence_epoch)
WHERE o.consumer_group = $1 AND o.topic = u.topic AND o.partition = u.partition AND o.fence_epoch = u.fence_epoch
"""
SELECT_RETRIES = """
SELECT topic, partition, owner_id, batch_retries, batch_isolations, last_retry_at, last_retry_reason
FROM selene_ops.consumer_offsets
WHERE consumer_group = $1 AND (batch_retries > 0 OR batch_isolations > 0)
ORDER BY topic, partition
"""
#: Dead letters that still need an operator (re-drive or discard): OPEN and HELD block their aggregate, REJECTED
#: does not but was never resolved. Only the topics of one prefix (one deployment's, or one test's).
OPEN_DEAD_LETTERS = """
SELECT reason_code, coalesce(tenant_id, '') AS tenant_id, count(*) AS n
FROM selene_ops.dead_letters
WHERE status IN ('OPEN', 'HELD', 'REJECTED') AND left(source_topic, length($1)) = $1
GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2
LIMIT $2
"""
#: How long the writer gives the count of a failed attempt before it goes on retrying without it.
RECORD_TIMEOUT_S = 2.0


def retry_reason(exc: BaseException) -> str:
    """A failed attempt's cause in a few words: its reason code, SQLSTATE or exception class."""
    if isinstance(exc, SeleneError):
        return str(exc.reason_code)
    if isinstance(exc, asyncpg.PostgresError):
        return f"SQLSTATE {exc.sqlstate}"
    return type(exc).__name__[:200]


async def record_retries(
    pool: asyncpg.Pool, group: str, claims: Sequence[Claim], *, retries: int, isolations: int, reason: str
) -> bool:
    """Count failed attempts and isolations of a batch on its partitions' offset rows; False if that failed
    too (the database may be what is down), so the caller keeps the counts for the next try. Best effort,
    bounded in time: the batch, not its statistics, is what must get through."""
    if not claims or not (retries or isolations):
        return True
    try:
        async with asyncio.timeout(RECORD_TIMEOUT_S), pool.acquire() as conn:
            await conn.execute(
                RECORD_RETRIES,
                group,
                [c.topic for c in claims],
                [c.partition for c in claims],
                [c.fence_epoch for c in claims],
                retries,
                isolations,
                reason[:200],
            )
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.info("retry count not recorded yet (%s)", exc)
        return False
    return True


async def writer_retries(conn: asyncpg.Connection, group: str) -> list[dict[str, Any]]:
    """Partitions of ``group`` whose batches had to be retried or isolated, with the last reason and time."""
    return [dict(r) for r in await conn.fetch(SELECT_RETRIES, group)]


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
    try:
        await consumer.start()
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


COUNT_EVENTS_IN = "SELECT count(*) FROM {table} WHERE event_uuid = ANY($1::uuid[])"


async def slice_counts(conn: asyncpg.Connection, events: Sequence[LedgerEvent]) -> dict[str, tuple[int, int]]:
    """Per slice of the registry: how many distinct ``events`` are its own, and how many of those are rows of their
    ledgers now (run as the operator role). Rows a projection derived (a work order's audit row) count
    nowhere: only the events themselves, looked up by id."""
    slice_of = {m: s.name for s in REGISTRY.slices for m in s.events}
    ids: dict[tuple[str, str], set[uuid.UUID]] = {}
    for e in events:  # a re-sent event (a duplicate) counts once
        ids.setdefault((slice_of.get(type(e), "?"), e.spec.table), set()).add(e.event_id)
    out = {s.name: (0, 0) for s in REGISTRY.slices}
    for (name, table), found in ids.items():
        n = await conn.fetchval(COUNT_EVENTS_IN.format(table=table), list(found))
        sent, rows = out.get(name, (0, 0))
        out[name] = (sent + len(found), rows + n)
    return out


async def ledger_counts(conn: asyncpg.Connection) -> dict[str, int]:
    """Rows per ledger (exact counts; run as the operator role, which reads every tenant)."""
    return {name: await conn.fetchval(f"SELECT count(*) FROM {spec.table}") for name, spec in LEDGERS.items()}


async def open_dead_letters(conn: asyncpg.Connection, topic_prefix: str, limit: int = 1000) -> list[dict[str, Any]]:
    """Open dead letters of ``topic_prefix``'s topics by reason and tenant ('' for none), largest first; at most
    ``limit`` groups (a scrape stays bounded whatever the table holds)."""
    return [dict(r) for r in await conn.fetch(OPEN_DEAD_LETTERS, topic_prefix, limit)]


async def status(settings: Settings, conn: asyncpg.Connection) -> dict[str, Any]:
    lags = await lag(settings, conn)
    open_letters = await open_dead_letters(conn, settings.topic_prefix)
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
        "open_dead_letters": sum(r["n"] for r in open_letters),
        "open_dead_letters_by_reason": open_letters,
        "writer_retries": await writer_retries(conn, settings.consumer_group),
    }
