"""The writer's batch begins and ends with one round trip each (sql/0027, sql/0028; issue 18): what the three
statements each replaced did must still happen, in the writer's own role and transaction.

- ``OffsetStore.begin``: a partition whose fencing epoch moved on is neither locked nor returned; the
  transaction is scoped to the tenants given; the blocked aggregates (open or held dead letters) come back.
- ``OffsetStore.finish``: a deferred foreign key violation raises there, with its SQLSTATE, so that the writer
  can still isolate the batch event by event (not at COMMIT); dead letters are stored; offsets advance only
  under the claimed epoch.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from consumers.offsets import OffsetStore
from consumers.pipeline import Item, Pipeline, Record
from contracts.reasons import ReasonCode
from contracts.settings import Settings

pytestmark = pytest.mark.integration


async def test_begin_fences_scopes_and_finds_blocked(
    writer_db: asyncpg.Connection, settings: Settings, run_id: str
) -> None:
    store = OffsetStore(f"g-{run_id}", "me")
    topic, tenant = f"t-{run_id}", f"tenant-{run_id}"
    async with writer_db.transaction():
        claims = await store.claim(writer_db, [(topic, 0), (topic, 1)])
    # Another consumer claims partition 1 since: this one's epoch for it is stale.
    async with writer_db.transaction():
        await OffsetStore(store.group, "other").claim(writer_db, [(topic, 1)])
    blocked_item = Item(Record(topic, 0, 5, f"{tenant}/agg".encode(), b"x"))
    blocked_item.dead(ReasonCode.EVENT_UNDECODABLE, "bad bytes")
    async with writer_db.transaction():
        await writer_db.execute(
            "SELECT selene_ops.writer_end_batch($1, '{}', '{}', '{}', '{}', $2, $3, $4, $5, $6, $7, $8, $9, $10,"
            " $11, $12, $13, $14, $15, $16, $17)",
            store.group,
            *Pipeline.dead_letter_params([blocked_item]),
        )
    async with writer_db.transaction():
        stored, blocked = await store.begin(
            writer_db,
            claims.values(),
            tenant,
            [(topic, f"{tenant}/agg"), (topic, f"{tenant}/other")],
        )
        assert stored == {(topic, 0): 0}  # partition 1 is fenced: not locked, not returned
        assert blocked == {(topic, f"{tenant}/agg")}
        assert await writer_db.fetchval("SELECT current_setting('selene.tenant_ids')") == tenant
    assert await writer_db.fetchval("SELECT current_setting('selene.tenant_ids', true)") in (None, "")


async def test_finish_checks_deferred_keys_stores_dead_letters_and_advances(
    writer_db: asyncpg.Connection, settings: Settings, run_id: str
) -> None:
    store = OffsetStore(f"g-{run_id}", "me")
    topic, tenant = f"t-{run_id}", f"tenant-{run_id}"
    async with writer_db.transaction():
        claims = await store.claim(writer_db, [(topic, 0)])
    now = datetime.now(UTC)
    # A device whose user does not exist: its deferred foreign key fails at the check, not at COMMIT.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        async with writer_db.transaction():
            await writer_db.execute("SELECT set_config('selene.tenant_ids', $1, true)", tenant)
            await writer_db.execute(
                "INSERT INTO os_core.devices (device_id, tenant_id, user_id, device_type, status, created_at,"
                " last_seen_at, updated_at, last_event_id) VALUES ($1, $2, 'nobody', 'PHONE', 'ACTIVE', $3, $3, $3, 1)",
                f"d-{run_id}",
                tenant,
                now,
            )
            await store.finish(writer_db, {(topic, 0): 3}, claims, Pipeline.dead_letter_params([]))
            pytest.fail("the deferred foreign key was not checked by finish")
    dead = Item(Record(topic, 0, 2, f"{tenant}/agg".encode(), b"x"))
    dead.dead(ReasonCode.EVENT_UNDECODABLE, "bad bytes")
    async with writer_db.transaction():
        await store.finish(writer_db, {(topic, 0): 3}, claims, Pipeline.dead_letter_params([dead]))
    letters = await writer_db.fetch(
        "SELECT source_offset, status, reason_code FROM selene_ops.dead_letters WHERE source_topic = $1", topic
    )
    assert [tuple(r) for r in letters] == [(2, "OPEN", "EVENT_UNDECODABLE")]
    # Fenced: once another consumer claimed the partition, this one's epoch advances nothing.
    async with writer_db.transaction():
        await OffsetStore(store.group, "other").claim(writer_db, [(topic, 0)])
    async with writer_db.transaction():
        await store.finish(writer_db, {(topic, 0): 9}, claims, Pipeline.dead_letter_params([]))
    assert (
        await writer_db.fetchval(
            "SELECT next_offset FROM selene_ops.consumer_offsets WHERE consumer_group = $1 AND topic = $2",
            store.group,
            topic,
        )
        == 3
    )
