"""PH1.PERSONA (seed 004) end to end on real Kafka and PostgreSQL: AT-PERS-DB-01..04 and the refusals.

Profile commits are audit rows of engine PH1.PERSONA. Users, devices and sessions are set up the product way
(PH1.F/PH1.L events through the writer), then commits are published and read back as the decision trace.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord
from consumers.ledger import event_from_row
from consumers.projections import LEDGER_TABLES
from consumers.repositories.persona import PersonaReader
from contracts.codec import encode
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import DeviceRegisteredEvent, IdentityUpsertedEvent, SessionOpenedEvent
from contracts.persona import PersonaProfileCommitEvent
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from producers.ledger_writes import LedgerWrites
from producers.persona import PersonaWriter
from producers.publisher import Publisher
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE
from tests.e2e.acceptance import SliceAcceptance
from tests.e2e.helpers import drain, publish, rebuild_equals_live, running_writer, send_raw

pytestmark = pytest.mark.e2e

AUDIT = "os_core.audit_events"


@dataclass(frozen=True)
class Person:
    tenant: str
    user: str
    device: str
    session: str


def people(run_id: str, tenant: str, *names: str) -> dict[str, Person]:
    return {n: Person(tenant, f"u-{run_id}-{n}", f"d-{run_id}-{n}", f"s-{run_id}-{n}") for n in names}


def onboarding(person: Person) -> list[LedgerEvent]:
    """Identity, device and session of one person, as PH1.F and PH1.L publish them."""
    common: dict[str, Any] = {
        "tenant_id": person.tenant,
        "correlation_id": f"onboard-{person.user}",
        "occurred_at": datetime.now(UTC),
    }
    refs = {"user_id": person.user, "device_id": person.device}
    return [
        new_event(
            IdentityUpsertedEvent, engine_id="PH1.F", payload={"reason_code": "ID", "user_id": person.user}, **common
        ),
        new_event(
            DeviceRegisteredEvent,
            engine_id="PH1.F",
            payload={"reason_code": "DEV", "device_type": "PHONE", **refs},
            **common,
        ),
        new_event(
            SessionOpenedEvent,
            engine_id="PH1.L",
            payload={"reason_code": "SES", "session_id": person.session, **refs},
            **common,
        ),
    ]


def commit(
    person: Person, corr: str, key: str | None, *, style: str = "style:warm/v3", **refs: str | None
) -> LedgerEvent:
    payload: dict[str, Any] = {
        "reason_code": "PERSONA_PROFILE_SELECTED",
        "user_id": person.user,
        "device_id": person.device,
        "session_id": person.session,
        "style_profile_ref": style,
        "delivery_policy_ref": "delivery:voice-first",
        "preferences_snapshot_ref": f"prefs:{person.user}@1",
        **refs,
    }
    return new_event(
        PersonaProfileCommitEvent,
        tenant_id=person.tenant,
        engine_id="PH1.PERSONA",
        correlation_id=corr,
        turn_id=f"turn-{corr}",
        idempotency_key=key,
        occurred_at=datetime.now(UTC),
        payload=payload,
    )


def raw(event: LedgerEvent, **changes: Any) -> RawRecord:
    """The event's bytes with ``changes`` to the envelope or (``payload=``) its payload: what a misbehaving
    engine could send past the publisher's checks."""
    doc = json.loads(encode(event).value)
    doc["payload"].update(changes.pop("payload", {}))
    doc.update(changes)
    return RawRecord("audit_events", event.kafka_key, json.dumps(doc).encode(), "")


