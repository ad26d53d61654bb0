"""The long fault drill: ``python -m tests.faults.soak --seconds 600 [--events N]``.

``--multi-writer``: instead, the multi-writer drill of ``tests.faults.test_multi_writer`` for the given time:
a group of 2 then 3 writer processes, a kill -9, a join and a clean leave every few seconds, re-drives
beside them, user, device and work-order ids claimed across tenants and aggregates (``--keys`` contested
keys; default one per 4 s). Exits 1 on any loss, duplicate, inversion, cross-tenant row or difference
between live, rebuild and replay.

kill -9 of the writer every 1-3 s under a steady load for the given time, then a drain and the checker:
lost, duplicated, unexpected, order inversions, recovery times, and live == replay == rebuild. Then the
tenant-leak checks of ``tests.faults.tenantleak`` on what the storm wrote: every tenant table, as the writer
and the reader, scoped to each tenant of the run (and unset, and empty), must show no other tenant's row; and
``--interleavings`` pooled, error-injected scoped transactions must leak nothing. Runs on the local services
(started if needed) in a database of its own (``selene_soak``). Exits 1 on any loss, duplicate, inversion
or leak.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import uuid
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from consumers.db import connect
from contracts.settings import Settings
from services import local
from services.provision import provision
from sql.migrate import migrate
from tests.faults.tenantleak import LEAK_ROLES, pooled_interleavings, rows_across_tenants
from tests.faults.test_faults import kill_storm
from tests.faults.test_multi_writer import contested, multi_writer_drill

DATABASE = "selene_soak"


def _with_database(url: str) -> str:
    p = urlsplit(url)
    return urlunsplit((p.scheme, p.netloc, f"/{DATABASE}", p.query, p.fragment))


async def run_tenants(operator: asyncpg.Connection, run_id: str) -> list[str]:
    """The tenants the storm's workload wrote (``cli.workload`` names them ``tenant-<run>-<n>``)."""
    rows = await operator.fetch(
        "SELECT DISTINCT tenant_id FROM os_core.audit_events WHERE tenant_id LIKE $1 ORDER BY 1", f"tenant-{run_id}-%"
    )
    return [r["tenant_id"] for r in rows]


async def tenant_leaks(settings: Settings, tenants: list[str], interleavings: int) -> int:
    """Print the tenant-leak counts; returns how many leaks were found (rows seen plus pooled leaks)."""
    urls = {"selene_writer": settings.database_url, "selene_reader": settings.database_reader_url}
    assert set(urls) == set(LEAK_ROLES)
    rows = await rows_across_tenants(urls, tenants)
    pooled = await pooled_interleavings(settings.database_reader_url, tenants, interleavings)
    total = rows.rows_seen + pooled.leaked
    print(
        f"tenant scope checks: {rows.checks} (table x role x scope) over {rows.tables} tenant tables, roles "
        f"{', '.join(LEAK_ROLES)}, scopes {', '.join(tenants)}, unset, empty; own rows seen {rows.own_rows}; "
        f"documented cross-tenant reads not checked: {', '.join(rows.exempt) or 'none'}"
    )
    print(f"pooled interleavings: {pooled.done} in {pooled.seconds:.1f} s on 2 pooled connections, errors injected")
    print(
        f"tenant leaks: {total} (rows seen across tenants {rows.rows_seen}, interleavings {pooled.done}, "
        f"leaked {pooled.leaked})"
    )
    for problem in [*rows.problems, *pooled.wrong_scope, *pooled.leaks][:20]:
        print(f"  leak: {problem}")
    if rows.own_rows == 0:  # positive control: the scoped queries do see the tenant's own rows
        print("tenant leak check saw no row of any scoped tenant: it checked nothing")
        return total + 1
    return total


async def soak_settings() -> tuple[Settings, str]:
    """The local services (started if needed), the soak's own database, migrated; a run's topics and group."""
    env = local.up()
    env = {k: _with_database(v) if k.startswith("SELENE_DATABASE") else v for k, v in env.items()}
    await provision(env["SELENE_DATABASE_ADMIN_URL"], DATABASE)
    settings = Settings.from_env(env)
    await migrate(settings.database_owner_url)
    run_id = uuid.uuid4().hex[:10]
    return replace(settings, topic_prefix=f"soak{run_id}.", consumer_group=f"soak-{run_id}"), run_id


async def multi_writer(seconds: float, keys: int | None) -> int:
    """The multi-writer drill for ``seconds``: one cycle (kill, join, kill, leave) per 24 s of load."""
    settings, run_id = await soak_settings()
    cycles = max(1, round(seconds / 24))
    keys = keys or max(6, int(seconds / 4))
    with tempfile.TemporaryDirectory() as logs:
        result = await multi_writer_drill(
            settings, run_id, Path(logs), seconds=seconds, cycles=cycles, keys=keys, filler=int(seconds * 50)
        )
    print(f"multi-writer soak {seconds:.0f}s, {keys} contested keys: {result.summary()}")
    for rule, n in result.cross_tenant.items():
        if n:
            print(f"  cross-tenant: {n} rows: {rule}")
    problems = contested(result)
    for problem in problems:
        print(f"  not exercised: {problem}")
    ok = result.report.ok and not any(result.cross_tenant.values()) and result.live_rebuild_replay_equal
    return 0 if ok and not problems else 1


async def main(seconds: float, events: int, interleavings: int) -> int:
    settings, run_id = await soak_settings()
    operator = await connect(settings.database_operator_url)
    try:
        with tempfile.TemporaryDirectory() as logs:
            report, kills = await kill_storm(settings, run_id, seconds, events, Path(logs), operator)
        tenants = await run_tenants(operator, run_id)
    finally:
        await operator.close()
    print(f"soak {seconds:.0f}s: {kills} kills of the writer; {report.summary()}")
    print("live == replay == rebuild: yes")  # kill_storm asserts it for every tenant
    leaks = await tenant_leaks(settings, tenants, interleavings)
    return 0 if report.ok and leaks == 0 and len(tenants) >= 2 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--events", type=int, default=None, help="default: 300 per second of soak")
    parser.add_argument("--interleavings", type=int, default=20000, help="pooled tenant interleavings (20000)")
    parser.add_argument("--multi-writer", action="store_true", help="the multi-writer drill over shared keys")
    parser.add_argument("--keys", type=int, default=None, help="--multi-writer: contested keys (one per 4 s)")
    args = parser.parse_args()
    if args.multi_writer:
        sys.exit(asyncio.run(multi_writer(args.seconds, args.keys)))
    sys.exit(asyncio.run(main(args.seconds, args.events or int(args.seconds * 300), args.interleavings)))
