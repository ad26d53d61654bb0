"""Kafka offsets stored in PostgreSQL, fenced, in the same transaction as the rows they cover.

On assignment a consumer *claims* its partitions: it bumps each partition's ``fence_epoch`` and reads the
stored next offset to seek to. Every batch transaction first locks its partitions' rows *with the epoch it
claimed*; a partition whose epoch moved on belongs to someone else now, and this consumer (a zombie: paused,
partitioned away, past its poll interval) writes nothing for it. Locking first also makes an ambiguous
commit harmless: a retried batch re-reads the stored offsets and skips what was already committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

CLAIM = """
INSERT INTO selene_ops.consumer_offsets AS o (consumer_group, topic, partition, next_offset, fence_epoch, owner_id)
SELECT $1, u.topic, u.partition, 0, 1, $4 FROM unnest($2::text[], $3::int[]) AS u(topic, partition)
ON CONFLICT (consumer_group, topic, partition)
  DO UPDATE SET fence_epoch = o.fence_epoch + 1, owner_id = EXCLUDED.owner_id, updated_at = now()
RETURNING o.topic, o.partition, o.next_offset, o.fence_epoch
"""
LOCK_FENCED = """
SELECT o.topic, o.partition, o.next_offset
FROM selene_ops.consumer_offsets o
JOIN unnest($2::text[], $3::int[], $4::bigint[]) AS u(topic, partition, fence_epoch)
  ON o.topic = u.topic AND o.partition = u.partition AND o.fence_epoch = u.fence_epoch
WHERE o.consumer_group = $1
FOR UPDATE OF o
"""
#: The fenced lock, the tenant scope and the blocked aggregates' look-up in one round trip (sql/0027).
BEGIN_BATCH = """
SELECT topic, partition, next_offset, aggregate_key
FROM selene_ops.writer_begin_batch($1, $2::text[], $3::int[], $4::bigint[], $5, $6::text[], $7::text[])
"""
ADVANCE = """
UPDATE selene_ops.consumer_offsets o SET next_offset = u.next_offset, updated_at = now()
FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bigint[]) AS u(topic, partition, next_offset, fence_epoch)
WHERE o.consumer_group = $1 AND o.topic = u.topic AND o.partition = u.partition
  AND o.fence_epoch = u.fence_epoch AND o.next_offset <= u.next_offset
"""
#: The deferred constraints checked, the dead letters inserted and the offsets advanced in one round trip
#: (sql/0028): $1-$5 as ``ADVANCE``, then the 16 arrays of ``consumers.pipeline.INSERT_DEAD_LETTERS``.
END_BATCH = """
SELECT selene_ops.writer_end_batch($1, $2::text[], $3::int[], $4::bigint[], $5::bigint[], $6::text[], $7::int[],
  $8::bigint[], $9::timestamptz[], $10::bytea[], $11::bytea[], $12::text[], $13::text[], $14::text[], $15::text[],
  $16::uuid[], $17::text[], $18::text[], $19::bool[], $20::text[], $21::bytea[])
"""
# The backends that keep a claim waiting and are writers of the same group (by ``application_name``): stalled
# writers whose partitions Kafka has given to the claimant. Any other holder (a shadow run pausing the writers,
# an operator) is waited for, never ended.
END_STALLED_WRITERS = """
SELECT a.pid, pg_terminate_backend(a.pid) AS ended, a.state, a.wait_event_type, a.wait_event,
       now() - a.xact_start AS in_transaction
