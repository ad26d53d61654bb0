"""Forward-only migration runner for the numbered files in this folder.

Why a small runner of our own: the rules we need are few and strict. Files ``NNNN_name.sql`` apply in order,
each in its own transaction together with its record; an advisory lock makes concurrent runners wait for
each other; and a file that was edited after it was applied is refused, because the database would
otherwise silently differ from what the repository says it is.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).resolve().parent
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# An arbitrary constant shared by every runner of this project.
ADVISORY_LOCK_KEY = 0x5E1E7E_0001

CREATE_HISTORY = """
CREATE SCHEMA IF NOT EXISTS selene_migrations;
CREATE TABLE IF NOT EXISTS selene_migrations.applied (
  version     integer     PRIMARY KEY,
  name        text        NOT NULL,
  sha256      text        NOT NULL,
  applied_at  timestamptz NOT NULL DEFAULT now()
);
"""
LOCK = "SELECT pg_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"
SELECT_APPLIED = "SELECT version, name, sha256 FROM selene_migrations.applied ORDER BY version"
INSERT_APPLIED = "INSERT INTO selene_migrations.applied (version, name, sha256) VALUES ($1, $2, $3)"


class MigrationError(Exception):
    """A migration could not be applied; ``reason_code`` says why."""

    def __init__(self, reason_code: str, message: str) -> None:
        super().__init__(f"{reason_code}: {message}")
        self.reason_code = reason_code


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in ``directory``, in order; gaps and duplicate numbers are errors."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError("MIGRATION_BAD_NAME", f"{path.name} is not NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text()))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError("MIGRATION_SEQUENCE_GAP", f"expected {expected:04d}, found {migration.version:04d}")
    return found


@dataclass(frozen=True)
class MigrateResult:
    """What a run did."""

    applied: list[str]
    already: int


async def migrate(owner_url: str, directory: Path = MIGRATIONS_DIR) -> MigrateResult:
    """Apply every pending migration as the owner role; a no-op when the database is current."""
    migrations = discover(directory)
    conn = await asyncpg.connect(owner_url)
    try:
        await conn.execute(LOCK, ADVISORY_LOCK_KEY)
        try:
            await conn.execute(CREATE_HISTORY)
            applied = {r["version"]: r for r in await conn.fetch(SELECT_APPLIED)}
            known = {m.version for m in migrations}
            unknown = sorted(set(applied) - known)
            if unknown:
                raise MigrationError(
                    "MIGRATION_UNKNOWN_APPLIED",
                    f"the database has migrations this checkout lacks: {unknown}",
                )
            done: list[str] = []
            for migration in migrations:
                record = applied.get(migration.version)
                if record is not None:
                    if record["sha256"] != migration.sha256:
                        raise MigrationError(
                            "MIGRATION_CHECKSUM_MISMATCH",
                            f"{migration.version:04d}_{migration.name}.sql was edited after it was applied "
                            "(migrations are forward-only: add a new one instead)",
                        )
                    continue
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(INSERT_APPLIED, migration.version, migration.name, migration.sha256)
                done.append(f"{migration.version:04d}_{migration.name}")
            return MigrateResult(applied=done, already=len(migrations) - len(done))
        finally:
            await conn.execute(UNLOCK, ADVISORY_LOCK_KEY)
    finally:
        await conn.close()
