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

Re-driven records are applied where live applied them, not at their offset. A re-drive appends a record
long after the writer passed its offset (e.g. ``REFERENCE_UNKNOWN``: a device registered before its user,
re-driven once the identity arrived); applied at its offset, replay would refuse it again. Where live applied
it is known in topic terms from the hash chain: a ledger has one chain per source partition, appended under
the chain head's lock by the writer and by re-drives alike, so ``chain_seq`` is the order in which live
applied that partition's rows. A re-driven row is applied right after the record at *applied_after*, the
highest source offset among the rows before it in its chain (the writer appends in offset order, so this is
the writer's last row before the re-drive, or a re-driven row between them). Projections depend only on
rows of their own partition (an aggregate's key is its partition; audit rows about a user share the user's
partition), so this reproduces live's order wherever order matters. The record is still read and checked at
its own offset; only its effect waits, in memory, until replay passes *applied_after*. An ``--as-of`` bound
at or before *applied_after* leaves it out, as live had not applied it then (the writer had not committed
that offset when the re-drive ran); a replay starting after its own offset does not read it.

Bounded memory on any topic: dead letters (to skip, or re-driven to move) are looked up per fetch for the
offset ranges it covers, not loaded whole; unaccounted and mismatched records are counted, with the first
``examples`` of each kept for the report.

Exact while the writer runs: replay first catches up to the live offsets read at start, then pauses the
writers (locking their offset rows, which every batch transaction locks first) and re-drives (closing their
gate, ``consumers.shadow.pause_redrives``), reads the live offsets again, replays the small remainder, and
compares or swaps while they wait. A re-drive that lands while the bulk is read may be of a record replay
already skipped as a dead letter: such re-drives are counted (``redriven_during``), and apply refuses.

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

from consumers.decode_workers import Decoded, DecodePool, worker_count
from consumers.ledger import LedgerRow, LedgerTable
from consumers.offsets import stored_offsets
from consumers.pipeline import Pipeline, Record
from consumers.shadow import Connections, ShadowRun, TableComparison, pause_redrives
from contracts.envelope import LedgerEvent
from contracts.kafka_clients import reader_options
from contracts.reasons import SeleneError
from contracts.registry import LEDGERS
from contracts.settings import Settings

# The dead letters among a fetch's records of one topic ($2-$4: partition, first and last offset fetched; a
# range scan of the unique source index per partition, whatever the number of dead letters; OFFSET 0 keeps
# the planner from flattening it into a scan of the topic's every dead letter, which it does on small tables):
# their status and, for a re-driven one, its chain position and the offset it was applied after (the highest
# source offset before it in its chain: from the writer's last row before it, through the re-driven rows
# between, whose chain positions are consecutive; see the module docstring).
DEAD_LETTERS_IN_FETCH = """
SELECT d.source_partition, d.source_offset, d.status, l.chain_seq, (
  SELECT max(x.source_offset) FROM {table} x
  WHERE x.source_topic = d.source_topic AND x.source_partition = d.source_partition AND x.chain_seq < l.chain_seq
    AND x.chain_seq >= coalesce((
      SELECT w.chain_seq FROM {table} w
      WHERE w.source_topic = d.source_topic AND w.source_partition = d.source_partition
        AND w.chain_seq < l.chain_seq
        AND NOT EXISTS (
          SELECT 1 FROM selene_ops.dead_letters r
          WHERE r.status = 'REDRIVEN' AND r.source_topic = w.source_topic
            AND r.source_partition = w.source_partition AND r.source_offset = w.source_offset)
      ORDER BY w.chain_seq DESC LIMIT 1), 0)
) AS applied_after
FROM unnest($2::int[], $3::bigint[], $4::bigint[]) AS f(part, lo, hi)
CROSS JOIN LATERAL (
  SELECT * FROM selene_ops.dead_letters d0
  WHERE d0.source_topic = $1 AND d0.source_partition = f.part AND d0.source_offset BETWEEN f.lo AND f.hi
  OFFSET 0
) d
LEFT JOIN {table} l ON d.status = 'REDRIVEN' AND l.tenant_id = d.tenant_id AND l.event_uuid = d.event_uuid
  AND l.source_topic = d.source_topic AND l.source_partition = d.source_partition
  AND l.source_offset = d.source_offset
"""
#: Fetches read and being decoded ahead of the one being applied: enough to keep the decode workers busy
#: while this process applies, few enough to bound memory (a fetch is up to ``Replayer.batch`` records).
READ_AHEAD = 2
# A second back: a re-drive's ``resolved_at`` is its transaction's start, just before it passes the gate.
REDRIVE_CLOCK = "SELECT clock_timestamp() - interval '1 second'"
REDRIVEN_SINCE = """
SELECT count(*) FROM selene_ops.dead_letters
WHERE source_topic = ANY($1::text[]) AND status = 'REDRIVEN' AND resolved_at >= $2
  AND ($3::text IS NULL OR tenant_id = $3)
"""
#: Unaccounted and mismatched records kept as examples for the report (all are counted).
EXAMPLES = 100
Progress = Callable[["ReplayStats"], None]
Offsets = dict[tuple[str, int], int]


class ReplayInexact(SeleneError):
    """Something changed under the replay in a way it could not follow: apply refused, run it again."""


class ReplayScopeRefused(SeleneError):
    """``--apply`` with a scope that did not rebuild the whole of what it would replace."""


@dataclass
class ReplayStats:
    """Counters of one replay run; ``unaccounted`` and ``mismatched_content`` keep the first ``examples``."""

    read: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters_skipped: int = 0
    redriven_moved: int = 0  # re-driven records applied where live applied them, after their offset
    unaccounted: list[str] = field(default_factory=list)
    unaccounted_count: int = 0
    mismatched_content: list[str] = field(default_factory=list)
    mismatched_count: int = 0
    per_ledger: dict[str, int] = field(default_factory=dict)
    total: int = 0
    started: float = field(default_factory=time.monotonic)
    examples: int = EXAMPLES

    def note_unaccounted(self, text: str) -> None:
        self.unaccounted_count += 1
        if len(self.unaccounted) < self.examples:
            self.unaccounted.append(text)

    def note_mismatch(self, text: str) -> None:
        self.mismatched_count += 1
        if len(self.mismatched_content) < self.examples:
            self.mismatched_content.append(text)

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
    #: dead letters re-driven while the replay read (before the final pause): a re-drive of a record replay had
    #: already passed is missing from the shadow, so a difference may come from them
    redriven_during: int = 0

    @property
    def equal(self) -> bool:
        s = self.stats
        return all(c.equal for c in self.comparisons) and not s.unaccounted_count and not s.mismatched_count


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


class Replayer(ShadowRun):
    """One replay run: the shadow-run template of ``consumers.shadow`` with the topics as its source; see the
    module docstring."""

    what = "replay"

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
        decode_timeout_s: float | None = None,
        examples: int = EXAMPLES,
    ) -> None:
        """``decode_workers``: processes that decode (default: ``settings.replay_decode_workers``);
        ``decode_timeout_s``: how long they may give no answer before they count as hung; ``examples``:
        unaccounted and mismatched records kept for the report (all are counted)."""
        self.pipeline = Pipeline(settings)
        super().__init__(settings, self.pipeline.projector.rebuildable(), tenant)
        names = list(ledgers) if ledgers else sorted(LEDGERS)
        unknown = [n for n in names if n not in self.pipeline.ledger_tables]
        if unknown:
            raise ValueError(f"unknown ledgers: {unknown}")
        self.ledgers = names
        self.tables: dict[str, LedgerTable] = {
            LEDGERS[n].topic(settings.topic_prefix): self.pipeline.ledger_tables[n] for n in names
        }
        self.from_offsets, self.from_time, self.as_of = from_offsets, from_time, as_of
        self.batch = batch
        self.stats = ReplayStats(examples=max(1, examples))
        self._consumer: AIOKafkaConsumer | None = None
        # Re-driven events waiting for replay to pass the offset live applied them after, per partition, as
        # (applied after, chain position, event, ledger id), sorted.
        self._moved: dict[tuple[str, int], list[tuple[int, int, LedgerEvent, int]]] = {}
        workers = settings.replay_decode_workers if decode_workers is None else decode_workers
        self.decoding = DecodePool(self.pipeline, worker_count(workers), timeout_s=decode_timeout_s)
        self._starting: asyncio.Task[None] | None = None
        self._progress: Progress | None = None
        # Where the run reads from and up to, where it is, and since when re-drives are counted (an exact run).
        self.start: Offsets = {}
        self.target: Offsets = {}
        self.position: Offsets = {}
        self._since: datetime | None = None
        self.redriven_during = 0

    def refuse_apply(self) -> str | None:
        """Why ``--apply`` is refused for this scope, or None. Apply replaces every projection table (of all
        tenants, or one) by the shadow: only a replay of every ledger the projections read, from the beginning
        of the topics to the live offsets, rebuilt all of it."""
        missing = [n for n in self.builder.projector.ledgers if n not in self.ledgers]
        if missing:
            return (
                f"replay --apply needs every ledger the projections read; without {', '.join(missing)} the "
                "swap would replace their projections with empty or partial state"
            )
        if self.from_offsets or self.from_time:
            return (
                "replay --apply replays from the beginning only: --from-offsets/--from-time would swap in the "
                "effect of a suffix of the topics"
            )
        if self.as_of:
            return (
                "replay --apply cannot use --as-of: it would rewind live to a past point while the writer keeps "
                "its current offsets and builds on the rewound state"
            )
        return None

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
        # Re-driven events due after an offset read but held by no record (none expected: a chain position
        # is always a ledger row's offset, which is read and released in ``_apply``).
        passed = [e for tp in list(self._moved) for e in self._release(tp, position[tp] - 1)]
        if passed:
            async with writer.transaction():
                await self.builder.apply(writer, passed)
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
        """One fetch of the pending partitions, cut at ``target``."""
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
        return records

    async def _dead_letters(
        self, operator: asyncpg.Connection, topic: str, table: LedgerTable, items: list[Decoded]
    ) -> tuple[set[tuple[int, int]], dict[tuple[int, int], tuple[int, int]]]:
        """For one topic's records of a fetch: the (partition, offset) of those to skip (dead letters not
        re-driven), and of the re-driven ones live applied after a later offset: (applied after, chain seq)."""
        ranges: dict[int, tuple[int, int]] = {}
        for i in items:
            lo, hi = ranges.get(i.record.partition, (i.record.offset, i.record.offset))
            ranges[i.record.partition] = (min(lo, i.record.offset), max(hi, i.record.offset))
        parts = sorted(ranges)
        rows = await operator.fetch(
            DEAD_LETTERS_IN_FETCH.format(table=table.spec.table),
            topic,
            parts,
            [ranges[p][0] for p in parts],
            [ranges[p][1] for p in parts],
        )
        skip: set[tuple[int, int]] = set()
        moved: dict[tuple[int, int], tuple[int, int]] = {}
        for r in rows:
            at = (r["source_partition"], r["source_offset"])
            if r["status"] != "REDRIVEN":
                skip.add(at)
            elif r["applied_after"] is not None and r["applied_after"] > r["source_offset"]:
                moved[at] = (r["applied_after"], r["chain_seq"])
        return skip, moved

    def _release(self, tp: tuple[str, int], offset: int) -> list[tuple[LedgerEvent, int]]:
        """The re-driven events of ``tp`` due once the record at ``offset`` has been applied, in live order."""
        waiting = self._moved.get(tp)
        out: list[tuple[LedgerEvent, int]] = []
        while waiting and waiting[0][0] <= offset:
            _, _, event, ledger_id = waiting.pop(0)
            out.append((event, ledger_id))
        return out

    async def _apply(self, operator: asyncpg.Connection, writer: asyncpg.Connection, items: list[Decoded]) -> None:
        by_topic: dict[str, list[Decoded]] = {}
        for item in items:
            by_topic.setdefault(item.record.topic, []).append(item)
        to_apply: list[tuple[LedgerEvent, int]] = []
        for topic, topic_items in by_topic.items():
            table = self.tables[topic]
            skip, moved = await self._dead_letters(operator, topic, table, topic_items)
            valid = []
            for item in topic_items:
                rec = item.record
                if (rec.partition, rec.offset) in skip:
                    self.stats.dead_letters_skipped += 1
                elif item.ledger is None:
                    # The writer would have dead-lettered it; it is not a dead letter, so it is unaccounted.
                    self.stats.note_unaccounted(f"{rec.topic}[{rec.partition}]@{rec.offset}: {item.reason}")
                else:
                    valid.append(item)
            by_uuid: dict[Any, asyncpg.Record] = {}
            if valid:
                known = await operator.fetch(
                    table.queries["provenance"], [i.tenant_id for i in valid], [i.event_id for i in valid]
                )
                by_uuid = {k["event_uuid"]: k for k in known}
            missing: list[Decoded] = []
            here: dict[int, tuple[LedgerEvent, int] | None] = {}  # id(item) -> what to apply at its offset
            for item in valid:
                rec = item.record
                hit = by_uuid.get(item.event_id)
                if hit is None:
                    missing.append(item)
                    continue
                if (hit["source_topic"], hit["source_partition"], hit["source_offset"]) != (
                    rec.topic,
                    rec.partition,
                    rec.offset,
                ):
                    self.stats.duplicates += 1
                    continue
                if bytes(hit["content_sha256"]) != item.content_sha256:
                    self.stats.note_mismatch(f"{rec.topic}[{rec.partition}]@{rec.offset}")
                self.stats.applied += 1
                assert item.ledger is not None
                self.stats.per_ledger[item.ledger] = self.stats.per_ledger.get(item.ledger, 0) + 1
                if not (item.projected and (self.tenant is None or item.tenant_id == self.tenant)):
                    continue
                entry = (self._event(item), hit[table.spec.id_column])
                later = moved.get((rec.partition, rec.offset))
                if later is None:
                    here[id(item)] = entry
                else:
                    self.stats.redriven_moved += 1
                    waiting = self._moved.setdefault((rec.topic, rec.partition), [])
                    waiting.append((later[0], later[1], *entry))
                    waiting.sort(key=lambda w: (w[0], w[1]))
            if missing:
                await self._account_missing(operator, table, missing)
            # In Kafka order, each re-driven event right after the record live applied it after.
            for item in topic_items:
                if (now := here.get(id(item))) is not None:
                    to_apply.append(now)
                to_apply += self._release((item.record.topic, item.record.partition), item.record.offset)
        if to_apply:
            async with writer.transaction():
                await self.builder.apply(writer, to_apply)

    async def _account_missing(self, operator: asyncpg.Connection, table: LedgerTable, missing: list[Decoded]) -> None:
        """Records whose event is not in the ledger under their own provenance: duplicates of a row by scoped
        idempotency key and content, or unaccounted. Without an idempotency key an event is deduplicated by
        its id alone, which is not in the ledger: a row of equal content is another event, and this one was
        lost."""
        rows = [self._row(i) for i in missing]
        existing = {(k, e.content_sha256) for e in await table.existing(operator, rows) for k in e.keys}
        for item, row in zip(missing, rows, strict=True):
            if any((k, row.content_sha256) in existing for k in table.keys(row.values)):
                self.stats.duplicates += 1
            else:
                r = item.record
                self.stats.note_unaccounted(f"{r.topic}[{r.partition}]@{r.offset}: not in {table.spec.table}")

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
        """Replay into the shadows; ``verify`` compares with live, ``apply`` swaps in (refused for a partial
        scope: ``ReplayScopeRefused``). One shadow run at a time (``ShadowRunBusy``)."""
        if apply and (why := self.refuse_apply()):
            raise ReplayScopeRefused(why)
        self._progress = progress
        outcome = await self.shadow(verify=verify, apply=apply)
        return ReplayResult(
            self.stats,
            self.start,
            self.target,
            comparisons=outcome.comparisons,
            applied=outcome.applied,
            seconds=outcome.seconds,
            redriven_during=self.redriven_during,
        )

    def exact(self, *, verify: bool, apply: bool) -> bool:
        """An ``--as-of`` replay compares with live as it is, without the final catch-up: it ends in the past."""
        return (verify or apply) and not self.as_of

    async def open(self) -> None:
        self._moved = {}
        self._consumer = AIOKafkaConsumer(
            **reader_options(
                self.settings,
                group_id=None,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=8 * 1024 * 1024,
                fetch_max_bytes=32 * 1024 * 1024,
            )
        )
        self._starting = asyncio.create_task(self.decoding.start())  # workers start while Kafka connects
        await self._consumer.start()

    async def prepare(self, conns: Connections, *, exact: bool) -> None:
        """Assign every partition of the ledger topics and fix the bounds; an exact run reads the bulk up to
        what the writer committed so far (the rest while it is paused, in the final catch-up)."""
        assert self._consumer is not None and self._starting is not None
        await self._starting
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
        self.start, self.target = await self._bounds(tps)
        if exact:
            # Re-drives in flight finish first; one that lands while the bulk runs is counted (``catch_up``).
            self._since = await conns.pauser.fetchval(REDRIVE_CLOCK)
            async with conns.pauser.transaction():
                await pause_redrives(conns.pauser)
            live = await stored_offsets(conns.operator, self.settings.consumer_group)
            self.target = {k: min(v, live.get(k, 0)) for k, v in self.target.items()}
        self.position = dict(self.start)
        self.stats.total = sum(max(0, self.target[k] - self.start[k]) for k in self.target)

    async def catch_up(self, conns: Connections, *, final: bool) -> None:
        """The bulk: up to the bounds ``prepare`` fixed. The final catch-up (writers paused): up to the offsets
        they committed, counting the re-drives that landed since the bulk began."""
        if final:
            live = await stored_offsets(conns.pauser, self.settings.consumer_group)
            self.target = {k: live.get(k, 0) for k in self.target}
            self.stats.total += sum(max(0, self.target[k] - self.position[k]) for k in self.target)
        await self._read_to(conns.operator, conns.writer, self.position, self.target, self._progress)
        if final:
            self.redriven_during = await conns.operator.fetchval(
                REDRIVEN_SINCE, list(self.tables), self._since, self.tenant
            )

    async def before_swap(self, conns: Connections) -> None:
        if self.redriven_during:
            raise ReplayInexact(
                f"{self.redriven_during} dead letters were re-driven while this replay ran, "
                "perhaps after it passed them; live is left as it was: run it again"
            )

    async def close(self) -> None:
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        self.decoding.close()
        if self._consumer is not None:
            await self._consumer.stop()
