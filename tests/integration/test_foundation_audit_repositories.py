"""The typed repositories of PH1.F and PH1.J (seed 000 rows 1 and 2) on real Kafka and PostgreSQL: writes
through the publisher and a running ledger writer, reads as the reader role, two tenants side by side."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from consumers.repositories.audit import AuditReader
from consumers.repositories.foundation import FoundationReader
from contracts.audit import AuditRecordedEvent
from contracts.envelope import LedgerEvent, new_event
from contracts.foundation import (
    ConversationTurnEvent,
    DeviceRegisteredEvent,
    DeviceRevokedEvent,
    IdentityUpsertedEvent,
    SessionClosedEvent,
    SessionOpenedEvent,
)
from contracts.reasons import ContractViolation, ReasonCode, TenantScopeViolation
from contracts.settings import Settings
from producers.audit import AuditWriter
from producers.foundation import FoundationWriter
from producers.ledger_writes import LedgerWrites, WriteRefused
from producers.publisher import Publisher
from tests.e2e.helpers import running_writer

pytestmark = pytest.mark.integration
T0 = datetime.now(UTC) - timedelta(hours=1)


def event(
    model: type[LedgerEvent], tenant: str, corr: str, key: str | None, engine: str, **payload: Any
) -> LedgerEvent:
    return new_event(
        model,
        tenant_id=tenant,
        engine_id=engine,
        correlation_id=corr,
        turn_id=f"turn-{key}",
        idempotency_key=key,
        occurred_at=T0,
        payload=payload,
    )


@pytest.fixture
async def writes(topics: Settings, reader_db: asyncpg.Connection) -> AsyncIterator[LedgerWrites]:
    """Write repositories' transport: a publisher, a ledger writer running in the background, the reader."""
    async with running_writer(topics), Publisher(topics) as publisher:
        yield LedgerWrites(publisher, reader_db, timeout=60)


