"""The tenant scope of a transaction: the one way this project tells PostgreSQL whose rows a statement may
see and change.

Every tenant table's row-level security policy is ``selene_ops.in_tenant_scope(tenant_id)`` (sql/0008),
which reads the setting ``selene.tenant_ids`` (a comma-separated list; unset or empty: no rows). The setting
is made transaction-local (``set_config(..., true)``) so a pooled connection can never carry one caller's
scope into another's transaction. Writer, replay, rebuild, repositories, write repositories and the tests
all scope through here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import asyncpg

#: Scope the current transaction to the tenants in ``$1`` (comma-separated).
SET_TENANT_SCOPE = "SELECT set_config('selene.tenant_ids', $1, true)"


def scope_text(tenants: str | Iterable[str]) -> str:
    """The setting's value: one tenant as it is, several sorted and comma-joined (no duplicates)."""
    return tenants if isinstance(tenants, str) else ",".join(sorted(set(tenants)))


async def set_scope(conn: asyncpg.Connection, tenants: str | Iterable[str]) -> None:
    """Scope the transaction ``conn`` is in (the setting ends with it)."""
    await conn.execute(SET_TENANT_SCOPE, scope_text(tenants))


@asynccontextmanager
async def scoped(conn: asyncpg.Connection, tenants: str | Iterable[str]) -> AsyncIterator[asyncpg.Connection]:
    """A transaction on ``conn`` scoped to ``tenants``."""
    async with conn.transaction():
        await set_scope(conn, tenants)
        yield conn
