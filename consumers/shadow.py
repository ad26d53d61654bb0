"""Shadow runs: build the projections into their shadows from a source, compare them with live, swap them in.

Replay (source: the Kafka topics, ``consumers.replay``) and rebuild (source: the PostgreSQL ledgers,
``consumers.rebuild``) are one template, ``ShadowRun``, that each fills in with where its events come from:

1. reset the shadow tables (all tenants, or one);
2. catch up from the source (the bulk, while the writer runs);
3. pause the writers at their committed offsets (locking their offset rows, which every batch transaction
   locks first) and the re-drives (closing their gate);
4. the final catch-up: the small remainder the writer committed meanwhile;
5. compare shadow and live (row count, an order-independent digest, the first differing keys) and/or swap
   the shadow rows into live in one transaction; then let the writer and the re-drives go.

Steps 3 and 4 run when the run is exact (``ShadowRun.exact``: always for rebuild; for replay, with
``--verify`` or ``--apply`` and no ``--as-of``, which ends in the past); step 5 with ``--verify``/``--apply``.

Events reach the shadows through ``ShadowBuilder``, which drives the very projector the writer uses
(``consumers.projector``: same load, apply and save) against the ``selene_shadow`` twins, so live, replay
and rebuild are one code path. A run may build a subset of the projections (``rebuild --projection``):
reset, compare and swap then touch that subset's tables only.

Only one shadow run at a time (``shadow_run``): all fill the same shadow tables, so a rebuild truncating them
while a replay swaps them in would apply a half-built state. The lock is a session advisory lock held by a
connection of its own for the whole run; a second run is refused with who holds it.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

import asyncpg

from consumers.db import connect
from consumers.projections.base import Rejection
from consumers.projector import Projector
from consumers.tables import TableSpec
from contracts.envelope import LedgerEvent
from contracts.reasons import SeleneError
from contracts.settings import Settings
from sql.tenant_scope import set_scope

DIGEST = """
SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text AS digest
FROM {table} t WHERE ($1::text IS NULL OR t.tenant_id = $1)
"""
FIRST_DIFFERENCES = """
SELECT {keys} FROM (SELECT * FROM {live} WHERE ($1::text IS NULL OR tenant_id = $1)) l
FULL JOIN (SELECT * FROM {shadow} WHERE ($1::text IS NULL OR tenant_id = $1)) s USING ({keys})
WHERE l::text IS DISTINCT FROM s::text ORDER BY {keys} LIMIT 5
"""
CLEAR_SHADOW = "DELETE FROM {shadow} WHERE ($1::text IS NULL OR tenant_id = $1)"
TRUNCATE_SHADOW = "TRUNCATE {shadow}"
PAUSE_WRITERS = "SELECT 1 FROM selene_ops.consumer_offsets WHERE consumer_group = $1 FOR UPDATE"
TENANTS_OF = "SELECT DISTINCT tenant_id FROM {table}"
SWAP_DELETE = "DELETE FROM {live} WHERE tenant_id = ANY($1::text[])"
SWAP_INSERT = "INSERT INTO {live} SELECT * FROM {shadow} WHERE tenant_id = ANY($1::text[])"
# The two-key form (objsubid 2 in pg_locks) cannot collide with the one-key locks of migrate and provision.
SHADOW_LOCK = (0x5E1E, 0x5AD0)
TRY_SHADOW_LOCK = "SELECT pg_try_advisory_lock($1, $2)"
SET_APPLICATION_NAME = "SELECT set_config('application_name', $1, false)"
SHADOW_LOCK_HOLDER = """
SELECT a.pid, a.application_name, host(a.client_addr) AS client_addr, a.usename, a.backend_start
FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 2
  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


# Re-drives append beside a paused writer: they pass this gate (shared, for their transaction) and a shadow
# run's final phase closes it (exclusive, for its pause), so no re-drive lands between the shadow's last
# catch-up and its compare or swap (a swap would otherwise drop the re-drive's projection change from live).
REDRIVE_GATE = (0x5E1E, 0x5AD1)
PASS_REDRIVE_GATE = "SELECT pg_advisory_xact_lock_shared($1, $2)"
CLOSE_REDRIVE_GATE = "SELECT pg_advisory_xact_lock($1, $2)"


async def admit_redrive(conn: asyncpg.Connection) -> None:
    """First in a re-drive's transaction: wait while a shadow run's final phase holds the gate closed."""
    await conn.execute(PASS_REDRIVE_GATE, *REDRIVE_GATE)


async def pause_redrives(conn: asyncpg.Connection) -> None:
    """In a shadow run's pause transaction (after pausing the writers): wait for re-drives in flight, keep
    new ones waiting until the transaction ends."""
    await conn.execute(CLOSE_REDRIVE_GATE, *REDRIVE_GATE)


