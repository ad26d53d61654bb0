"""``dlq redrive`` beside a running writer: a lost race is retried, not ended in a traceback."""

from __future__ import annotations

import asyncio

import pytest

from consumers import deadletters
from contracts.settings import Settings
from tests.integration.test_projection_races import Pair, _held, attempt, device, identity, pair, records

pytestmark = pytest.mark.integration
__all__ = ["pair"]  # the fixture, imported for this module's tests

DEAD_LETTER = "SELECT dead_letter_id FROM selene_ops.dead_letters WHERE source_topic = $1 AND source_offset = $2"
WAITING = "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1"


async def test_a_redrive_that_loses_a_race_is_retried(pair: Pair, settings: Settings, run_id: str) -> None:
    """User u's device d arrives before u's identity (dead letter REFERENCE_UNKNOWN). While the operator
    re-drives it, a writer registers d for another user u2 of the tenant in a transaction still open: the
    re-drive's insert of d waits on that row, then finds it created since its load (a lost race,
    ``RetriableError``). The re-drive must decide again on d as it now stands (u2's: refused, kept as a
    dead letter), not end in an error."""
    tenant, u, u2, d = f"ra{run_id}", f"u-{run_id}", f"v-{run_id}", f"d-{run_id}"
    dev = records(settings, [device(tenant, u, d)], 5)
    out = await attempt(pair.one, pair.pipeline, dev)
    assert (out.items[0].outcome, out.items[0].reason) == ("dead", "REFERENCE_UNKNOWN")
    for rec in (records(settings, [identity(tenant, u)], 5), records(settings, [identity(tenant, u2)], 6)):
        assert (await attempt(pair.one, pair.pipeline, rec)).items[0].outcome == "appended"
    dead_id = await pair.observer.fetchval(DEAD_LETTER, dev[0].topic, dev[0].offset)
    assert dead_id is not None

    release, applied = asyncio.Event(), asyncio.Event()
    other = asyncio.create_task(_held(pair, records(settings, [device(tenant, u2, d)], 6), applied, release))
    await asyncio.wait_for(applied.wait(), 30)
    redrive = asyncio.create_task(deadletters.redrive_one(pair.two, pair.pipeline, dead_id))
    pid = pair.two.get_server_pid()
    for _ in range(500):  # the re-drive's insert of d waits on the other writer's uncommitted row
        if redrive.done() or await pair.observer.fetchval(WAITING, pid) == "Lock":
            break
        await asyncio.sleep(0.02)
    assert not redrive.done(), "the re-drive did not wait for the other writer's row"
    release.set()
    assert [i.outcome for i in (await asyncio.wait_for(other, 30)).items] == ["appended"]
    report = await asyncio.wait_for(redrive, 30)
    assert report is not None and report.redriven == 0, report  # d is u2's now: u's registration is refused
    owner = await pair.observer.fetchval("SELECT user_id FROM os_core.devices WHERE device_id = $1", d)
    assert owner == u2
