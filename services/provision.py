"""Cluster-level provisioning: the project's login roles and its database, idempotently.

Roles belong to the PostgreSQL cluster, not to a database, so they are made here with an admin login
rather than in a migration. The migrations in sql/ (run as selene_owner) then grant table privileges
to these roles. Run it as ``python -m services.provision`` with ``SELENE_DATABASE_ADMIN_URL`` set.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from urllib.parse import unquote, urlsplit

import asyncpg

from contracts.settings import LOCAL_DATABASE, ROLE_PASSWORDS

ROLES = ("selene_owner", "selene_writer", "selene_reader", "selene_operator")
OWNER = "selene_owner"
# Least privilege: none of the roles can escalate, and NOINHERIT means a role only gets what is
# granted to it by name, never through a membership someone adds later.
ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT"
# Serialises concurrent provisioners (two test sessions, a compose one-shot and a developer).
_LOCK_KEY = "selene-ledger provision"
_MAINTENANCE_DB = "postgres"

_ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = $1"
_DATABASE_EXISTS = "SELECT 1 FROM pg_database WHERE datname = $1"
# DDL takes no bind parameters; format() quotes server-side with %I / %L.
_ROLE_DDL = "SELECT format('{verb} ROLE %I {options} PASSWORD %L', $1::text, $2::text)"
_CREATE_DATABASE = "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)"
_DATABASE_GRANTS = (
    "SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', $1::text)",
    "SELECT format('GRANT CONNECT ON DATABASE %I TO %s', $1::text, $2::text)",
)
_SCHEMA_GRANTS = (
    "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
    # PostgreSQL 15 makes pg_database_owner own schema public, but a NOINHERIT owner does not get
    # that role's rights implicitly, so the migrations' role needs CREATE granted by name.
    f"GRANT USAGE, CREATE ON SCHEMA public TO {OWNER}",
)


async def _ensure_role(conn: asyncpg.Connection, role: str, password: str) -> None:
    """Create the role or bring an existing one back to the expected options and password."""
    verb = "ALTER" if await conn.fetchval(_ROLE_EXISTS, role) else "CREATE"
    ddl = await conn.fetchval(_ROLE_DDL.format(verb=verb, options=ROLE_OPTIONS), role, password)
    try:
        await conn.execute(ddl)
    except asyncpg.DuplicateObjectError:  # created concurrently by a provisioner without our lock
        ddl = await conn.fetchval(_ROLE_DDL.format(verb="ALTER", options=ROLE_OPTIONS), role, password)
        await conn.execute(ddl)


async def _ensure_database(conn: asyncpg.Connection, database: str) -> None:
    if not await conn.fetchval(_DATABASE_EXISTS, database):
        # Outside a transaction (CREATE DATABASE refuses to run in one); a concurrent creator is fine.
        with contextlib.suppress(asyncpg.DuplicateDatabaseError):
            await conn.execute(await conn.fetchval(_CREATE_DATABASE, database, OWNER))
    await conn.execute(await conn.fetchval(_DATABASE_GRANTS[0], database))
    role_list = ", ".join(ROLES)  # fixed identifiers, not input
    await conn.execute(await conn.fetchval(_DATABASE_GRANTS[1], database, role_list))


async def provision(admin_url: str, database: str = LOCAL_DATABASE) -> None:
    """Create or update the four login roles and ``database`` (owned by selene_owner); idempotent.

    ``admin_url`` must log in as a superuser (PostgreSQL 15 lets only superusers set NOBYPASSRLS).
    Its database part is ignored for the cluster-level steps, which run in the ``postgres``
    maintenance database because the target database may not exist yet.
    """
    conn = await asyncpg.connect(admin_url, database=_MAINTENANCE_DB)
    try:
        await conn.execute("SELECT pg_advisory_lock(hashtext($1))", _LOCK_KEY)
        for role in ROLES:
            await _ensure_role(conn, role, ROLE_PASSWORDS[role])
        await _ensure_database(conn, database)
    finally:
        await conn.close()  # also releases the session-level advisory lock
    conn = await asyncpg.connect(admin_url, database=database)
    try:
        for statement in _SCHEMA_GRANTS:
            await conn.execute(statement)
    finally:
        await conn.close()


def main() -> int:
    """Entry point of ``python -m services.provision``; the database is the one the admin URL names."""
    admin_url = os.environ.get("SELENE_DATABASE_ADMIN_URL")
    if not admin_url:
        print("SELENE_DATABASE_ADMIN_URL is not set", file=sys.stderr)
        return 2
    database = unquote(urlsplit(admin_url).path.lstrip("/")) or LOCAL_DATABASE
    asyncio.run(provision(admin_url, database))
    print(f"provisioned roles {', '.join(ROLES)} and database {database}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
