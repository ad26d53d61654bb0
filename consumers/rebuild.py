"""Rebuild current state from the PostgreSQL ledgers (the seeds' "rebuild current from ledger").

Reads each ledger a projection consumes in the ledger's monotonic id order, page by page (keyset, as the
operator role, which reads every tenant), and feeds the shadow builder: the live projection code writes
the shadow tables. ``--verify`` then compares with live; ``--apply`` swaps the rebuilt rows in.

Exactness while the writer runs: before the final catch-up the writers of the group are paused by locking
their offset rows (each batch transaction starts by locking them) and re-drives by closing their gate
(``consumers.shadow.pause_redrives``), the shadow catches up with every ledger
row committed so far, the comparison or the swap runs, and the lock is released. Readers never see a
half-applied swap: it is one transaction.

Nothing skipped: ledger ids come from a sequence when a row is inserted, not when it commits, so a row can
commit after rows with higher ids (two writers on two partitions, or a re-drive beside the writer), and
paging ``WHERE id > position`` alone would step over it for good. Rebuild therefore reads only up to a
low-water mark known settled: it reads the highest id, then waits for every transaction that was appending to
that ledger at that moment (``RowExclusiveLock`` on the table in ``pg_locks``, held from before an insert
takes its ids until the transaction ends), so every id up to the mark is committed or rolled back before
the pages up to it are read. The wait is a writer batch's commit at most, once per round of pages.

One shadow run at a time: see ``consumers.shadow.shadow_run``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from pydantic import ValidationError

from consumers.db import connect
from consumers.ledger import LedgerTable, event_from_row
from consumers.pipeline import SET_TENANT_SCOPE, Pipeline
from consumers.shadow import (
    ShadowBuilder,
    TableComparison,
    compare,
    pause_redrives,
    projection_tables,
    shadow_run,
)
from contracts.reasons import SeleneError
from contracts.settings import Settings

PAUSE_WRITERS = "SELECT 1 FROM selene_ops.consumer_offsets WHERE consumer_group = $1 FOR UPDATE"
TENANTS_OF = "SELECT DISTINCT tenant_id FROM {table}"
SWAP_DELETE = "DELETE FROM {live} WHERE tenant_id = ANY($1::text[])"
SWAP_INSERT = "INSERT INTO {live} SELECT * FROM {shadow} WHERE tenant_id = ANY($1::text[])"
HIGHEST_ID = "SELECT coalesce(max({id}), 0) FROM {table}"
# Transactions (by virtual transaction id, unique per transaction) holding the insert lock on a ledger now.
APPENDING = """
SELECT l.virtualtransaction, l.pid FROM pg_locks l
WHERE l.locktype = 'relation' AND l.relation = $1::regclass AND l.mode = 'RowExclusiveLock' AND l.granted
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND l.pid <> pg_backend_pid()
"""
#: Polling interval while waiting for the appenders of a ledger, and how long to wait before giving up.
SETTLE_POLL_S = 0.02
SETTLE_TIMEOUT_S = 300.0

Progress = Callable[[int, float], None]


@dataclass
class RebuildResult:
    events: int = 0
    per_ledger: dict[str, int] = field(default_factory=dict)
    refused: int = 0
    seconds: float = 0.0
    comparisons: list[TableComparison] = field(default_factory=list)
    invalid_rows: list[str] = field(default_factory=list)
    applied: bool = False

    @property
    def equal(self) -> bool:
        return all(c.equal for c in self.comparisons) and not self.invalid_rows


def consumed_ledgers(pipeline: Pipeline) -> list[LedgerTable]:
    names = sorted({name for p in pipeline.projections if not p.live_only for name in p.ledgers})
    return [pipeline.ledger_tables[n] for n in names]


async def pause_writers(conn: asyncpg.Connection, group: str) -> None:
    """In the caller's transaction: hold every offset row of ``group``; its writers wait at their next batch."""
    await conn.fetch(PAUSE_WRITERS, group)


async def live_tenants(operator: asyncpg.Connection, pipeline: Pipeline) -> list[str]:
    tenants: set[str] = set()
    for t in projection_tables(pipeline):
        for table in (t.name, t.shadow):
            tenants |= {r["tenant_id"] for r in await operator.fetch(TENANTS_OF.format(table=table))}
    return sorted(tenants)


async def swap_in(
    writer: asyncpg.Connection, operator: asyncpg.Connection, pipeline: Pipeline, tenant: str | None
) -> None:
    """Replace live rows by shadow rows (all tenants, or one), in the caller's transaction on ``writer``."""
    tenants = [tenant] if tenant else await live_tenants(operator, pipeline)
    await writer.execute(SET_TENANT_SCOPE, ",".join(tenants))
    for t in projection_tables(pipeline):
        await writer.execute(SWAP_DELETE.format(live=t.name), tenants)
        await writer.execute(SWAP_INSERT.format(live=t.name, shadow=t.shadow), tenants)