async def pause_writers(conn: asyncpg.Connection, group: str) -> None:
    """In the caller's transaction: hold every offset row of ``group``; its writers wait at their next batch,
    at the offsets they committed."""
    await conn.fetch(PAUSE_WRITERS, group)


class ShadowRunBusy(SeleneError):
    """Another replay or rebuild is running on this database: the shadow tables are its."""


@asynccontextmanager
async def shadow_run(url: str, what: str) -> AsyncIterator[None]:
    """Hold the one shadow-run lock for the block (see the module docstring), or raise ``ShadowRunBusy``
    naming the holder. ``what`` names this run for the next one (``application_name``, with pid and host)."""
    conn = await connect(url)
    try:
        name = f"selene-ledger {what} pid {os.getpid()} on {socket.gethostname()}"[:63]
        await conn.execute(SET_APPLICATION_NAME, name)
        if not await conn.fetchval(TRY_SHADOW_LOCK, *SHADOW_LOCK):
            holder = await conn.fetchrow(SHADOW_LOCK_HOLDER, *SHADOW_LOCK)
            who = (
                f"{holder['application_name'] or 'a session'} (backend pid {holder['pid']}, user {holder['usename']}, "
                f"from {holder['client_addr'] or 'a local socket'}, since {holder['backend_start']:%H:%M:%S %Z})"
                if holder is not None
                else "a session that has just ended (try again)"
            )
            raise ShadowRunBusy(f"another shadow run holds the lock: {who}; {what} refused")
        yield
    finally:
        await conn.close()  # also releases the session lock


@dataclass
class TableComparison:
    table: str
    live_rows: int
    shadow_rows: int
    live_digest: str
    shadow_digest: str
    first_differences: list[dict[str, Any]] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return self.live_rows == self.shadow_rows and self.live_digest == self.shadow_digest


@dataclass
class ShadowStats:
    events: int = 0
    refused: int = 0
    per_ledger: dict[str, int] = field(default_factory=dict)


class ShadowBuilder:
    """Applies events, page by page, to the shadow tables with the live projector (a subset of its projections,
    if the run builds only some; never the live-only guards and emitters, see ``Projector.rebuildable``)."""

    def __init__(self, projector: Projector, tenant: str | None = None) -> None:
        self.projector = projector
        self.tenant = tenant
        self.stats = ShadowStats()

    async def reset(self, conn: asyncpg.Connection) -> None:
        if self.tenant is not None:
            # Row-level security: a DELETE reaches only the rows of declared tenants (TRUNCATE is not subject
            # to it). Without this, one tenant's shadow kept its rows and the rebuild applied on top of them.
            await set_scope(conn, self.tenant)
        for t in self.projector.tables:
            if self.tenant is None:
                await conn.execute(TRUNCATE_SHADOW.format(shadow=t.shadow))
            else:
                await conn.execute(CLEAR_SHADOW.format(shadow=t.shadow), self.tenant)

    async def apply(self, conn: asyncpg.Connection, events: Sequence[tuple[LedgerEvent, int]]) -> None:
        """Apply ``(event, ledger id)`` pairs in order, in the caller's transaction."""
        events = [(e, i) for e, i in events if self.tenant is None or e.tenant_id == self.tenant]
        if not events:
            return
        await set_scope(conn, {e.tenant_id for e, _ in events})
        view = await self.projector.load(conn, [e for e, _ in events], shadow=True)
        ids: dict[uuid.UUID, int] = {}
        for event, ledger_id in events:
            ids[event.event_id] = ledger_id
            self.stats.events += 1
            self.stats.per_ledger[event.ledger] = self.stats.per_ledger.get(event.ledger, 0) + 1
            try:
                self.projector.apply(view, event)
            except Rejection:
                self.stats.refused += 1
                continue
            view.commit_event()
        await self.projector.save(conn, view, ids, shadow=True)


async def compare(
    conn: asyncpg.Connection, tables: Sequence[TableSpec], tenant: str | None = None
) -> list[TableComparison]:
    """Shadow vs live for each table, in the caller's snapshot (use REPEATABLE READ for a moving writer)."""
    out = []
    for t in tables:
        live = await conn.fetchrow(DIGEST.format(table=t.name), tenant)
        shadow = await conn.fetchrow(DIGEST.format(table=t.shadow), tenant)
        assert live is not None and shadow is not None
        cmp = TableComparison(t.name, live["n"], shadow["n"], live["digest"], shadow["digest"])
        if not cmp.equal:
            keys = ", ".join(t.key)
            rows = await conn.fetch(FIRST_DIFFERENCES.format(keys=keys, live=t.name, shadow=t.shadow), tenant)
            cmp.first_differences = [dict(r) for r in rows]
        out.append(cmp)
    return out


