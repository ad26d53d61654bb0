"""Faults the writer must get past, or stop at with one clear line, but never spin on or hang at."""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from consumers.writer import LedgerWriter
from contracts.registry import LEDGERS
from contracts.settings import Settings
from producers.topics import ensure_topics
from tests.e2e.helpers import CLI, cli_env, publish
from tests.e2e.test_kafka_transport import audits
from tests.faults.drivers import wait_caught_up
from tests.faults.proxy import PgProxy
from tests.faults.stack import kafka_cluster, settings_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.faults]


async def test_until_caught_up_returns_after_an_ambiguous_commit_of_the_last_batch(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """The only batch commits, but the reply is lost: the retry finds every record stored and skips them
    all. ``until_caught_up`` must still see the position reached (it used to wait for ever)."""
    tenant = f"am{run_id}"
    events = audits(tenant, 40, "ambiguous")
    await publish(topics, events)
    proxy = PgProxy(upstream_port=int(topics.database_url.rsplit(":", 1)[1].split("/")[0]))
    await proxy.start()
    base, _, db = topics.database_url.rpartition("/")
    host = base.rsplit(":", 1)[0]
    s = replace(topics, database_url=f"{host}:{proxy.port}/{db}?sslmode=disable")
    writer = LedgerWriter(s)

    async def cut_the_first_commit() -> None:
        if not proxy.fired and not proxy.armed:
            proxy.arm("after_commit")

    writer.before_write = cut_the_first_commit
    try:
        stats = await asyncio.wait_for(writer.run(until_caught_up=True), 60)
    finally:
        await proxy.stop()
    assert proxy.fired == 1, "the proxy never cut a commit"
    assert writer.stats.retries >= 1
    assert stats.result.appended == 0  # the retry found everything written by the commit that got no reply
    assert await operator_db.fetchval("SELECT count(*) FROM os_core.audit_events WHERE tenant_id = $1", tenant) == len(
        events
    )
    await wait_caught_up(operator_db, s, limit=5)


def _corrupt_last_batch(data_dir: Path, topic: str, partition: int) -> None:
    """Flip one byte inside the last record batch of the partition's log (its CRC no longer matches)."""
    segment = sorted((data_dir / f"{topic}-{partition}").glob("*.log"))[-1]
    raw = bytearray(segment.read_bytes())
    assert raw, f"{segment} is empty"
    pos, last = 0, 0
    while pos + 12 <= len(raw):  # baseOffset int64, batchLength int32, then batchLength bytes
        length = int.from_bytes(raw[pos + 8 : pos + 12], "big")
        last, pos = pos, pos + 12 + length
    raw[last + 12 + length - 5] ^= 0xFF  # a byte of the last record's value, covered by the CRC
    segment.write_bytes(bytes(raw))


async def test_a_corrupt_batch_stops_the_writer_with_one_line(settings: Settings, run_id: str) -> None:
    with kafka_cluster(1) as nodes:
        s = settings_for(settings, kafka=nodes, prefix=settings.topic_prefix, group=settings.consumer_group)
        s = replace(s, topic_partitions=1)
        await ensure_topics(s)
        tenant = f"cr{run_id}"
        events = audits(tenant, 30, "corrupt")
        await publish(s, events[:20])
        await publish(s, events[20:])
        node = nodes[0]
        node.stop(10)  # a clean shutdown: the broker does not re-validate the segment when it starts
        topic = LEDGERS["audit_events"].topic(s.topic_prefix)
        _corrupt_last_batch(node.data_dir, topic, 0)
        node.start()
        node.wait_ready(120)
        started = time.monotonic()
        result = await asyncio.to_thread(
            subprocess.run,
            [*CLI, "consume", "--until-caught-up"],
            env=cli_env(s),
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    took = time.monotonic() - started
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 3, (result.returncode, result.stderr[-3000:])
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    found = re.search(rf"cannot read {re.escape(topic)}\[0\] at offset (\d+): ", lines[-1])
    assert found, lines[-1]
    assert 20 <= int(found.group(1)) < 30, lines[-1]  # in the second publish's batch, the corrupt one
    assert took < 120
