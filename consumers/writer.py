"""The ledger writer: a Kafka consumer group whose offsets live in PostgreSQL.

Each ``getmany`` batch becomes one PostgreSQL transaction: lock the batch's partitions' offset rows (fenced
by the epoch claimed at assignment), skip what an earlier, ambiguous commit already covered, write ledger
rows, projection changes and dead letters, advance the offsets, commit. Only then is the position
committed to Kafka, and only for lag tooling: on assignment the writer seeks to the offsets PostgreSQL
holds. A rebalance waits for the batch in flight (the rebalance listener takes the same lock), and a
retriable failure (database or broker down) retries the same batch, skipping nothing.

While a batch's transaction runs, whatever arrives is fetched and decoded (decoding is pure: bytes to typed
events and rows), up to one batch ahead, so Python's per-record work overlaps PostgreSQL's at any load.
Records fetched before their partition was claimed again (a rebalance seeks to the offset PostgreSQL holds)
are dropped unwritten and fetched again from there. The Kafka offset commit, for lag tools only, is sent
without waiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from consumers.db import create_pool, is_retriable
from consumers.kafka import await_topics, locate_unreadable
from consumers.offsets import Claim, OffsetStore, stored_offsets, writer_application_name
from consumers.pipeline import BatchResult, Item, Pipeline, Record, _is_data_error, retry_signature
from consumers.status import record_retries, retry_reason
from contracts.kafka_clients import reader_options, writer_fetch_options
from contracts.registry import LEDGERS
from contracts.settings import Settings
from sql.tenant_scope import scope_text

log = logging.getLogger("selene.writer")

Progress = Callable[["WriterStats"], None]


def lifecycle(
    event: str, message: str, *, level: int = logging.INFO, tenant: str | None = None, **fields: object
) -> None:
    """One log line per lifecycle event, its fields (topic, partition, offset, tenant, ...) kept apart from the
    message so that ``--log-format json`` gives them to a log shipper as fields (cli/logs.py)."""
    log.log(level, message, extra={"fields": {"event": event, **fields, "tenant": tenant}})


@dataclass(frozen=True)
class BatchDone:
    """A committed batch, for observers (the metrics): its size, how long its transaction took (the attempt
    that committed), when it committed, and its records' Kafka timestamps (ms; None where a record has none)."""

    records: int
    seconds: float
    committed_at_ms: int
    timestamps_ms: list[int | None]


@dataclass
class WriterStats:
    """Running totals of a writer process: what the progress line prints and the metrics export."""

    result: BatchResult = field(default_factory=BatchResult)
    batches: int = 0
    #: failed attempts at a batch (each retried); batches isolated (halved) after the retry limit
    retries: int = 0
    isolations: int = 0
    fenced_partitions: int = 0
    #: sessions of stalled writers of this group ended because they kept a claim waiting (``claim``)
    stalled_writers_ended: int = 0
    #: partitions claimed (each assignment of a partition to this writer, with a new fencing epoch)
    claimed_partitions: int = 0
    #: records per (ledger, outcome, reason): outcome appended | duplicate | dead; reason only for dead
    outcomes: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)
    #: monotonic time of the last committed batch; of the first failed attempt at the batch retried now
    last_commit: float | None = None
    retrying_since: float | None = None
    retry_reason: str = ""
    #: called with each committed batch (the metrics' histograms); none by default: no cost
    observers: list[Callable[[BatchDone], None]] = field(default_factory=list)

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.result.consumed / elapsed if elapsed > 0 else 0.0


@dataclass
class Prepared:
    """A fetched batch, decoded ahead of its transaction."""

    records: list[Record]
    items: list[Item]
    #: each partition's claim generation when the records were fetched (see ``LedgerWriter.generation``)
    generations: dict[tuple[str, int], int]

    def followed_by(self, later: Prepared) -> Prepared:
        """This batch and one fetched after it, as one. A partition claimed again in between was sought
        back to PostgreSQL's offset, so this batch's records of it are stale: they are left out (``later``
        and the fetches after it read that partition again from the right place)."""
        if not later.records:
            return self
        mine = {(r.topic, r.partition) for r in self.records}
        stale = {tp for tp in mine if self.generations.get(tp) != later.generations.get(tp)}
        return Prepared(
            [r for r in self.records if (r.topic, r.partition) not in stale] + later.records,
            [i for i in self.items if (i.record.topic, i.record.partition) not in stale] + later.items,
            later.generations,
        )


