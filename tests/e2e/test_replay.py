"""Replay from the topics and rebuild from the ledgers: verify (and fail when live is wrong), bounds, apply
while the writer keeps running, per-tenant apply, and rebuild == replay."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from cli.workload import RawRecord, Workload, build
from consumers.offsets import stored_offsets
from consumers.rebuild import Rebuilder
from consumers.replay import Replayer
from consumers.status import lag
from consumers.writer import LedgerWriter
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import DeviceRevokedEvent, IdentityUpsertedEvent, SessionClosedEvent, SessionOpened
from contracts.settings import Settings
from sql.tenant_scope import SET_TENANT_SCOPE
from tests.e2e.helpers import drain, publish, send_raw

pytestmark = pytest.mark.e2e
TABLES = ("os_core.identities", "os_core.devices", "os_core.sessions")


async def rows_of(conn: asyncpg.Connection, tenant: str, *, shadow: bool = False) -> dict[str, list[str]]:
    """Every projection row of ``tenant`` as text, live or shadow (operator role: reads every tenant)."""
    out = {}
    for table in TABLES:
        name = "selene_shadow." + table.replace(".", "__") if shadow else table
        rows = await conn.fetch(f"SELECT t::text AS r FROM {name} t WHERE tenant_id = $1 ORDER BY 1", tenant)
        out[table] = [r["r"] for r in rows]
    return out


async def mixed(settings: Settings, run_id: str, events: int = 150) -> Workload:
    """Foundation first, then events with duplicates and every bad-input class, all drained."""
    w = build(tenants=2, users_per_tenant=3, events=events, run_id=run_id)
    await publish(settings, w.foundation)
    await drain(settings)
    await publish(settings, w.events + w.duplicates)
    await send_raw(settings, w.bad)
    await drain(settings)
    return w


def changes(w: Workload, tenant: str) -> list[LedgerEvent]:
    """Later events that change projection rows of ``tenant``: revoke, close, rename."""
    now = datetime.now(UTC)
    users = [e for e in w.foundation if e.tenant_id == tenant and e.event_type == "SESSION_OPENED"]
    out: list[LedgerEvent] = []
    for e in users[:2]:
        p = e.payload
        assert isinstance(p, SessionOpened)
        common = {
            "tenant_id": tenant,
            "engine_id": "PH1.L",
            "correlation_id": f"later-{p.user_id}",
            "occurred_at": now,
        }
        out.append(
            new_event(
                SessionClosedEvent,
                payload={
                    "reason_code": "SESSION_CLOSED",
                    "user_id": p.user_id,
                    "device_id": p.device_id,
                    "session_id": p.session_id,
                },
                **common,
            )
        )
        out.append(
            new_event(
                DeviceRevokedEvent,
                payload={
                    "reason_code": "DEVICE_LOST",
                    "user_id": p.user_id,
                    "device_id": p.device_id,
                },
                **common,
            )
        )
        out.append(
            new_event(
                IdentityUpsertedEvent,
                payload={"reason_code": "IDENTITY_RENAMED", "user_id": p.user_id, "display_name": "renamed"},
                **common,
            )
        )
    return out


async def test_replay_verify_equals_live_after_mixed_workload(topics: Settings, run_id: str) -> None:
    w = await mixed(topics, run_id)
    for tenant in sorted({e.tenant_id for e in w.good}):
        result = await Replayer(topics, tenant=tenant).run(verify=True)
        assert result.stats.unaccounted == []
        assert result.comparisons and all(c.equal for c in result.comparisons), result.comparisons
        assert result.equal
    # Everything read is accounted for: applied, duplicate, or skipped as a dead letter.
    full = await Replayer(topics).run()
    s = full.stats
    assert s.read == len(w.good) + len(w.duplicates) + len(w.bad)
    assert s.dead_letters_skipped == len(w.bad)
    assert s.duplicates == len(w.duplicates)
    assert s.applied == len(w.good)


async def test_verify_finds_a_corrupted_live_row(topics: Settings, run_id: str, writer_db: asyncpg.Connection) -> None:
    w = await mixed(topics, run_id, events=40)
    tenant = w.foundation[0].tenant_id
    async with writer_db.transaction():
        await writer_db.execute(SET_TENANT_SCOPE, tenant)
        changed = await writer_db.execute(
            "UPDATE os_core.identities SET display_name = 'tampered' WHERE user_id = $1",
            w.foundation[0].payload.user_id,  # type: ignore[attr-defined]
        )
    assert changed == "UPDATE 1"
    replayed = await Replayer(topics, tenant=tenant).run(verify=True)
    assert not replayed.equal
    bad = [c for c in replayed.comparisons if not c.equal]
    assert [c.table for c in bad] == ["os_core.identities"]
    assert bad[0].first_differences == [{"user_id": w.foundation[0].payload.user_id}]  # type: ignore[attr-defined]
    rebuilt = await Rebuilder(topics, tenant=tenant).run(verify=True, apply=False)
    assert not rebuilt.equal
    # Applying the replayed state repairs it.
    await Replayer(topics, tenant=tenant).run(apply=True)
    assert (await Replayer(topics, tenant=tenant).run(verify=True)).equal


async def test_replay_from_offsets_and_from_time(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    first = build(tenants=1, users_per_tenant=2, events=0, bad=False, run_id=f"{run_id}a")
    second = build(tenants=1, users_per_tenant=3, events=0, bad=False, run_id=f"{run_id}b")
    await publish(topics, first.foundation)
    await drain(topics)
    offsets = await stored_offsets(operator_db, topics.consumer_group)
    await asyncio.sleep(0.05)
    between = int(time.time() * 1000)
    await asyncio.sleep(0.05)
    await publish(topics, second.foundation)
    await drain(topics)
    spec = ",".join(f"{t}:{p}={o}" for (t, p), o in offsets.items())
    for replayer in (
        Replayer(topics, ledgers=["audit_events"], from_offsets=spec),
        Replayer(topics, ledgers=["audit_events"], from_time=str(between)),
    ):
        result = await replayer.run()
        assert result.stats.read == len(second.foundation)
        assert result.stats.applied == len(second.foundation)
        tenant_b = second.foundation[0].tenant_id
        shadow = await rows_of(operator_db, tenant_b, shadow=True)
        assert len(shadow["os_core.identities"]) == 3
        assert await rows_of(operator_db, first.foundation[0].tenant_id, shadow=True) == {t: [] for t in TABLES}


async def test_as_of_replay_equals_live_captured_then(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    w = await mixed(topics, run_id, events=60)
    tenant = w.foundation[0].tenant_id
    captured = await rows_of(operator_db, tenant)
    offsets = await stored_offsets(operator_db, topics.consumer_group)
    await publish(topics, changes(w, tenant))
    await drain(topics)
    assert await rows_of(operator_db, tenant) != captured  # live moved on
    spec = ",".join(f"{t}:{p}={o}" for (t, p), o in offsets.items())
    await Replayer(topics, tenant=tenant, as_of=spec).run()
    assert await rows_of(operator_db, tenant, shadow=True) == captured
    await Replayer(topics, tenant=tenant).run()
    assert await rows_of(operator_db, tenant, shadow=True) == await rows_of(operator_db, tenant)


async def test_apply_while_the_writer_keeps_consuming(
    topics: Settings, run_id: str, writer_db: asyncpg.Connection, operator_db: asyncpg.Connection
) -> None:
    w = await mixed(topics, run_id, events=60)
    tenant = w.foundation[0].tenant_id
    async with writer_db.transaction():
        await writer_db.execute(SET_TENANT_SCOPE, tenant)
        await writer_db.execute("UPDATE os_core.devices SET device_type = 'WRONG' WHERE tenant_id = $1", tenant)
    stop = asyncio.Event()
    writer = LedgerWriter(topics)
    task = asyncio.create_task(writer.run(stop=stop))
    more = changes(w, tenant)
    try:
        publisher = asyncio.create_task(publish(topics, more))
        result = await Replayer(topics, tenant=tenant).run(verify=True, apply=True)
        assert result.applied
        await publisher
        # Let the writer take the changes (lag 0), then verify again while it is still running.
        deadline = time.monotonic() + 60
        while sum(x.lag for x in await lag(topics, operator_db)) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        again = await Replayer(topics, tenant=tenant).run(verify=True)
        assert again.equal, again.comparisons
        assert again.stats.per_ledger["audit_events"] >= len(more)
    finally:
        stop.set()
        await task


async def test_per_tenant_apply_leaves_other_tenants_byte_identical(
    topics: Settings, run_id: str, writer_db: asyncpg.Connection, operator_db: asyncpg.Connection
) -> None:
    w = await mixed(topics, run_id, events=60)
    tenants = sorted({e.tenant_id for e in w.foundation})
    a, b = tenants[0], tenants[1]
    async with writer_db.transaction():
        await writer_db.execute(SET_TENANT_SCOPE, f"{a},{b}")
        await writer_db.execute(
            "UPDATE os_core.identities SET display_name = 'drift' WHERE tenant_id = ANY($1)", [a, b]
        )
    before_b = await rows_of(operator_db, b)
    await Replayer(topics, tenant=a).run(apply=True)
    assert await rows_of(operator_db, b) == before_b  # untouched, drift included
    assert (await Replayer(topics, tenant=a).run(verify=True)).equal
    assert not (await Replayer(topics, tenant=b).run(verify=True)).equal


async def test_rebuild_from_ledger_equals_replay_from_topic(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    w = await mixed(topics, run_id, events=80)
    await publish(topics, changes(w, w.foundation[0].tenant_id))
    await drain(topics)
    for tenant in sorted({e.tenant_id for e in w.foundation}):
        await Rebuilder(topics, tenant=tenant).run(verify=False, apply=False)
        rebuilt = await rows_of(operator_db, tenant, shadow=True)
        await Replayer(topics, tenant=tenant).run()
        replayed = await rows_of(operator_db, tenant, shadow=True)
        assert rebuilt == replayed
        assert sum(len(v) for v in rebuilt.values()) == 3 * 3  # 3 users: identity, device, session


async def test_a_lost_event_without_idempotency_key_is_unaccounted_beside_its_twin(
    topics: Settings, run_id: str
) -> None:
    """Two events with no idempotency key and the same content are two events (the writer dedupes them by id
    only): when the second never reached the ledger, replay must report it, not take it for a duplicate of
    the first (it did, when both came in one fetch)."""
    w = await mixed(topics, run_id, events=20)
    sample = next(e for e in w.events if e.ledger == "audit_events")
    doc = {**sample.model_dump(mode="json"), "idempotency_key": None}
    first = {**doc, "event_id": str(uuid.uuid4())}
    twin = {**doc, "event_id": str(uuid.uuid4())}
    await send_raw(topics, [RawRecord("audit_events", sample.kafka_key, json.dumps(first).encode(), "appended")])
    await drain(topics)
    # Straight to the topic, the writer stopped: an acknowledged event the writer never wrote.
    await send_raw(topics, [RawRecord("audit_events", sample.kafka_key, json.dumps(twin).encode(), "lost")])
    result = await Replayer(topics).run()
    assert [u for u in result.stats.unaccounted if "not in os_core.audit_events" in u], result.stats
    assert not result.stats.mismatched_content
