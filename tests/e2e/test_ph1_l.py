"""PH1.L (session lifecycle on ``os_core.sessions``, seed 000 row 8): upstream's AT-L-DB-01..04 and the
sheet's failure classes, through Kafka, the writer and PostgreSQL. The table is PH1.F's: its shared suite
runs in test_foundation.py."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.repositories.foundation import FoundationReader
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import (
    DeviceRegisteredEvent,
    IdentityUpsertedEvent,
    SessionClosedEvent,
    SessionOpenedEvent,
    SessionSoftClosedEvent,
    SessionStateTransitionEvent,
    SystemResumedEvent,
    SystemSuspendedEvent,
)
from contracts.reasons import ReasonCode
from contracts.settings import Settings
from tests.e2e.acceptance import scoped
from tests.e2e.helpers import drain, publish, rebuild_equals_live

pytestmark = pytest.mark.e2e
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def user(tenant: str, name: str, *devices: str) -> list[LedgerEvent]:
    """A user and devices; ids are global keys, so they carry the tenant (as upstream's ``tenant_a:user_1``)."""
    name, devices = f"{tenant}:{name}", tuple(f"{tenant}:{d}" for d in devices)
    common: dict[str, Any] = {
        "tenant_id": tenant,
        "engine_id": "PH1.F",
        "correlation_id": f"on-{name}",
        "occurred_at": T0,
    }
    return [
        new_event(IdentityUpsertedEvent, payload={"reason_code": "ID", "user_id": name}, **common),
        *(
            new_event(
                DeviceRegisteredEvent,
                payload={"reason_code": "DEV", "user_id": name, "device_id": d, "device_type": "PHONE"},
                **common,
            )
            for d in devices
        ),
    ]


def session(
    model: type[LedgerEvent], tenant: str, name: str, device: str, sid: str, key: str, when: int, **payload: Any
) -> LedgerEvent:
    """A PH1.L event; its correlation is the session, so the audit scope is upstream's (session, key)."""
    name, device, sid = f"{tenant}:{name}", f"{tenant}:{device}", f"{tenant}:{sid}"
    return new_event(
        model,
        tenant_id=tenant,
        engine_id="PH1.L",
        correlation_id=sid,
        idempotency_key=key,
        occurred_at=at(when),
        payload={"reason_code": "L_OPEN_WAKE", "user_id": name, "device_id": device, "session_id": sid, **payload},
    )


async def test_at_l_db_01_tenant_isolation_enforced(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    events = []
    for t in (a, b):
        events += [
            *user(t, "user_1", "d1"),
            session(SessionOpenedEvent, t, "user_1", "d1", "s1", "k", 1),
        ]
    await publish(topics, events)
    assert not (await drain(topics)).result.dead_lettered
    reader = FoundationReader(reader_db)
    for t in (a, b):
        rows = await scoped(
            reader_db, t, "SELECT tenant_id, user_id FROM os_core.sessions WHERE tenant_id = ANY($1)", [a, b]
        )
        assert [tuple(r) for r in rows] == [(t, f"{t}:user_1")]
        assert [s.session_id for s in await reader.sessions_in_state(t, "OPEN")] == [f"{t}:s1"]
    assert await reader.session(a, f"{b}:s1") is None


async def test_at_l_db_02_append_only_enforced(topics: Settings, owner_db: asyncpg.Connection, run_id: str) -> None:
    t = f"t-{run_id}"
    await publish(topics, [*user(t, "u", "d"), session(SessionOpenedEvent, t, "u", "d", "s", "k", 1)])
    assert not (await drain(topics)).result.dead_lettered
    where = "tenant_id = $1 AND engine_id = 'PH1.L' AND event_type = 'SESSION_OPENED'"
    before = await scoped(owner_db, t, f"SELECT * FROM os_core.audit_events WHERE {where}", t)
    assert len(before) == 1
    for sql in (
        f"UPDATE os_core.audit_events SET reason_code = 'X' WHERE {where}",
        f"DELETE FROM os_core.audit_events WHERE {where}",
    ):
        with pytest.raises(asyncpg.PostgresError) as info:
            await scoped(owner_db, t, sql, t)
        assert (info.value.sqlstate, info.value.detail) == ("SLA01", ReasonCode.PH1_J_AUDIT_APPEND_ONLY_VIOLATION)
    assert await scoped(owner_db, t, f"SELECT * FROM os_core.audit_events WHERE {where}", t) == before


async def test_at_l_db_03_idempotency_dedupe_works(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """A retry with the same key: the same content is a duplicate; a new state and activity is a conflict
    (this project's rule for other content) and the row keeps the first write (OPEN, first activity)."""
    t = f"t-{run_id}"
    first = session(SessionOpenedEvent, t, "u", "d", "s", "k", 1, last_activity_at=at(1))
    await publish(topics, [*user(t, "u", "d"), first])
    assert not (await drain(topics)).result.dead_lettered
    same = session(SessionOpenedEvent, t, "u", "d", "s", "k", 1, last_activity_at=at(1))
    changed = session(
        SessionStateTransitionEvent,
        t,
        "u",
        "d",
        "s",
        "k",
        5,
        state_from="OPEN",
        state_to="ACTIVE",
        last_activity_at=at(5),
    )
    await publish(topics, [same, changed])
    stats = await drain(topics)
    assert (stats.result.deduplicated, stats.result.dead_lettered) == (1, Counter({ReasonCode.IDEMPOTENCY_CONFLICT: 1}))
    row = await FoundationReader(reader_db).session(t, f"{t}:s")
    assert row is not None and (row.session_state, row.last_activity_at) == ("OPEN", at(1))


async def test_at_l_db_04_current_table_no_ledger_rebuild_required(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    t = f"t-{run_id}"
    await publish(
        topics,
        [
            *user(t, "u", "d"),
            session(SessionOpenedEvent, t, "u", "d", "s", "k1", 1),
            session(SessionStateTransitionEvent, t, "u", "d", "s", "k2", 2, state_from="OPEN", state_to="ACTIVE"),
        ],
    )
    assert not (await drain(topics)).result.dead_lettered
    rows = await FoundationReader(reader_db).sessions_in_state(t, "ACTIVE", user_id=f"{t}:u")
    assert [(r.session_id, r.session_state, r.last_activity_at) for r in rows] == [(f"{t}:s", "ACTIVE", at(2))]
    assert await rebuild_equals_live(topics, [t]) == []  # the rows rebuild from their audit rows all the same


async def test_a_session_lives_through_every_state_and_its_refusals_change_nothing(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """The sheet's failure classes (unknown device, invalid transition, immutable field, activity going
    back), each dead-lettered with its code and the row unchanged, between the allowed edges; closed_at is
    set exactly while CLOSED."""
    t = f"t-{run_id}"

    def ev(model: type[LedgerEvent], key: str, when: int, device: str = "d", **payload: Any) -> LedgerEvent:
        return session(model, t, "u", device, "s", key, when, **payload)

    steps = [
        (ev(SessionOpenedEvent, "1", 1), "OPEN", None),
        (ev(SessionStateTransitionEvent, "2", 2, state_from="OPEN", state_to="ACTIVE"), "ACTIVE", None),
        (ev(SessionSoftClosedEvent, "3", 3), "SOFT_CLOSED", None),
        (ev(SystemResumedEvent, "4", 4), None, ReasonCode.PH1_L_INVALID_TRANSITION),  # resume needs SUSPENDED
        (
            ev(SessionStateTransitionEvent, "5", 5, state_from="OPEN", state_to="ACTIVE"),
            None,
            ReasonCode.PH1_L_INVALID_TRANSITION,
        ),
        (ev(SessionStateTransitionEvent, "6", 6, state_from="SOFT_CLOSED", state_to="ACTIVE"), "ACTIVE", None),
        (ev(SystemSuspendedEvent, "7", 7), "SUSPENDED", None),
        (ev(SessionSoftClosedEvent, "8", 8), None, ReasonCode.PH1_L_INVALID_TRANSITION),  # not from SUSPENDED
        (ev(SystemResumedEvent, "9", 9, device="d2"), None, ReasonCode.PH1_L_IMMUTABLE_FIELD_CHANGED),
        (ev(SystemResumedEvent, "10", 10, last_activity_at=at(1)), None, ReasonCode.PH1_L_ACTIVITY_WENT_BACK),
        (ev(SystemResumedEvent, "11", 11), "ACTIVE", None),
        (ev(SessionOpenedEvent, "12", 12), None, ReasonCode.PH1_L_INVALID_TRANSITION),  # only CLOSED reopens
        (ev(SessionClosedEvent, "13", 13), "CLOSED", None),
        (ev(SessionSoftClosedEvent, "14", 14), None, ReasonCode.PH1_L_INVALID_TRANSITION),
        (ev(SessionOpenedEvent, "15", 15), "OPEN", None),
        (session(SessionOpenedEvent, t, "u", "nodevice", "s2", "16", 16), None, ReasonCode.REFERENCE_UNKNOWN),
    ]
    await publish(topics, user(t, "u", "d", "d2"))
    await drain(topics)
    reader = FoundationReader(reader_db)
    state, activity = None, None
    for event, expected, refused in steps:
        await publish(topics, [event])
        stats = await drain(topics)
        assert stats.result.dead_lettered == (Counter({refused: 1}) if refused else Counter()), event.event_type
        row = await reader.session(t, f"{t}:s")
        assert row is not None
        if expected:
            state, activity = expected, event.occurred_at
        assert (row.session_state, row.last_activity_at, row.device_id) == (state, activity, f"{t}:d"), (
            event.idempotency_key
        )
        assert (row.closed_at is not None) == (state == "CLOSED")
        assert row.opened_at == at(1)
    assert await rebuild_equals_live(topics, [t]) == []
