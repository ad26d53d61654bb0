"""Rebuild current state from the PostgreSQL ledgers (the seeds' "rebuild current from ledger").

The shadow-run template of ``consumers.shadow`` with the ledgers as its source: each catch-up reads every
ledger the projections consume in the ledger's monotonic id order, page by page (keyset, as the operator
role, which reads every tenant), and feeds the shadow builder: the live projection code writes the shadow
tables. ``--verify`` then compares with live; ``--apply`` swaps the rebuilt rows in. With ``projections``
(``--projection NAME``) only those projections are rebuilt, from the ledgers they read, and only their
tables are compared and swapped.

Exactness while the writer runs: the final catch-up, the comparison and the swap run with the writers and
re-drives paused (the template's final phase), so the shadow ends with every ledger row committed so far.
Readers never see a half-applied swap: it is one transaction.

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from pydantic import ValidationError

from consumers.ledger import LedgerTable, event_from_row
from consumers.pipeline import Pipeline
from consumers.shadow import Connections, ShadowRun, TableComparison
from contracts.reasons import SeleneError
from contracts.settings import Settings

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
    #: the projections rebuilt, by name
    projections: tuple[str, ...] = ()

    @property
    def equal(self) -> bool:
        return all(c.equal for c in self.comparisons) and not self.invalid_rows


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


class Rebuilder(ShadowRun):
    """Drives a rebuild from the ledgers into the shadow tables."""

    what = "rebuild"

    def __init__(
        self,
        settings: Settings,
        *,
        tenant: str | None = None,
        page: int = 5000,
        projections: Sequence[str] | None = None,
    ) -> None:
        """``projections``: the names of the projections to rebuild (default all); an unknown name raises
        ``consumers.projector.UnknownProjection``, which lists the known ones."""
        self.pipeline = Pipeline(settings)
        super().__init__(settings, self.pipeline.projector.rebuildable(projections), tenant)
        self.ledgers: list[LedgerTable] = [self.pipeline.ledger_tables[n] for n in self.builder.projector.ledgers]
        self.page = page
        self.positions: dict[str, int] = {}
        self.invalid_rows: list[str] = []
        self._progress: Progress | None = None
        self._started = time.monotonic()

    async def catch_up(self, conns: Connections, *, final: bool) -> None:
        """Apply every ledger row not yet applied, ledger by ledger, in id order, up to settled low-water marks
        (rounds of pages, until a round finds nothing new)."""
        operator, writer = conns.operator, conns.writer
        for table in self.ledgers:
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
                if self._progress:
                    self._progress(self.builder.stats.events, time.monotonic() - self._started)

    async def run(self, *, verify: bool, apply: bool, progress: Progress | None = None) -> RebuildResult:
        self._progress, self._started = progress, time.monotonic()
        outcome = await self.shadow(verify=verify, apply=apply)
        stats = self.builder.stats
        return RebuildResult(
            events=stats.events,
            per_ledger=dict(stats.per_ledger),
            refused=stats.refused,
            seconds=outcome.seconds,
            comparisons=outcome.comparisons,
            invalid_rows=self.invalid_rows,
            applied=outcome.applied,
            projections=self.builder.projector.names,
        )
