"""``rebuild --projection NAME``: one projection rebuilt from the ledgers it reads, compared and swapped in
alone; the other projections' live rows and shadows are left as they are, down to their physical identity."""

from __future__ import annotations

import asyncpg
import pytest

from cli.workload import build
from consumers.projections import PROJECTIONS
from consumers.projections.foundation import FoundationProjection
from consumers.projections.work_orders import WorkOrderProjection
from consumers.projector import UnknownProjection
from consumers.rebuild import Rebuilder
from contracts.settings import Settings
from contracts.work_orders import WORK_ORDER_LEDGER
from sql.tenant_scope import SET_TENANT_SCOPE
from tests.e2e.helpers import drain, publish
from tests.e2e.test_shadow_runs import run_cli

pytestmark = pytest.mark.e2e
FOUNDATION = [t.name for t in FoundationProjection.writes]
WORK_ORDERS = [t.name for t in WorkOrderProjection.writes]


async def physical(conn: asyncpg.Connection, tenant: str, tables: list[str], *, shadow: bool = False) -> list[str]:
    """Every row of ``tenant`` in ``tables`` with its physical identity (``ctid``, ``xmin``): a row deleted
    and inserted again, or updated, even to the same values, reads differently."""
    out = []
    for table in tables:
        name = "selene_shadow." + table.replace(".", "__") if shadow else table
        rows = await conn.fetch(
            f"SELECT t.ctid::text || ' ' || t.xmin::text || ' ' || t::text AS r FROM {name} t "
            "WHERE tenant_id = $1 ORDER BY 1",
            tenant,
        )
        out += [f"{table} {r['r']}" for r in rows]
    return out


async def tamper(writer_db: asyncpg.Connection, tenant: str, statement: str) -> None:
    async with writer_db.transaction():
        await writer_db.execute(SET_TENANT_SCOPE, tenant)
        assert await writer_db.execute(statement, tenant) == "UPDATE 1"


async def test_rebuild_apply_of_one_projection_leaves_the_others_untouched(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection, writer_db: asyncpg.Connection
) -> None:
    """A live row of each projection altered out of band. ``work_orders`` rebuilt and applied alone: its
    tables equal the rebuild again (the altered row repaired), while the foundation tables keep every row
    where it was, the altered one included, and the foundation shadows keep what an earlier rebuild built."""
    w = build(tenants=1, users_per_tenant=2, events=40, bad=False, run_id=run_id, work_orders=3)
    await publish(topics, w.foundation)
    await drain(topics)
    await publish(topics, w.events)
    await drain(topics)
    tenant = w.foundation[0].tenant_id
    await tamper(
        writer_db,
        tenant,
        "UPDATE os_core.identities SET display_name = 'tampered' WHERE user_id = "
        "(SELECT min(user_id) FROM os_core.identities WHERE tenant_id = $1)",
    )
    await tamper(
        writer_db,
        tenant,
        "UPDATE os_core.work_orders_current SET intent_type = 'TAMPERED' WHERE work_order_id = "
        "(SELECT min(work_order_id) FROM os_core.work_orders_current WHERE tenant_id = $1)",
    )
    foundation = await Rebuilder(topics, tenant=tenant, projections=["foundation"]).run(verify=True, apply=False)
    assert [c.table for c in foundation.comparisons if not c.equal] == ["os_core.identities"]
    live_before = await physical(operator_db, tenant, FOUNDATION)
    shadow_before = await physical(operator_db, tenant, FOUNDATION, shadow=True)
    assert any("tampered" in r for r in live_before) and len(shadow_before) == len(live_before)
    work_orders_before = await physical(operator_db, tenant, WORK_ORDERS)

    rebuilt = await Rebuilder(topics, tenant=tenant, projections=["work_orders"]).run(verify=True, apply=True)
    assert rebuilt.applied and rebuilt.projections == ("work_orders",)
    assert set(rebuilt.per_ledger) == {WORK_ORDER_LEDGER.name}  # only the ledger it reads
    assert [c.table for c in rebuilt.comparisons] == WORK_ORDERS
    assert [c.table for c in rebuilt.comparisons if not c.equal] == ["os_core.work_orders_current"]

    assert await physical(operator_db, tenant, FOUNDATION) == live_before
    assert await physical(operator_db, tenant, FOUNDATION, shadow=True) == shadow_before
    work_orders_after = await physical(operator_db, tenant, WORK_ORDERS)
    assert work_orders_after != work_orders_before and not any("TAMPERED" in r for r in work_orders_after)
    again = await Rebuilder(topics, tenant=tenant, projections=["work_orders"]).run(verify=True, apply=False)
    assert again.equal and [c.table for c in again.comparisons] == WORK_ORDERS
    everything = await Rebuilder(topics, tenant=tenant).run(verify=True, apply=False)
    assert [c.table for c in everything.comparisons if not c.equal] == ["os_core.identities"]


async def test_rebuild_projection_on_the_command_line(topics: Settings, run_id: str) -> None:
    """Repeatable ``--projection`` verifies those tables only; an unknown name is one line naming the known
    ones, exit 2, before anything runs."""
    w = build(tenants=1, users_per_tenant=2, events=20, bad=False, run_id=run_id, work_orders=2)
    await publish(topics, w.foundation)
    await drain(topics)
    await publish(topics, w.events)
    await drain(topics)
    tenant = w.foundation[0].tenant_id

    done = run_cli(topics, "rebuild", "--tenant", tenant, "--projection", "foundation", "--projection", "work_orders",
                   "--verify")  # fmt: skip
    assert done.returncode == 0, (done.stdout, done.stderr)
    compared = [line.split()[0] for line in done.stdout.splitlines() if " live " in line and " shadow " in line]
    assert compared == FOUNDATION + WORK_ORDERS, done.stdout
    assert "projections foundation, work_orders" in done.stdout and "rebuild equals live: exact match" in done.stdout

    done = run_cli(topics, "rebuild", "--projection", "foundation", "--projection", "nope", "--apply")
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    known = ", ".join(sorted(p.name for p in PROJECTIONS if not p.live_only))
    assert {"engine_capability_maps", "foundation", "work_orders"} <= set(known.split(", "))
    assert done.stderr.splitlines() == [f"rebuild: no projection named nope; projections: {known}"]
    with pytest.raises(UnknownProjection, match="no projection named work_order_audit"):  # live only: not rebuilt
        Rebuilder(topics, projections=["work_order_audit"])
