"""Shared fixtures: the services (one source, see tests/fixtures/services.py), a migrated database, and
per-test isolation by unique tenants, topic prefix and consumer group (so tests never need a reset)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING

import asyncpg
import pytest

from consumers.db import connect
from contracts.settings import Settings
from producers.topics import delete_topics, ensure_topics, list_topics
from sql.migrate import migrate

if TYPE_CHECKING:
    from tests.fixtures.services import ServiceHandle

pytest_plugins = ["tests.fixtures.services"]


@pytest.fixture(scope="session")
async def migrated(services: ServiceHandle) -> Settings:
    """The services' database, migrated to the current schema (idempotent)."""
    await migrate(services.settings.database_owner_url)
    return services.settings


@pytest.fixture
def run_id() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def settings(migrated: Settings, run_id: str) -> Settings:
    """Settings private to one test: its own topics and consumer group on the shared services."""
    return replace(migrated, topic_prefix=f"t{run_id}.", consumer_group=f"writer-{run_id}")


@pytest.fixture
async def topics(settings: Settings) -> AsyncIterator[Settings]:
    """The ledger topics of this test's prefix, created, and deleted after it.

    Deleted because the broker keeps a file open per partition: a suite that left every test's topics
    behind (a topic per ledger, three partitions each) took a developer's broker past its open-file limit
    after a few runs, and it died at its next start."""
    await ensure_topics(settings)
    # A writer started at once may read the cluster's metadata before the broker knows the last topics
    # created, and then is assigned none of their partitions until its next metadata refresh (minutes):
    # wait until the broker describes every topic.
    for _ in range(100):
        if all(t.partitions for t in await list_topics(settings)):
            break
        await asyncio.sleep(0.1)
    yield settings
    await delete_topics(settings)


async def _conn(url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def writer_db(migrated: Settings) -> AsyncIterator[asyncpg.Connection]:
    async for c in _conn(migrated.database_url):
        yield c


@pytest.fixture
async def reader_db(migrated: Settings) -> AsyncIterator[asyncpg.Connection]:
    async for c in _conn(migrated.database_reader_url):
        yield c


@pytest.fixture
async def operator_db(migrated: Settings) -> AsyncIterator[asyncpg.Connection]:
    async for c in _conn(migrated.database_operator_url):
        yield c


@pytest.fixture
async def owner_db(migrated: Settings) -> AsyncIterator[asyncpg.Connection]:
    async for c in _conn(migrated.database_owner_url):
        yield c


@pytest.fixture
async def admin_db(migrated: Settings) -> AsyncIterator[asyncpg.Connection]:
    if not migrated.database_admin_url:
        pytest.skip("no SELENE_DATABASE_ADMIN_URL: superuser-only checks need it")
    async for c in _conn(migrated.database_admin_url):
        yield c
