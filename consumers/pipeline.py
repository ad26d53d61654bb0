"""One batch of Kafka records into the ledgers, projections and dead letters, inside the caller's transaction.

The writer, the re-drive and (for decisions) the replay share this code. Per batch, whatever its size:
one query for blocked aggregates, one dedupe look-up for every ledger, one statement locking the chain heads and
one appending every ledger's rows with the new heads, one load and one save per projection table, one
insert of dead letters; a batch whose projections emit rows looks up their keys too (one more query per
ledger emitted to, see ``apply``). Decisions are taken in Kafka order, per aggregate:

    undecodable / invalid / wrong tenant / oversize  -> dead letter (OPEN, blocks its aggregate)
    aggregate already blocked                         -> dead letter (HELD, in order behind the first)
    same event or same scoped key, same content       -> counted duplicate, nothing written
    same scoped key, different content                -> dead letter (REJECTED, the original stands)
    a projection refuses it (state rule)              -> dead letter with the projection's reason
    an event it emits (a derived row) takes an event
      id or scoped key already used, different content -> dead letter (REJECTED, the row holding it stands)
    otherwise                                         -> appended, projections updated, and the events
                                                         the projections emitted appended with it (a
                                                         derived row identical to one already there is a
                                                         counted no-op)

If the database refuses something the Python checks let through (a constraint, a row-level security
policy), ``apply_isolated`` redoes the batch under savepoints, halving what the database refuses down to the
one bad event, which becomes a dead letter with the database's verdict while the rest still land: bad input
never stalls a partition.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import asyncpg

from consumers.ledger import LedgerRow, LedgerTable, Provenance, existing_all, insert_ledgers
from consumers.projections import LEDGER_TABLES, PROJECTIONS
from consumers.projections.base import Projection, Rejection, RowView
from consumers.projector import Projector
from contracts.codec import Decoder, key_text, visible_text
from contracts.envelope import LedgerEvent, unmarked
from contracts.reasons import ContractViolation, ReasonCode, RetriableError, SeleneError, policy
from contracts.settings import Settings
from sql.tenant_scope import set_scope

#: Records decoded between yields to the event loop by ``Pipeline.decode_yielding``: small enough that a
#: transaction in flight on the same loop is not kept waiting long for each reply (~0.7 ms of decoding; a
#: batch runs some 15 statements, each of whose replies may wait for one slice), large enough to keep the
#: loop's overhead (~10 us a yield) negligible.
DECODE_SLICE = 8
SELECT_BLOCKED = """
SELECT d.source_topic, d.aggregate_key
FROM selene_ops.dead_letters d
JOIN unnest($1::text[], $2::text[]) AS k(topic, aggregate_key)
  ON d.source_topic = k.topic AND d.aggregate_key = k.aggregate_key
WHERE d.status IN ('OPEN', 'HELD')
FOR SHARE OF d
"""
# Raw key, value and headers go in as bytes; every text parameter is text the writer made storable (see
# ``store_dead_letters``): a dead letter never fails on the record's content (issue 13, item 4).
INSERT_DEAD_LETTERS = """
INSERT INTO selene_ops.dead_letters (
  source_topic, source_partition, source_offset, kafka_timestamp, raw_key, raw_value, headers,
  ledger, tenant_id, aggregate_key, event_uuid, reason_code, error_detail, blocks, status, raw_headers)
SELECT u.topic, u.part, u.off, u.ts, u.k, u.v, u.hdr::jsonb, u.ledger, u.tenant, u.agg, u.eid, u.reason,
       u.detail, u.blocks, u.status, u.rh
FROM unnest($1::text[], $2::int[], $3::bigint[], $4::timestamptz[], $5::bytea[], $6::bytea[], $7::text[],
            $8::text[], $9::text[], $10::text[], $11::uuid[], $12::text[], $13::text[], $14::bool[], $15::text[],
            $16::bytea[])
  AS u(topic, part, off, ts, k, v, hdr, ledger, tenant, agg, eid, reason, detail, blocks, status, rh)