def ledger_topics(settings: Settings, ledgers: Sequence[str] | None = None) -> list[str]:
    names = ledgers or sorted(LEDGERS)
    return [LEDGERS[n].topic(settings.topic_prefix) for n in names]


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        async with self.writer.lock:  # the batch in flight finishes (or fails) first
            for tp in revoked:
                self.writer.claims.pop((tp.topic, tp.partition), None)
                offset = self.writer.positions.get((tp.topic, tp.partition))
                lifecycle("revoked", "partition revoked", topic=tp.topic, partition=tp.partition, offset=offset)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        # aiokafka logs and swallows what a listener raises, which would leave these partitions assigned
        # to us and never written until the next rebalance. ``claim`` retries outages itself; anything
        # else stops the writer (its loop raises it), so the group moves the partitions to a healthy one.
        for tp in assigned:
            lifecycle("assigned", "partition assigned", topic=tp.topic, partition=tp.partition)
        try:
            async with self.writer.lock:
                await self.writer.claim(assigned)
        except Exception as exc:
            parts = [f"{t.topic}[{t.partition}]" for t in assigned]
            log.error("claiming %s failed; the writer stops: %s", parts, exc)  # noqa: TRY400 (raised later)
            self.writer.fatal = exc


class LedgerWriter:
    """Consumes the ledger topics and writes them to PostgreSQL exactly once."""

    def __init__(
        self,
        settings: Settings,
        *,
        pipeline: Pipeline | None = None,
        owner_id: str | None = None,
        consumer_options: dict[str, object] | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline or Pipeline(settings)
        self.owner_id = owner_id or f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.offsets = OffsetStore(settings.consumer_group, self.owner_id)
        self.consumer_options = consumer_options or {}
        self.lock = asyncio.Lock()
        self.claims: dict[tuple[str, int], Claim] = {}
        self.positions: dict[tuple[str, int], int] = {}
        #: bumped whenever a partition is claimed (and the consumer seeks): records fetched under an older
        #: generation may not continue from the offset PostgreSQL holds, so they are dropped, not written
        self.generation: dict[tuple[str, int], int] = {}
        self.stats = WriterStats()
        # A pause point for fault drills (a zombie paused between fetch and write); None in production.
        self.before_write: Callable[[], Awaitable[None]] | None = None
        self._pool: asyncpg.Pool | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._kafka_commit: asyncio.Task[None] | None = None
        self._kafka_pending: dict[tuple[str, int], int] = {}
        #: an error raised where aiokafka would swallow it (the rebalance listener), raised by ``run``'s loop
        self.fatal: BaseException | None = None
        #: partitions whose "caught up" was logged since their claim (logged again after new records)
        self._caught_up_logged: set[tuple[str, int]] = set()
        self.running = False
        self._written: list[Item] = []

    @functools.cached_property
    def _ledger_of(self) -> dict[str, str]:
        return {spec.topic(self.settings.topic_prefix): name for name, spec in LEDGERS.items()}

    async def partition_lag(self, wait_s: float = 5.0) -> dict[tuple[str, int], int]:
        """Records left to write per claimed partition: its last stable offset (asked of the broker; the last
        fetch's where the broker does not answer within ``wait_s``) less the position PostgreSQL holds."""
        consumer = self._consumer
        if consumer is None or not self.running:
            return {}
        claimed = [TopicPartition(*tp) for tp in self.claims]
        assigned = consumer.assignment()
        claimed = [tp for tp in claimed if tp in assigned]
        ends: dict[TopicPartition, int] = {}
        if claimed:
            try:
                ends = await asyncio.wait_for(consumer.end_offsets(claimed), wait_s)
            except (KafkaError, TimeoutError) as exc:
                log.info("end offsets not refreshed (%s); using the last fetch's", exc)
        out = {}
        for tp in claimed:
            key = (tp.topic, tp.partition)
            if tp not in consumer.assignment() or key not in self.positions:
                continue
            lso = consumer.last_stable_offset(tp)
            end = max(ends.get(tp, -1), lso if lso is not None else -1)
            if end >= 0:
                out[key] = max(0, end - self.positions[key])
        return out

    async def claim(self, assigned: Sequence[TopicPartition]) -> None:
        """Take ownership of newly assigned partitions in PostgreSQL and seek to the stored offsets."""
        assert self._pool is not None and self._consumer is not None
        parts = [(tp.topic, tp.partition) for tp in assigned]
        delay = 0.2
        while True:
            try:
                async with self._pool.acquire() as proxy, proxy.transaction():
                    claims = await self._claim_past_stalled_writers(_conn(proxy), parts)
                break
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                log.warning("claim failed, retrying in %.1fs: %s", delay, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        for tp in assigned:
            c = claims[(tp.topic, tp.partition)]
            self.claims[(tp.topic, tp.partition)] = c
            self.stats.claimed_partitions += 1
            self._caught_up_logged.discard((tp.topic, tp.partition))
            lifecycle(
                "claimed",
                "claimed partition",
                topic=tp.topic,
                partition=tp.partition,
                offset=c.next_offset,
                epoch=c.fence_epoch,
            )
            self.positions[(tp.topic, tp.partition)] = c.next_offset
            self.generation[(tp.topic, tp.partition)] = self.generation.get((tp.topic, tp.partition), 0) + 1
            self._consumer.seek(tp, c.next_offset)

    async def _claim_past_stalled_writers(
        self, conn: asyncpg.Connection, parts: list[tuple[str, int]]
    ) -> dict[tuple[str, int], Claim]:
        """``OffsetStore.claim``, ending the sessions of this group's writers that keep it waiting.

        Why: a writer stopped in the middle of sending a statement (SIGSTOP, a frozen VM, a pause while its
        socket buffer was full) leaves its backend *active*, reading the rest of the message, inside the batch
        transaction that holds these offset rows. No PostgreSQL timeout ends that session
        (``idle_in_transaction_session_timeout`` counts only between statements, ``statement_timeout`` is not
        acted on while reading from the client), so the claim, and with it the partitions, would wait for ever
        (the zombie fault drill saw it: tests/faults/test_faults.py). Kafka has given these partitions to this
        writer, so a writer of the group holding their rows is stalled or a zombie: after the idle timeout its
        session is ended (its transaction rolls back, nothing of it lands). Sessions of other programs (a
        shadow run pausing the writers, an operator) are waited for as before."""
        assert self._pool is not None
        claiming = asyncio.ensure_future(self.offsets.claim(conn, parts))
        patience = (self.settings.writer_idle_in_transaction_timeout_ms or 30000) / 1000
        try:
            while True:
                done, _ = await asyncio.wait({claiming}, timeout=patience)
                if done:
                    return claiming.result()
                async with self._pool.acquire() as observer:
                    ended = await self.offsets.end_stalled_writers(_conn(observer), conn.get_server_pid())
                for r in ended:
                    self.stats.stalled_writers_ended += 1
                    lifecycle(
                        "stalled_writer_ended",
                        "ended the session of a stalled writer of this group that kept the claim waiting",
                        level=logging.WARNING,
                        pid=r["pid"],
                        state=r["state"],
                        waiting_on=f"{r['wait_event_type']}:{r['wait_event']}",
                        in_transaction_s=r["in_transaction"].total_seconds() if r["in_transaction"] else None,
                    )
        finally:
            if not claiming.done():
                claiming.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await claiming

    async def run(
        self,
        *,
        until_caught_up: bool = False,
        stop: asyncio.Event | None = None,
        progress: Progress | None = None,
        progress_every: float = 2.0,
        idle_timeout: float | None = None,
    ) -> WriterStats:
        """Consume until ``stop`` is set, or until every assigned partition is caught up."""
        stop = stop or asyncio.Event()
        self._pool = await create_pool(
            self.settings.database_url,
            max_size=2,
            # Everything the writer sets is transaction-scoped (set_config(..., true), SET CONSTRAINTS), so the
            # session reset query on every release (a round trip per batch) has nothing to undo.
            reset_session=False,
            server_settings={
                "idle_in_transaction_session_timeout": str(self.settings.writer_idle_in_transaction_timeout_ms),
                # How a claimant tells this group's stalled writers from other sessions (``claim``).
                "application_name": writer_application_name(self.settings.consumer_group),
                # The batch statements take arrays whose contents decide the plan (a handful of keys: index
                # probes); a cached generic plan guesses and scans whole ledgers. Measured: drain 5.5 x.
                "plan_cache_mode": "force_custom_plan",
            },
        )
        options = reader_options(
            self.settings,
            group_id=self.settings.consumer_group,
            auto_offset_reset="earliest",
            **writer_fetch_options(self.settings),
            session_timeout_ms=self.settings.consumer_session_timeout_ms,
            heartbeat_interval_ms=self.settings.consumer_heartbeat_interval_ms,
            max_poll_interval_ms=self.settings.consumer_max_poll_interval_ms,
            rebalance_timeout_ms=min(self.settings.consumer_max_poll_interval_ms, 60000),
            group_instance_id=self.settings.consumer_instance_id,
        )
        options.update(self.consumer_options)  # a caller's (a drill's) settings win
        self._consumer = AIOKafkaConsumer(**options)
        self.running = True
        started = False
        try:
            await self._consumer.start()  # (a broker that cannot be reached fails here: stopped below, pool closed)
            started = True
            await await_topics(self._consumer, ledger_topics(self.settings), stop=stop)
            self._consumer.subscribe(ledger_topics(self.settings), listener=_Rebalance(self))
            last_report = time.monotonic()
            idle_since = time.monotonic()
            prefetch = _Prefetch(self)
            try:
                while not stop.is_set():
                    if self.fatal is not None:
                        raise self.fatal
                    try:
                        batch = await prefetch.take()
                    except (KafkaError, UnicodeDecodeError) as exc:
                        # (aiokafka decodes header keys as UTF-8, as Kafka's protocol defines them; a batch
                        # holding one that is not cannot be read past: see UnreadableRecords)
                        if isinstance(exc, KafkaError) and exc.retriable:
                            raise
                        raise await locate_unreadable(self.settings, await self._resume_points(), exc) from exc
                    if progress and time.monotonic() - last_report >= progress_every:
                        progress(self.stats)
                        last_report = time.monotonic()
                    if batch.records:
                        idle_since = time.monotonic()
                        async with self.lock:
                            await self._process(batch)
                        continue
                    await self._pass_gaps(prefetch)
                    self._log_caught_up()
                    if (until_caught_up and await self._caught_up()) or (
                        idle_timeout is not None and time.monotonic() - idle_since > idle_timeout
                    ):
                        break
            finally:
                await prefetch.close()
                if self._kafka_commit is not None:
                    await asyncio.gather(self._kafka_commit, return_exceptions=True)
            if progress:
                progress(self.stats)
            return self.stats
        finally:
            self.running = False
            await self._consumer.stop()
            await self._pool.close()
            r = self.stats.result
            if started:
                lifecycle(
                    "shutdown",
                    f"writer stopped: consumed {r.consumed}, appended {r.appended}, deduplicated {r.deduplicated}, "
                    f"dead-lettered {r.dead_total}",
                    partitions=len(self.claims),
                )

    def _log_caught_up(self) -> None:
        """Log "caught up" once per claim, when a partition's stored position reaches the last stable offset
        the last fetch reported (no request: this runs on every idle turn of the loop)."""
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        for key in self.claims.keys() - self._caught_up_logged:
            tp = TopicPartition(*key)
            if tp not in assigned:
                continue
            lso = self._consumer.last_stable_offset(tp)
            at = self.positions.get(key)
            if lso is not None and at is not None and at >= lso:
                self._caught_up_logged.add(key)
                lifecycle("caught_up", "caught up", topic=key[0], partition=key[1], offset=at)

    async def _prepare(
        self, timeout_ms: int = 300, max_records: int | None = None, prefetch: _Prefetch | None = None
    ) -> Prepared:
        """Fetch the next records and decode them, yielding to the event loop as it goes so that the
        transaction in flight gets its replies while this runs."""
        assert self._consumer is not None
        data = await self._consumer.getmany(
            timeout_ms=timeout_ms, max_records=max_records or self.settings.batch_max_records
        )
        if prefetch is not None and data:  # (no await since getmany returned: the fetch position is theirs)
            prefetch.fetches += 1
            prefetch._decoding = True
        generations = dict(self.generation)
        records = [Record.of(m) for msgs in data.values() for m in msgs]
        return Prepared(records, await self.pipeline.decode_yielding(records), generations)

    async def _resume_points(self) -> dict[tuple[str, int], int]:
        """Where each assigned partition resumes: the offsets PostgreSQL holds (0 for one never written).
        Not ``positions``: a fetch may fail before the partitions are claimed."""
        assert self._consumer is not None and self._pool is not None
        async with self._pool.acquire() as proxy:
            stored = await stored_offsets(_conn(proxy), self.settings.consumer_group)
        return {(tp.topic, tp.partition): stored.get((tp.topic, tp.partition), 0) for tp in self._consumer.assignment()}

    async def _caught_up(self) -> bool:
        """True when every assigned partition's stored position reached its last stable offset: nothing
        committed is left to read (``_pass_gaps`` moves positions over markers and aborted records)."""
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        if not assignment or len(self.claims) < len(assignment):
            return False
        ends = await self._consumer.end_offsets(list(assignment))
        return all(self.positions.get((tp.topic, tp.partition), 0) >= end for tp, end in ends.items())

    async def _pass_gaps(self, prefetch: _Prefetch) -> None:
        """Store positions past offsets that hold nothing to write: transaction markers, aborted
        transactions' records (read committed skips them). The consumer's fetch position moves over them but
        no record says so, so without this the stored offset (lag, caught up, a restart's seek) would stay
        before them for as long as no later record arrives.

        Only while the prefetch holds nothing: then every offset between the stored position and the fetch
        position was passed without a record to write. One small transaction, only when there is a gap.
        """
        assert self._consumer is not None and self._pool is not None
        fetches, generations = prefetch.fetches, dict(self.generation)
        assigned = self._consumer.assignment()
        gaps: dict[tuple[str, int], int] = {}
        for key, claim in list(self.claims.items()):
            tp = TopicPartition(*key)
            if tp not in assigned:
                continue
            at = await self._consumer.position(tp)
            if at > self.positions.get(key, claim.next_offset):
                gaps[key] = at
        if not gaps or not prefetch.idle or prefetch.fetches != fetches:
            return  # nothing to pass, or records arrived meanwhile: they will move the position themselves
        async with self.lock:
            mine = {
                tp: o for tp, o in gaps.items() if tp in self.claims and self.generation.get(tp) == generations.get(tp)
            }
            if not mine:
                return
            claims = {tp: self.claims[tp] for tp in mine}
            async with self._pool.acquire() as proxy, proxy.transaction():
                conn = _conn(proxy)
                stored = await self.offsets.lock(conn, claims.values())
                mine = {tp: o for tp, o in mine.items() if tp in stored and o > stored[tp]}
                await self.offsets.advance(conn, mine, claims)
            self.positions.update(mine)
            self._commit_to_kafka(mine)

    async def _process(self, batch: Prepared) -> None:
        """Write one batch, retrying retriable failures with backoff until it lands or is fenced out.

        An outage (database or broker down) is retried without limit. A failure the batch's data may cause
        (``retry_signature``: e.g. CONCURRENT_APPEND) may never go away, so when the same one has come back
        ``writer_max_batch_retries`` times in a row the batch is isolated (halved down to single events)
        (``Pipeline.apply_isolated``): the event behind it becomes a dead letter with its reason, the others
        land. "The same" is the same reason code: the detail (row counts) may vary between attempts; a
        different data failure starts a new count, and outages in between neither count nor start one, since
        they say nothing about the data. Failed attempts and isolations are counted on the partitions' offset
        rows for ``status``: at once when the database answered, else once the batch lands.
        """
        assert self._pool is not None
        delay = 0.1
        decoded: list[Item] | None = batch.items
        signature: str | None = None  # the data failure of the last attempts, and how often in a row
        in_a_row = 0
        isolate = False
        uncounted = Counter[str]()  # failed attempts and isolations not yet counted in PostgreSQL
        reason = ""

        async def count_retries(partitions: set[tuple[str, int]]) -> bool:
            claims = [self.claims[tp] for tp in sorted(partitions) if tp in self.claims]
            assert self._pool is not None
            group = self.settings.consumer_group
            n, isolations = uncounted["retries"], uncounted["isolations"]
            return await record_retries(self._pool, group, claims, retries=n, isolations=isolations, reason=reason)

        while True:
            # (Claims and generations change only under ``self.lock``, which the caller holds.)
            current = {
                tp
                for tp in self.claims
                if self.generation.get(tp) == batch.generations.get(tp)  # not claimed again since the fetch
            }
            mine = [r for r in batch.records if (r.topic, r.partition) in current]
            if not mine:
                return
            if self.before_write is not None:
                await self.before_write()
            items = None if decoded is None else [i for i in decoded if (i.record.topic, i.record.partition) in current]
            attempt = time.monotonic()
            try:
                if isolate:
                    result, advanced = await self._transaction(mine, None, isolate=True)
                else:
                    result, advanced = await self._write(mine, items)
                break
            except Exception as exc:
                if not is_retriable(exc):
                    raise
                self.stats.retries += 1
                decoded = None  # the failed attempt marked the items: a retry decodes afresh
                failed = retry_signature(exc)
                if failed is not None:
                    in_a_row = in_a_row + 1 if failed == signature else 1
                    signature = failed
                isolating = not isolate and failed is not None and in_a_row >= self.settings.writer_max_batch_retries
                uncounted.update(retries=1, isolations=int(isolating))
                reason = retry_reason(exc)
                # Counted now if the database answered (a data failure), so a writer stuck on a batch shows.
                if failed is not None and await count_retries({(r.topic, r.partition) for r in mine}):
                    uncounted.clear()
                if self.stats.retrying_since is None:
                    self.stats.retrying_since = time.monotonic()
                self.stats.retry_reason = reason
                first = min(mine, key=lambda r: (r.topic, r.partition, r.offset))
                where: dict[str, Any] = {"topic": first.topic, "partition": first.partition, "offset": first.offset}
                if isolating:
                    isolate = True
                    self.stats.isolations += 1
                    lifecycle(
                        "isolating",
                        f"batch failed {in_a_row} times in a row; writing it event by event: {exc}",
                        level=logging.WARNING,
                        reason=reason,
                        **where,
                    )
                    continue
                lifecycle(
                    "retry",
                    f"batch failed, retrying in {delay:.1f}s: {exc}",
                    level=logging.WARNING,
                    reason=reason,
                    **where,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        done = time.monotonic()
        if uncounted:
            await count_retries({(r.topic, r.partition) for r in mine})
        self.stats.result.add(result)
        self.stats.batches += 1
        self.stats.last_commit, self.stats.retrying_since, self.stats.retry_reason = done, None, ""
        self._account(self._written, done - attempt)
        self.positions.update(advanced)
        self._commit_to_kafka(advanced)

    def _account(self, written: list[Item], seconds: float) -> None:
        """Per-ledger outcomes, a log line per dead letter, and the committed batch for observers."""
        ledgers = self._ledger_of
        outcomes = self.stats.outcomes
        for i in written:
            ledger = ledgers.get(i.record.topic, i.record.topic)
            if i.outcome == "dead":
                reason = str(i.reason)
                outcomes[(ledger, "dead", reason)] += 1
                lifecycle(
                    "dead_letter",
                    f"dead letter ({i.status or 'OPEN'}): {i.detail[:300]}",
                    tenant=i.event.tenant_id if i.event is not None else None,
                    topic=i.record.topic,
                    partition=i.record.partition,
                    offset=i.record.offset,
                    reason=reason,
                    ledger=ledger,
                )
            else:
                outcomes[(ledger, i.outcome, "")] += 1
        if self.stats.observers:
            stamps = [r.timestamp_ms if r.timestamp_ms is not None and r.timestamp_ms >= 0 else None for r in
                      (i.record for i in written)]  # fmt: skip
            done = BatchDone(len(written), seconds, int(time.time() * 1000), stamps)
            for observe in self.stats.observers:
                observe(done)

    async def _write(
        self, records: list[Record], decoded: list[Item] | None = None
    ) -> tuple[BatchResult, dict[tuple[str, int], int]]:
        """One batch transaction. ``decoded``: ``records`` already decoded (in order), or None to decode here.

        If the database refuses something the Python checks let through (a constraint, a row-level security
        policy), the transaction is rolled back whole and the batch is written again in a new one, event by
        event under savepoints (``Pipeline.apply_isolated``), so the offending event becomes a dead letter and
        the rest land. (Not a savepoint around every batch: that costs two round trips per batch for a path
        that bad input alone takes.)"""
        try:
            return await self._transaction(records, decoded, isolate=False)
        except _Refused as refused:
            log.warning("database refused the batch (%s); isolating the offending events", refused.sqlstate)
            return await self._transaction(records, None, isolate=True)

    async def _transaction(
        self, records: list[Record], decoded: list[Item] | None, *, isolate: bool
    ) -> tuple[BatchResult, dict[tuple[str, int], int]]:
        assert self._pool is not None
        parts = {(r.topic, r.partition) for r in records if (r.topic, r.partition) in self.claims}
        claims = {tp: self.claims[tp] for tp in parts}
        # Decoded before the offsets are locked (decoding is pure), so that the lock, the tenant scope and the
        # blocked look-up go in one round trip (``OffsetStore.begin``). They cover every record of the batch,
        # those the stored offsets then skip included (a retry after an ambiguous commit): a wider scope and
        # look-up than needed, never a narrower one.
        decoded = self.pipeline.decode(records) if decoded is None else decoded
        async with self._pool.acquire() as proxy, proxy.transaction():
            conn = _conn(proxy)
            scope = scope_text(self.pipeline.scope_of(decoded))
            stored, blocked = await self.offsets.begin(conn, claims.values(), scope, self.pipeline.keyed(decoded))
            for tp in sorted(parts - stored.keys()):  # fenced: another consumer owns it now
                self.claims.pop(tp, None)
                self.stats.fenced_partitions += 1
                lifecycle(
                    "fenced",
                    "fenced: partition moved to another consumer; dropping its records",
                    topic=tp[0],
                    partition=tp[1],
                    offset=self.positions.get(tp),
                    epoch=claims[tp].fence_epoch,
                )

            def wanted(r: Record) -> bool:
                return (r.topic, r.partition) in stored and r.offset >= stored[(r.topic, r.partition)]

            items = [i for i in decoded if wanted(i.record)]
            advanced = _next_offsets(items)
            if isolate:
                result = await self.pipeline.apply_isolated(conn, items)
                await self.pipeline.store_dead_letters(conn, items)
                await self.offsets.advance(conn, advanced, claims)
            else:
                try:
                    result = await self.pipeline.apply(conn, items, begun=blocked, check_deferred=False)
                    # The deferred foreign keys checked (a violation still isolates the batch), the dead
                    # letters stored and the offsets advanced, in one round trip (sql/0028).
                    dead = self.pipeline.dead_letter_params(items)
                    await self.offsets.finish(conn, advanced, claims, dead)
                except asyncpg.PostgresError as exc:
                    if not _is_data_error(exc):
                        raise
                    raise _Refused(exc.sqlstate) from exc  # rolls this transaction back
        # Where a retry after an ambiguous commit finds its records already stored, the stored offset is the
        # position reached (the write that got no reply did commit): without it the writer would never
        # count itself caught up.
        self._written = items  # (for ``_account``: the items of the transaction that committed)
        return result, {**stored, **advanced}

    def _commit_to_kafka(self, advanced: dict[tuple[str, int], int]) -> None:
        """Best effort, for lag tools only: PostgreSQL holds the offsets that count. Sent in the background
        (one at a time; a batch that lands while one is in flight adds its offsets to the next), so the
        broker's round trip is not part of every batch."""
        if not advanced:
            return
        self._kafka_pending.update(advanced)
        if self._kafka_commit is None or self._kafka_commit.done():
            self._kafka_commit = asyncio.create_task(self._send_kafka_commits())

    async def _send_kafka_commits(self) -> None:
        assert self._consumer is not None
        while self._kafka_pending:
            offsets, self._kafka_pending = self._kafka_pending, {}
            try:
                await self._consumer.commit({TopicPartition(t, p): o for (t, p), o in offsets.items()})
            except (KafkaError, AssertionError) as exc:
                log.info("kafka offset commit skipped (%s); PostgreSQL has the offsets", exc)


class _Prefetch:
    """Fetches and decodes continuously, up to one full batch ahead of the writer.

    Everything that arrives while a batch's transaction runs is decoded during that transaction (in the
    event-loop gaps while PostgreSQL works), not after it: under a steady load, not only under a backlog,
    a record's decoding is off the path from its arrival to its commit. ``take`` hands over everything
    decoded so far, joined with ``Prepared.followed_by`` (which leaves out records of partitions claimed
    again in between). A failure of the fetch (e.g. a fatal Kafka error) is raised by ``take``.
    """

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer = writer
        self.max_records = writer.settings.batch_max_records
        self.buffered: Prepared | None = None
        self.arrived = asyncio.Event()  # set when ``buffered`` has records or the fetch failed
        self.room = asyncio.Event()  # set when the buffer has room for another fetch
        self.room.set()
        self.failure: Exception | None = None
        #: fetches that returned records so far, and whether one is being decoded now (see ``idle``)
        self.fetches = 0
        self._decoding = False
        self.task = asyncio.create_task(self._run())

    @property
    def idle(self) -> bool:
        """Nothing fetched is waiting to be written: no buffered batch and no fetch being decoded."""
        return self.buffered is None and not self._decoding

    def _size(self) -> int:
        return 0 if self.buffered is None else len(self.buffered.records)

    async def _run(self) -> None:
        try:
            while True:
                await self.room.wait()
                fetched = await self.writer._prepare(max_records=self.max_records - self._size(), prefetch=self)
                self._decoding = False
                if not fetched.records:
                    continue
                self.buffered = fetched if self.buffered is None else self.buffered.followed_by(fetched)
                if self._size() >= self.max_records:
                    self.room.clear()
                self.arrived.set()
        except Exception as exc:  # handed to the writer's loop by ``take``
            self.failure = exc
            self.arrived.set()

    async def take(self, wait_seconds: float = 0.3) -> Prepared:
        """Everything decoded so far; waits up to ``wait_seconds`` for the first record."""
        if not self.arrived.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), wait_seconds)
        if self.failure is not None:
            raise self.failure
        batch, self.buffered = self.buffered, None
        self.arrived.clear()
        self.room.set()
        return batch if batch is not None else Prepared([], [], {})

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


class _Refused(Exception):
    """The database refused a batch's data (not an outage): write it again, isolating each event."""

    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def _conn(proxy: object) -> asyncpg.Connection:
    """A pooled connection as the Connection it proxies (asyncpg's stubs type them apart)."""
    return cast(asyncpg.Connection, proxy)


def _next_offsets(items: Sequence[Item]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for i in items:
        tp = (i.record.topic, i.record.partition)
        out[tp] = max(out.get(tp, 0), i.record.offset + 1)
    return out
