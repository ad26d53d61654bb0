"""Fault drills, CI-sized: real processes on loopback, killed, paused, cut off and restarted under load.
After each: no acknowledged event lost, none appended twice, none out of its aggregate's order, and live
equals replay equals rebuild. The long version is ``python -m tests.faults.soak``."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from cli.workload import Workload, build
from consumers.db import connect
from consumers.replay import Replayer
from consumers.writer import LedgerWriter
from contracts.envelope import LedgerEvent
from contracts.settings import Settings
from producers.topics import ensure_topics
from tests.e2e.helpers import drain, publish, rebuild_equals_live
from tests.faults.checker import Report, check
from tests.faults.drivers import Load, WriterProcess, end_offsets_sum, stored, wait_caught_up, wait_progress
from tests.faults.proxy import PgProxy
from tests.faults.stack import kafka_cluster, postgres_cluster, settings_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]


async def prepared(settings: Settings, run_id: str, events: int) -> Workload:
    """Topics, identities drained, and the events to load."""
    await ensure_topics(settings)
    w = build(tenants=2, users_per_tenant=4, events=events, bad=False, duplicate_ratio=0.0, run_id=run_id)
    await publish(settings, w.foundation)
    await drain(settings)
    return w


async def verified(settings: Settings, load: Load, w: Workload) -> Report:
    """Checker + live == replay == rebuild, per tenant."""
    tenants = sorted({e.tenant_id for e in w.good})
    operator = await connect(settings.database_operator_url)
    try:
        # The identities were drained before the load; the checker judges the load's events.
        setup = {str(e.event_id) for e in w.foundation}
        report = await check(operator, load.acks, tenants, may_exist=load.unacked | setup)
    finally:
        await operator.close()
    assert await rebuild_equals_live(settings, tenants) == []
    for tenant in tenants:
        replayed = await Replayer(settings, tenant=tenant).run(verify=True)
        assert replayed.equal, (replayed.comparisons, replayed.stats.unaccounted[:5])
    return report


async def kill_storm(
    settings: Settings, run_id: str, seconds: float, events: int, log_dir: Path, operator: asyncpg.Connection
) -> tuple[Report, int]:
    """kill -9 of the writer every 1-3 s (``seconds`` long) while a producer keeps publishing; then drain
    and check. Returns the checker's report (with recovery times) and the number of kills."""
    # A supervisor restarts the writer under the same static member id, so it takes its partitions back at
    # once; without it, recovery waits for the dead member's session timeout (measured: ~10 s).
    s = replace(settings, batch_max_records=50, consumer_instance_id=f"writer-{run_id}")
    w = await prepared(s, run_id, events)
    load = Load(s, w.events, chunk=40, pause=max(0.0, seconds / max(1, events / 40) - 0.02))
    producing = asyncio.create_task(load.run())
    rng = random.Random(run_id)
    recoveries = []
    kills = 0
    try:
        writer = WriterProcess(s, log_dir / "writer.log")
        await writer.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            await writer.kill()
            kills += 1
            at = await stored(operator, s.consumer_group)
            writer = WriterProcess(s, log_dir / "writer.log")
            await writer.start()
            if at < await end_offsets_sum(s):  # something left to write: time the recovery
                recoveries.append(await wait_progress(operator, s.consumer_group, at, 90))
        await producing
        await wait_caught_up(operator, s)
        await writer.terminate()
    finally:
        producing.cancel()
    report = await verified(s, load, w)
    report.recoveries = recoveries
    return report, kills


async def test_kill_9_storm_under_load(
    settings: Settings, run_id: str, operator_db: asyncpg.Connection, tmp_path: Path
) -> None:
    report, kills = await kill_storm(settings, run_id, 12, 4000, tmp_path, operator_db)
    print(f"kill -9 storm: {kills} kills; {report.summary()}")
    assert kills >= 3
    assert report.ok, report.summary()
    assert report.acked == 4000


