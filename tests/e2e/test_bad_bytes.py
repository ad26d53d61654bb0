"""One record must never crash-loop the writer (issue 13, item 4), and a dead letter belongs to no tenant it
does not prove (issue 14, item 5), on real Kafka and PostgreSQL.

PostgreSQL stores no U+0000 in text or jsonb. Before sql/0009 each of the four paths below put one into a
dead letter's text columns; the dead-letter INSERT failed (``CharacterNotInRepertoireError`` or
``UntranslatableCharacterError``), which is not retriable, so the writer stopped, and every restart stopped
on the same record. Now each record is a dead letter with its reason code, kept exactly as bytes, and the
good event sent after it lands. And a record whose key names another tenant than its envelope was stored
under the key's tenant, where that tenant's reader role could read the other tenant's payload.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import InvalidTimestampError

from consumers import deadletters
from consumers.pipeline import Pipeline, headers_from_bytes
from consumers.writer import LedgerWriter
from contracts.audit import AuditRecordedEvent
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import DeviceRegisteredEvent, IdentityUpsertedEvent
from contracts.registry import LEDGERS
from contracts.settings import Settings
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE

pytestmark = pytest.mark.e2e

Raw = tuple[bytes | None, bytes | None, Sequence[tuple[str, bytes | None]]]  # key, value, headers


def _audit(tenant: str, correlation: str = "", **payload: Any) -> LedgerEvent:
    return new_event(
        AuditRecordedEvent,
        tenant_id=tenant,
        engine_id="PH1.NLP",
        correlation_id=correlation or f"c-{uuid.uuid4().hex[:12]}",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        payload={"reason_code": "R", "summary": "s", **payload},
    )


def _raw(event: LedgerEvent, **changes: Any) -> Raw:
    """``event`` as the writer would receive it, with ``key``, ``headers`` or envelope fields changed."""
    enc = encode(event)
    doc = json.loads(enc.value)
    key = changes.pop("key", enc.key)
    headers = changes.pop("headers", enc.headers)
    payload = changes.pop("payload", {})
    doc.update(changes)
    doc["payload"].update(payload)
    return key, json.dumps(doc).encode(), headers


async def _send(
    settings: Settings, ledger: str, records: Sequence[Raw], timestamps: Sequence[int | None] = ()
) -> list[int]:
    """Send the records as they are, in order, to ``ledger``'s topic; returns their offsets."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", **settings.kafka_security.client_kwargs()
    )
    await producer.start()
    try:
        topic = LEDGERS[ledger].topic(settings.topic_prefix)
        when = list(timestamps) or [None] * len(records)
        sent = [
            await producer.send_and_wait(topic, v, key=k, headers=list(h), timestamp_ms=t)
            for (k, v, h), t in zip(records, when, strict=True)
        ]
    finally:
        await producer.stop()
    return [md.offset for md in sent]


async def _letters(conn: asyncpg.Connection, settings: Settings) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT * FROM selene_ops.dead_letters WHERE source_topic LIKE $1 || '%' ORDER BY source_partition, "
        "source_offset",
        settings.topic_prefix,
    )


async def _count(conn: asyncpg.Connection, event: LedgerEvent) -> int:
    n: int = await conn.fetchval(f"SELECT count(*) FROM {event.spec.table} WHERE event_uuid = $1", event.event_id)
    return n