class LedgerUnsettled(SeleneError):
    """A transaction appending to a ledger stayed open too long: rebuild cannot know what it will commit."""


async def settled_high(conn: asyncpg.Connection, table: LedgerTable, timeout_s: float = SETTLE_TIMEOUT_S) -> int:
    """The highest ledger id below which nothing can still appear (see the module docstring): read the highest
    id, then wait until every transaction that was appending to the table at that moment has ended."""
    high: int = await conn.fetchval(HIGHEST_ID.format(id=table.spec.id_column, table=table.spec.table))
    waiting = {r["virtualtransaction"]: r["pid"] for r in await conn.fetch(APPENDING, table.spec.table)}
    deadline = time.monotonic() + timeout_s
    while waiting:
        now = {r["virtualtransaction"] for r in await conn.fetch(APPENDING, table.spec.table)}
        waiting = {v: pid for v, pid in waiting.items() if v in now}
        if waiting and time.monotonic() > deadline:
            raise LedgerUnsettled(
                f"{table.spec.table}: transactions appending to it stayed open for {timeout_s:g}s "
                f"(backend pids {sorted(set(waiting.values()))}); the rebuild stops rather than skip their rows"
            )
        if waiting:
            await asyncio.sleep(SETTLE_POLL_S)
    return high


class Rebuilder:
    """Drives a rebuild from the ledgers into the shadow tables."""

    def __init__(self, settings: Settings, *, tenant: str | None = None, page: int = 5000) -> None:
        self.settings = settings
        self.pipeline = Pipeline(settings)
        self.builder = ShadowBuilder(self.pipeline, tenant)
        self.tenant = tenant
        self.page = page
        self.positions: dict[str, int] = {}
        self.invalid_rows: list[str] = []

    async def catch_up(
        self, operator: asyncpg.Connection, writer: asyncpg.Connection, progress: Progress | None = None
    ) -> None:
        """Apply every ledger row not yet applied, ledger by ledger, in id order, up to settled low-water marks
        (rounds of pages, until a round finds nothing new)."""
        started = time.monotonic()
        for table in consumed_ledgers(self.pipeline):
            high = await settled_high(operator, table)
            while True:
                position = self.positions.get(table.spec.name, 0)
                if position >= high:
                    high = await settled_high(operator, table)
                    if position >= high:
                        break
                fetched = await operator.fetch(table.queries["read_ordered"], position, self.page, self.tenant)
                rows = [r for r in fetched if r["ledger_id"] <= high]
                if not rows:  # nothing of this tenant up to the mark
                    self.positions[table.spec.name] = high
                    continue
                events = []
                for r in rows:
                    try:
                        events.append((event_from_row(table, dict(r)), r["ledger_id"]))
                    except ValidationError as exc:  # a row its own contract rejects: tampering, or a bad migration
                        self.invalid_rows.append(f"{table.spec.table} id {r['ledger_id']}: {exc.errors()[0]['msg']}")
                async with writer.transaction():
                    await self.builder.apply(writer, events)
                self.positions[table.spec.name] = rows[-1]["ledger_id"] if len(rows) == len(fetched) else high
                if progress:
                    progress(self.builder.stats.events, time.monotonic() - started)

    async def run(self, *, verify: bool, apply: bool, progress: Progress | None = None) -> RebuildResult:
        started = time.monotonic()
        async with shadow_run(self.settings.database_operator_url, "rebuild"):
            result = await self._run(verify=verify, apply=apply, progress=progress)
        result.seconds = time.monotonic() - started
        return result

    async def _run(self, *, verify: bool, apply: bool, progress: Progress | None) -> RebuildResult:
        operator = await connect(self.settings.database_operator_url)
        writer = await connect(self.settings.database_url)
        pauser = await connect(self.settings.database_url)
        result = RebuildResult()
        try:
            async with writer.transaction():
                await self.builder.reset(writer)
            await self.catch_up(operator, writer, progress)
            async with pauser.transaction():
                await pause_writers(pauser, self.settings.consumer_group)
                await pause_redrives(pauser)
                await self.catch_up(operator, writer, progress)
                if verify or apply:
                    async with operator.transaction(isolation="repeatable_read", readonly=True):
                        result.comparisons = await compare(operator, projection_tables(self.pipeline), self.tenant)
                if apply:
                    async with writer.transaction():
                        await swap_in(writer, operator, self.pipeline, self.tenant)
                    result.applied = True
        finally:
            for c in (operator, writer, pauser):
                await c.close()
        stats = self.builder.stats
        result.events, result.per_ledger, result.refused = stats.events, dict(stats.per_ledger), stats.refused
        result.invalid_rows = self.invalid_rows
        return result
