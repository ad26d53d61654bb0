"""Crashes and zombies: every acknowledged event ends up in its ledger exactly once, whatever happens to the
writer in between, and a writer that lost its partitions cannot commit."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from cli.workload import build
from consumers.writer import LedgerWriter, ledger_topics
from contracts.settings import Settings
from tests.e2e.helpers import CLI, cli_env, drain, event_ids, publish, rebuild_equals_live

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
STORED = "SELECT coalesce(sum(next_offset), 0) FROM selene_ops.consumer_offsets WHERE consumer_group = $1"


async def _wait_for(predicate, limit: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_kill_9_mid_drain_then_restart(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str, tmp_path: Path
) -> None:
    settings = replace(topics, batch_max_records=40)
    w = build(tenants=2, users_per_tenant=2, events=2400, bad=False, run_id=run_id)
    await publish(settings, w.foundation)
    await drain(settings)
    base = await operator_db.fetchval(STORED, settings.consumer_group)
    published = await publish(settings, w.events)
    total = base + len(published)
    env = cli_env(settings)
    kills = []
    for round_no, fraction in enumerate((0.15, 0.45, 0.75)):
        log = (tmp_path / f"writer-{round_no}.log").open("w")
        proc = await asyncio.create_subprocess_exec(
            *CLI, "consume", env=env, cwd=ROOT, stdout=log, stderr=log, stdin=subprocess.DEVNULL
        )
        target = base + int(len(published) * fraction)

        async def progressed(target: int = target) -> bool:
            return int(await operator_db.fetchval(STORED, settings.consumer_group)) >= target

        try:
            await _wait_for(progressed, 90, f"the writer to pass offset {target}")
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            await proc.wait()
            log.close()
        kills.append(int(await operator_db.fetchval(STORED, settings.consumer_group)))
    assert kills[0] < total, "the writer finished before it could be killed mid-drain"
    final = await asyncio.create_subprocess_exec(
        *CLI,
        "consume",
        "--until-caught-up",
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    _, err = await asyncio.wait_for(final.communicate(), 180)
    assert final.returncode == 0, err.decode()[-2000:]
    tenants = sorted({e.tenant_id for e in w.good})
    ids = await event_ids(operator_db, "os_core.audit_events", tenants) + await event_ids(
        operator_db, "conversation.conversation_ledger", tenants
    )
    assert len(ids) == len(set(ids)), "an event was appended twice"
    assert set(ids) == {str(e.event_id) for e in w.good}, "an acknowledged event is missing"
    assert await operator_db.fetchval(STORED, settings.consumer_group) == total
    assert await rebuild_equals_live(settings, tenants) == []


async def test_zombie_writer_cannot_commit(topics: Settings, operator_db: asyncpg.Connection, run_id: str) -> None:
    w = build(tenants=1, users_per_tenant=2, events=300, bad=False, run_id=run_id)
    await publish(topics, w.foundation)
    await drain(topics)
    await publish(topics, w.events)
    tenants = [w.events[0].tenant_id]
    paused, release = asyncio.Event(), asyncio.Event()

    async def hold_first_batch() -> None:
        if not paused.is_set():
            paused.set()
            await release.wait()

    zombie = LedgerWriter(
        topics,
        consumer_options={
            "max_poll_interval_ms": 3000,
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 500,
            "rebalance_timeout_ms": 3000,
        },
    )
    zombie.before_write = hold_first_batch
    stop_zombie, stop_other = asyncio.Event(), asyncio.Event()
    zombie_task = asyncio.create_task(zombie.run(stop=stop_zombie))
    await asyncio.wait_for(paused.wait(), 60)
    # The zombie holds a fetched batch and its claims. A second writer joins and takes the partitions over.
    other = LedgerWriter(topics)
    other_task = asyncio.create_task(other.run(stop=stop_other))

    async def all_written() -> bool:
        return len(await event_ids(operator_db, "conversation.conversation_ledger", tenants)) + len(
            await event_ids(operator_db, "os_core.audit_events", tenants)
        ) >= len(w.good)

    try:
        await _wait_for(all_written, 120, "the second writer to write everything")
    finally:
        release.set()  # the zombie wakes up and tries to write its stale batch
        await asyncio.sleep(1.0)
        stop_other.set()
        stop_zombie.set()
        await asyncio.gather(other_task, zombie_task)
    assert zombie.stats.fenced_partitions > 0, "the zombie was never fenced"
    assert zombie.stats.result.appended == 0, "the zombie committed a stale batch"
    ids = await event_ids(operator_db, "os_core.audit_events", tenants) + await event_ids(
        operator_db, "conversation.conversation_ledger", tenants
    )
    assert sorted(ids) == sorted(str(e.event_id) for e in w.good)
    assert await rebuild_equals_live(topics, tenants) == []


async def test_postgres_offsets_rule_when_kafka_is_ahead(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """PostgreSQL restored to an earlier point (or a Kafka commit that never matched a database commit): the
    group's Kafka offsets are ahead of the ones PostgreSQL holds. Records the consumer fetched from Kafka's
    position before the writer claimed its partitions and sought to PostgreSQL's offsets must not be
    written (they would leave a gap behind them); everything is written from PostgreSQL's offsets, once."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    w = build(tenants=1, users_per_tenant=2, events=400, bad=False, run_id=run_id)
    await publish(topics, w.foundation + w.events)
    tenants = [w.events[0].tenant_id]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=topics.kafka_bootstrap_servers, group_id=topics.consumer_group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in ledger_topics(topics) for p in range(topics.topic_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        # Kafka says "half of every partition is done"; PostgreSQL has no offsets for the group at all.
        await consumer.commit({tp: end // 2 for tp, end in ends.items() if end // 2 > 0})
    finally:
        await consumer.stop()
    assert await operator_db.fetchval(STORED, topics.consumer_group) == 0

    stats = await drain(topics)

    ids = await event_ids(operator_db, "os_core.audit_events", tenants) + await event_ids(
        operator_db, "conversation.conversation_ledger", tenants
    )
    assert sorted(ids) == sorted(str(e.event_id) for e in w.good)  # none skipped, none twice
    assert stats.result.consumed == sum(ends.values())  # read from PostgreSQL's offsets (0), not Kafka's
    assert await operator_db.fetchval(STORED, topics.consumer_group) == sum(ends.values())
