"""A writer stalled inside its batch transaction cannot keep its partitions from the writer Kafka gave them to.

The zombie drill (``test_faults.py::test_zombie_sigstop_cannot_commit``) failed about one run in ten: the
stopped writer's backend was *active*, reading the rest of a statement the writer never finished sending
(``pg_stat_activity``: ``active``, ``Client:ClientRead``, in its transaction for the drill's whole minute), so
``idle_in_transaction_session_timeout`` never ended it, and the new owner's claim waited on its offset rows
for ever. Here the stalled backend is made deterministic: a session of the group's writers (its
``application_name``) holds every offset row of the group inside a transaction and stays active
(``pg_sleep``), as the half-sent statement kept it. The writer taking over must end that session after its
patience (the idle timeout) and write everything; a session of any other program holding the rows (a shadow
run pausing the writers) is waited for, never ended.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest

from cli.workload import build
from consumers.offsets import writer_application_name
from contracts.envelope import LedgerEvent
from contracts.settings import Settings
from producers.topics import ensure_topics
from tests.e2e.helpers import drain, publish

pytestmark = pytest.mark.faults

HOLD_GROUP_ROWS = "SELECT 1 FROM selene_ops.consumer_offsets WHERE consumer_group = $1 FOR UPDATE"
LANDED = "SELECT count(*) FROM conversation.conversation_ledger WHERE tenant_id = ANY($1::text[])"


@contextlib.asynccontextmanager
async def holding_rows(s: Settings, application_name: str, seconds: float) -> AsyncIterator[asyncio.Task[object]]:
    """A session named ``application_name`` holding the group's offset rows in a transaction, active for
    ``seconds`` (then it commits); yields the task of its statement."""
    conn = await asyncpg.connect(s.database_url, server_settings={"application_name": application_name})
    try:
        tx = conn.transaction()
        await tx.start()
        assert await conn.fetch(HOLD_GROUP_ROWS, s.consumer_group), "the group has no offset rows yet"

        async def stay_active() -> object:
            await conn.execute("SELECT pg_sleep($1)", seconds)
            await tx.commit()
            return "committed"

        task = asyncio.create_task(stay_active())
        await asyncio.sleep(0.2)
        yield task
    finally:
        with contextlib.suppress(Exception):
            await conn.close(timeout=5)


async def prepared(settings: Settings, run_id: str) -> tuple[Settings, list[str], list[LedgerEvent]]:
    s = replace(settings, writer_idle_in_transaction_timeout_ms=1500)
    await ensure_topics(s)
    w = build(tenants=1, users_per_tenant=2, events=60, bad=False, duplicate_ratio=0.0, run_id=run_id)
    await publish(s, w.foundation)
    await drain(s)  # the group's offset rows exist
    await publish(s, w.events)
    return s, sorted({e.tenant_id for e in w.events}), list(w.events)


async def test_a_claim_ends_a_stalled_writer_of_its_group(
    settings: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    s, tenants, events = await prepared(settings, run_id)
    expected = sum(1 for e in events if e.ledger == "conversation_ledger")
    async with holding_rows(s, writer_application_name(s.consumer_group), 75) as stalled:
        stats = await asyncio.wait_for(drain(s), 60)  # without the fix: waits on the rows until they are let go (75 s)
        with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError, ConnectionError)):
            await asyncio.wait_for(stalled, 10)  # its session was ended: the statement fails
    assert stats.stalled_writers_ended == 1
    assert await operator_db.fetchval(LANDED, tenants) == expected > 0


async def test_a_claim_waits_for_a_session_of_another_program(
    settings: Settings, run_id: str, operator_db: asyncpg.Connection
) -> None:
    s, tenants, events = await prepared(settings, run_id)
    expected = sum(1 for e in events if e.ledger == "conversation_ledger")
    async with holding_rows(s, "selene-ledger replay (pausing the writers)", 4) as pause:
        stats = await asyncio.wait_for(drain(s), 60)
        assert await asyncio.wait_for(pause, 10) == "committed"  # waited for, not ended
    assert stats.stalled_writers_ended == 0
    assert await operator_db.fetchval(LANDED, tenants) == expected > 0
