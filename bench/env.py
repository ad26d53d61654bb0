"""Where a benchmark run lives: its own database, topic prefixes, consumer groups and state directory.

The local services are shared with other engineers' tests, so a run touches only what it owns: the
database ``selene_bench`` (dropped and recreated at the start of each run, so every run starts from the
same empty, migrated schema), topics named ``bench<tag>-<mode>.*`` (deleted at the end unless kept) and
consumer groups ``bench-<tag>-<mode>``. ``synchronous_commit`` is pinned to ``on`` for the database, so
every mode, the peer's JDBC connection included, commits durably.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient

from contracts.kafka_clients import transport_options
from contracts.settings import LOCAL_ADMIN_PASSWORD, LOCAL_ADMIN_USER, KafkaSecurity, Settings, role_url
from producers.topics import ensure_topics
from services.local import state_dir
from services.provision import provision
from sql.migrate import migrate

BENCH_DATABASE = "selene_bench"
_SAFE_DB = re.compile(r"^selene_bench[a-z0-9_]*$")


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", parts.query, parts.fragment))


@dataclass(frozen=True)
class BenchEnv:
    """One run's names and URLs, derived from the ``SELENE_*`` environment (local services by default)."""

    base: Settings
    run_tag: str
    database: str = BENCH_DATABASE

    def __post_init__(self) -> None:
        if not _SAFE_DB.match(self.database):
            raise ValueError(f"the benchmark only ever uses databases named selene_bench*, not {self.database!r}")

    @property
    def admin_url(self) -> str:
        admin = self.base.database_admin_url or role_url(self.base.database_url, LOCAL_ADMIN_USER, LOCAL_ADMIN_PASSWORD)
        return with_database(admin, self.database)

    @property
    def state(self) -> Path:
        return state_dir() / "bench" / self.run_tag

    def prefix(self, mode: str) -> str:
        return f"bench{self.run_tag}-{mode}."

    def settings(self, mode: str) -> Settings:
        """Settings for one mode: the bench database, the mode's topic prefix and consumer group."""
        b = self.base
        return replace(
            b,
            database_url=with_database(b.database_url, self.database),
            database_owner_url=with_database(b.database_owner_url, self.database),
            database_reader_url=with_database(b.database_reader_url, self.database),
            database_operator_url=with_database(b.database_operator_url, self.database),
            database_admin_url=self.admin_url,
            topic_prefix=self.prefix(mode),
            consumer_group=f"bench-{self.run_tag}-{mode}",
        )


def settings_to_json(settings: Settings) -> dict[str, object]:
    return dataclasses.asdict(settings)


def settings_from_json(doc: dict[str, object]) -> Settings:
    fields = dict(doc)
    security = fields.pop("kafka_security")
    assert isinstance(security, dict)
    return Settings(kafka_security=KafkaSecurity(**security), **fields)  # type: ignore[arg-type]


async def fresh_database(env: BenchEnv) -> None:
    """Drop and recreate the bench database, provision it, pin synchronous_commit and migrate it."""
    admin = await asyncpg.connect(env.admin_url, database="postgres")
    try:
        name = await admin.fetchval("SELECT quote_ident($1)", env.database)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()
    await provision(env.admin_url, env.database)
    admin = await asyncpg.connect(env.admin_url, database="postgres")
    try:
        name = await admin.fetchval("SELECT quote_ident($1)", env.database)
        await admin.execute(f"ALTER DATABASE {name} SET synchronous_commit = on")
    finally:
        await admin.close()
    await migrate(env.settings("setup").database_owner_url)


async def drop_database(env: BenchEnv) -> None:
    """Drop the run's database (the CI smoke run cleans up after itself)."""
    admin = await asyncpg.connect(env.admin_url, database="postgres")
    try:
        name = await admin.fetchval("SELECT quote_ident($1)", env.database)
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def postgres_facts(env: BenchEnv) -> dict[str, str]:
    """The server settings that shape write throughput, as the bench database sees them."""
    conn = await asyncpg.connect(env.admin_url)
    try:
        names = (
            "server_version",
            "synchronous_commit",
            "fsync",
            "wal_level",
            "shared_buffers",
            "max_wal_size",
            "checkpoint_timeout",
            "wal_buffers",
            "work_mem",
        )
        return {n: str(await conn.fetchval(f"SHOW {n}")) for n in names}
    finally:
        await conn.close()


async def checkpoint(env: BenchEnv) -> None:
    """Before a database mode: fresh statistics (the planner must see the ledgers' real size, as autovacuum
    keeps it seeing in production) and no dirty pages left by the previous mode for this one to flush."""
    conn = await asyncpg.connect(env.admin_url)
    try:
        await conn.execute("ANALYZE")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def ensure_mode_topics(settings: Settings) -> None:
    await ensure_topics(settings)


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**transport_options(settings))


async def create_topic(settings: Settings, name: str, partitions: int) -> None:
    from aiokafka.admin import NewTopic

    admin = _admin(settings)
    await admin.start()
    try:
        if name not in set(await admin.list_topics()):
            await admin.create_topics([NewTopic(name, partitions, settings.replication_factor)])
    finally:
        await admin.close()


async def delete_run_topics(env: BenchEnv) -> list[str]:
    """Delete this run's topics (and only them: the names carry the run's tag)."""
    settings = env.settings("cleanup")
    mine = f"bench{env.run_tag}-"
    admin = _admin(settings)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(mine)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()