async def scoped(conn: asyncpg.Connection, tenant: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    async with conn.transaction():
        await conn.execute(SCOPE, tenant)
        return await conn.fetch(sql, *args)


async def test_at_pers_db_01_tenant_isolation_enforced(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    pa, pb = people(run_id, a, "a")["a"], people(run_id, b, "b")["b"]
    stranger = people(run_id, a, "x")["x"]
    await publish(topics, onboarding(pa) + onboarding(pb) + onboarding(stranger))
    await drain(topics)
    # The same correlation and idempotency key in two tenants: two decisions, one per tenant.
    mine, theirs = commit(pa, "corr", "k"), commit(pb, "corr", "k")
    # A device of tenant b named by a commit of tenant a: one tenant binding per device, so refused.
    crossing = commit(stranger, "corr-x", "k", device_id=pb.device, session_id=None)
    await publish(topics, [mine, theirs, crossing])
    stats = await drain(topics)
    assert stats.result.appended == 2
    assert stats.result.dead_lettered == Counter({"TENANT_SCOPE_VIOLATION": 1})
    reader = PersonaReader(reader_db)
    assert [d.event_uuid for d in await reader.decision_trace(a, "corr")] == [mine.event_id]
    assert [d.event_uuid for d in await reader.decision_trace(b, "corr")] == [theirs.event_id]
    assert await reader.decision_trace(a, "corr-x") == []
    rows = await scoped(reader_db, a, f"SELECT tenant_id FROM {AUDIT} WHERE correlation_id = 'corr'")
    assert [r["tenant_id"] for r in rows] == [a]


async def test_at_pers_db_02_append_only_enforced(
    topics: Settings, writer_db: asyncpg.Connection, owner_db: asyncpg.Connection, run_id: str
) -> None:
    person = people(run_id, f"t-{run_id}", "p")["p"]
    decision = commit(person, "corr", "k")
    await publish(topics, [*onboarding(person), decision])
    await drain(topics)
    where = "tenant_id = $1 AND event_uuid = $2"
    statements = [
        f"UPDATE {AUDIT} SET payload = jsonb_set(payload, '{{style_profile_ref}}', '\"style:cold\"') WHERE {where}",
        f"DELETE FROM {AUDIT} WHERE {where}",
    ]
    for sql in statements:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await scoped(writer_db, person.tenant, sql, person.tenant, decision.event_id)
        with pytest.raises(asyncpg.PostgresError) as info:
            await scoped(owner_db, person.tenant, sql, person.tenant, decision.event_id)
        assert (info.value.sqlstate, info.value.detail) == ("SLA01", ReasonCode.PH1_J_AUDIT_APPEND_ONLY_VIOLATION)
    rows = await scoped(
        owner_db, person.tenant, f"SELECT payload FROM {AUDIT} WHERE {where}", person.tenant, decision.event_id
    )
    assert [r["payload"]["style_profile_ref"] for r in rows] == ["style:warm/v3"]


async def test_at_pers_db_03_idempotency_dedupe_works(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    person = people(run_id, f"t-{run_id}", "p")["p"]
    await publish(topics, onboarding(person))
    await drain(topics)
    first = commit(person, "corr", "turn-1-profile")
    retry = new_event(type(first), **first.model_dump(exclude={"event_id"}))
    conflicting = commit(person, "corr", "turn-1-profile", style="style:formal/v1")
    other_corr = commit(person, "corr-2", "turn-1-profile")  # the key is scoped by correlation
    async with running_writer(topics) as stats, Publisher(topics) as publisher:
        writer = PersonaWriter(LedgerWrites(publisher, reader_db, timeout=60))
        written = await writer.commit(first)
        assert written.outcome == "APPENDED"
        again = await writer.commit(retry)
        assert (again.event_id, again.event_uuid, again.outcome) == (
            written.event_id,
            first.event_id,
            "IDEMPOTENCY_REPLAY",
        )
        conflict = await writer.commit(conflicting)
        assert (conflict.event_id, conflict.outcome) == (written.event_id, "IDEMPOTENCY_CONFLICT")
        second = await writer.commit(other_corr)
        assert second.outcome == "APPENDED" and second.event_id > written.event_id
    stats.result.add((await drain(topics)).result)  # the records whose verdict was known before the writer
    assert (stats.result.appended, stats.result.deduplicated) == (2, 1)
    assert stats.result.dead_lettered == Counter({"IDEMPOTENCY_CONFLICT": 1})
    trace = await PersonaReader(reader_db).decision_trace(person.tenant, "corr")
    assert [(d.event_id, d.style_profile_ref) for d in trace] == [(written.event_id, "style:warm/v3")]


async def test_at_pers_db_04_no_current_table_rebuild_required(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    person = people(run_id, tenant, "p")["p"]
    await publish(topics, onboarding(person))
    await drain(topics)
    before = await operator_db.fetch(
        "SELECT 'device' AS kind, last_event_id FROM os_core.devices WHERE tenant_id = $1 "
        "UNION ALL SELECT 'session', last_event_id FROM os_core.sessions WHERE tenant_id = $1 "
        "UNION ALL SELECT 'identity', last_event_id FROM os_core.identities WHERE tenant_id = $1 ORDER BY 1",
        tenant,
    )
    decisions = [commit(person, "corr", f"k-{i}", style=f"style:v{i}") for i in range(3)]
    await publish(topics, decisions)
    assert (await drain(topics)).result.appended == 3
    # No projection row moved: the commits changed nothing but the ledger.
    after = await operator_db.fetch(
        "SELECT 'device' AS kind, last_event_id FROM os_core.devices WHERE tenant_id = $1 "
        "UNION ALL SELECT 'session', last_event_id FROM os_core.sessions WHERE tenant_id = $1 "
        "UNION ALL SELECT 'identity', last_event_id FROM os_core.identities WHERE tenant_id = $1 ORDER BY 1",
        tenant,
    )
    assert after == before
    # The trace is read from the ledger alone, in append order, and each row replays to the published event.
    trace = await PersonaReader(reader_db).decision_trace(tenant, "corr")
    assert [d.style_profile_ref for d in trace] == ["style:v0", "style:v1", "style:v2"]
    assert [d.turn_id for d in trace] == ["turn-corr"] * 3
    rows = await operator_db.fetch(
        f"SELECT * FROM {AUDIT} WHERE event_uuid = ANY($1) ORDER BY event_id", [d.event_id for d in decisions]
    )
    assert [event_from_row(LEDGER_TABLES["audit_events"], dict(r)) for r in rows] == decisions
    # A rebuild of every projection from the ledger, persona rows included, equals live.
    assert await rebuild_equals_live(topics, [tenant]) == []


async def test_pers_refusals_dead_lettered_while_good_commits_flow(
    topics: Settings, reader_db: asyncpg.Connection, operator_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    ps = people(run_id, a, "good", "wrongdev", "wrongses", "foreign", "big")
    other = people(run_id, b, "other")["other"]
    await publish(topics, [e for p in [*ps.values(), other] for e in onboarding(p)])
    await drain(topics)
    good = ps["good"]
    good_commits = [commit(good, f"corr-{i}", f"k-{i}") for i in range(4)]
    # Each refusal names its own user, so that the aggregate it blocks is not the good user's.
    refused = {
        # the device is the good user's, not this user's
        "wrong device": commit(ps["wrongdev"], "bad-1", "k", device_id=good.device, session_id=None),
        # the session is the good user's, on another device
        "mismatched session": commit(ps["wrongses"], "bad-2", "k", session_id=good.session),
        # the device is bound to tenant b
        "foreign device": commit(ps["foreign"], "bad-3", "k", device_id=other.device, session_id=None),
    }
    big = commit(ps["big"], "bad-4", "k")
    raw_refusals = [
        (raw(big, payload={"style_profile_ref": "s" * 70_000}), "EVENT_OVERSIZE"),  # over the message bound
        (raw(big, payload={"style_profile_ref": "s" * 129}), "EVENT_SCHEMA_INVALID"),  # over the field bound
        (raw(big, payload={"mood": "cheerful"}), "EVENT_SCHEMA_INVALID"),  # the payload is exactly its keys
        (raw(big, turn_id=None), "EVENT_SCHEMA_INVALID"),  # every commit is about a turn
    ]
    await publish(topics, good_commits[:2] + list(refused.values()))
    await send_raw(topics, [r for r, _ in raw_refusals])
    await publish(topics, good_commits[2:])
    stats = await drain(topics)
    assert stats.result.appended == len(good_commits)
    expected = Counter({"TENANT_SCOPE_VIOLATION": len(refused)}) + Counter(reason for _, reason in raw_refusals)
    assert stats.result.dead_lettered == expected
    details = {
        r["event_uuid"]: r
        for r in await operator_db.fetch(
            "SELECT event_uuid, reason_code, error_detail FROM selene_ops.dead_letters WHERE tenant_id = $1", a
        )
    }
    for name, event in refused.items():
        assert details[event.event_id]["reason_code"] == "TENANT_SCOPE_VIOLATION", name
    assert "does not belong to user" in details[refused["wrong device"].event_id]["error_detail"]
    assert "does not match user" in details[refused["mismatched session"].event_id]["error_detail"]
    assert "belongs to another tenant" in details[refused["foreign device"].event_id]["error_detail"]
    trace = [d for i in range(4) for d in await PersonaReader(reader_db).decision_trace(a, f"corr-{i}")]
    assert [d.event_uuid for d in trace] == [e.event_id for e in good_commits]
    assert await rebuild_equals_live(topics, [a, b]) == []


class TestAtPersDb(SliceAcceptance):
    """The shared AT-PERS-DB-01..04 (tests/e2e/acceptance.py), from the slice's declaration."""

    slice_name = "persona"
