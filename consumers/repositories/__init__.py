"""Typed read repositories, one module per slice, for the engines that read what the writer wrote.

Every read runs in a transaction of its own that declares exactly one tenant, so row-level security, not
the query text, is what keeps a read inside its tenant. Give a repository a connection as the reader role
(``Settings.database_reader_url``) that is not already in a transaction.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from contracts.envelope import TENANT_PATTERN
from contracts.reasons import TenantScopeViolation
from sql.tenant_scope import set_scope


@asynccontextmanager
async def one_tenant(conn: asyncpg.Connection, tenant_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A read-only transaction scoped to ``tenant_id`` alone (a list such as ``a,b`` is refused)."""
    if not re.fullmatch(TENANT_PATTERN, tenant_id):
        raise TenantScopeViolation(f"{tenant_id!r} is not one tenant id")
    if conn.is_in_transaction():
        # The scope is transaction-local: inside a caller's transaction it would outlive this read.
        raise TenantScopeViolation("a repository read needs a connection that is not in a transaction")
    async with conn.transaction(readonly=True):
        await set_scope(conn, tenant_id)
        yield conn