FROM pg_stat_activity a
WHERE a.pid = ANY (pg_blocking_pids($1)) AND a.application_name = $2 AND a.usename = current_user
"""
SELECT_GROUP = """
SELECT topic, partition, next_offset, fence_epoch, owner_id, updated_at
FROM selene_ops.consumer_offsets WHERE consumer_group = $1 ORDER BY topic, partition
"""

TopicPartition = tuple[str, int]


def writer_application_name(group: str) -> str:
    """The ``application_name`` of every writer connection of ``group`` (PostgreSQL keeps 63 bytes of it):
    how a claimant tells a stalled writer of its group from any other session holding the offset rows."""
    return f"selene-writer {group}".encode()[:63].decode(errors="ignore")


def _fenced(claims: Iterable[Claim]) -> tuple[list[str], list[int], list[int]]:
    """Topics, partitions and fence epochs of ``claims`` in one order (topic, partition), so that two
    transactions locking offset rows lock them in the same order and queue instead of deadlocking."""
    cl = sorted(claims, key=lambda c: (c.topic, c.partition))
    return [c.topic for c in cl], [c.partition for c in cl], [c.fence_epoch for c in cl]


@dataclass(frozen=True)
class Claim:
    """A partition this consumer owns, with the epoch that proves it and where to resume."""

    topic: str
    partition: int
    next_offset: int
    fence_epoch: int


class OffsetStore:
    """The offsets of one consumer group."""

    def __init__(self, group: str, owner_id: str) -> None:
        self.group = group
        self.owner_id = owner_id

    async def claim(
        self, conn: asyncpg.Connection, partitions: Iterable[TopicPartition]
    ) -> dict[TopicPartition, Claim]:
        parts = sorted(partitions)
        if not parts:
            return {}
        rows = await conn.fetch(CLAIM, self.group, [t for t, _ in parts], [p for _, p in parts], self.owner_id)
        return {
            (r["topic"], r["partition"]): Claim(r["topic"], r["partition"], r["next_offset"], r["fence_epoch"])
            for r in rows
        }

    async def end_stalled_writers(self, observer: asyncpg.Connection, waiting_pid: int) -> list[asyncpg.Record]:
        """End the sessions of this group's writers that block backend ``waiting_pid`` (a claim); returns them."""
        return list(await observer.fetch(END_STALLED_WRITERS, waiting_pid, writer_application_name(self.group)))

    async def lock(self, conn: asyncpg.Connection, claims: Iterable[Claim]) -> dict[TopicPartition, int]:
        """Lock the rows of partitions still ours; returns their stored next offsets (others are lost)."""
        rows = await conn.fetch(LOCK_FENCED, self.group, *_fenced(claims))
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def begin(
        self,
        conn: asyncpg.Connection,
        claims: Iterable[Claim],
        scope: str,
        keyed: Sequence[tuple[str, str]],
    ) -> tuple[dict[TopicPartition, int], set[tuple[str, str]]]:
        """``lock``, the transaction scoped to the tenants in ``scope`` (``sql.tenant_scope.scope_text``) and
        which of ``keyed`` (source topic, aggregate key) are blocked by an open or held dead letter, in that
        order and in one round trip: the stored next offsets of the partitions still ours, and the blocked."""
        rows = await conn.fetch(
            BEGIN_BATCH, self.group, *_fenced(claims), scope, [t for t, _ in keyed], [k for _, k in keyed]
        )
        stored = {(r["topic"], r["partition"]): r["next_offset"] for r in rows if r["partition"] is not None}
        blocked = {(r["topic"], r["aggregate_key"]) for r in rows if r["partition"] is None}
        return stored, blocked

    async def advance(
        self, conn: asyncpg.Connection, next_offsets: dict[TopicPartition, int], claims: dict[TopicPartition, Claim]
    ) -> None:
        parts = sorted(next_offsets)
        if not parts:
            return
        await conn.execute(
            ADVANCE,
            self.group,
            [t for t, _ in parts],
            [p for _, p in parts],
            [next_offsets[tp] for tp in parts],
            [claims[tp].fence_epoch for tp in parts],
        )

    async def finish(
        self,
        conn: asyncpg.Connection,
        next_offsets: dict[TopicPartition, int],
        claims: dict[TopicPartition, Claim],
        dead_letters: Sequence[Sequence[Any]],
    ) -> None:
        """The end of a batch in one round trip: the deferred foreign keys checked (a violation raises here,
        with its SQLSTATE), ``dead_letters`` (``Pipeline.dead_letter_params``) inserted, then ``advance``."""
        parts = sorted(next_offsets)
        await conn.execute(
            END_BATCH,
            self.group,
            [t for t, _ in parts],
            [p for _, p in parts],
            [next_offsets[tp] for tp in parts],
            [claims[tp].fence_epoch for tp in parts],
            *dead_letters,
        )


async def stored_offsets(conn: asyncpg.Connection, group: str) -> dict[TopicPartition, int]:
    return {(r["topic"], r["partition"]): r["next_offset"] for r in await conn.fetch(SELECT_GROUP, group)}
