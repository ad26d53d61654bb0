"""``selene-ledger topics ensure``, what compose's one-shot ``topics`` service runs before the writer starts:
it creates every ledger topic, and running it again (a restarted stack) changes nothing and succeeds."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from contracts.registry import LEDGERS
from contracts.settings import Settings
from producers.topics import LEDGER_TOPIC_CONFIG, list_topics

pytestmark = pytest.mark.integration

CLI = Path(sys.executable).with_name("selene-ledger")


async def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        **os.environ,
        "SELENE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "SELENE_TOPIC_PREFIX": settings.topic_prefix,
        "SELENE_TOPIC_PARTITIONS": str(settings.topic_partitions),
        "SELENE_TOPIC_REPLICATION_FACTOR": str(settings.replication_factor),
    }
    proc = await asyncio.create_subprocess_exec(
        str(CLI), *args, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_topics_ensure_creates_every_ledger_topic_once(settings: Settings) -> None:
    expected = {spec.topic(settings.topic_prefix) for spec in LEDGERS.values()}
    assert all(info.partitions is None for info in await list_topics(settings))  # a prefix of its own

    rc, out = await _cli(settings, "topics", "ensure")
    assert rc == 0, out
    assert {line.split()[1] for line in out.splitlines() if line.startswith("created ")} == expected
    infos = await list_topics(settings)
    assert {i.topic: i.partitions for i in infos} == dict.fromkeys(expected, settings.topic_partitions)

    # Idempotent: a second run (compose starting the stack again) creates nothing and succeeds.
    rc, out = await _cli(settings, "topics", "ensure")
    assert rc == 0, out
    assert not [line for line in out.splitlines() if line.startswith("created ")]
    assert {f"{i.ledger} {i.topic} {settings.topic_partitions}" for i in infos} <= set(out.splitlines())


def test_ledger_topics_keep_everything() -> None:
    # What the topics command creates is the replayable source of truth: nothing ages out.
    assert LEDGER_TOPIC_CONFIG["retention.ms"] == "-1"
    assert LEDGER_TOPIC_CONFIG["retention.bytes"] == "-1"
