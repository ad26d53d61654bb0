"""Replay and rebuild under operators' hands: a re-driven record is replayed where live applied it, rebuild
misses no row that commits late, a partial scope never swaps into live, one shadow run at a time, and replay
keeps bounded lists on any topic."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord, build
from consumers import deadletters
from consumers import shadow as shadow_module
from consumers.db import connect
from consumers.pipeline import Pipeline, Record
from consumers.rebuild import Rebuilder
from consumers.replay import Replayer, ReplayScopeRefused
from consumers.shadow import ShadowRunBusy, shadow_run
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import DeviceRegisteredEvent, DeviceRevokedEvent, IdentityUpsertedEvent
from contracts.settings import Settings
from tests.e2e.helpers import CLI, cli_env, drain, publish, send_raw
from tests.e2e.test_replay import mixed, rows_of

pytestmark = pytest.mark.e2e


def foundation(model: type[LedgerEvent], tenant: str, **payload: Any) -> LedgerEvent:
    return new_event(
        model, tenant_id=tenant, engine_id="PH1.F", correlation_id=f"c-{payload['user_id']}",
        occurred_at=datetime.now(UTC), payload=payload,
    )  # fmt: skip


async def test_a_redriven_record_is_replayed_where_live_applied_it(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    """Issue 14 item 2. One user's partition: the device registered before the identity (dead-lettered
    REFERENCE_UNKNOWN, non-blocking), the identity, then a re-drive of the device, then a revoke of it. Live
    applied register after the identity and before the revoke; replay must too (at its offset it is refused;
    at the end, the revoke before it is refused)."""
    tenant, user, device = f"tenant-{run_id}", f"user-{run_id}", f"dev-{run_id}"
    registered = foundation(
        DeviceRegisteredEvent, tenant, reason_code="DEVICE_BOUND", user_id=user, device_id=device, device_type="phone"
    )
    identity = foundation(IdentityUpsertedEvent, tenant, reason_code="IDENTITY_CREATED", user_id=user)
    await publish(topics, [registered, identity])
    assert (await drain(topics)).result.appended == 1
    dead_id = await operator_db.fetchval(
        "SELECT dead_letter_id FROM selene_ops.dead_letters WHERE event_uuid = $1 AND reason_code = $2",
        registered.event_id,
        "REFERENCE_UNKNOWN",
    )
    assert dead_id is not None
    writer = await connect(topics.database_url)
    try:
        report = await deadletters.redrive_one(writer, Pipeline(topics), dead_id)
        assert report is not None and report.redriven == 1, report
    finally:
        await writer.close()
    revoked = foundation(DeviceRevokedEvent, tenant, reason_code="DEVICE_LOST", user_id=user, device_id=device)
    await publish(topics, [revoked])
    assert (await drain(topics)).result.appended == 1
    live = await rows_of(operator_db, tenant)
    assert len(live["os_core.devices"]) == 1 and ",REVOKED," in live["os_core.devices"][0], live

    # Tenant-scoped: other tests' tenants share this database (some with live rows changed on purpose).
    rebuilt = await Rebuilder(topics, tenant=tenant).run(verify=True, apply=False)
    assert rebuilt.equal, [c for c in rebuilt.comparisons if not c.equal]
    replayed = await Replayer(topics, tenant=tenant).run(verify=True)
    assert replayed.equal, [c for c in replayed.comparisons if not c.equal]
    assert replayed.stats.unaccounted == [] and replayed.stats.redriven_moved == 1
    applied = await Replayer(topics, tenant=tenant).run(apply=True)
    assert applied.applied
    assert await rows_of(operator_db, tenant) == live  # a no-op
    assert (await Replayer(topics, tenant=tenant).run(verify=True)).equal


async def test_rebuild_reads_a_row_that_commits_after_rebuild_passed_its_id(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    """Issue 14 item 3. A re-drive-like append holds a low ledger id open while the writer commits higher ids;
    it commits once rebuild's position is past its id (or, rebuild waiting for it, after 2 s). Paging by id
    alone skipped it for good: the shadow lacked it and verify reported a false difference."""
    tenant = f"tenant-{run_id}"
    pipeline = Pipeline(topics)
    late = foundation(IdentityUpsertedEvent, tenant, reason_code="IDENTITY_CREATED", user_id=f"late-{run_id}")
    enc = encode(late)
    # Partition 7 (the topic has 3): a chain of its own, so the writer's appends do not queue behind it.
    record = Record(late.spec.topic(topics.topic_prefix), 7, 0, enc.key, enc.value, tuple(enc.headers))
    held = await connect(topics.database_url)
    tx = held.transaction()
    await tx.start()
    committed = False
    try:
        result = await pipeline.apply(held, pipeline.decode([record]))
        assert result.appended == 1
        late_id = await held.fetchval("SELECT event_id FROM os_core.audit_events WHERE event_uuid = $1", late.event_id)
        others = [
            foundation(IdentityUpsertedEvent, tenant, reason_code="IDENTITY_CREATED", user_id=f"u{i}-{run_id}")
            for i in range(8)
        ]
        await publish(topics, others)
        await drain(topics)
        assert await operator_db.fetchval(
            "SELECT count(*) FROM os_core.audit_events WHERE tenant_id = $1 AND event_id > $2", tenant, late_id
        ) == len(others)

        rebuilder = Rebuilder(topics, tenant=tenant, page=2)
        passed = asyncio.Event()

        def progress(events: int, seconds: float) -> None:
            if rebuilder.positions.get("audit_events", 0) > late_id:
                passed.set()

        run = asyncio.create_task(rebuilder.run(verify=True, apply=False, progress=progress))
        with contextlib.suppress(TimeoutError):  # rebuild waits for the open append (the fix): commit it then
            await asyncio.wait_for(passed.wait(), 2.0)
        await tx.commit()
        committed = True
        rebuilt = await asyncio.wait_for(run, 60)
    finally:
        if not committed:
            await tx.rollback()
        await held.close()
    shadow = await rows_of(operator_db, tenant, shadow=True)
    assert any(f"late-{run_id}" in r for r in shadow["os_core.identities"]), shadow
    assert rebuilt.equal, [c for c in rebuilt.comparisons if not c.equal]


async def test_a_redrive_waits_while_a_rebuild_compares_and_swaps(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers are paused for a shadow run's final catch-up, compare and swap; re-drives must be too: one that
    landed in between was missing from the shadow, so the swap dropped its projection change from live (its
    ledger row stayed). A re-drive started right before the compare (which is slowed down here) waits."""
    tenant, user, device = f"tenant-{run_id}", f"user-{run_id}", f"dev-{run_id}"
    registered = foundation(
        DeviceRegisteredEvent, tenant, reason_code="DEVICE_BOUND", user_id=user, device_id=device, device_type="phone"
    )
    identity = foundation(IdentityUpsertedEvent, tenant, reason_code="IDENTITY_CREATED", user_id=user)
    await publish(topics, [registered, identity])
    await drain(topics)
    dead_id = await operator_db.fetchval(
        "SELECT dead_letter_id FROM selene_ops.dead_letters WHERE event_uuid = $1", registered.event_id
    )
    redriver = await connect(topics.database_url)
    redrives: list[asyncio.Task[Any]] = []
    waited: list[bool] = []
    real_compare = shadow_module.compare

    async def slow_compare(conn: asyncpg.Connection, *args: Any) -> Any:
        redrives.append(asyncio.create_task(deadletters.redrive_one(redriver, Pipeline(topics), dead_id)))
        await asyncio.sleep(1.0)
        waited.append(not redrives[0].done())
        return await real_compare(conn, *args)

    monkeypatch.setattr(shadow_module, "compare", slow_compare)
    try:
        rebuilt = await Rebuilder(topics, tenant=tenant).run(verify=True, apply=True)
        report = await asyncio.wait_for(redrives[0], 30)
    finally:
        await redriver.close()
    assert report is not None and report.redriven == 1
    assert waited == [True]
    assert rebuilt.equal, [c for c in rebuilt.comparisons if not c.equal]
    live = await rows_of(operator_db, tenant)
    assert len(live["os_core.devices"]) == 1, live  # the re-drive's change survived the swap
    monkeypatch.undo()
    again = await Rebuilder(topics, tenant=tenant).run(verify=True, apply=False)
    assert again.equal, [c for c in again.comparisons if not c.equal]


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=cli_env(settings), capture_output=True, text=True, timeout=180, check=False
    )