ON CONFLICT (source_topic, source_partition, source_offset) DO NOTHING
"""
# Deferred foreign keys are checked here, per batch, so that a violation surfaces while the batch can still be
# isolated event by event (not at COMMIT, where it would fail the whole batch). One round trip: the simple
# query protocol runs both statements.
CHECK_DEFERRED_CONSTRAINTS = "SET CONSTRAINTS ALL IMMEDIATE; SET CONSTRAINTS ALL DEFERRED"


@dataclass(frozen=True)
class Record:
    """A Kafka record as the pipeline needs it (decoupled from aiokafka's class)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int | None = None

    @classmethod
    def of(cls, message: Any) -> Record:
        """From an aiokafka ``ConsumerRecord`` (typed loosely: aiokafka's class is generic and untyped)."""
        m = message
        return cls(m.topic, m.partition, m.offset, m.key, m.value, tuple(m.headers or ()), m.timestamp)


@dataclass
class Item:
    """A record and what became of it."""

    record: Record
    event: LedgerEvent | None = None
    row: LedgerRow | None = None
    outcome: str = "pending"  # appended | duplicate | dead
    reason: ReasonCode | None = None
    detail: str = ""
    status: str | None = None  # dead-letter status when outcome == "dead"
    emitted: int = 0  # derived events appended with it (e.g. its PH1.J audit row)
    emitted_duplicates: int = 0  # derived events identical to rows already there (not appended again)
    #: ``aggregate_key`` and what it was computed from (the event, or the record without one): a batch asks
    #: for it several times per item (the blocked look-up, each decision, the dead letters)
    _aggregate_memo: tuple[object, str | None] | None = field(default=None, repr=False, compare=False)

    @property
    def aggregate_key(self) -> str | None:
        """The key naming this record's aggregate in the dead letters: escaped (``contracts.codec.key_text``),
        so a key holding U+0000 is stored and blocks its own kind, and a normal key reads as it is."""
        source: object = self.event if self.event is not None else self.record
        memo = self._aggregate_memo
        if memo is not None and memo[0] is source:
            return memo[1]
        key = key_text(self.event.kafka_key if self.event is not None else self.record.key)
        self._aggregate_memo = (source, key)
        return key

    def dead(self, reason: ReasonCode, detail: str, status: str | None = None) -> None:
        self.outcome = "dead"
        self.reason = reason
        # A detail may quote the record (a field name, a key): escaped, so the dead letter can be stored.
        self.detail = visible_text(detail)[:4000]
        self.status = status or ("OPEN" if policy(reason).blocks_aggregate else "REJECTED")


@dataclass
class BatchResult:
    """What a batch did; consumed == appended + deduplicated + dead_lettered."""

    consumed: int = 0
    appended: int = 0
    deduplicated: int = 0
    #: the deduplicated records by their ledger's replay reason code (``LedgerSpec.duplicate``): the seeds name
    #: one per slice (``OS_WORK_ORDER_IDEMPOTENCY_REPLAY``, ...), and a count by it is how a test or operator
    #: sees which one applied. Sums to ``deduplicated``.
    duplicates: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    isolated: bool = False
    #: derived rows appended on behalf of appended events (not consumed records, so not in the sum above).
    emitted: int = 0
    #: derived rows not appended because an identical row was already there (or earlier in the batch).
    emitted_duplicates: int = 0

    def add(self, other: BatchResult) -> None:
        self.consumed += other.consumed
        self.appended += other.appended
        self.deduplicated += other.deduplicated
        self.emitted += other.emitted
        self.emitted_duplicates += other.emitted_duplicates
        self.duplicates.update(other.duplicates)
        self.dead_lettered.update(other.dead_lettered)
        self.isolated = self.isolated or other.isolated

    @property
    def dead_total(self) -> int:
        return sum(self.dead_lettered.values())


_LENGTH = struct.Struct(">i")


def headers_bytes(headers: Sequence[tuple[str, bytes | None]]) -> bytes:
    """Kafka headers as bytes that keep every byte, for ``dead_letters.raw_headers``: per header, the key's
    length (4 bytes, big-endian), its UTF-8, the value's length (-1 for a null value) and the value.
    (sql/0009 wrote the same for the rows stored before it.)"""
    out = bytearray()
    for k, v in headers:
        key = k.encode("utf-8", "surrogatepass")  # aiokafka decodes keys strictly; never fail on one that is not
        out += _LENGTH.pack(len(key)) + key
        out += _LENGTH.pack(-1) if v is None else _LENGTH.pack(len(v)) + v
    return bytes(out)


def headers_from_bytes(raw: bytes) -> tuple[tuple[str, bytes], ...]:
    """The headers ``headers_bytes`` wrote, exactly: a null value reads back as None, as aiokafka gives it
    (typed ``bytes`` like ``Record.headers``, which holds what aiokafka gives)."""
    headers: list[tuple[str, bytes | None]] = []
    pos = 0
    while pos < len(raw):
        (n,) = _LENGTH.unpack_from(raw, pos)
        key = raw[pos + 4 : pos + 4 + n].decode("utf-8", "surrogatepass")
        pos += 4 + n
        (n,) = _LENGTH.unpack_from(raw, pos)
        value = None if n < 0 else raw[pos + 4 : pos + 4 + n]
        pos += 4 + max(n, 0)
        headers.append((key, value))
    return cast(tuple[tuple[str, bytes], ...], tuple(headers))


def headers_json(headers: Sequence[tuple[str, bytes | None]]) -> str:
    """Kafka headers as JSON for people (``dead_letters.headers``): keys escaped (``visible_text``, since jsonb
    stores no U+0000), values in base64. The exact headers are ``headers_bytes``."""
    return json.dumps(
        [{"key": visible_text(k), "value_b64": None if v is None else base64.b64encode(v).decode()} for k, v in headers]
    )


def headers_from_json(raw: str | list[dict[str, str]]) -> tuple[tuple[str, bytes], ...]:
    """The headers of ``headers_json``; exact only where no key needed an escape (rows before sql/0009 kept
    them all exactly, and sql/0009 copied them to ``raw_headers``)."""
    items = json.loads(raw) if isinstance(raw, str) else raw
    return tuple((h["key"], base64.b64decode(h["value_b64"] or "")) for h in items)


def _is_data_error(exc: BaseException) -> bool:
    """Errors that one bad event can cause (and isolation can pin on it), as opposed to outages."""
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    state = exc.sqlstate or ""
    return state[:2] in ("22", "23", "42") or state == "SLA01" or state.startswith("P0")


#: Retriable failures that a batch's content, not an outage, can cause, and that retrying may therefore never
#: cure: rows skipped at insert although the dedupe look-up had not found them (CONCURRENT_APPEND). A real race
#: with another writer is over by the next attempt, whose look-up sees that writer's rows; a failure that
#: keeps coming back is pinned on its event by isolation (``LedgerWriter._process``, ``apply_isolated``).
DATA_RETRIABLE = frozenset({ReasonCode.CONCURRENT_APPEND})


def retry_signature(exc: BaseException) -> str | None:
    """What makes two failed attempts at a batch "the same failure": the reason code of a retriable failure
    the batch's data may cause (``DATA_RETRIABLE``); None for outages, which are retried without limit."""
    if isinstance(exc, RetriableError) and exc.reason_code in DATA_RETRIABLE:
        return str(exc.reason_code)
    return None


def _undecided(item: Item) -> None:
    """``item`` back to how ``decode`` left it, to be decided again (every verdict field to its default)."""
    vars(item).update(vars(Item(item.record, item.event, item.row)))


def _aggregate(item: Item) -> tuple[str, str]:
    """What Kafka orders and a dead letter blocks: (source topic, aggregate key)."""
    return (item.record.topic, item.aggregate_key or "")


def _blocks(item: Item) -> bool:
    """Whether ``item``, decided, holds the later events of its aggregate (an open or held dead letter)."""
    return item.outcome == "dead" and item.status in ("OPEN", "HELD") and bool(item.aggregate_key)


def _hold(item: Item) -> None:
    item.dead(ReasonCode.HELD_BEHIND_DEAD_LETTER, "an earlier event of this aggregate is a dead letter", "HELD")


def _db_reason(exc: BaseException) -> ReasonCode:
    state = getattr(exc, "sqlstate", "") or ""
    if state == "42501":  # insufficient_privilege: a row-level security policy refused the row
        return ReasonCode.TENANT_SCOPE_VIOLATION
    if state == "23503":  # foreign_key_violation
        return ReasonCode.REFERENCE_UNKNOWN
    return ReasonCode.EVENT_SCHEMA_INVALID


class Pipeline:
    """Decode, decide and write batches. Stateless between batches; safe to share."""

    def __init__(
        self,
        settings: Settings,
        ledger_tables: dict[str, LedgerTable] | None = None,
        projections: Sequence[Projection] | None = None,
    ) -> None:
        self.settings = settings
        self.decoder = Decoder(settings.max_event_bytes)
        self.ledger_tables = LEDGER_TABLES if ledger_tables is None else ledger_tables
        #: loads, runs and saves the projections (live tables here; the shadows for replay and rebuild)
        self.projector = Projector(PROJECTIONS if projections is None else projections)
        self.projections = self.projector.projections

    # -- pure part --------------------------------------------------------------------------------------
    def decode(self, records: Iterable[Record]) -> list[Item]:
        """Decode and check every record; failures become dead-letter verdicts, nothing raises."""
        items = []
        with unmarked():  # the publisher's "validated" mark: nothing here publishes what it decodes
            for record in records:
                items.append(self._decode_one(record))
        return items

    def _decode_one(self, record: Record) -> Item:
        item = Item(record)
        try:
            event = self.decoder.decode(record.value)
            table = self.ledger_tables.get(event.ledger)
            if table is None:
                raise ContractViolation(f"no table for ledger {event.ledger}", ReasonCode.EVENT_UNKNOWN_LEDGER)
            row = table.row(event, Provenance(record.topic, record.partition, record.offset))
            # The row already holds the canonical payload: the transport check reuses it.
            self.decoder.check_transport(
                event,
                record.topic,
                record.key,
                record.headers,
                self.settings.topic_prefix,
                payload_json=row.values["payload"],
            )
            item.event = event
            item.row = row
        except SeleneError as exc:
            item.dead(exc.reason_code, exc.detail)
        return item

    async def decode_yielding(self, records: Sequence[Record]) -> list[Item]:
        """``decode``, yielding to the event loop every ``DECODE_SLICE`` records: for decoding the next
        batch while the current one is written, so that Python's work overlaps PostgreSQL's."""
        items: list[Item] = []
        for start in range(0, len(records), DECODE_SLICE):
            items.extend(self.decode(records[start : start + DECODE_SLICE]))
            await asyncio.sleep(0)
        return items

    # -- database part ----------------------------------------------------------------------------------
    @staticmethod
    def scope_of(items: Sequence[Item]) -> list[str]:
        """The tenants a batch's transaction is scoped to: those of its events still to be decided."""
        return sorted({i.event.tenant_id for i in items if i.event is not None and i.outcome == "pending"})

    @staticmethod
    def keyed(items: Sequence[Item]) -> list[tuple[str, str]]:
        """(source topic, aggregate key) of every item with a key: what the blocked look-up asks about."""
        return [(i.record.topic, k) for i in items if (k := i.aggregate_key) is not None]

    async def apply(
        self,
        conn: asyncpg.Connection,
        items: Sequence[Item],
        *,
        check_blocked: bool = True,
        begun: set[tuple[str, str]] | None = None,
        check_deferred: bool = True,
    ) -> BatchResult:
        """Decide and write ``items`` (already decoded) in the caller's transaction.

        Derived rows (what projections emit for an event) are deduplicated and conflict-checked like
        published rows, against the ledgers and the batch so far, before their source event is committed:
        a conflict refuses the source event (so live stays what a rebuild computes), an identical row is a
        counted no-op. Their keys are known only once the projections ran, so a batch that emits rows looks
        up those it has not looked up yet in a second round (one query per ledger emitted to; a batch that
        emits nothing pays nothing). If that round finds rows, the batch is decided again from the start,
        knowing them: refusing a source event changes what later events of the batch see.

        ``begun``: the blocked aggregates, when the caller has scoped the transaction to (at least) the items'
        tenants and looked them up itself (the writer, in one round trip with its offset lock); else both are
        done here. ``check_deferred=False``: the caller checks the deferred constraints itself before the
        transaction commits (the writer, in one round trip with its dead letters and offsets: sql/0028).
        """
        events = [i.event for i in items if i.event is not None and i.outcome == "pending"]
        blocked: set[tuple[str, str]] = set()
        if begun is not None:
            # The writer scoped the transaction and looked up the blocked aggregates already, with its offset
            # lock (``OffsetStore.begin``): for these items or more (before the stored offsets filtered them).
            blocked = set(begun)
        else:
            await set_scope(conn, self.scope_of(items))
            keyed = self.keyed(items) if check_blocked else []
            if keyed:
                rows = await conn.fetch(SELECT_BLOCKED, [t for t, _ in keyed], [k for _, k in keyed])
                blocked = {(r["source_topic"], r["aggregate_key"]) for r in rows}

        undecided = [i for i in items if i.outcome == "pending"]
        existing, checked = await self._existing(conn, [i.row for i in undecided if i.row is not None])
        while True:
            view = await self.projector.load(conn, events)
            to_insert, unchecked = self._decide(items, view, existing, checked, set(blocked))
            if not unchecked:
                break
            found, looked_up = await self._existing(conn, unchecked)
            checked |= looked_up
            if not found:
                break
            existing.update(found)
            for item in undecided:
                _undecided(item)

        ids: dict[uuid.UUID, int] = {}
        pending = [(self.ledger_tables[ledger], appended) for ledger, appended in to_insert.items()]
        for (table, appended), inserted in zip(pending, await insert_ledgers(conn, pending), strict=True):
            if len(inserted) != len(appended):
                raise RetriableError(
                    f"{len(appended) - len(inserted)} rows of {table.spec.name} were appended concurrently "
                    "by another writer",
                    ReasonCode.CONCURRENT_APPEND,
                )
            ids.update(inserted)
        await self.projector.save(conn, view, ids)
        if check_deferred:
            await conn.execute(CHECK_DEFERRED_CONSTRAINTS)
        return self._result(items)

    def _decide(
        self,
        items: Sequence[Item],
        view: RowView,
        existing: dict[Any, bytes],
        checked: set[Any],
        blocked: set[tuple[str, str]],
    ) -> tuple[dict[str, list[LedgerRow]], list[LedgerRow]]:
        """One pass over the batch in Kafka order (see the module docstring); returns the rows to append per
        ledger, and the derived rows among them with a key that no look-up has covered (``checked``)."""
        seen: dict[Any, bytes] = {}
        to_insert: dict[str, list[LedgerRow]] = {}
        unchecked: list[LedgerRow] = []
        for item in items:
            agg = _aggregate(item)
            if item.outcome == "dead":
                if item.status == "OPEN" and item.aggregate_key:
                    blocked.add(agg)
                continue
            if agg in blocked:
                _hold(item)
                continue
            assert item.event is not None and item.row is not None
            if self._is_duplicate(item, existing, seen):
                continue
            try:
                self.projector.apply(view, item.event)
            except Rejection as rej:
                item.dead(rej.reason_code, rej.detail)
                if item.status == "OPEN":
                    blocked.add(agg)
                continue
            emitted = [self._derived_row(item, d) for d in view.staged_emissions()]
            derived, conflict = [], ""
            for row in emitted:
                match = self._match(row, existing, seen)
                if match is None:
                    derived.append(row)
                elif not match[0]:
                    value = row.event.event_id if match[1] == "event id" else row.event.idempotency_key
                    conflict = (
                        f"the {row.event.ledger} row it derives has {match[1]} {value}, already used with a "
                        "different payload; the row holding it stands"
                    )
                    break
            if conflict:
                view.discard_event()
                item.dead(ReasonCode.IDEMPOTENCY_CONFLICT, conflict)
                continue
            view.commit_event()
            view.take_emitted()  # the rows were built from them above
            item.outcome = "appended"
            self._remember(item.row, seen)
            to_insert.setdefault(item.event.ledger, []).append(item.row)
            for row in derived:
                self._remember(row, seen)
                to_insert.setdefault(row.event.ledger, []).append(row)
                if any(k not in checked for k in self._keys(row)):
                    unchecked.append(row)
            item.emitted, item.emitted_duplicates = len(derived), len(emitted) - len(derived)
        return to_insert, unchecked

    async def apply_isolated(
        self, conn: asyncpg.Connection, items: Sequence[Item], *, check_blocked: bool = True
    ) -> BatchResult:
        """Slow path after the database refused a batch, or after a batch failed the same way too often: the
        offending events are found by halving (``_bisect``), each dead-lettered with its reason, and the
        others are written, in Kafka order, as if event by event."""
        blocked: set[tuple[str, str]] = set()
        # Every caller comes here after the whole batch failed (the writer, the re-drive): it is not tried
        # again whole; its halves are.
        await self._bisect(conn, list(items), blocked, check_blocked=check_blocked, refused=True)
        result = self._result(items)
        result.isolated = True
        return result

    async def _bisect(
        self,
        conn: asyncpg.Connection,
        chunk: list[Item],
        blocked: set[tuple[str, str]],
        *,
        check_blocked: bool,
        refused: bool = False,
    ) -> None:
        """``chunk`` under one savepoint; if the database refuses it (or it fails the same data-caused
        retriable way), each half again, down to single events (``_apply_alone``). ``refused``: the chunk is
        known to fail already, so only its halves are tried.

        Why halves: a refused batch of n events with k bad ones costs about 2k log2(n) savepoints instead of
        n (measured in the bench's drain: batches of 400 with one unknown reference each were redone event
        by event, half the drain's time). The decisions are those of the event-by-event path: halves go in
        Kafka order, an event behind an aggregate's dead letter (``blocked``, from earlier halves) is held
        before its half is tried, and a half that lands holds no event the database refused."""
        passed = set(blocked)  # the aggregates blocked by the time each event of the chunk comes, in order
        for item in chunk:
            if item.outcome == "pending" and _aggregate(item) in passed:
                _hold(item)
            if _blocks(item):
                passed.add(_aggregate(item))
        pending = [i for i in chunk if i.outcome == "pending"]
        if len(pending) == 1:
            await self._apply_alone(conn, pending[0], check_blocked=check_blocked)
        elif pending:
            if not refused:
                try:
                    async with conn.transaction():
                        await self.apply(conn, chunk, check_blocked=check_blocked)
                except (asyncpg.PostgresError, RetriableError) as exc:
                    if isinstance(exc, asyncpg.PostgresError) and not _is_data_error(exc):
                        raise
                    if isinstance(exc, RetriableError) and exc.reason_code not in DATA_RETRIABLE:
                        raise
                    for item in pending:
                        _undecided(item)
                    refused = True
            if refused:
                mid = len(chunk) // 2
                await self._bisect(conn, chunk[:mid], blocked, check_blocked=check_blocked)
                await self._bisect(conn, chunk[mid:], blocked, check_blocked=check_blocked)
                return
        blocked.update(_aggregate(i) for i in chunk if _blocks(i))

    async def _apply_alone(self, conn: asyncpg.Connection, item: Item, *, check_blocked: bool) -> None:
        """``item`` on its own under a savepoint. What the database refuses becomes its dead letter, and so
        does a data-caused retriable failure (``DATA_RETRIABLE``) that happens again at once: a race with
        another writer is over by the second attempt (its look-up sees the other writer's committed row)."""
        for attempt in (1, 2):
            try:
                async with conn.transaction():
                    await self.apply(conn, [item], check_blocked=check_blocked)
                return
            except asyncpg.PostgresError as exc:
                if not _is_data_error(exc):
                    raise
                _undecided(item)
                item.dead(_db_reason(exc), f"refused by the database ({exc.sqlstate}): {exc}")
                return
            except RetriableError as exc:
                if exc.reason_code not in DATA_RETRIABLE:
                    raise
                _undecided(item)
                if attempt == 2:
                    item.dead(exc.reason_code, f"failed the same way when written on its own: {exc.detail}")

    async def store_dead_letters(self, conn: asyncpg.Connection, items: Sequence[Item]) -> None:
        params = self.dead_letter_params(items)
        if params[0]:
            await conn.execute(INSERT_DEAD_LETTERS, *params)

    @staticmethod
    def dead_letter_params(items: Sequence[Item]) -> list[list[Any]]:
        """The 16 arrays ``INSERT_DEAD_LETTERS`` (and sql/0028's ``writer_end_batch``) take for the dead
        items of ``items``: empty arrays when there are none."""
        dead = [i for i in items if i.outcome == "dead"]
        now = datetime.now(UTC)

        def ts(i: Item) -> datetime | None:
            if i.record.timestamp_ms is None or i.record.timestamp_ms < 0:
                return now
            try:
                return datetime.fromtimestamp(i.record.timestamp_ms / 1000, UTC)
            except (ValueError, OverflowError, OSError):
                # A producer's timestamp past year 9999 (a broker whose message.timestamp.after.max.ms allows
                # it): no Python datetime holds it, and the dead letter must not fail on it. Stored as NULL.
                return None

        def tenant(i: Item) -> str | None:
            # The tenant a record proves: its event's, once the key and headers agreed with it. A record that
            # never decoded, or whose key names another tenant than its envelope, belongs to no tenant's
            # readers (the key alone would hand one tenant's payload to another's): operators only.
            return i.event.tenant_id if i.event is not None else None

        return [
            [i.record.topic for i in dead],
            [i.record.partition for i in dead],
            [i.record.offset for i in dead],
            [ts(i) for i in dead],
            [i.record.key for i in dead],
            [i.record.value for i in dead],
            [headers_json(i.record.headers) for i in dead],
            [i.event.ledger if i.event else None for i in dead],
            [tenant(i) for i in dead],
            [i.aggregate_key for i in dead],
            [i.event.event_id if i.event else None for i in dead],
            [str(i.reason) for i in dead],
            [i.detail for i in dead],
            [i.status in ("OPEN", "HELD") for i in dead],
            [i.status for i in dead],
            [headers_bytes(i.record.headers) for i in dead],
        ]

    # -- helpers ----------------------------------------------------------------------------------------
    async def _existing(self, conn: asyncpg.Connection, rows: Sequence[LedgerRow]) -> tuple[dict[Any, bytes], set[Any]]:
        """The content digests of rows already in the ledgers that share an event id or a scoped key with
        ``rows``, by key (one statement for every ledger: ``existing_all``), and every key looked up (found or
        not)."""
        by_ledger: dict[str, list[LedgerRow]] = {}
        looked_up: set[Any] = set()
        for row in rows:
            by_ledger.setdefault(row.event.ledger, []).append(row)
            looked_up.update(self._keys(row))
        found: dict[Any, bytes] = {}
        pending = [(self.ledger_tables[ledger], ledger_rows) for ledger, ledger_rows in by_ledger.items()]
        for ledger, existing in zip(by_ledger, await existing_all(conn, pending), strict=True):
            for ex in existing:
                found[(ledger, "uuid", ex.event_uuid)] = ex.content_sha256
                for key in ex.keys:
                    found[(ledger, "scope", key)] = ex.content_sha256
        return found, looked_up

    @staticmethod
    def _keys(row: LedgerRow) -> Sequence[tuple[str, str, Any]]:
        """What makes a row a duplicate of another: its event id and its dedupe keys (``LedgerTable.keys``),
        computed once when the row was built (``LedgerRow.match_keys``)."""
        return row.match_keys

    def _match(self, row: LedgerRow, existing: dict[Any, bytes], seen: dict[Any, bytes]) -> tuple[bool, str] | None:
        """None if no row holds ``row``'s keys (in the ledgers or earlier in the batch); else, for the first
        key held, whether that row is identical and which key it is ("event id" or "idempotency key")."""
        for key in self._keys(row):
            digest = existing.get(key, seen.get(key))
            if digest is not None:
                if key[1] == "uuid":
                    return digest == row.content_sha256, "event id"
                which = "unique key" if key[2][0].startswith("unique") else "idempotency key"
                return digest == row.content_sha256, which
        return None

    def _is_duplicate(self, item: Item, existing: dict[Any, bytes], seen: dict[Any, bytes]) -> bool:
        assert item.row is not None and item.event is not None
        match = self._match(item.row, existing, seen)
        if match is None:
            return False
        identical, which = match
        if identical:
            item.outcome = "duplicate"
            item.reason = self.ledger_tables[item.event.ledger].spec.duplicate
        else:
            item.dead(
                ReasonCode.IDEMPOTENCY_CONFLICT,
                f"{which} already used with a different payload; the original row stands",
            )
        return True

    def _derived_row(self, item: Item, derived: LedgerEvent) -> LedgerRow:
        """The ledger row of an event a projection emitted for ``item``, with the source record's provenance.

        Checked here because a wrong emission is a programming error, not bad input: it must stop the writer
        rather than become a dead letter. A derived event stays in its source's tenant, and no projection may
        consume it: live would not apply it (it is appended after the projections ran) but a rebuild, reading
        it back from its ledger, would, and the two would differ.
        """
        assert item.event is not None and item.row is not None
        table = self.ledger_tables.get(derived.ledger)
        if table is None or derived.tenant_id != item.event.tenant_id:
            raise ValueError(f"{derived.ledger}/{derived.event_type} emitted for {item.event.event_id} is invalid")
        if self.projector.handles(derived):
            raise ValueError(f"{derived.ledger}/{derived.event_type} is emitted and also consumed by a projection")
        return table.row(derived, item.row.provenance)

    def _remember(self, row: LedgerRow, seen: dict[Any, bytes]) -> None:
        """``row`` is appended by this batch: later events of the batch dedupe against it."""
        for key in self._keys(row):
            seen[key] = row.content_sha256

    @staticmethod
    def _result(items: Sequence[Item]) -> BatchResult:
        result = BatchResult(consumed=len(items))
        for i in items:
            if i.outcome == "appended":
                result.appended += 1
                result.emitted += i.emitted
                result.emitted_duplicates += i.emitted_duplicates
            elif i.outcome == "duplicate":
                result.deduplicated += 1
                result.duplicates[str(i.reason)] += 1
            elif i.outcome == "dead":
                result.dead_lettered[str(i.reason)] += 1
        return result
