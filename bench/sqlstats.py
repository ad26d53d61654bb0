"""Time spent per SQL statement, from asyncpg's query logger: what PostgreSQL costs a mode, statement by
statement (wall time from send to result, so it includes the round trip and any lock or fsync wait).

The writer builds its pool itself (``consumers.writer.create_pool``); in a benchmark child that name is
replaced by one whose connections carry the logger. Nothing changes in the writer's code or SQL.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import asyncpg

import consumers.writer
from consumers.db import init_connection, keep_session


class SqlStats:
    """Seconds and calls per statement (first 80 characters, whitespace folded)."""

    def __init__(self, extra_settings: dict[str, str] | None = None) -> None:
        #: PostgreSQL settings added to the writer's session (``--writer-setting``): to measure a proposal.
        self.extra_settings = dict(extra_settings or {})
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def log(self, record: Any) -> None:
        text = " ".join(str(record.query).split())[:80]
        self.seconds[text] += float(record.elapsed)
        self.calls[text] += 1

    async def init(self, conn: asyncpg.Connection) -> None:
        await init_connection(conn)
        conn.add_query_logger(self.log)

    async def create_pool(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 4,
        server_settings: dict[str, str] | None = None,
        reset_session: bool = True,
    ) -> asyncpg.Pool:
        """``consumers.db.create_pool`` with logged connections (same parameters)."""
        settings = {**(server_settings or {}), **self.extra_settings}
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=self.init,
            server_settings=settings or None,
            reset=None if reset_session else keep_session,
        )
        assert pool is not None
        return pool

    def patch_writer(self) -> None:
        """Make ``LedgerWriter.run`` build its pool with logged connections (this process only)."""
        setattr(consumers.writer, "create_pool", self.create_pool)  # noqa: B010 - the module does not export it

    def summary(self, top: int = 30) -> list[dict[str, Any]]:
        ranked = sorted(self.seconds.items(), key=lambda kv: -kv[1])[:top]
        return [
            {
                "statement": q,
                "seconds": round(s, 3),
                "calls": self.calls[q],
                "ms_per_call": round(1000 * s / self.calls[q], 2),
            }
            for q, s in ranked
        ]