async def test_apply_with_a_partial_scope_is_refused(
    topics: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    """Issue 14 item 4: each partial scope with --apply is refused with one line and a non-zero exit, and live
    is untouched (``--ledger audit_events --apply`` emptied work_orders_current and every other projection)."""
    w = build(tenants=1, users_per_tenant=2, events=60, bad=False, run_id=run_id, work_orders=3)
    await publish(topics, w.foundation)
    await drain(topics)
    await publish(topics, w.events)
    await drain(topics)
    tenant = w.foundation[0].tenant_id
    count = "SELECT count(*) FROM os_core.work_orders_current WHERE tenant_id = $1"
    work_orders = await operator_db.fetchval(count, tenant)
    assert work_orders > 0
    before = await rows_of(operator_db, tenant)
    scopes = [
        ["--ledger", "audit_events"],
        ["--from-offsets", "0=1"],
        ["--from-time", datetime.now(UTC).isoformat()],
        ["--as-of", "0=1"],
    ]
    for scope in scopes:
        done = run_cli(topics, "replay", "--apply", *scope)
        assert done.returncode == 2, (scope, done.stdout, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("refused: replay --apply"), (scope, done.stderr)
        assert done.stdout == ""
    assert await operator_db.fetchval(count, tenant) == work_orders
    assert await rows_of(operator_db, tenant) == before
    for replayer in (
        Replayer(topics, ledgers=["audit_events"]),
        Replayer(topics, from_offsets="0=1"),
        Replayer(topics, from_time="0"),
        Replayer(topics, as_of="0=1"),
    ):
        with pytest.raises(ReplayScopeRefused):
            await replayer.run(apply=True)
    # The whole scope still applies; every ledger named explicitly is the whole scope too.
    everything = Replayer(topics, tenant=tenant, ledgers=sorted(topics_ledgers(topics)))
    assert (await everything.run(apply=True)).applied
    assert await operator_db.fetchval(count, tenant) == work_orders


def topics_ledgers(settings: Settings) -> set[str]:
    return set(Pipeline(settings).ledger_tables)


async def test_one_shadow_run_at_a_time(topics: Settings, run_id: str) -> None:
    """Issue 14 item 4: while a shadow run holds the lock, a replay or rebuild is refused, naming the holder
    (pid and host in its application name, backend pid), and exits non-zero."""
    w = await mixed(topics, run_id, events=20)
    async with shadow_run(topics.database_operator_url, "rebuild"):
        with pytest.raises(ShadowRunBusy, match=r"selene-ledger rebuild pid \d+ on .*backend pid \d+"):
            await Replayer(topics).run(verify=True)
        with pytest.raises(ShadowRunBusy, match="another shadow run holds the lock"):
            await Rebuilder(topics).run(verify=True, apply=False)
        done = run_cli(topics, "rebuild", "--verify")
        assert done.returncode == 1, (done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith("rebuild stopped: another shadow run holds the lock: selene-ledger rebuild pid")
        assert done.stdout == ""
    # Released with its run.
    assert (await Rebuilder(topics, tenant=w.foundation[0].tenant_id).run(verify=True, apply=False)).equal


async def test_replay_lists_are_bounded_and_dead_letters_are_looked_up_per_fetch(topics: Settings, run_id: str) -> None:
    """Issue 14 item 5: unaccounted records are counted, the first ``examples`` kept; dead letters are looked up
    per fetch (small fetches here), with the same counts as one big fetch."""
    w = await mixed(topics, run_id, events=60)
    sample = w.events[0]
    lost = [RawRecord(sample.ledger, sample.kafka_key, b"\xff lost %d" % i, "EVENT_UNDECODABLE") for i in range(7)]
    await send_raw(topics, lost)  # never drained: neither in a ledger nor a dead letter
    small = await Replayer(topics, batch=3, examples=3).run()
    s = small.stats
    assert s.unaccounted_count == len(lost) and len(s.unaccounted) == 3, s
    whole = (await Replayer(topics).run()).stats
    assert (s.read, s.applied, s.duplicates, s.dead_letters_skipped) == (
        whole.read,
        whole.applied,
        whole.duplicates,
        whole.dead_letters_skipped,
    )
    assert s.dead_letters_skipped == len(w.bad) and whole.unaccounted_count == len(lost)
