"""Tenant-leak checks shared by the isolation matrix (CI) and the soak (``python -m tests.faults.soak``).

Two ways a tenant could see another's rows, each checked as the application does it (a transaction that
declares its tenants with ``set_config('selene.tenant_ids', ..., true)``):

* ``rows_across_tenants``: for every tenant table and each given tenant (and an unset and an empty scope),
  connected as the writer and the reader, count the rows of any other tenant the role can see. Only the
  cross-tenant reads the migrations document (``documented_exceptions``) are skipped, and said so.
* ``pooled_interleavings``: tenants interleaved on a pool of two connections that keeps session state
  between users (as a transaction-mode pooler would), with errors injected mid-transaction: the scope must
  never outlive its transaction, nor a transaction see another tenant.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from consumers.db import connect, init_connection
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE
from tests.integration.catalogrows import tenant_tables

# writer_binding_read: sql/0002 (identities, devices, sessions) and sql/0005 (work_orders_current).
BINDING_TABLES = frozenset({"os_core.identities", "os_core.devices", "os_core.sessions", "os_core.work_orders_current"})
DEAD_LETTERS = "selene_ops.dead_letters"
LEAK_ROLES = ("selene_writer", "selene_reader")

# The documented exceptions to tenant scoping, as the SQL creates them: (policy, role, command, USING, WITH
# CHECK) per table. ``None`` for WITH CHECK means the policy has none (FOR SELECT).
Exception_ = tuple[str, str, str, str, str | None]


def documented_exceptions(table: str) -> set[Exception_]:
    """What sql/0001 (enable_tenant_rls), 0002 and 0005 (writer_binding_read) and 0004 (dead letters,
    make_shadow) document for ``table``; anything else that lets a role past its tenant scope is undocumented."""
    found: set[Exception_] = {("operator_read", "selene_operator", "SELECT", "true", None)}
    if table in BINDING_TABLES:
        found.add(("writer_binding_read", "selene_writer", "SELECT", "true", None))
    if table == DEAD_LETTERS:
        found.add(("writer_quarantine", "selene_writer", "ALL", "true", "true"))
    if table.startswith("selene_shadow."):
        found.add(("writer_read_all", "selene_writer", "SELECT", "true", None))
    return found


def reads_every_tenant(role: str, table: str) -> bool:
    return any(role == r and cmd in ("SELECT", "ALL") for _, r, cmd, _, _ in documented_exceptions(table))


def writes_every_tenant(role: str, table: str) -> bool:
    return any(role == r and check == "true" for _, r, _, _, check in documented_exceptions(table))


# -- rows visible across tenants --------------------------------------------------------------------------------

CAN_READ = "SELECT has_schema_privilege(split_part($1, '.', 1), 'USAGE') AND has_table_privilege($1, 'SELECT')"


@dataclass
class RowLeaks:
    """What ``rows_across_tenants`` counted; ``rows_seen`` must be 0."""

    tables: int = 0
    checks: int = 0
    rows_seen: int = 0
    own_rows: int = 0
    exempt: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


async def rows_across_tenants(role_urls: Mapping[str, str], tenants: Sequence[str]) -> RowLeaks:
    """For each role (URL by role name), tenant table and scope (each of ``tenants``, unset, empty): the rows of
    any other tenant visible, in a rolled-back transaction. ``own_rows`` is the positive control."""
    out = RowLeaks()
    for role, url in role_urls.items():
        conn = await connect(url)
        try:
            tables = await tenant_tables(conn)
            out.tables = max(out.tables, len(tables))
            for table in tables:
                if reads_every_tenant(role, table):
                    out.exempt.append(f"{role}:{table}")
                    continue
                if not await conn.fetchval(CAN_READ, table):
                    continue
                query = (
                    f"SELECT count(*) FILTER (WHERE tenant_id IS DISTINCT FROM $1) AS other, "
                    f"count(*) FILTER (WHERE tenant_id = $1) AS own FROM {table}"
                )
                for scope in (*tenants, None, ""):
                    async with conn.transaction():
                        if scope is not None:
                            await conn.execute(SCOPE, scope)
                        row = await conn.fetchrow(query, scope or None)
                        assert row is not None
                    out.checks += 1
                    out.own_rows += int(row["own"])
                    if row["other"]:
                        out.rows_seen += int(row["other"])
                        out.problems.append(f"{table}: {role} with scope {scope!r} saw {row['other']} rows of others")
        finally:
            await conn.close()
    return out


# -- pooled interleavings ---------------------------------------------------------------------------------------

VISIBLE = "SELECT DISTINCT tenant_id FROM os_core.audit_events WHERE tenant_id = ANY($1::text[])"
AFTER = (
    "SELECT current_setting('selene.tenant_ids', true) AS scope, "
    "(SELECT count(*) FROM os_core.audit_events WHERE tenant_id = ANY($1::text[])) AS visible"
)


class InjectedError(Exception):
    """Raised on purpose inside a scoped transaction."""


async def _keep_session_state(conn: asyncpg.Connection) -> None:
    """A pool reset that does not RESET ALL: what a transaction-mode pooler (PgBouncer) gives you."""


async def tenant_pool(url: str, *, max_size: int, reset_session: bool) -> asyncpg.Pool:
    """A pool of ``url``; without ``reset_session`` a released connection keeps its session state."""
    options: dict[str, Any] = {} if reset_session else {"reset": _keep_session_state}
    pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, init=init_connection, **options)
    assert pool is not None
    return pool


@dataclass
class Interleavings:
    """What ``pooled_interleavings`` saw: ``wrong_scope`` and ``leaks`` must be empty."""

    done: int = 0
    seconds: float = 0.0
    wrong_scope: list[str] = field(default_factory=list)
    leaks: list[str] = field(default_factory=list)

    @property
    def leaked(self) -> int:
        return len(self.wrong_scope) + len(self.leaks)


async def pooled_interleavings(
    url: str, tenants: Sequence[str], iterations: int, *, workers: int = 4, max_size: int = 2
) -> Interleavings:
    """``iterations`` (rounded down to a multiple of ``workers``) scoped transactions of random ``tenants``
    (each with rows in os_core.audit_events) on a pool of ``max_size`` connections, ``workers`` at a time,
    failing in one of three ways or not at all; after each, the same connection unscoped must see nothing."""
    tenant_list = list(tenants)
    # No RESET ALL on release: isolation must come from the transaction-scoped setting alone.
    pool = await tenant_pool(url, max_size=max_size, reset_session=False)
    out = Interleavings()

    async def scoped_work(conn: Any, tenant: str, mode: int, *, check: bool) -> None:
        """Declare the tenant, then fail in one of three ways (mode 1-3) or not at all (mode 0)."""
        await conn.execute(SCOPE, tenant)
        if mode == 1:
            raise InjectedError
        if mode == 2:
            await conn.execute("SELECT 1 / 0")  # the server aborts the transaction
        if check:
            seen = [r["tenant_id"] for r in await conn.fetch(VISIBLE, tenant_list)]
            if seen != [tenant]:
                out.wrong_scope.append(f"scope {tenant} saw {seen}")
        if mode == 3:
            raise InjectedError

    async def worker(seed_value: int, n: int) -> None:
        rng = random.Random(seed_value)
        for i in range(n):
            tenant, mode = rng.choice(tenant_list), rng.randrange(4)
            async with pool.acquire() as conn:
                try:
                    async with conn.transaction():
                        await scoped_work(conn, tenant, mode, check=i % 8 == 0 or mode == 3)
                except (InjectedError, asyncpg.DivisionByZeroError):
                    pass
                after = await conn.fetchrow(AFTER, tenant_list)  # the same pooled connection, no scope
                assert after is not None
                if after["scope"] not in ("", None) or after["visible"]:
                    out.leaks.append(f"after a {tenant} transaction (mode {mode}): {dict(after)}")
            out.done += 1

    started = time.monotonic()
    try:
        await asyncio.gather(*(worker(w, iterations // workers) for w in range(workers)))
    finally:
        await pool.close()
    out.seconds = time.monotonic() - started
    return out
