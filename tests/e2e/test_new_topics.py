"""A writer started right after its topics were created reads them all: it waits until the cluster describes
every one before it subscribes (before: it was assigned none of the last topic's partitions until its next
metadata refresh, five minutes, and `--until-caught-up` returned at once having appended nothing)."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

import pytest

from consumers.kafka import MissingTopics
from consumers.writer import LedgerWriter
from contracts.registry import REGISTRY
from contracts.settings import Settings
from contracts.slice import ExampleContext
from producers.topics import ensure_topics
from tests.e2e.helpers import publish, running_writer

pytestmark = pytest.mark.e2e


async def test_a_writer_started_as_the_topics_are_created_reads_the_last_of_them(
    settings: Settings, run_id: str
) -> None:
    s = dataclasses.replace(settings, topic_prefix=f"n{run_id}.", consumer_group=f"g-{run_id}")
    await ensure_topics(s)
    # The writer starts at once (as compose starts it when the topics service is done), then the slice whose
    # ledger topic was created last (the registry's order) publishes.
    last = [x for x in REGISTRY.slices if x.ledgers and x.examples][-1]
    assert last.examples is not None
    ctx = ExampleContext(f"t-{run_id}", f"u-{run_id}", f"d-{run_id}", f"s-{run_id}", 0, datetime.now(UTC))
    events = [e for e in last.examples(ctx) if e.ledger == last.ledgers[-1].spec.name]
    assert events
    async with running_writer(s) as stats:
        await publish(s, events)
        for _ in range(300):  # 60 s
            if stats.result.appended >= len(events):
                break
            await asyncio.sleep(0.2)
    assert stats.result.appended == len(events), stats.result


async def test_a_writer_whose_topics_do_not_exist_says_so(
    settings: Settings, run_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("consumers.kafka.TOPICS_WAIT_S", 1.0)
    s = dataclasses.replace(settings, topic_prefix=f"absent{run_id}.", consumer_group=f"g-{run_id}")
    with pytest.raises(MissingTopics, match="topics ensure"):
        await LedgerWriter(s).run(until_caught_up=True)