@pytest.mark.parametrize("mode", ["after_commit", "on_commit"])
async def test_ambiguous_commit(settings: Settings, run_id: str, operator_db: asyncpg.Connection, mode: str) -> None:
    """The connection dies right after the server committed (the client cannot know), or as COMMIT is sent
    (the server rolls back): either way the retried batch lands exactly once."""
    proxy = PgProxy(upstream_port=int(settings.database_url.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    base, _, db = settings.database_url.rpartition("/")
    host = base.rsplit(":", 1)[0]
    s = replace(settings, database_url=f"{host}:{proxy.port}/{db}?sslmode=disable", batch_max_records=100)
    w = await prepared(replace(settings, consumer_group=f"{settings.consumer_group}-setup"), run_id, 600)
    load = Load(settings, w.events, chunk=100, pause=0.0)
    await load.run()
    writer = LedgerWriter(s)
    stop = asyncio.Event()
    task = asyncio.create_task(writer.run(stop=stop))
    try:
        for _ in range(3):
            while not writer.claims:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            fired = proxy.fired
            proxy.arm(mode)
            for _ in range(200):
                if proxy.fired > fired:
                    break
                await asyncio.sleep(0.05)
        await wait_caught_up(operator_db, s)
    finally:
        stop.set()
        await task
        await proxy.stop()
    assert proxy.fired >= 2, "the proxy never cut a commit"
    assert writer.stats.retries >= 1
    report = await verified(replace(s, database_url=settings.database_url), load, w)
    assert report.ok, report.summary()
    assert report.in_ledgers == len(w.good)


IN_TRANSACTION = """
SELECT count(*) > 0 FROM pg_stat_activity
WHERE datname = current_database() AND usename = 'selene_writer' AND xact_start IS NOT NULL AND state <> 'idle'
"""


SESSIONS = """
SELECT pid, usename, state, wait_event_type, wait_event, now() - xact_start AS in_xact, left(query, 160) AS query,
       pg_blocking_pids(pid) AS blocked_by
FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() ORDER BY pid
"""


async def _diagnosis(admin_db: asyncpg.Connection, s: Settings, *writers: WriterProcess) -> str:
    """What a drill that made no progress prints: the sessions, the offset rows and each writer's log tail,
    so that a failure in CI can be read without reproducing it."""
    lines = [str(dict(r)) for r in await admin_db.fetch(SESSIONS)]
    lines += [str(dict(r)) for r in await admin_db.fetch(
        "SELECT * FROM selene_ops.consumer_offsets WHERE consumer_group = $1 ORDER BY topic, partition",
        s.consumer_group)]  # fmt: skip
    for w in writers:
        lines += [f"--- {w.log_path.name}", *w.log().splitlines()[-40:]]
    return "\n".join(lines)


async def test_zombie_sigstop_cannot_commit(
    settings: Settings, run_id: str, operator_db: asyncpg.Connection, admin_db: asyncpg.Connection, tmp_path: Path
) -> None:
    s = replace(
        settings,
        batch_max_records=400,
        consumer_session_timeout_ms=6000,
        consumer_heartbeat_interval_ms=1000,
        consumer_max_poll_interval_ms=6000,
        writer_idle_in_transaction_timeout_ms=3000,  # the stopped zombie's offset-row locks are released
    )
    w = await prepared(s, run_id, 3000)
    load = Load(s, w.events, chunk=50, pause=0.05)
    producing = asyncio.create_task(load.run())
    zombie = WriterProcess(s, tmp_path / "zombie.log")
    other = WriterProcess(s, tmp_path / "other.log")
    await zombie.start()
    try:
        await wait_progress(operator_db, s.consumer_group, await stored(operator_db, s.consumer_group) + 200, 60)
        # Stop it inside a batch transaction, so that it wakes up mid-batch with stale claims.
        caught = False
        for _ in range(10000):
            if await admin_db.fetchval(IN_TRANSACTION):
                caught = True
                break
            await asyncio.sleep(0.001)
        zombie.signal(signal.SIGSTOP)
        assert caught, "never saw the writer inside a batch transaction"
        await other.start()
        # The group moves every partition to the other writer once the zombie misses its session timeout.
        at = await stored(operator_db, s.consumer_group)
        try:
            took = await wait_progress(operator_db, s.consumer_group, at + 200, 60)
            print(f"the writer taking over passed offset sum {at} + 200 in {took:.1f}s")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await _diagnosis(admin_db, s, zombie, other)}") from exc
        zombie.signal(signal.SIGCONT)  # it wakes up holding a fetched batch and stale claims
        await producing
        await wait_caught_up(operator_db, s)
        await asyncio.sleep(2)
    finally:
        producing.cancel()
        for p in (zombie, other):
            if p.proc is not None and p.proc.returncode is None:
                p.signal(signal.SIGCONT)
                await p.terminate()
    report = await verified(s, load, w)
    fenced = "moved to another consumer" in zombie.log()
    print(f"zombie: fenced write refused: {fenced}; {report.summary()}")
    assert report.ok, report.summary()
    assert fenced, "the zombie never tried to write with its stale claim"


async def _bounce(
    s: Settings,
    events: list[LedgerEvent],
    sig: int,
    tmp_path: Path,
    tag: str,
    operator_db: asyncpg.Connection,
) -> tuple[Load, list[Path]]:
    """Three writers under load; three times, one is stopped with ``sig`` and a new one joins."""
    load = Load(s, events, chunk=60, pause=0.05)
    producing = asyncio.create_task(load.run())
    logs = [tmp_path / f"{tag}{i}.log" for i in range(3)]
    writers = [WriterProcess(s, log) for log in logs]
    for w in writers:
        await w.start()
    try:
        for _ in range(3):
            await asyncio.sleep(1.5)
            victim = writers.pop(0)
            victim.signal(sig)
            await victim.wait()
            logs.append(tmp_path / f"{tag}{len(logs)}.log")
            writers.append(WriterProcess(s, logs[-1]))
            await writers[-1].start()
        await producing
        await wait_caught_up(operator_db, s)
    finally:
        producing.cancel()
        for w in writers:
            await w.terminate()
    return load, logs


def consumed_in(logs: list[Path]) -> int:
    """Records each writer reports having consumed when it stops cleanly (its last output line)."""
    total = 0
    for log in logs:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("consumed "):
                total += int(line.split()[1].rstrip(","))
    return total


async def test_rebalance_storm_clean_and_hard_bounces(
    settings: Settings, run_id: str, operator_db: asyncpg.Connection, tmp_path: Path
) -> None:
    s = replace(settings, batch_max_records=50, consumer_session_timeout_ms=6000, consumer_heartbeat_interval_ms=500)
    w = await prepared(s, run_id, 3000)
    clean, hard = w.events[:1500], w.events[1500:]
    # Clean bounces (SIGTERM): a leaving writer finishes its batch and commits, the next owner resumes from
    # the stored offsets: nothing is delivered twice.
    clean_load, clean_logs = await _bounce(s, clean, signal.SIGTERM, tmp_path, "clean", operator_db)
    redelivered = consumed_in(clean_logs) - len(clean)
    # Hard bounces (SIGKILL): batches in flight are redelivered, and absorbed.
    hard_load, _ = await _bounce(s, hard, signal.SIGKILL, tmp_path, "hard", operator_db)
    load = Load(s, [])
    load.acks = clean_load.acks + hard_load.acks
    report = await verified(s, load, w)
    print(f"rebalance storm: clean bounces redelivered {redelivered}; {report.summary()}")
    assert redelivered == 0
    assert report.ok, report.summary()
    assert report.acked == len(w.events)


async def broker_drill(settings: Settings, run_id: str, brokers: int, victim: int, restart: bool) -> Report:
    """A throwaway cluster of ``brokers``; under load, ``kill -9`` node ``victim`` (and restart it after 3 s);
    drain; check. The recovery time runs from the kill until the writer's offsets advance again."""
    with kafka_cluster(brokers) as nodes:
        s = settings_for(settings, kafka=nodes, prefix=settings.topic_prefix, group=settings.consumer_group)
        w = await prepared(s, run_id, 1500)
        load = Load(s, w.events, chunk=50, pause=0.05)
        producing = asyncio.create_task(load.run())
        stop = asyncio.Event()
        task = asyncio.create_task(LedgerWriter(s).run(stop=stop))
        operator = await connect(s.database_operator_url)
        try:
            await wait_progress(operator, s.consumer_group, await stored(operator, s.consumer_group) + 100, 60)
            pid = nodes[victim].pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            if restart:
                await asyncio.sleep(3)
                nodes[victim].start()
                await asyncio.to_thread(nodes[victim].wait_ready, 120)
            await wait_progress(operator, s.consumer_group, await stored(operator, s.consumer_group), 120)
            recovery = time.monotonic() - killed_at
            await producing
            await wait_caught_up(operator, s, limit=180)
        finally:
            producing.cancel()
            stop.set()
            await task
            await operator.close()
        report = await verified(s, load, w)
        report.recoveries = [recovery]
        print(f"{brokers} broker(s), node {victim + 1} killed: {report.summary()}; producer retries {load.errors}")
        assert report.acked == len(w.events)
        return report


async def test_broker_killed_and_restarted(settings: Settings, run_id: str) -> None:
    report = await broker_drill(settings, run_id, brokers=1, victim=0, restart=True)
    assert report.ok, report.summary()


async def test_three_broker_cluster_one_killed(settings: Settings, run_id: str) -> None:
    # Replication 3, min ISR 2, acks=all: with one broker gone, writes are still acknowledged.
    report = await broker_drill(settings, run_id, brokers=3, victim=1, restart=False)
    assert report.ok, report.summary()


async def test_postgres_killed_mid_batch_and_restarted(settings: Settings, run_id: str) -> None:
    with postgres_cluster() as node:
        s = settings_for(settings, postgres_port=node.port, prefix=settings.topic_prefix, group=settings.consumer_group)
        s = replace(s, batch_max_records=100)
        w = await prepared(s, run_id, 2000)
        load = Load(s, w.events, chunk=50, pause=0.05)
        producing = asyncio.create_task(load.run())
        writer = LedgerWriter(s)
        stop = asyncio.Event()
        task = asyncio.create_task(writer.run(stop=stop))
        try:
            operator = await connect(s.database_operator_url)
            await wait_progress(operator, s.consumer_group, await stored(operator, s.consumer_group) + 200, 60)
            await operator.close()
            pid = node.pid()
            assert pid is not None
            os.kill(pid, signal.SIGKILL)  # the postmaster dies; its backends follow
            killed_at = time.monotonic()
            for _ in range(50):
                await asyncio.sleep(0.2)
                try:
                    await asyncio.to_thread(node.start)
                    break
                except Exception:
                    continue
            operator = await connect(s.database_operator_url)
            at = await stored(operator, s.consumer_group)
            await wait_progress(operator, s.consumer_group, at, 120)
            recovery = time.monotonic() - killed_at
            await producing
            await wait_caught_up(operator, s)
            await operator.close()
        finally:
            producing.cancel()
            stop.set()
            await task
        report = await verified(s, load, w)
        report.recoveries = [recovery]
        print(f"postgres kill: {report.summary()}; writer retries {writer.stats.retries}")
        assert writer.stats.retries >= 1
        assert report.ok, report.summary()
