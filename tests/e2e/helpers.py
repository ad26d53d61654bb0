"""Small drivers for end-to-end tests: publish, send raw bytes, drain, look at the ledgers."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from cli.workload import RawRecord, topic_of
from consumers.rebuild import Rebuilder
from consumers.writer import LedgerWriter, WriterStats
from contracts.envelope import LedgerEvent
from contracts.settings import Settings
from producers.publisher import Published, Publisher


async def publish(settings: Settings, events: Sequence[LedgerEvent]) -> list[Published]:
    async with Publisher(settings) as p:
        published, refused = await p.publish_many(events)
    assert refused == [], refused
    return published


async def send_raw(settings: Settings, records: Sequence[RawRecord]) -> None:
    async with Publisher(settings) as p:
        for r in records:
            await p.send_unchecked(topic_of(r.ledger, settings.topic_prefix), r.value, r.key)


async def drain(settings: Settings, **options: Any) -> WriterStats:
    return await LedgerWriter(settings, **options).run(until_caught_up=True)


@asynccontextmanager
async def running_writer(settings: Settings) -> AsyncIterator[WriterStats]:
    """A ledger writer consuming in the background, as in production, until the block ends."""
    stop = asyncio.Event()
    writer = LedgerWriter(settings)
    task = asyncio.create_task(writer.run(stop=stop))
    try:
        yield writer.stats
    finally:
        stop.set()
        await task


async def event_ids(conn: asyncpg.Connection, table: str, tenants: Sequence[str]) -> list[str]:
    rows = await conn.fetch(f"SELECT event_uuid::text AS id FROM {table} WHERE tenant_id = ANY($1)", list(tenants))
    return [r["id"] for r in rows]


async def rebuild_equals_live(settings: Settings, tenants: Sequence[str]) -> list[str]:
    """Per tenant, rebuild from the ledger into the shadows and compare; returns the differences found."""
    problems = []
    for tenant in tenants:
        result = await Rebuilder(settings, tenant=tenant).run(verify=True, apply=False)
        problems += [
            f"{tenant} {c.table}: live {c.live_rows} rows, rebuilt {c.shadow_rows}, "
            f"first differences {c.first_differences}"
            for c in result.comparisons
            if not c.equal
        ]
    return problems


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for a ``selene-ledger`` subprocess that uses exactly these settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELENE_")}
    env.update(
        {
            "SELENE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "SELENE_DATABASE_URL": settings.database_url,
            "SELENE_DATABASE_OWNER_URL": settings.database_owner_url,
            "SELENE_DATABASE_READER_URL": settings.database_reader_url,
            "SELENE_DATABASE_OPERATOR_URL": settings.database_operator_url,
            "SELENE_TOPIC_PREFIX": settings.topic_prefix,
            "SELENE_CONSUMER_GROUP": settings.consumer_group,
            "SELENE_BATCH_MAX_RECORDS": str(settings.batch_max_records),
            "SELENE_CONSUMER_SESSION_TIMEOUT_MS": str(settings.consumer_session_timeout_ms),
            "SELENE_CONSUMER_HEARTBEAT_INTERVAL_MS": str(settings.consumer_heartbeat_interval_ms),
            "SELENE_CONSUMER_MAX_POLL_INTERVAL_MS": str(settings.consumer_max_poll_interval_ms),
            "SELENE_WRITER_IDLE_IN_TRANSACTION_TIMEOUT_MS": str(settings.writer_idle_in_transaction_timeout_ms),
        }
    )
    if settings.consumer_instance_id:
        env["SELENE_CONSUMER_INSTANCE_ID"] = settings.consumer_instance_id
    if settings.database_admin_url:
        env["SELENE_DATABASE_ADMIN_URL"] = settings.database_admin_url
    return env


CLI = [sys.executable, "-m", "cli.main"]
