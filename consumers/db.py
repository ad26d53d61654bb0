"""PostgreSQL connections for the consumers, and which driver errors are worth a retry."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from contracts.reasons import ReasonCode, RetriableError

# SQLSTATE classes/codes that mean "the database was unavailable or the transaction lost a race":
# connection exceptions (08), operator intervention such as admin shutdown (57), insufficient resources
# (53), serialization failures and deadlocks (40).
_RETRIABLE_STATES = ("08", "57", "53", "40")


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb as Python objects (projection state); ledger payloads are passed pre-encoded as text."""
    await conn.set_type_codec("jsonb", schema="pg_catalog", encoder=_dumps, decoder=json.loads, format="text")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# Batch statements take arrays whose sizes decide the plan; a cached generic plan guesses and can scan whole
# ledgers (measured: the writer's dedupe look-up 3.5 s per batch generic vs 68 ms custom).
CUSTOM_PLANS = {"plan_cache_mode": "force_custom_plan"}


async def connect(url: str) -> asyncpg.Connection:
    try:
        conn = await asyncpg.connect(url, server_settings=CUSTOM_PLANS)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise RetriableError(f"cannot connect to PostgreSQL: {exc}", ReasonCode.DATABASE_UNAVAILABLE) from exc
    await init_connection(conn)
    return conn


async def keep_session(conn: asyncpg.Connection) -> None:
    """A pool ``reset`` that leaves the session as it is (asyncpg still rolls back an open transaction)."""


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 4,
    server_settings: dict[str, str] | None = None,
    reset_session: bool = True,
) -> asyncpg.Pool:
    """``reset_session=False`` skips asyncpg's reset query on release; only for code whose session settings
    are all transaction-scoped."""
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            server_settings=server_settings,
            reset=None if reset_session else keep_session,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # (as ``connect``: an outage, a wrong host or login, named as such rather than as a bare socket error)
        raise RetriableError(f"cannot connect to PostgreSQL: {exc}", ReasonCode.DATABASE_UNAVAILABLE) from exc
    assert pool is not None
    return pool


def is_retriable(exc: BaseException) -> bool:
    """True for outages and lost races (retry the same batch), False for data and programming errors."""
    if isinstance(exc, RetriableError):
        return True
    if isinstance(exc, asyncpg.PostgresError):
        state = exc.sqlstate or ""
        return state[:2] in _RETRIABLE_STATES
    # InternalClientError: a pooled connection whose protocol state a dropped server left mid-operation
    # ("cannot switch to state ..."): an outage's aftermath, not the batch's fault (a PostgreSQL killed and
    # restarted under the writer left one; the writer stopped on it instead of retrying).
    return isinstance(
        exc, OSError | ConnectionError | asyncpg.InterfaceError | asyncpg.InternalClientError | TimeoutError
    )
