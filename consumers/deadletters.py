"""Operating the dead letters: list, show, discard, and re-drive a blocked aggregate in order.

A re-drive takes an aggregate's OPEN and HELD dead letters in Kafka order and runs them through the same
pipeline as the live writer. Those that now pass are appended (REDRIVEN); the first that still fails stays
OPEN (with its current reason) and the rest stay HELD behind it. Statuses change in the same transaction as
the appends, and the ledger's unique keys back that up, so running a re-drive twice appends nothing twice.

Concurrency with the live writer: the writer reads the blocking rows ``FOR SHARE``; a re-drive first locks
them ``FOR UPDATE`` and only then reads the aggregate's dead letters, so an event the writer held a moment
ago is included, and an event the writer sees after the re-drive is applied normally, after the others.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from consumers.db import is_retriable
from consumers.pipeline import BatchResult, Pipeline, Record, _is_data_error, headers_from_bytes, headers_json
from consumers.shadow import admit_redrive

LIST = """
SELECT dead_letter_id, source_topic, source_partition, source_offset, ledger, tenant_id, aggregate_key,
       reason_code, status, blocks, created_at, resolved_at, left(error_detail, 200) AS error_detail
FROM selene_ops.dead_letters
WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR reason_code = $2)
ORDER BY dead_letter_id DESC LIMIT $3
"""
SHOW = "SELECT * FROM selene_ops.dead_letters WHERE dead_letter_id = $1"
BY_REASON = """
SELECT reason_code, status, count(*) AS n FROM selene_ops.dead_letters GROUP BY 1, 2 ORDER BY 1, 2
"""
LOCK_BLOCKERS = """
SELECT dead_letter_id FROM selene_ops.dead_letters
WHERE source_topic = $1 AND aggregate_key = $2 AND status IN ('OPEN', 'HELD') FOR UPDATE
"""
SELECT_ONE = """
SELECT dead_letter_id, source_topic, source_partition, source_offset, raw_key, raw_value, raw_headers,
       kafka_timestamp, reason_code, error_detail, status, aggregate_key
FROM selene_ops.dead_letters WHERE dead_letter_id = $1 FOR UPDATE
"""
SELECT_AGGREGATE = """
SELECT dead_letter_id, source_topic, source_partition, source_offset, raw_key, raw_value, raw_headers,
       kafka_timestamp, reason_code, error_detail
FROM selene_ops.dead_letters
WHERE source_topic = $1 AND aggregate_key = $2 AND status IN ('OPEN', 'HELD')
ORDER BY source_partition, source_offset
"""
SELECT_BLOCKED_AGGREGATES = """
SELECT DISTINCT source_topic, aggregate_key FROM selene_ops.dead_letters
WHERE status IN ('OPEN', 'HELD') AND aggregate_key IS NOT NULL
"""
SET_VERDICT = """
UPDATE selene_ops.dead_letters d
SET status = u.status, reason_code = u.reason, error_detail = u.detail, blocks = u.status IN ('OPEN', 'HELD'),
    resolved_at = CASE WHEN u.status IN ('REDRIVEN', 'REJECTED') THEN now() END,
    resolution = u.resolution
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[])
  AS u(id, status, reason, detail, resolution)
WHERE d.dead_letter_id = u.id
"""
DISCARD = """
UPDATE selene_ops.dead_letters SET status = 'DISCARDED', blocks = false, resolved_at = now(), resolution = $2
WHERE dead_letter_id = $1 AND status IN ('OPEN', 'HELD', 'REJECTED')
RETURNING dead_letter_id
"""


@dataclass
class RedriveReport:
    """What one re-drive did to one aggregate."""

    topic: str
    aggregate_key: str
    redriven: int = 0
    still_blocked: int = 0
    rejected: int = 0
    first_failure: str | None = None
    result: BatchResult = field(default_factory=BatchResult)


async def list_dead_letters(
    conn: asyncpg.Connection, *, status: str | None = None, reason: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(LIST, status, reason, limit)]


async def counts_by_reason(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    return [dict(r) for r in await conn.fetch(BY_REASON)]


async def show(conn: asyncpg.Connection, dead_letter_id: int) -> dict[str, Any] | None:
    """One dead letter, its headers read from the exact ``raw_headers`` (keys escaped for display, values in
    base64), as ``headers``; ``raw_headers`` itself is left out (it is those headers again, as bytes)."""
    row = await conn.fetchrow(SHOW, dead_letter_id)
    if row is None:
        return None
    out = dict(row)
    out["headers"] = json.loads(headers_json(headers_from_bytes(out.pop("raw_headers"))))
    return out


async def discard(conn: asyncpg.Connection, dead_letter_id: int, note: str) -> bool:
    return await conn.fetchval(DISCARD, dead_letter_id, note[:1000]) is not None


async def blocked_aggregates(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    return [(r["source_topic"], r["aggregate_key"]) for r in await conn.fetch(SELECT_BLOCKED_AGGREGATES)]


#: Attempts at one re-drive that lost a race (a projection row another writer created meanwhile, a deadlock):
#: each attempt is one transaction, rolled back whole, and decides again on the rows as they now stand.
REDRIVE_ATTEMPTS = 10
_T = TypeVar("_T")


async def _retrying(attempt: Callable[[], Awaitable[_T]]) -> _T:
    """Run ``attempt`` again while it fails with a lost race or a passing outage (``is_retriable``), as the
    writer retries a batch: a re-drive beside running writers must not end in a traceback for a race that a
    second look resolves."""
    delay = 0.05
    for n in range(REDRIVE_ATTEMPTS):
        try:
            return await attempt()
        except Exception as exc:
            if not is_retriable(exc) or n == REDRIVE_ATTEMPTS - 1:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


async def redrive(conn: asyncpg.Connection, pipeline: Pipeline, topic: str, aggregate_key: str) -> RedriveReport:
    """Re-apply one aggregate's blocked events, in order, exactly once (see the module docstring)."""
    return await _retrying(lambda: _redrive(conn, pipeline, topic, aggregate_key))