async def test_nul_in_the_raw_key_is_a_dead_letter_and_blocking_still_matches_keys(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """Path 1: a raw key ``b"t1/agg\\x00"``. Stored as bytes, named by an escaped ``aggregate_key``; escaping
    is one to one, so it holds no event whose key merely reads like the escape, while a blocked key (one with a
    backslash too) still holds the later events of its aggregate."""
    tenant = f"bb{run_id}"
    nul = _audit(tenant, "agg")
    look_alike = _audit(tenant, "agg\\x00")  # a legal correlation id: backslash, x, 0, 0
    later = _audit(tenant, "a\\b")
    good = _audit(tenant)
    records = [
        _raw(nul, key=f"{tenant}/agg\x00".encode()),
        _raw(look_alike),
        (f"{tenant}/a\\b".encode(), b"not json", []),  # undecodable: OPEN, blocks its key
        _raw(later),
        _raw(good),
    ]
    await _send(topics, "audit_events", records)
    stats = await LedgerWriter(topics).run(until_caught_up=True)  # raised CharacterNotInRepertoireError before
    assert stats.result.dead_lettered == Counter(
        {"EVENT_KEY_MISMATCH": 1, "EVENT_UNDECODABLE": 1, "HELD_BEHIND_DEAD_LETTER": 1}
    )
    assert [await _count(operator_db, e) for e in (look_alike, good, later)] == [1, 1, 0]
    letters = {r["reason_code"]: r for r in await _letters(operator_db, topics)}
    assert letters["EVENT_KEY_MISMATCH"]["raw_key"] == f"{tenant}/agg\x00".encode()
    assert letters["EVENT_KEY_MISMATCH"]["aggregate_key"] == f"{tenant}/agg\\x00"
    assert "\\x00" in letters["EVENT_KEY_MISMATCH"]["error_detail"]
    assert letters["EVENT_UNDECODABLE"]["aggregate_key"] == f"{tenant}/a\\\\b"
    assert letters["HELD_BEHIND_DEAD_LETTER"]["aggregate_key"] == f"{tenant}/a\\\\b"
    assert letters["HELD_BEHIND_DEAD_LETTER"]["event_uuid"] == later.event_id


async def test_nul_in_header_keys_and_values_kept_exactly_and_redriven_exactly(
    topics: Settings, operator_db: asyncpg.Connection, writer_db: asyncpg.Connection, run_id: str
) -> None:
    """Path 2: headers whose key or value holds U+0000 (and a null value). Kept exactly in ``raw_headers``;
    ``dlq show`` escapes the keys; a re-drive reads the record back exactly and appends it."""
    tenant = f"bb{run_id}"
    user = f"u-{run_id}"
    common = {
        "tenant_id": tenant,
        "engine_id": "PH1.F",
        "correlation_id": f"c-{run_id}",
        "occurred_at": datetime(2026, 1, 1, tzinfo=UTC),
    }
    device = new_event(
        DeviceRegisteredEvent,
        **common,
        payload={"reason_code": "DEVICE_REGISTERED", "user_id": user, "device_id": f"d-{run_id}", "device_type": "p"},
    )
    identity = new_event(IdentityUpsertedEvent, **common, payload={"reason_code": "IDENTITY_CREATED", "user_id": user})
    extra: list[tuple[str, bytes | None]] = [("x\x00y", b"v\x00w"), ("\x00", None), ("\x1b[31m", b"\x00")]
    headers = [*encode(device).headers, *extra]
    undecodable_headers = [("k\x00", b"\x00\x01"), ("ok", b"")]
    await _send(topics, "audit_events", [_raw(device, headers=headers), (b"t/x", b"\x00", undecodable_headers)])
    stats = await LedgerWriter(topics).run(until_caught_up=True)  # raised UntranslatableCharacterError before
    assert stats.result.dead_lettered == Counter({"REFERENCE_UNKNOWN": 1, "EVENT_UNDECODABLE": 1})
    letters = await _letters(operator_db, topics)
    by_key = {r["raw_key"]: r for r in letters}
    assert headers_from_bytes(by_key[device.kafka_key]["raw_headers"]) == tuple(headers)
    assert headers_from_bytes(by_key[b"t/x"]["raw_headers"]) == tuple(undecodable_headers)
    shown = await deadletters.show(operator_db, by_key[device.kafka_key]["dead_letter_id"])
    assert shown is not None
    assert [h["key"] for h in shown["headers"]][-3:] == ["x\\x00y", "\\x00", "\\x1b[31m"]
    assert [h["value_b64"] for h in shown["headers"]][-2:] == [None, "AA=="]

    await _send(topics, "audit_events", [_raw(identity)])
    await LedgerWriter(topics).run(until_caught_up=True)
    report = await deadletters.redrive_one(writer_db, Pipeline(topics), by_key[device.kafka_key]["dead_letter_id"])
    assert report is not None and report.redriven == 1, report
    assert await _count(operator_db, device) == 1


async def test_unknown_payload_field_named_nul_is_a_dead_letter(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """Path 3: an unknown payload field named ``"\\u0000"``: pydantic's error names it, and the detail is
    stored with the name escaped."""
    tenant = f"bb{run_id}"
    bad, good = _audit(tenant), _audit(tenant)
    await _send(topics, "audit_events", [_raw(bad, payload={"\x00": 1}), _raw(good)])
    stats = await LedgerWriter(topics).run(until_caught_up=True)  # raised CharacterNotInRepertoireError before
    assert stats.result.dead_lettered == Counter({"EVENT_SCHEMA_INVALID": 1})
    assert stats.result.appended == 1 and await _count(operator_db, good) == 1
    [letter] = await _letters(operator_db, topics)
    assert "payload.\\x00" in letter["error_detail"], letter["error_detail"]
    assert letter["raw_value"] == _raw(bad, payload={"\x00": 1})[1]


@pytest.mark.parametrize("control", ["\x00", "\x01", "\x1f", "\x7f", "\x80", "\x9f"])
async def test_control_characters_in_identifiers_are_refused_by_the_contract(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str, control: str
) -> None:
    """Path 4: ``correlation_id = "c\\x00x"``, which ``^\\S+$`` accepted: the event decoded, its ledger row
    and then its dead letter failed. Identifiers now refuse every control character (C0, DEL, C1)."""
    tenant = f"bb{run_id}"
    bad, good = _audit(tenant), _audit(tenant)
    correlation = f"c{control}x"
    await _send(
        topics,
        "audit_events",
        [_raw(bad, correlation_id=correlation, key=f"{tenant}/{correlation}".encode()), _raw(good)],
    )
    stats = await LedgerWriter(topics).run(until_caught_up=True)  # raised CharacterNotInRepertoireError before
    assert stats.result.dead_lettered == Counter({"EVENT_SCHEMA_INVALID": 1})
    assert stats.result.appended == 1 and await _count(operator_db, good) == 1
    [letter] = await _letters(operator_db, topics)
    assert letter["aggregate_key"] == f"{tenant}/c\\x{ord(control):02x}x"
    assert "correlation_id" in letter["error_detail"]


async def test_tenant_mismatch_dead_letter_is_visible_to_operators_only(
    topics: Settings, operator_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """Issue 14, item 5: an event of tenant A sent with tenant B's key (or B's tenant header) is a dead letter
    that neither tenant's reader sees, alone or together; the operator sees it, with the raw payload."""
    a, b = f"bba{run_id}", f"bbb{run_id}"
    secret = _audit(a, summary="tenant A's secret")
    by_key = _raw(secret, key=f"{b}/{secret.aggregate_id}".encode())
    other = _audit(a, summary="tenant A's other secret")
    by_header = _raw(other, headers=[(k, b.encode() if k == "selene-tenant" else v) for k, v in encode(other).headers])
    undecodable: Raw = (f"{b}/x".encode(), json.dumps({"tenant_id": a, "summary": "A's"}).encode(), [])
    own = _audit(b)
    await _send(topics, "audit_events", [by_key, by_header, undecodable, _raw(own)])
    stats = await LedgerWriter(topics).run(until_caught_up=True)
    assert stats.result.dead_lettered == Counter({"EVENT_TENANT_MISMATCH": 2, "EVENT_SCHEMA_INVALID": 1})
    for scope in (a, b, f"{a},{b}"):
        async with reader_db.transaction():
            await reader_db.execute(SCOPE, scope)
            seen = await reader_db.fetch(
                "SELECT dead_letter_id FROM selene_ops.dead_letters WHERE source_topic LIKE $1 || '%'",
                topics.topic_prefix,
            )
            assert seen == [], scope
            own_rows = await reader_db.fetchval(
                "SELECT count(*) FROM os_core.audit_events WHERE event_uuid = $1", own.event_id
            )
            assert own_rows == (1 if b in scope.split(",") else 0), scope  # the reader's scope works at all
    letters = await _letters(operator_db, topics)
    assert len(letters) == 3 and {r["tenant_id"] for r in letters} == {None}
    assert {r["raw_value"] for r in letters} == {by_key[1], by_header[1], undecodable[1]}


async def test_a_record_timestamp_past_year_9999_is_a_dead_letter_not_a_crash(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    """A producer's CreateTime is content too. Kafka 4 refuses timestamps more than an hour ahead by default
    (``message.timestamp.after.max.ms``), older brokers and a topic configured otherwise do not; no Python
    datetime holds one past year 9999 (the dead letter's INSERT raised ``ValueError`` before)."""
    topic = LEDGERS["audit_events"].topic(topics.topic_prefix)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=topics.kafka_bootstrap_servers, **topics.kafka_security.client_kwargs()
    )
    await admin.start()
    try:
        limit = {"message.timestamp.after.max.ms": str(2**63 - 1)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=limit)])
    finally:
        await admin.close()
    tenant = f"bb{run_id}"
    good = _audit(tenant)
    far = [10**15, 2**62]  # years 33658 and 146,140,482
    records: list[Raw] = [(f"{tenant}/x{i}".encode(), b"not json", []) for i in range(len(far))]
    for _ in range(50):  # the broker applies a topic's new configuration a moment after it answered
        try:
            await _send(topics, "audit_events", records[:1], far[:1])
            break
        except InvalidTimestampError:
            await asyncio.sleep(0.2)
    await _send(topics, "audit_events", [*records[1:], _raw(good)], [*far[1:], None])
    stats = await LedgerWriter(topics).run(until_caught_up=True)
    assert stats.result.dead_lettered == Counter({"EVENT_UNDECODABLE": 2})
    assert await _count(operator_db, good) == 1
    letters = await _letters(operator_db, topics)
    # (the keys hash to partitions of their own: compare as sets, not in partition order)
    assert sorted((r["raw_key"], r["kafka_timestamp"]) for r in letters) == sorted((k, None) for k, _, _ in records)