async def live_tenants(operator: asyncpg.Connection, tables: Sequence[TableSpec]) -> list[str]:
    """Every tenant with rows in ``tables``, live or shadow (the operator role reads every tenant)."""
    tenants: set[str] = set()
    for t in tables:
        for table in (t.name, t.shadow):
            tenants |= {r["tenant_id"] for r in await operator.fetch(TENANTS_OF.format(table=table))}
    return sorted(tenants)


async def swap_in(
    writer: asyncpg.Connection, operator: asyncpg.Connection, tables: Sequence[TableSpec], tenant: str | None
) -> None:
    """Replace the live rows of ``tables`` by their shadow rows (all tenants, or one), in the caller's
    transaction on ``writer``. Other tables are not touched."""
    tenants = [tenant] if tenant else await live_tenants(operator, tables)
    await set_scope(writer, tenants)
    for t in tables:
        await writer.execute(SWAP_DELETE.format(live=t.name), tenants)
        await writer.execute(SWAP_INSERT.format(live=t.name, shadow=t.shadow), tenants)


@dataclass
class Connections:
    """The connections of one shadow run."""

    #: the operator role: reads every tenant (ledgers, dead letters, offsets) and compares
    operator: asyncpg.Connection
    #: the writer role: writes the shadows and swaps them in
    writer: asyncpg.Connection
    #: the writer role: holds the writers' offset rows and the re-drive gate during the final phase
    pauser: asyncpg.Connection


@dataclass
class ShadowOutcome:
    """What the template did: its comparisons (verify or apply), whether it swapped, how long it took."""

    comparisons: list[TableComparison] = field(default_factory=list)
    applied: bool = False
    seconds: float = 0.0


class ShadowRun(ABC):
    """The shadow-run template (see the module docstring); a source fills in ``catch_up`` and may fill in the
    other steps. One instance, one run."""

    #: names the run for the one that finds the lock held, and in messages ("replay", "rebuild")
    what: ClassVar[str]

    def __init__(self, settings: Settings, projector: Projector, tenant: str | None) -> None:
        self.settings = settings
        self.tenant = tenant
        self.builder = ShadowBuilder(projector, tenant)

    @property
    def projection_tables(self) -> tuple[TableSpec, ...]:
        """The projection tables this run builds, compares and swaps."""
        return self.builder.projector.tables

    async def shadow(self, *, verify: bool, apply: bool) -> ShadowOutcome:
        """Run the template under the one shadow-run lock (``ShadowRunBusy`` if another run holds it)."""
        started = time.monotonic()
        outcome = ShadowOutcome()
        async with shadow_run(self.settings.database_operator_url, self.what):
            connections: list[asyncpg.Connection] = []
            try:
                await self.open()
                s = self.settings
                for url in (s.database_operator_url, s.database_url, s.database_url):
                    connections.append(await connect(url))
                conns = Connections(*connections)
                exact = self.exact(verify=verify, apply=apply)
                await self.prepare(conns, exact=exact)
                async with conns.writer.transaction():
                    await self.builder.reset(conns.writer)
                await self.catch_up(conns, final=False)
                if exact or verify or apply:
                    async with conns.pauser.transaction():
                        if exact:
                            await pause_writers(conns.pauser, self.settings.consumer_group)
                            await pause_redrives(conns.pauser)
                            await self.catch_up(conns, final=True)
                        if verify or apply:
                            async with conns.operator.transaction(isolation="repeatable_read", readonly=True):
                                outcome.comparisons = await compare(conns.operator, self.projection_tables, self.tenant)
                        if apply:
                            await self.before_swap(conns)
                            async with conns.writer.transaction():
                                await swap_in(conns.writer, conns.operator, self.projection_tables, self.tenant)
                            outcome.applied = True
            finally:
                await self.close()
                for conn in connections:
                    await conn.close()
        outcome.seconds = time.monotonic() - started
        return outcome

    # -- what a source fills in -------------------------------------------------------------------------------
    def exact(self, *, verify: bool, apply: bool) -> bool:
        """Whether the final catch-up runs with the writers and re-drives paused (steps 3 and 4), so that the
        shadow ends where live is. Default: always."""
        return True

    async def open(self) -> None:  # noqa: B027 - optional step, nothing by default
        """Before the connections: start what reading the source needs (``close`` undoes it, even if this
        failed half-way)."""

    async def prepare(self, conns: Connections, *, exact: bool) -> None:  # noqa: B027 - optional step, nothing by default
        """Before the reset: fix the bounds of the bulk."""

    @abstractmethod
    async def catch_up(self, conns: Connections, *, final: bool) -> None:
        """Apply the source's events not applied yet (``self.builder.apply``, in the source's order): the
        bulk (``final`` False), then, with the writers paused, the rest up to what they committed."""

    async def before_swap(self, conns: Connections) -> None:  # noqa: B027 - optional step, nothing by default
        """Last check before the swap (in the pause): raise to leave live as it is."""

    async def close(self) -> None:  # noqa: B027 - optional step, nothing by default
        """After the run, failed or not: stop what ``open`` started."""
