"""Replay: rebuild current state from the Kafka topics, verify it against live, or swap it in.

A consumer with no group assigns every partition of the chosen ledger topics and reads from the beginning
(or given offsets, or a timestamp) up to a bound: the end offsets snapshotted at start, an ``--as-of``
bound (offsets or a timestamp), or, for ``--verify``/``--apply``, exactly the offsets the live writer has
committed. Events go through the live projection code into the shadow tables (``consumers.shadow``).

What replay takes from live, and why: each record's fate is decided once, by the writer. Replay skips the
records the writer dead-lettered (unless re-driven), and asks the ledger which record each appended event
came from; a later record of the same event or scoped key is a duplicate and is skipped. A record that is
neither in the ledger nor in the dead letters is *unaccounted*: an acknowledged event the writer lost. Verify
reports it and fails, as it fails on any difference between shadow and live.

Exact while the writer runs: replay first catches up to the live offsets read at start, then pauses the
writers (locking their offset rows, which every batch transaction locks first), reads the live offsets
again, replays the small remainder, and compares or swaps while they wait.

Fast: decoding (validation, canonical payload, content hash) is most of replay's work, so it runs in
``replay_decode_workers`` processes (``consumers.decode_workers``; env ``SELENE_REPLAY_DECODE_WORKERS``, 0 to
decode here) on the fetches read ahead, while this process reads Kafka and applies, in Kafka order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from consumers.db import connect
from consumers.decode_workers import Decoded, DecodePool, worker_count
from consumers.kafka import reader_options
from consumers.ledger import LedgerRow, LedgerTable
from consumers.offsets import stored_offsets
from consumers.pipeline import Pipeline, Record
from consumers.rebuild import pause_writers, swap_in
from consumers.shadow import ShadowBuilder, TableComparison, compare, projection_tables
from contracts.envelope import LEDGERS, LedgerEvent
from contracts.reasons import SeleneError
from contracts.settings import Settings

SKIPPED_DEAD_LETTERS = """
SELECT source_topic, source_partition, source_offset FROM selene_ops.dead_letters
WHERE source_topic = ANY($1::text[]) AND status <> 'REDRIVEN'
"""
#: Fetches read and being decoded ahead of the one being applied: enough to keep the decode workers busy
#: while this process applies, few enough to bound memory (a fetch is up to ``Replayer.batch`` records).
READ_AHEAD = 2
Progress = Callable[["ReplayStats"], None]
Offsets = dict[tuple[str, int], int]


@dataclass
class ReplayStats:
    """Counters of one replay run."""

    read: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters_skipped: int = 0
    unaccounted: list[str] = field(default_factory=list)
    mismatched_content: list[str] = field(default_factory=list)
    per_ledger: dict[str, int] = field(default_factory=dict)
    total: int = 0
    started: float = field(default_factory=time.monotonic)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.read / elapsed if elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        rate = self.rate
        return (self.total - self.read) / rate if rate > 0 and self.total >= self.read else None


@dataclass
class ReplayResult:
    stats: ReplayStats
    start: Offsets
    target: Offsets
    comparisons: list[TableComparison] = field(default_factory=list)
    applied: bool = False
    seconds: float = 0.0

    @property
    def equal(self) -> bool:
        return (
            all(c.equal for c in self.comparisons) and not self.stats.unaccounted and not self.stats.mismatched_content
        )


def parse_offsets(spec: str, topics: Sequence[str]) -> Offsets:
    """``topic:partition=offset,...`` or ``partition=offset,...`` (the latter for every topic)."""
    out: Offsets = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        where, _, offset = item.rpartition("=")
        topic, _, partition = where.rpartition(":")
        for t in [topic] if topic else topics:
            out[(t, int(partition))] = int(offset)
    return out


def parse_time(text: str) -> int:
    """ISO 8601 (with a zone) or epoch milliseconds -> epoch milliseconds."""
    if text.isdigit():
        return int(text)
    return int(datetime.fromisoformat(text).timestamp() * 1000)


class Replayer:
    """One replay run; see the module docstring."""

    def __init__(
        self,
        settings: Settings,
        *,
        ledgers: Sequence[str] | None = None,
        tenant: str | None = None,
        from_offsets: str | None = None,
        from_time: str | None = None,
        as_of: str | None = None,
        batch: int = 5000,
        decode_workers: int | None = None,
    ) -> None:
        """``decode_workers``: processes that decode (default: ``settings.replay_decode_workers``)."""
        self.settings = settings
        self.pipeline = Pipeline(settings)
        self.builder = ShadowBuilder(self.pipeline, tenant)
        self.tenant = tenant
        names = list(ledgers) if ledgers else sorted(LEDGERS)
        unknown = [n for n in names if n not in self.pipeline.ledger_tables]
        if unknown:
            raise ValueError(f"unknown ledgers: {unknown}")
        self.tables: dict[str, LedgerTable] = {
            LEDGERS[n].topic(settings.topic_prefix): self.pipeline.ledger_tables[n] for n in names
        }
        self.from_offsets, self.from_time, self.as_of = from_offsets, from_time, as_of
        self.batch = batch
        self.stats = ReplayStats()
        self._consumer: AIOKafkaConsumer | None = None
        self._skip: set[tuple[str, int, int]] = set()
        workers = settings.replay_decode_workers if decode_workers is None else decode_workers
        self.decoding = DecodePool(self.pipeline, worker_count(workers))

    # -- bounds ----------------------------------------------------------------------------------------
    async def _offsets_at(self, tps: list[TopicPartition], ms: int, ends: Offsets) -> Offsets:
        assert self._consumer is not None
        found = await self._consumer.offsets_for_times(dict.fromkeys(tps, ms))
        return {
            (tp.topic, tp.partition): (o.offset if o else ends[(tp.topic, tp.partition)]) for tp, o in found.items()
        }

    async def _bounds(self, tps: list[TopicPartition]) -> tuple[Offsets, Offsets]:
        assert self._consumer is not None
        ends = {(tp.topic, tp.partition): o for tp, o in (await self._consumer.end_offsets(tps)).items()}
        begins = {(tp.topic, tp.partition): o for tp, o in (await self._consumer.beginning_offsets(tps)).items()}
        start = dict(begins)
        topics = list(self.tables)
        if self.from_offsets:
            start.update({k: v for k, v in parse_offsets(self.from_offsets, topics).items() if k in start})
        elif self.from_time:
            start = await self._offsets_at(tps, parse_time(self.from_time), ends)
        target = dict(ends)
        if self.as_of:
            if "=" in self.as_of:
                target.update({k: v for k, v in parse_offsets(self.as_of, topics).items() if k in target})
            else:
                target = await self._offsets_at(tps, parse_time(self.as_of), ends)
        return start, {k: min(v, ends[k]) for k, v in target.items()}

    # -- the read loop ----------------------------------------------------------------------------------
    async def _load_skips(self, operator: asyncpg.Connection) -> None:
        rows = await operator.fetch(SKIPPED_DEAD_LETTERS, list(self.tables))
        self._skip = {(r["source_topic"], r["source_partition"], r["source_offset"]) for r in rows}

    async def _read_to(
        self,
        operator: asyncpg.Connection,
        writer: asyncpg.Connection,
        position: Offsets,
        target: Offsets,
        progress: Progress | None,
    ) -> None:
        """Read every partition from ``position`` up to ``target`` (exclusive) and apply; updates position.
        Fetching and decoding run ahead of applying (by up to ``READ_AHEAD`` fetches), in Kafka order."""
        assert self._consumer is not None
        pending = {tp for tp, end in target.items() if position[tp] < end}
        for tp in pending:
            self._consumer.seek(TopicPartition(*tp), position[tp])
        last_report = time.monotonic()
        decoded: asyncio.Queue[asyncio.Future[list[Decoded]] | None] = asyncio.Queue(READ_AHEAD)
        reader = asyncio.create_task(self._read_ahead(pending, position, target, decoded))
        try:
            while (batch := await decoded.get()) is not None:
                items = await batch
                if items:
                    await self._apply(operator, writer, items)
                if progress and time.monotonic() - last_report > 1.0:
                    progress(self.stats)
                    last_report = time.monotonic()
            await reader
        finally:
            reader.cancel()
            left: list[asyncio.Future[Any]] = [reader]
            while not decoded.empty():
                if (batch := decoded.get_nowait()) is not None:
                    batch.cancel()
                    left.append(batch)
            await asyncio.gather(*left, return_exceptions=True)
        if progress:
            progress(self.stats)

    async def _read_ahead(
        self,
        pending: set[tuple[str, int]],
        position: Offsets,
        target: Offsets,
        out: asyncio.Queue[asyncio.Future[list[Decoded]] | None],
    ) -> None:
        """Fetch until every partition reached ``target``, queueing each fetch's decoding (a task) in order;
        None ends the queue. A failed fetch is queued as a failed future, for ``_read_to`` to raise."""
        try:
            while pending:
                records = await self._fetch(pending, position, target)
                await out.put(asyncio.ensure_future(self.decoding.decode(records)))
        except Exception as exc:  # handed over to the consumer of the queue, which raises it
            failed: asyncio.Future[list[Decoded]] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            await out.put(failed)
            return
        await out.put(None)

    async def _fetch(self, pending: set[tuple[str, int]], position: Offsets, target: Offsets) -> list[Record]:
        """One fetch of the pending partitions, cut at ``target``, minus the dead-lettered records."""
        assert self._consumer is not None
        data = await self._consumer.getmany(
            *[TopicPartition(*tp) for tp in pending], timeout_ms=500, max_records=self.batch
        )
        records: list[Record] = []
        for tp, msgs in data.items():
            key = (tp.topic, tp.partition)
            for m in msgs:
                if m.offset >= target[key]:
                    break
                records.append(Record.of(m))
                position[key] = m.offset + 1
            if msgs and msgs[-1].offset + 1 >= target[key]:
                position[key] = max(position[key], target[key])
        for key in list(pending):
            # The fetch position also moves past offsets that hold no record (e.g. transaction markers).
            if position[key] < target[key] and await self._consumer.position(TopicPartition(*key)) >= target[key]:
                position[key] = target[key]
            if position[key] >= target[key]:
                pending.discard(key)
        self.stats.read += len(records)
        fresh = []
        for r in records:
            if (r.topic, r.partition, r.offset) in self._skip:
                self.stats.dead_letters_skipped += 1
            else:
                fresh.append(r)
        return fresh

    async def _apply(self, operator: asyncpg.Connection, writer: asyncpg.Connection, items: list[Decoded]) -> None:
        by_topic: dict[str, list[Decoded]] = {}
        for item in items:
            if item.ledger is None:
                # The writer would have dead-lettered it; it is not in the skip list, so it is unaccounted.
                self.stats.unaccounted.append(
                    f"{item.record.topic}[{item.record.partition}]@{item.record.offset}: {item.reason}"
                )
                continue
            by_topic.setdefault(item.record.topic, []).append(item)
        to_apply: list[tuple[LedgerEvent, int]] = []
        for topic, topic_items in by_topic.items():
            table = self.tables[topic]
            tenants = [i.tenant_id for i in topic_items]
            uuids = [i.event_id for i in topic_items]
            known = await operator.fetch(table.queries["provenance"], tenants, uuids)
            by_uuid = {k["event_uuid"]: k for k in known}
            missing: list[Decoded] = []
            for item in topic_items:
                rec = item.record
                hit = by_uuid.get(item.event_id)
                if hit is not None and (hit["source_topic"], hit["source_partition"], hit["source_offset"]) == (
                    rec.topic,
                    rec.partition,
                    rec.offset,
                ):
                    if bytes(hit["content_sha256"]) != item.content_sha256:
                        self.stats.mismatched_content.append(f"{rec.topic}[{rec.partition}]@{rec.offset}")
                    if item.projected and (self.tenant is None or item.tenant_id == self.tenant):
                        to_apply.append((self._event(item), hit[table.spec.id_column]))
                    self.stats.applied += 1
                    assert item.ledger is not None
                    self.stats.per_ledger[item.ledger] = self.stats.per_ledger.get(item.ledger, 0) + 1
                    continue
                if hit is not None:
                    self.stats.duplicates += 1
                    continue
                missing.append(item)
            if missing:
                await self._account_missing(operator, table, missing)
        if to_apply:
            async with writer.transaction():
                await self.builder.apply(writer, to_apply)

    async def _account_missing(self, operator: asyncpg.Connection, table: LedgerTable, missing: list[Decoded]) -> None:
        """Records whose event is not in the ledger under their own provenance: duplicates of a row by scoped
        idempotency key and content, or unaccounted. Without an idempotency key an event is deduplicated by
        its id alone, which is not in the ledger: a row of equal content is another event, and this one was
        lost."""
        rows = [self._row(i) for i in missing]
        existing = {(e.scope, e.content_sha256) for e in await table.existing(operator, rows) if e.scope is not None}
        for item, row in zip(missing, rows, strict=True):
            if (table.scope(row), row.content_sha256) in existing:
                self.stats.duplicates += 1
            else:
                r = item.record
                self.stats.unaccounted.append(f"{r.topic}[{r.partition}]@{r.offset}: not in {table.spec.table}")

    def _event(self, item: Decoded) -> LedgerEvent:
        """The event of a valid record: decoded here when a worker decoded the record (same decoder, same
        bytes, so the same event)."""
        if item.event is None:
            item.event = self.pipeline.decoder.decode(item.record.value)
        return item.event

    def _row(self, item: Decoded) -> LedgerRow:
        """The ledger row of a valid record, mapped here when a worker decoded the record."""
        if item.row is None:
            (again,) = self.pipeline.decode([item.record])
            if again.row is None or again.event is None:
                raise SeleneError(f"{item.record.topic}@{item.record.offset} decoded differently in this process")
            item.event, item.row = again.event, again.row
        return item.row

    # -- the run ---------------------------------------------------------------------------------------
    async def run(self, *, verify: bool = False, apply: bool = False, progress: Progress | None = None) -> ReplayResult:
        started = time.monotonic()
        self._consumer = AIOKafkaConsumer(
            **reader_options(
                self.settings,
                group_id=None,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_bytes=32 * 1024 * 1024,
            )
        )
        starting = asyncio.create_task(self.decoding.start())  # workers start while Kafka connects
        connections: list[asyncpg.Connection] = []
        try:
            await self._consumer.start()
            for url in (self.settings.database_operator_url, self.settings.database_url, self.settings.database_url):
                connections.append(await connect(url))
            operator, writer, pauser = connections
            await starting
            tps = []
            for topic in self.tables:
                parts = self._consumer.partitions_for_topic(topic)
                if not parts:
                    await self._consumer._client.force_metadata_update()
                    parts = self._consumer.partitions_for_topic(topic) or set()
                tps += [TopicPartition(topic, p) for p in sorted(parts)]
            if not tps:
                raise SeleneError("no ledger topics to replay (run `selene-ledger topics ensure`)")
            self._consumer.assign(tps)
            start, target = await self._bounds(tps)
            exact = (verify or apply) and not self.as_of
            if exact:  # bulk up to what the writer committed so far; the rest while it is paused
                live = await stored_offsets(operator, self.settings.consumer_group)
                target = {k: min(v, live.get(k, 0)) for k, v in target.items()}
            position = dict(start)
            self.stats.total = sum(max(0, target[k] - start[k]) for k in target)
            async with writer.transaction():
                await self.builder.reset(writer)
            await self._load_skips(operator)
            await self._read_to(operator, writer, position, target, progress)
            result = ReplayResult(self.stats, start, target)
            if verify or apply:
                async with pauser.transaction():
                    if exact:
                        await pause_writers(pauser, self.settings.consumer_group)
                        live = await stored_offsets(pauser, self.settings.consumer_group)
                        final = {k: live.get(k, 0) for k in target}
                        self.stats.total += sum(max(0, final[k] - position[k]) for k in final)
                        await self._load_skips(operator)
                        await self._read_to(operator, writer, position, final, progress)
                        result.target = final
                    async with operator.transaction(isolation="repeatable_read", readonly=True):
                        result.comparisons = await compare(operator, projection_tables(self.pipeline), self.tenant)
                    if apply:
                        async with writer.transaction():
                            await swap_in(writer, operator, self.pipeline, self.tenant)
                        result.applied = True
        finally:
            await asyncio.gather(starting, return_exceptions=True)
            self.decoding.close()
            await self._consumer.stop()
            for c in connections:
                await c.close()
        result.seconds = time.monotonic() - started
        return result
