"""The migration runner on a fresh database: applies, re-applies as a no-op, refuses an edited file."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from contracts.settings import ROLE_PASSWORDS, Settings, role_url
from sql.migrate import MIGRATIONS_DIR, MigrationError, discover, migrate

pytestmark = pytest.mark.integration


@pytest.fixture
async def empty_db(migrated: Settings) -> AsyncIterator[str]:
    """A new, empty database owned by the owner role; dropped afterwards."""
    if not migrated.database_admin_url:
        pytest.skip("needs SELENE_DATABASE_ADMIN_URL to create a scratch database")
    name = f"mig_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(migrated.database_admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER selene_owner')
        await admin.execute(f'GRANT CONNECT ON DATABASE "{name}" TO selene_writer, selene_reader, selene_operator')
        base = migrated.database_owner_url.rsplit("/", 1)[0]
        yield role_url(f"{base}/{name}", "selene_owner", ROLE_PASSWORDS["selene_owner"])
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_applies_to_empty_then_noop(empty_db: str) -> None:
    first = await migrate(empty_db)
    assert first.applied == [f"{m.version:04d}_{m.name}" for m in discover()]
    second = await migrate(empty_db)
    assert second.applied == []
    assert second.already == len(discover())


async def test_edited_applied_migration_is_refused(empty_db: str, tmp_path: Path) -> None:
    copy = tmp_path / "sql"
    shutil.copytree(MIGRATIONS_DIR, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    await migrate(empty_db, copy)
    target = sorted(copy.glob("0002_*.sql"))[0]
    target.write_text(target.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError) as info:
        await migrate(empty_db, copy)
    assert info.value.reason_code == "MIGRATION_CHECKSUM_MISMATCH"


async def test_database_ahead_of_checkout_is_refused(empty_db: str, tmp_path: Path) -> None:
    await migrate(empty_db)
    partial = tmp_path / "sql"
    partial.mkdir()
    shutil.copy(sorted(MIGRATIONS_DIR.glob("0001_*.sql"))[0], partial)
    with pytest.raises(MigrationError) as info:
        await migrate(empty_db, partial)
    assert info.value.reason_code == "MIGRATION_UNKNOWN_APPLIED"


def test_migration_files_are_numbered_without_gaps() -> None:
    versions = [m.version for m in discover()]
    assert versions == list(range(1, len(versions) + 1))
