"""The product end to end on real Kafka and PostgreSQL: publish -> ledger -> projection, and everything a
writer must survive on the way (duplicates, bad input, conflicts, holds and re-drives)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest

from cli.workload import RawRecord, build
from consumers import deadletters
from consumers.db import connect
from consumers.pipeline import Pipeline
from contracts.audit import AuditRecordedEvent
from contracts.codec import canonical_payload
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import IdentityUpsertedEvent
from contracts.settings import Settings
from tests.e2e.helpers import drain, event_ids, publish, rebuild_equals_live, send_raw

pytestmark = pytest.mark.e2e


def audit(tenant: str, corr: str, key: str | None, summary: str = "decided", **refs: str) -> LedgerEvent:
    return new_event(
        AuditRecordedEvent,
        tenant_id=tenant,
        engine_id="PH1.NLP",
        correlation_id=corr,
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload={"reason_code": "NLP_OK", "summary": summary, **refs},
    )


async def test_publish_to_ledger_and_projection(topics: Settings, operator_db: asyncpg.Connection, run_id: str) -> None:
    w = build(tenants=2, users_per_tenant=2, events=120, bad=False, run_id=run_id)
    tenants = sorted({e.tenant_id for e in w.good})
    await publish(topics, w.foundation)
    first = await drain(topics)
    await publish(topics, w.events)
    second = await drain(topics)
    assert first.result.appended == len(w.foundation)
    assert second.result.appended == len(w.events)
    assert second.result.dead_total == 0
    audit_ids = await event_ids(operator_db, "os_core.audit_events", tenants)
    conv_ids = await event_ids(operator_db, "conversation.conversation_ledger", tenants)
    expected = {str(e.event_id) for e in w.good}
    assert sorted(audit_ids + conv_ids) == sorted(expected)
    # Projections: every identity, device and session, with last_event_id pointing at its ledger row.
    rows = await operator_db.fetch(
        "SELECT s.session_id, s.session_state AS status, a.event_type FROM os_core.sessions s "
        "JOIN os_core.audit_events a ON a.event_id = s.last_event_id WHERE s.tenant_id = ANY($1)",
        tenants,
    )
    assert len(rows) == 4 and all(r["status"] == "OPEN" and r["event_type"] == "SESSION_OPENED" for r in rows)
    assert await operator_db.fetchval("SELECT count(*) FROM os_core.devices WHERE tenant_id = ANY($1)", tenants) == 4
    # Column mapping of one conversation row.
    turn = next(e for e in w.events if e.ledger == "conversation_ledger")
    row = await operator_db.fetchrow(
        "SELECT * FROM conversation.conversation_ledger WHERE event_uuid = $1", turn.event_id
    )
    assert row is not None
    assert row["text_body"] == turn.payload.text  # type: ignore[attr-defined]
    assert row["source_topic"] == f"{topics.topic_prefix}conversation.conversation_ledger"
    assert row["payload"]["speaker"] == turn.payload.speaker  # type: ignore[attr-defined]
    assert await rebuild_equals_live(topics, tenants) == []


async def test_duplicates_absorbed(topics: Settings, operator_db: asyncpg.Connection, run_id: str) -> None:
    w = build(tenants=1, users_per_tenant=1, events=40, bad=False, run_id=run_id)
    await publish(topics, w.foundation)
    await drain(topics)
    await publish(topics, w.events)
    # Redelivered records, and retries with a new event id but the same idempotency key and payload.
    retry = [
        e.model_copy(update={"event_id": new_event(type(e), **e.model_dump(exclude={"event_id"})).event_id})
        for e in w.events[:10]
    ]
    await publish(topics, w.events[:15] + retry)
    stats = await drain(topics)
    assert stats.result.appended == 40
    assert stats.result.deduplicated == 25
    assert stats.result.dead_total == 0
    tenant = w.events[0].tenant_id
    n = await operator_db.fetchval("SELECT count(*) FROM os_core.audit_events WHERE tenant_id = $1", tenant)
    m = await operator_db.fetchval("SELECT count(*) FROM conversation.conversation_ledger WHERE tenant_id = $1", tenant)
    assert n + m == 40 + len(w.foundation)


async def test_every_bad_input_class_dead_lettered_while_good_flow(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    w = build(tenants=2, users_per_tenant=2, events=80, run_id=run_id)
    await publish(topics, w.foundation)
    await drain(topics)
    half = len(w.events) // 2
    await publish(topics, w.events[:half])
    await send_raw(topics, w.bad)
    await publish(topics, w.events[half:])
    stats = await drain(topics)
    r = stats.result
    expected = Counter(b.expected_reason for b in w.bad)
    assert r.dead_lettered == expected
    assert r.appended == len(w.events)
    assert r.consumed == r.appended + r.deduplicated + r.dead_total == len(w.events) + len(w.bad)
    # Each dead letter keeps the raw record and where it came from.
    rows = await operator_db.fetch(
        "SELECT reason_code, raw_key, raw_value, source_topic, source_offset, status FROM selene_ops.dead_letters "
        "WHERE source_topic LIKE $1 || '%' ORDER BY dead_letter_id",
        topics.topic_prefix,
    )
    assert Counter(x["reason_code"] for x in rows) == expected
    by_value = {bytes(x["raw_value"]): x for x in rows}
    for bad in w.bad:
        assert bad.value in by_value
        assert bytes(by_value[bad.value]["raw_key"]) == bad.key
    statuses = {x["reason_code"]: x["status"] for x in rows}
    assert statuses["IDEMPOTENCY_CONFLICT"] == "REJECTED"
    assert statuses["HELD_BEHIND_DEAD_LETTER"] == "HELD"
    assert statuses["EVENT_UNDECODABLE"] == "OPEN"


async def test_idempotency_conflict_keeps_original(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"tenant-{run_id}"
    original = audit(tenant, "corr-1", "key-1", "the original")
    await publish(topics, [original])
    conflicting = audit(tenant, "corr-1", "key-1", "something else")
    await publish(topics, [conflicting])
    stats = await drain(topics)
    assert stats.result.appended == 1
    assert stats.result.dead_lettered == Counter({"IDEMPOTENCY_CONFLICT": 1})
    rows = await operator_db.fetch("SELECT event_uuid, payload FROM os_core.audit_events WHERE tenant_id = $1", tenant)
    assert [r["event_uuid"] for r in rows] == [original.event_id]
    assert rows[0]["payload"]["summary"] == "the original"


async def test_unknown_reference_then_redrive_exactly_once(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"tenant-{run_id}"
    user = f"user-{run_id}"
    # An audit row names a user that does not exist yet: dead-lettered, but it does not hold later events.
    first = audit(tenant, "corr-h", "h-1", "first", user_id=user)
    later = [audit(tenant, "corr-h", f"h-{i}", f"later {i}") for i in range(2, 5)]
    await publish(topics, [first, *later])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({"REFERENCE_UNKNOWN": 1})
    assert stats.result.appended == 3
    # The user appears; the one dead letter can now be re-driven, exactly once.
    identity = new_event(
        IdentityUpsertedEvent, tenant_id=tenant, engine_id="PH1.F", correlation_id="onboard",
        occurred_at=datetime.now(UTC), payload={"reason_code": "IDENTITY_CREATED", "user_id": user},
    )  # fmt: skip
    await publish(topics, [identity])
    assert (await drain(topics)).result.appended == 1
    dead_id = await operator_db.fetchval(
        "SELECT dead_letter_id FROM selene_ops.dead_letters WHERE event_uuid = $1", first.event_id
    )
    writer = await connect(topics.database_url)
    try:
        pipeline = Pipeline(topics)
        report = await deadletters.redrive_one(writer, pipeline, dead_id)
        assert report is not None and (report.redriven, report.still_blocked) == (1, 0)
        assert await deadletters.redrive_one(writer, pipeline, dead_id) is None
    finally:
        await writer.close()
    ids = await event_ids(operator_db, "os_core.audit_events", [tenant])
    assert sorted(ids) == sorted(str(e.event_id) for e in [first, *later, identity])
    assert await rebuild_equals_live(topics, [tenant]) == []


async def test_held_behind_then_discard_and_redrive_exactly_once(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"tenant-{run_id}"
    key = f"{tenant}/corr-d".encode()
    bad = RawRecord("audit_events", key, b"{not json", "EVENT_UNDECODABLE")
    await send_raw(topics, [bad])
    good = [audit(tenant, "corr-d", f"d-{i}") for i in range(3)]
    await publish(topics, good)
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({"EVENT_UNDECODABLE": 1, "HELD_BEHIND_DEAD_LETTER": 3})
    writer = await connect(topics.database_url)
    try:
        first_id = await operator_db.fetchval(
            "SELECT dead_letter_id FROM selene_ops.dead_letters WHERE aggregate_key = $1 AND status = 'OPEN'",
            key.decode(),
        )
        # Still blocked while the undecodable record stays open.
        report = await deadletters.redrive(
            writer, Pipeline(topics), f"{topics.topic_prefix}os_core.audit_events", key.decode()
        )
        assert (report.redriven, report.still_blocked) == (0, 4)
        assert await deadletters.discard(writer, first_id, "garbage from a test")
        report = await deadletters.redrive(
            writer, Pipeline(topics), f"{topics.topic_prefix}os_core.audit_events", key.decode()
        )
        assert (report.redriven, report.still_blocked) == (3, 0)
        again = await deadletters.redrive(
            writer, Pipeline(topics), f"{topics.topic_prefix}os_core.audit_events", key.decode()
        )
        assert (again.redriven, again.still_blocked) == (0, 0)
    finally:
        await writer.close()
    rows = await operator_db.fetch(
        "SELECT event_uuid FROM os_core.audit_events WHERE tenant_id = $1 ORDER BY event_id", tenant
    )
    assert [r["event_uuid"] for r in rows] == [e.event_id for e in good]  # exactly once, in Kafka order
    # A new event of the aggregate now flows normally.
    await publish(topics, [audit(tenant, "corr-d", "d-9")])
    assert (await drain(topics)).result.appended == 1


async def test_event_the_database_refuses_is_isolated_and_the_rest_land(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """A value every Python check accepts but PostgreSQL refuses (a payload at its 16,384-byte bound as
    canonical JSON, over it as the jsonb text the ledger's CHECK measures; U+0000, used here before, is now
    refused by the contract): the batch's transaction is rolled back and written again event by event, so
    exactly that event becomes a dead letter with the database's verdict and every other event of the batch
    is appended once."""
    tenant = f"tenant-{run_id}"
    good = [audit(tenant, f"corr-{i}", f"k-{i}", f"fine {i}") for i in range(6)]
    at_bound = len(canonical_payload(audit(tenant, "c", "k", "s", attributes={"a": ""})).encode())  # type: ignore[arg-type]
    refused = audit(tenant, "corr-big", "k-big", "s", attributes={"a": "y" * (16384 - at_bound)})  # type: ignore[arg-type]
    await publish(topics, [*good[:3], refused, *good[3:]])
    stats = await drain(topics)
    assert stats.result.appended == len(good)
    assert stats.result.isolated
    assert sum(stats.result.dead_lettered.values()) == 1
    ids = await event_ids(operator_db, "os_core.audit_events", [tenant])
    assert sorted(ids) == sorted(str(e.event_id) for e in good)
    detail = await operator_db.fetchval(
        "SELECT error_detail FROM selene_ops.dead_letters WHERE event_uuid = $1", refused.event_id
    )
    assert detail is not None and "refused by the database" in detail
