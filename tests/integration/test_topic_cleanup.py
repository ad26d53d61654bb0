"""Throwaway topic prefixes are deleted after use (tests, benchmarks): a broker keeps a file open per
partition, and a developer's broker that kept every test run's topics died at start-up on its open-file
limit (20,000 here, not raisable in this container)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace

import pytest

from contracts.settings import Settings
from producers.topics import delete_topics, ensure_topics, list_topics


async def _names(settings: Settings) -> list[str]:
    return [t.topic for t in await list_topics(settings) if t.partitions]


async def test_delete_topics_removes_every_topic_of_the_prefix_and_only_those(migrated: Settings) -> None:
    mine = replace(migrated, topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    other = replace(migrated, topic_prefix=f"t{uuid.uuid4().hex[:10]}.")
    created = await ensure_topics(mine)
    await ensure_topics(other)
    for _ in range(100):  # creation and deletion are asynchronous in the broker: ask until it says so
        if not await _names(mine):
            break
        await delete_topics(mine)
        await asyncio.sleep(0.1)
    assert await _names(mine) == []
    assert len(await _names(other)) == len(created)
    await delete_topics(other)


async def test_delete_topics_refuses_the_unprefixed_ledger_topics(migrated: Settings) -> None:
    with pytest.raises(ValueError, match="prefix"):
        await delete_topics(replace(migrated, topic_prefix=""))


_USED: list[Settings] = []


async def test_a_test_using_the_topics_fixture(topics: Settings) -> None:
    assert await _names(topics)
    _USED.append(topics)


async def test_its_topics_are_gone_after_it() -> None:
    if not _USED:
        pytest.skip("runs after test_a_test_using_the_topics_fixture only")
    for _ in range(100):
        if not await _names(_USED[0]):
            break
        await asyncio.sleep(0.1)
    assert await _names(_USED[0]) == []