async def _redrive(conn: asyncpg.Connection, pipeline: Pipeline, topic: str, aggregate_key: str) -> RedriveReport:
    report = RedriveReport(topic, aggregate_key)
    async with conn.transaction():
        await admit_redrive(conn)  # not while a replay or rebuild compares or swaps
        await conn.fetch(LOCK_BLOCKERS, topic, aggregate_key)
        rows = await conn.fetch(SELECT_AGGREGATE, topic, aggregate_key)
        if rows:
            await _redrive_rows(conn, pipeline, rows, report, check_blocked=False)
    return report


async def redrive_one(conn: asyncpg.Connection, pipeline: Pipeline, dead_letter_id: int) -> RedriveReport | None:
    """Re-apply one non-blocking dead letter (REJECTED, e.g. a reference that exists now); an OPEN or HELD
    one re-drives its whole aggregate in order. None when there is nothing to re-drive."""
    return await _retrying(lambda: _redrive_one(conn, pipeline, dead_letter_id))


async def _redrive_one(conn: asyncpg.Connection, pipeline: Pipeline, dead_letter_id: int) -> RedriveReport | None:
    async with conn.transaction():
        await admit_redrive(conn)  # not while a replay or rebuild compares or swaps
        row = await conn.fetchrow(SELECT_ONE, dead_letter_id)
        if row is None or row["status"] in ("REDRIVEN", "DISCARDED"):
            return None
        if row["status"] != "REJECTED":
            topic, key = row["source_topic"], row["aggregate_key"]
        else:
            report = RedriveReport(row["source_topic"], row["aggregate_key"] or "")
            await _redrive_rows(conn, pipeline, [row], report, check_blocked=True)
            return report
    if key is None:
        return None
    return await redrive(conn, pipeline, topic, key)


async def _redrive_rows(
    conn: asyncpg.Connection,
    pipeline: Pipeline,
    rows: list[asyncpg.Record],
    report: RedriveReport,
    *,
    check_blocked: bool,
) -> None:
    """Run dead-lettered records through the pipeline again, in the caller's transaction; record verdicts."""
    records = [
        Record(
            r["source_topic"],
            r["source_partition"],
            r["source_offset"],
            r["raw_key"],
            r["raw_value"],
            headers_from_bytes(r["raw_headers"]),  # exactly the record's (sql/0009), so the re-drive is too
            int(r["kafka_timestamp"].timestamp() * 1000) if r["kafka_timestamp"] else None,
        )
        for r in rows
    ]
    items = pipeline.decode(records)
    try:
        async with conn.transaction():
            report.result = await pipeline.apply(conn, items, check_blocked=check_blocked)
    except asyncpg.PostgresError as exc:
        if not _is_data_error(exc):
            raise
        items = pipeline.decode(records)
        report.result = await pipeline.apply_isolated(conn, items, check_blocked=check_blocked)
    verdicts: list[tuple[int, str, str, str, str]] = []
    for row, item in zip(rows, items, strict=True):
        if item.outcome in ("appended", "duplicate"):
            report.redriven += 1
            verdicts.append(
                (
                    row["dead_letter_id"],
                    "REDRIVEN",
                    row["reason_code"],
                    row["error_detail"],
                    f"re-driven: {item.outcome}",
                )
            )
        else:
            status = item.status or "OPEN"
            if status in ("OPEN", "REJECTED") and report.first_failure is None:
                report.first_failure = f"{item.reason}: {item.detail}"
            if status == "REJECTED":
                report.rejected += 1
            else:
                report.still_blocked += 1
            verdicts.append((row["dead_letter_id"], status, str(item.reason), item.detail, "re-drive refused"))
    await conn.execute(SET_VERDICT, *[list(c) for c in zip(*verdicts, strict=True)])
