"""Rebuild current state from the PostgreSQL ledgers (the seeds' "rebuild current from ledger").

Reads each ledger a projection consumes in the ledger's monotonic id order, page by page (keyset, as the
operator role, which reads every tenant), and feeds the shadow builder: the live projection code writes
the shadow tables. ``--verify`` then compares with live; ``--apply`` swaps the rebuilt rows in.

Exactness while the writer runs: before the final catch-up the writers of the group are paused by locking
their offset rows (each batch transaction starts by locking them), the shadow catches up with every ledger
row committed so far, the comparison or the swap runs, and the lock is released. Readers never see a
half-applied swap: it is one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg
from pydantic import ValidationError

from consumers.db import connect
from consumers.ledger import LedgerTable, event_from_row
from consumers.pipeline import SET_TENANT_SCOPE, Pipeline
from consumers.shadow import ShadowBuilder, TableComparison, compare, projection_tables
from contracts.settings import Settings

PAUSE_WRITERS = "SELECT 1 FROM selene_ops.consumer_offsets WHERE consumer_group = $1 FOR UPDATE"
TENANTS_OF = "SELECT DISTINCT tenant_id FROM {table}"
SWAP_DELETE = "DELETE FROM {live} WHERE tenant_id = ANY($1::text[])"
SWAP_INSERT = "INSERT INTO {live} SELECT * FROM {shadow} WHERE tenant_id = ANY($1::text[])"

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
        """Apply every ledger row not yet applied, ledger by ledger, in id order."""
        started = time.monotonic()
        for table in consumed_ledgers(self.pipeline):
            while True:
                rows = await operator.fetch(
                    table.queries["read_ordered"], self.positions.get(table.spec.name, 0), self.page, self.tenant
                )
                if not rows:
                    break
                events = []
                for r in rows:
                    try:
                        events.append((event_from_row(table, dict(r)), r["ledger_id"]))
                    except ValidationError as exc:  # a row its own contract rejects: tampering, or a bad migration
                        self.invalid_rows.append(f"{table.spec.table} id {r['ledger_id']}: {exc.errors()[0]['msg']}")
                async with writer.transaction():
                    await self.builder.apply(writer, events)
                self.positions[table.spec.name] = rows[-1]["ledger_id"]
                if progress:
                    progress(self.builder.stats.events, time.monotonic() - started)

    async def run(self, *, verify: bool, apply: bool, progress: Progress | None = None) -> RebuildResult:
        started = time.monotonic()
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
        result.seconds = time.monotonic() - started
        return result