async def test_ph1f_repositories_write_read_and_stay_in_their_tenant(
    writes: LedgerWrites, reader_db: asyncpg.Connection, run_id: str
) -> None:
    f = FoundationWriter(writes)
    a, b = f"fa-{run_id}", f"fb-{run_id}"
    ids: dict[str, dict[str, str]] = {}
    for tenant in (a, b):
        user, dev, ses = f"u-{tenant}", f"d-{tenant}", f"s-{tenant}"
        ids[tenant] = {"user": user, "device": dev, "session": ses}
        onboard = event(
            IdentityUpsertedEvent,
            tenant,
            f"onboard-{user}",
            "id",
            "PH1.F",
            reason_code="CREATED",
            user_id=user,
            display_name="Zoë 世界",
        )
        created = await f.upsert_identity(onboard)
        assert (created.outcome, created.reason_code) == ("APPENDED", None)
        again = await f.upsert_identity(onboard.model_copy(update={"event_id": uuid.uuid4()}))
        assert (again.event_id, again.outcome, again.reason_code) == (
            created.event_id,
            "IDEMPOTENCY_REPLAY",
            ReasonCode.IDEMPOTENCY_REPLAY,
        )
        await f.register_device(
            event(
                DeviceRegisteredEvent,
                tenant,
                f"bind-{dev}",
                "dev",
                "PH1.F",
                reason_code="BOUND",
                user_id=user,
                device_id=dev,
                device_type="PHONE",
            )
        )
        await f.open_session(
            event(
                SessionOpenedEvent,
                tenant,
                f"s-{ses}",
                "open",
                "PH1.L",
                reason_code="OPENED",
                user_id=user,
                device_id=dev,
                session_id=ses,
            )
        )
        for n, text in enumerate(["first", f"second of {tenant}"], start=1):
            await f.record_turn(
                event(
                    ConversationTurnEvent,
                    tenant,
                    "thread-1",
                    f"turn-{n}",
                    "PH1.C",
                    speaker="USER",
                    source="TEXT",
                    text=text,
                    user_id=user,
                    session_id=ses,
                )
            )
    a_ids = ids[a]
    await f.close_session(
        event(
            SessionClosedEvent,
            a,
            f"s-{a_ids['session']}",
            "close",
            "PH1.L",
            reason_code="CLOSED",
            user_id=a_ids["user"],
            device_id=a_ids["device"],
            session_id=a_ids["session"],
        )
    )
    await f.revoke_device(
        event(
            DeviceRevokedEvent,
            a,
            f"bind-{a_ids['device']}",
            "revoke",
            "PH1.F",
            reason_code="REVOKED",
            user_id=a_ids["user"],
            device_id=a_ids["device"],
        )
    )
    # Refused by the writer: tenant b binding a device to tenant a's user (unknown in b).
    with pytest.raises(WriteRefused) as refused:
        await f.register_device(
            event(
                DeviceRegisteredEvent,
                b,
                "bind-x",
                "x",
                "PH1.F",
                reason_code="BOUND",
                user_id=a_ids["user"],
                device_id=f"dx-{run_id}",
                device_type="PHONE",
            )
        )
    assert refused.value.reason_code == ReasonCode.REFERENCE_UNKNOWN
    # Refused before publishing: a typed method takes its own event type only.
    with pytest.raises(ContractViolation):
        await f.upsert_identity(
            event(
                DeviceRevokedEvent,
                a,
                "c",
                "k",
                "PH1.F",
                reason_code="R",
                user_id=a_ids["user"],
                device_id=a_ids["device"],
            )
        )

    repo = FoundationReader(reader_db)
    for tenant, other in ((a, b), (b, a)):
        mine, theirs = ids[tenant], ids[other]
        identity = await repo.identity(tenant, mine["user"])
        assert identity is not None and (identity.tenant_id, identity.display_name) == (tenant, "Zoë 世界")
        assert await repo.identity(tenant, theirs["user"]) is None
        assert await repo.device(tenant, theirs["device"]) is None
        assert await repo.devices(tenant, theirs["user"]) == []
        assert await repo.session(tenant, theirs["session"]) is None
        assert await repo.sessions(tenant, theirs["user"], theirs["device"]) == []
        turns = await repo.conversation(tenant, "thread-1")  # the same thread id in both tenants
        assert [(t.tenant_id, t.text_body) for t in turns] == [(tenant, "first"), (tenant, f"second of {tenant}")]
        assert turns[0].conversation_turn_id < turns[1].conversation_turn_id
        page = await repo.conversation(tenant, "thread-1", after_conversation_turn_id=turns[0].conversation_turn_id)
        assert page == turns[1:] and await repo.conversation(tenant, "thread-1", limit=1) == turns[:1]
    device = await repo.device(a, a_ids["device"])
    assert device is not None and (device.user_id, device.device_type, device.status) == (
        a_ids["user"],
        "PHONE",
        "REVOKED",
    )
    assert await repo.devices(a, a_ids["user"]) == [device]
    session = await repo.session(a, a_ids["session"])
    assert session is not None and session.session_state == "CLOSED" and session.closed_at is not None
    assert await repo.sessions(a, a_ids["user"], a_ids["device"]) == [session]
    b_session = await repo.session(b, ids[b]["session"])
    assert b_session is not None and (b_session.session_state, b_session.closed_at) == ("OPEN", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        session.session_state = "OPEN"  # type: ignore[misc]
    with pytest.raises(ContractViolation):
        await repo.conversation(a, "thread-1", limit=0)
    with pytest.raises(TenantScopeViolation):
        await repo.identity(f"{a},{b}", a_ids["user"])


async def test_ph1j_repositories_write_read_dedupe_and_stay_in_their_tenant(
    writes: LedgerWrites, reader_db: asyncpg.Connection, run_id: str
) -> None:
    j = AuditWriter(writes)
    a, b = f"ja-{run_id}", f"jb-{run_id}"
    written = {}
    for tenant in (a, b):  # the same correlation and key in two tenants: two scopes, two rows
        decision = event(
            AuditRecordedEvent,
            tenant,
            "corr-1",
            "k-1",
            "PH1.NLP",
            reason_code="NLP_INTENT_DRAFT",
            summary=f"intent of {tenant}",
            attributes={"lang": "pt"},
        )
        written[tenant] = (decision, await j.record(decision))
        assert written[tenant][1].outcome == "APPENDED"
    decision, first = written[a]
    replay = await j.record(decision.model_copy(update={"event_id": uuid.uuid4()}))
    assert (replay.event_id, replay.outcome, replay.reason_code) == (
        first.event_id,
        "IDEMPOTENCY_REPLAY",
        ReasonCode.IDEMPOTENCY_REPLAY,
    )
    other = event(AuditRecordedEvent, a, "corr-1", "k-1", "PH1.NLP", reason_code="NLP_INTENT_DRAFT", summary="else")
    conflict = await j.record(other)
    assert (conflict.event_id, conflict.outcome, conflict.reason_code) == (
        first.event_id,
        "IDEMPOTENCY_CONFLICT",
        ReasonCode.IDEMPOTENCY_CONFLICT,
    )
    second = await j.record(
        event(AuditRecordedEvent, a, "corr-1", "k-2", "PH1.X", reason_code="X_CONFIRM", summary="ok")
    )
    with pytest.raises(ContractViolation):
        await j.record(
            event(ConversationTurnEvent, a, "corr-1", "k-3", "PH1.C", speaker="USER", source="TEXT", text="x")
        )

    repo = AuditReader(reader_db)
    rows = await repo.events(a, "corr-1")
    assert [(r.event_id, r.engine_id, r.event_type, r.reason_code) for r in rows] == [
        (first.event_id, "PH1.NLP", "AUDIT_RECORDED", "NLP_INTENT_DRAFT"),
        (second.event_id, "PH1.X", "AUDIT_RECORDED", "X_CONFIRM"),
    ]
    assert rows[0].payload["summary"] == f"intent of {a}" and rows[0].payload["attributes"] == {"lang": "pt"}
    assert (rows[0].tenant_id, rows[0].turn_id, rows[0].idempotency_key) == (a, "turn-k-1", "k-1")
    assert await repo.events(a, "corr-1", after_event_id=first.event_id) == rows[1:]
    assert await repo.events(a, "corr-1", limit=1) == rows[:1]
    b_decision, b_written = written[b]
    assert [r.event_id for r in await repo.events(b, "corr-1")] == [b_written.event_id]
    assert await repo.event(a, decision.event_id) == rows[0]
    assert await repo.event(a, b_decision.event_id) is None  # tenant b's row, by its id, from tenant a
    assert await repo.by_idempotency_key(a, "corr-1", "k-1") == rows[0]
    by_key_b = await repo.by_idempotency_key(b, "corr-1", "k-1")
    assert by_key_b is not None and by_key_b.event_id == b_written.event_id and by_key_b.tenant_id == b
    assert await repo.by_idempotency_key(a, "corr-1", "k-9") is None
    with pytest.raises(ContractViolation):
        await repo.events(a, "corr-1", limit=1001)
