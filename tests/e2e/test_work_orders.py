"""SELENE_OS_CORE_TABLES end to end on real Kafka and PostgreSQL (seeds 001 and 002): the acceptance tests
AT-OS-CORE-DB-01..04, AT-OS-20 and AT-OS-21, the cancel rule, the PH1.J audit emission, the pending list,
the typed repositories and a rebuild after a work-order workload."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from cli.workload import RawRecord, build
from consumers import deadletters
from consumers.db import connect
from consumers.pipeline import Pipeline
from consumers.replay import Replayer
from consumers.repositories import one_tenant
from consumers.repositories.work_orders import WorkOrderReader, rebuild_current
from consumers.writer import LedgerWriter
from contracts.codec import Decoder
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ContractViolation, ReasonCode, SeleneError, TenantScopeViolation
from contracts.settings import Settings
from contracts.work_orders import (
    WORK_ORDER_LEDGER,
    ClarificationResolvedEvent,
    ExternalApprovalAnsweredEvent,
    ExternalApprovalRequestedEvent,
    FieldsSetEvent,
    LeaseAcquiredEvent,
    LeaseReleasedEvent,
    PromptAskedEvent,
    StatusChangedEvent,
    StepAttemptStartedEvent,
    WaitNoticeEmittedEvent,
    WorkOrderCanceledEvent,
    WorkOrderCreatedEvent,
    WorkOrderLedgerEventInput,
)
from producers.ledger_writes import LedgerWrites, WriteRefused
from producers.publisher import Publisher
from producers.work_orders import WorkOrderWriter
from sql.tenant_scope import SET_TENANT_SCOPE as SCOPE
from tests.e2e.helpers import drain, publish, rebuild_equals_live, send_raw

pytestmark = pytest.mark.e2e
WO_TABLES = (
    "os_core.work_order_ledger",
    "os_core.work_orders_current",
    "os_core.work_order_step_attempts",
    "os_core.work_order_leases",
)


class WorkOrder:
    """Builds the events of one work order, a second apart, each with its own idempotency key and turn."""

    def __init__(self, tenant: str, wo: str, corr: str | None = None, start: datetime | None = None) -> None:
        self.tenant, self.wo, self.corr = tenant, wo, corr or f"thread-{wo}"
        self.engine = "SELENE_OS"
        self.at = start or datetime.now(UTC) - timedelta(hours=1)
        self.n = 0

    def __call__(
        self, model: type[LedgerEvent], key: str | None = None, *, at: datetime | None = None, **payload: Any
    ) -> LedgerEvent:
        self.n += 1
        self.at = at or self.at + timedelta(seconds=1)
        return new_event(
            model,
            tenant_id=self.tenant,
            engine_id=self.engine,
            correlation_id=self.corr,
            turn_id=f"turn-{self.n}",
            idempotency_key=key or f"{self.wo}-{self.n}",
            occurred_at=self.at,
            payload={"work_order_id": self.wo, **payload},
        )

    def create(self, user: str = "u-1", **payload: Any) -> LedgerEvent:
        return self(WorkOrderCreatedEvent, "create", requester_user_id=user, intent_type="BOOK_TABLE", **payload)


async def dead_letters(conn: asyncpg.Connection, settings: Settings) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT event_uuid, reason_code, status, blocks FROM selene_ops.dead_letters "
        "WHERE source_topic LIKE $1 || '%' ORDER BY dead_letter_id",
        settings.topic_prefix,
    )


async def audit_rows(conn: asyncpg.Connection, tenant: str, wo: str | None = None) -> list[asyncpg.Record]:
    """The PH1.J rows this slice emitted for ``tenant`` (and one work order), in append order."""
    return await conn.fetch(
        "SELECT * FROM os_core.audit_events WHERE tenant_id = $1 AND engine_id = 'SELENE_OS_CORE_TABLES' "
        "AND ($2::text IS NULL OR payload ->> 'work_order_id' = $2) ORDER BY event_id",
        tenant,
        wo,
    )


async def ledger_types(reader: asyncpg.Connection, tenant: str, wo: str) -> list[str]:
    return [e.event_type for e in await WorkOrderReader(reader).ledger(tenant, wo)]


async def test_at_os_core_db_01_tenant_isolation_enforced(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    a, b = f"ta-{run_id}", f"tb-{run_id}"
    wo_a, wo_b = WorkOrder(a, f"wo-a-{run_id}", "thread-1"), WorkOrder(b, f"wo-b-{run_id}", "thread-1")

    def running(wo: WorkOrder, holder: str) -> list[LedgerEvent]:
        """Into EXECUTING with a lease and a step attempt: a row in each of the slice's four tables."""
        return [
            wo(StatusChangedEvent, to_status="EXECUTING"),
            wo(LeaseAcquiredEvent, lease_id=f"lease-{holder}", holder_id=holder, expires_at=wo.at + timedelta(hours=1)),
            wo(StepAttemptStartedEvent, step_id="book", attempt_no=1, lease_id=f"lease-{holder}"),
        ]

    await publish(
        topics,
        [
            wo_a.create("u-a", fields={"secret": "a-only"}),
            *running(wo_a, "exec-a"),
            wo_b.create("u-b"),
            *running(wo_b, "exec-b"),
        ],
    )
    assert (await drain(topics)).result.appended == 8  # the same thread id in two tenants: two bindings
    # Tenant b names tenant a's work order: its creation is refused (a work order id binds to one tenant for
    # good) and blocks what follows it.
    intruder = WorkOrder(b, wo_a.wo, "thread-x")
    await publish(topics, [intruder.create("u-b"), intruder(FieldsSetEvent, fields={"secret": "from b"})])
    stats = await drain(topics)
    assert stats.result.appended == 0
    assert stats.result.dead_lettered == Counter(
        {"OS_WORK_ORDER_TENANT_SCOPE_VIOLATION": 1, "HELD_BEHIND_DEAD_LETTER": 1}
    )
    repo = WorkOrderReader(reader_db)
    mine = await repo.current(a, wo_a.wo)
    assert mine is not None and mine.fields_json == {"secret": "a-only"} and mine.tenant_id == a
    assert await repo.current(b, wo_a.wo) is None
    assert await repo.ledger(b, wo_a.wo) == []
    # Step attempts and leases exist in each tenant and are read only through their own.
    for tenant, wo, other in ((a, wo_a, b), (b, wo_b, a)):
        [attempt] = await repo.step_attempts(tenant, wo.wo)
        lease = await repo.lease(tenant, wo.wo)
        assert (attempt.tenant_id, attempt.step_id, attempt.status) == (tenant, "book", "STARTED")
        assert lease is not None and (lease.tenant_id, lease.status) == (tenant, "HELD")
        assert await repo.step_attempts(other, wo.wo) == []
        assert await repo.lease(other, wo.wo) is None
    assert await repo.list_pending(b, "u-a") == []
    by_thread_a, by_thread_b = (
        await repo.current_by_correlation(a, "thread-1"),
        await repo.current_by_correlation(b, "thread-1"),
    )
    assert by_thread_a is not None and by_thread_a.work_order_id == wo_a.wo
    assert by_thread_b is not None and by_thread_b.work_order_id == wo_b.wo
    # At the SQL level, in every table of the slice (each holding rows of both tenants, so the zeros below
    # are the scope's doing): a tenant's scope sees its own rows and none of the other's, and a connection
    # without a scope sees nothing at all.
    expected = {
        "os_core.work_order_ledger": 4,
        "os_core.work_orders_current": 1,
        "os_core.work_order_step_attempts": 1,
        "os_core.work_order_leases": 1,
    }
    assert set(expected) == set(WO_TABLES)
    for table in WO_TABLES:
        for own, theirs in ((a, b), (b, a)):
            async with reader_db.transaction():
                await reader_db.execute(SCOPE, own)
                assert await reader_db.fetchval(f"SELECT count(*) FROM {table}") == expected[table], (table, own)
                assert await reader_db.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = $1", theirs) == 0
        assert await reader_db.fetchval(f"SELECT count(*) FROM {table} WHERE tenant_id = ANY($1)", [a, b]) == 0
    # A repository read declares exactly one tenant.
    with pytest.raises(TenantScopeViolation):
        async with one_tenant(reader_db, f"{a},{b}"):
            pass


async def test_at_os_core_db_02_append_only_enforced(
    topics: Settings,
    writer_db: asyncpg.Connection,
    owner_db: asyncpg.Connection,
    reader_db: asyncpg.Connection,
    run_id: str,
) -> None:
    tenant = f"t-{run_id}"
    wo = WorkOrder(tenant, f"wo-{run_id}")
    create, cancel = wo.create(), wo(WorkOrderCanceledEvent, reason_code="USER_CANCELED")
    await publish(topics, [create, cancel])
    assert (await drain(topics)).result.appended == 2
    # The cancel is a second ledger row, not a change of the first; the projection points at it.
    events = await WorkOrderReader(reader_db).ledger(tenant, wo.wo)
    assert [(e.event_type, e.reason_code) for e in events] == [
        ("WORK_ORDER_CREATED", None),
        ("WORK_ORDER_CANCELED", "USER_CANCELED"),
    ]
    current = await WorkOrderReader(reader_db).current(tenant, wo.wo)
    assert (
        current is not None and current.status == "CANCELED" and current.last_event_id == events[1].work_order_event_id
    )
    mutations = [
        "UPDATE os_core.work_order_ledger SET reason_code = 'REWRITTEN' WHERE tenant_id = $1",
        "DELETE FROM os_core.work_order_ledger WHERE tenant_id = $1",
    ]
    for sql in mutations:  # the writer lacks the privilege outright ...
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with writer_db.transaction():
                await writer_db.execute(SCOPE, tenant)
                await writer_db.execute(sql, tenant)
    for sql in [*mutations, "TRUNCATE os_core.work_order_ledger CASCADE"]:  # ... the owner hits the guard
        with pytest.raises(asyncpg.PostgresError) as info:
            async with owner_db.transaction():
                await owner_db.execute(SCOPE, tenant)
                await (owner_db.execute(sql, tenant) if "$1" in sql else owner_db.execute(sql))
        assert info.value.sqlstate == "SLA01"
        assert info.value.detail == WORK_ORDER_LEDGER.append_only_violation == "OS_WORK_ORDER_APPEND_ONLY_VIOLATION"
    assert [e.reason_code for e in await WorkOrderReader(reader_db).ledger(tenant, wo.wo)] == [None, "USER_CANCELED"]


async def test_at_os_core_db_03_idempotency_dedupe_works(
    topics: Settings,
    operator_db: asyncpg.Connection,
    reader_db: asyncpg.Connection,
    writer_db: asyncpg.Connection,
    run_id: str,
) -> None:
    tenant = f"t-{run_id}"
    one, two = WorkOrder(tenant, f"wo-1-{run_id}"), WorkOrder(tenant, f"wo-2-{run_id}")
    originals = [one.create(), one(FieldsSetEvent, "f1", fields={"party_size": 2})]
    # The same keys on another work order are another scope: both appended.
    others = [two.create(), two(FieldsSetEvent, "f1", fields={"party_size": 9})]
    await publish(topics, originals + others)
    assert (await drain(topics)).result.appended == 4
    retry = originals[1].model_copy(update={"event_id": uuid.uuid4()})  # a retry: new id, same key and payload
    conflict = one(FieldsSetEvent, "f1", fields={"party_size": 7})  # same key, other content
    await publish(topics, [*originals, retry, conflict])
    stats = await drain(topics)
    assert (stats.result.appended, stats.result.deduplicated) == (0, 3)
    # Seed 002's failure mode of the append: "idempotency replay/no-op: OS_WORK_ORDER_IDEMPOTENCY_REPLAY".
    assert stats.result.duplicates == Counter({"OS_WORK_ORDER_IDEMPOTENCY_REPLAY": 3})
    assert stats.result.dead_lettered == Counter({"IDEMPOTENCY_CONFLICT": 1})
    assert [(d["reason_code"], d["status"], d["blocks"]) for d in await dead_letters(operator_db, topics)] == [
        ("IDEMPOTENCY_CONFLICT", "REJECTED", False)
    ]
    assert len(await WorkOrderReader(reader_db).ledger(tenant, one.wo)) == 2
    current = await WorkOrderReader(reader_db).current(tenant, one.wo)
    assert current is not None and current.fields_json == {"party_size": 2}  # the original stands
    assert len(await audit_rows(operator_db, tenant)) == 4  # one audit row per append, none per duplicate
    # The database enforces the scoped key whatever writes to it (here plain SQL as the writer role).
    with pytest.raises(asyncpg.UniqueViolationError):
        async with writer_db.transaction():
            await writer_db.execute(SCOPE, tenant)
            await writer_db.execute(
                "INSERT INTO os_core.work_order_ledger (event_uuid, tenant_id, engine_id, event_type, schema_version, "
                "correlation_id, idempotency_key, work_order_id, occurred_at, payload, content_sha256, source_topic, "
                "source_partition, source_offset, chain_seq, row_hash) "
                "VALUES ($1, $2, 'X', 'FIELDS_SET', 1, 'c', 'f1', $3, now(), '{}', $4, $5, 0, 0, 1, $4)",
                uuid.uuid4(),
                tenant,
                one.wo,
                b"\0" * 32,
                f"t-{uuid.uuid4().hex}",
            )


async def test_at_os_core_db_04_rebuild_current_from_ledger(
    topics: Settings,
    writer_db: asyncpg.Connection,
    reader_db: asyncpg.Connection,
    operator_db: asyncpg.Connection,
    run_id: str,
) -> None:
    w = build(tenants=1, users_per_tenant=2, events=20, bad=False, run_id=run_id, work_orders=3)
    tenant = w.foundation[0].tenant_id
    await publish(topics, w.foundation)
    await drain(topics)
    await publish(topics, w.events)
    assert (await drain(topics)).result.dead_total == 0
    wo_running, wo_pending = f"wo-{run_id}-0-1", f"wo-{run_id}-0-2"
    repo = WorkOrderReader(reader_db)
    before = await repo.current(tenant, wo_running)
    assert before is not None and before.status == "DONE"
    assert (await rebuild_current(topics, tenant)).equal
    audit_before = len(await audit_rows(operator_db, tenant))
    # Damage the projections (they are the writer's to change, unlike the ledger) ...
    async with writer_db.transaction():
        await writer_db.execute(SCOPE, tenant)
        await writer_db.execute(
            "UPDATE os_core.work_orders_current SET status = 'DRAFT', fields_json = '{}', state_version = 99 "
            "WHERE work_order_id = $1",
            wo_running,
        )
        await writer_db.execute("DELETE FROM os_core.work_order_step_attempts WHERE work_order_id = $1", wo_running)
        await writer_db.execute("DELETE FROM os_core.work_order_leases WHERE work_order_id = $1", wo_running)
        await writer_db.execute(
            "UPDATE os_core.work_orders_current SET asked_fields_json = '{}' WHERE work_order_id = $1", wo_pending
        )
    # ... the rebuild sees exactly that, and puts the ledger's truth back.
    verified = await rebuild_current(topics, tenant)
    assert verified.refused == 0  # a second rebuild of a tenant starts from an empty shadow, too
    differing = {c.table: c.first_differences for c in verified.comparisons if not c.equal}
    assert set(differing) == {
        "os_core.work_orders_current",
        "os_core.work_order_step_attempts",
        "os_core.work_order_leases",
    }
    assert {d["work_order_id"] for d in differing["os_core.work_orders_current"]} == {wo_running, wo_pending}
    applied = await rebuild_current(topics, tenant, apply=True)
    assert applied.applied and not applied.equal  # compared before the swap
    again = await rebuild_current(topics, tenant)
    assert again.equal, [c for c in again.comparisons if not c.equal]
    assert await repo.current(tenant, wo_running) == before
    assert [s.status for s in await repo.step_attempts(tenant, wo_running)] == ["SUCCEEDED"]
    lease = await repo.lease(tenant, wo_running)
    assert lease is not None and lease.status == "RELEASED"
    pending = await repo.current(tenant, wo_pending)
    assert pending is not None and pending.asked_fields_json["time"]["attempts"] == 1
    assert len(await audit_rows(operator_db, tenant)) == audit_before  # a rebuild emits nothing


async def test_at_os_20_never_ask_twice_enforced(
    topics: Settings, operator_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    wo = WorkOrder(tenant, f"wo-{run_id}")
    ask = PromptAskedEvent
    events = [
        wo.create(prefilled={"city": "Lisbon"}),
        wo(FieldsSetEvent, fields={"party_size": 2}),
        wo(ask, field_key="city", prompt_dedupe_key="ask-city"),  # prefilled: suppressed
        wo(ask, field_key="party_size", prompt_dedupe_key="ask-party"),  # known: suppressed
        wo(ask, field_key="time", prompt_dedupe_key="ask-time"),  # asked
        wo(ask, field_key="time", prompt_dedupe_key="ask-time"),  # same prompt, no change: suppressed
        wo(FieldsSetEvent, fields={"restaurant": "Tasca"}),  # a state change
        wo(ask, field_key="time", prompt_dedupe_key="ask-time"),  # may be asked again, once
        wo(ask, field_key="time", prompt_dedupe_key="ask-time"),  # suppressed
        wo(ask, field_key="party_size", prompt_dedupe_key="conflict-party", kind="CONFLICT"),  # a conflict: asked
        wo(ask, field_key="party_size", prompt_dedupe_key="conflict-party-2", kind="CONFLICT"),  # once only
        wo(ClarificationResolvedEvent, field_key="party_size", value=4, kind="CONFLICT"),
        wo(ask, field_key="party_size", prompt_dedupe_key="conflict-party-3", kind="CONFLICT"),  # resolved
        wo(FieldsSetEvent, fields={"time": "20:00"}),
        wo(ask, field_key="time", prompt_dedupe_key="ask-time-again"),  # answered now
        wo(StatusChangedEvent, to_status="CONFIRM"),  # later events still apply: refusals do not block
    ]
    suppressed = {2, 3, 5, 8, 10, 12, 14}
    await publish(topics, events)
    stats = await drain(topics)
    assert stats.result.appended == len(events) - len(suppressed)
    assert stats.result.dead_lettered == Counter({"OS_WORK_ORDER_PROMPT_SUPPRESSED": len(suppressed)})
    dead = await dead_letters(operator_db, topics)
    assert [d["event_uuid"] for d in dead] == [events[i].event_id for i in sorted(suppressed)]
    assert {(d["status"], d["blocks"]) for d in dead} == {("REJECTED", False)}
    current = await WorkOrderReader(reader_db).current(tenant, wo.wo)
    assert current is not None and current.status == "CONFIRM"
    assert {k: (v["attempts"], v["kind"]) for k, v in current.asked_fields_json.items()} == {
        "time": (2, "MISSING_FIELD"),
        "party_size": (1, "CONFLICT"),
    }
    assert set(current.prompt_dedupe_keys_json) == {"ask-time", "conflict-party"}
    assert current.resolved_fields_json["party_size"]["value"] == 4
    assert current.fields_json == {"party_size": 4, "restaurant": "Tasca", "time": "20:00"}
    prompts = [t for t in await ledger_types(reader_db, tenant, wo.wo) if t == "PROMPT_ASKED"]
    assert len(prompts) == 3  # the ledger holds only what was actually asked


async def test_at_os_21_external_approval_wait_no_spam(
    topics: Settings, operator_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    wo = WorkOrder(tenant, f"wo-{run_id}")
    approval: dict[str, Any] = {"approval_request_id": "ap-1"}
    created = wo.create()
    requested = wo(
        ExternalApprovalRequestedEvent, target_user_id="boss", expires_at=wo.at + timedelta(hours=2), **approval
    )
    notice = wo(WaitNoticeEmittedEvent, **approval)  # the one wait notice
    events = [
        created,
        requested,
        notice,
        wo(WaitNoticeEmittedEvent, **approval),  # a nag: suppressed
        wo(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time"),  # no prompts while waiting
        wo(WaitNoticeEmittedEvent, **approval),  # suppressed
        wo(ExternalApprovalAnsweredEvent, decision="APPROVED", answered_by_user_id="boss", **approval),
        wo(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time"),  # resumes after the answer
        wo(WaitNoticeEmittedEvent, **approval),  # no wait any more: refused as such
        wo(StatusChangedEvent, to_status="CONFIRM"),
    ]
    await publish(topics, events)
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter(
        {"OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED": 3, "OS_WORK_ORDER_APPROVAL_NOT_PENDING": 1}
    )
    assert {(d["status"], d["blocks"]) for d in await dead_letters(operator_db, topics)} == {("REJECTED", False)}
    assert await ledger_types(reader_db, tenant, wo.wo) == [
        "WORK_ORDER_CREATED",
        "EXTERNAL_APPROVAL_REQUESTED",
        "WAIT_NOTICE_EMITTED",
        "EXTERNAL_APPROVAL_ANSWERED",
        "PROMPT_ASKED",
        "STATUS_CHANGED",
    ]
    current = await WorkOrderReader(reader_db).current(tenant, wo.wo)
    assert current is not None and current.status == "CONFIRM"
    assert (current.external_approval_pending, current.external_approval_outcome) == (False, "APPROVED")
    assert current.external_approval_request_id == "ap-1" and current.external_approval_target_user_id == "boss"
    assert current.external_approval_wait_notice_at == notice.occurred_at

    # A wait that times out: after the timeout, one more notice ("still no answer") and prompts are allowed.
    late = WorkOrder(tenant, f"wo-late-{run_id}")
    started = late.at
    await publish(
        topics,
        [
            late.create(),
            late(
                ExternalApprovalRequestedEvent,
                target_user_id="boss",
                expires_at=started + timedelta(minutes=5),
                **approval,
            ),
            late(WaitNoticeEmittedEvent, **approval),
            late(WaitNoticeEmittedEvent, at=started + timedelta(minutes=6), **approval),
            late(WaitNoticeEmittedEvent, **approval),  # suppressed: the timeout notice was given
            late(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time"),
        ],
    )
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({"OS_WORK_ORDER_WAIT_NOTICE_SUPPRESSED": 1})
    assert (await ledger_types(reader_db, tenant, late.wo)).count("WAIT_NOTICE_EMITTED") == 2


async def test_invalid_cancel_refused_without_blocking(
    topics: Settings, operator_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    wo = WorkOrder(tenant, f"wo-{run_id}")
    events = [
        wo.create(),
        wo(StatusChangedEvent, to_status="EXECUTING"),
        wo(LeaseAcquiredEvent, lease_id="l-1", holder_id="exec-1", expires_at=wo.at + timedelta(hours=1)),
        wo(WorkOrderCanceledEvent, reason_code="USER_CANCELED"),
        wo(WorkOrderCanceledEvent, reason_code="USER_CANCELED_TWICE"),
        wo(StatusChangedEvent, to_status="CANCELED", reason_code="BY_STATUS"),
        wo(LeaseReleasedEvent, lease_id="l-1"),  # the executor lets go after the cancel: applied
    ]
    await publish(topics, events)
    stats = await drain(topics)
    assert stats.result.appended == 5
    assert stats.result.dead_lettered == Counter({"OS_WORK_ORDER_CANCEL_INVALID_STATE": 2})
    dead = await dead_letters(operator_db, topics)
    assert [d["event_uuid"] for d in dead] == [events[4].event_id, events[5].event_id]
    assert {(d["status"], d["blocks"]) for d in dead} == {("REJECTED", False)}
    repo = WorkOrderReader(reader_db)
    current = await repo.current(tenant, wo.wo)
    ledger = await repo.ledger(tenant, wo.wo)
    assert current is not None and (current.status, current.status_reason_code) == ("CANCELED", "USER_CANCELED")
    assert current.last_event_id == ledger[-1].work_order_event_id and ledger[-1].event_type == "LEASE_RELEASED"
    lease = await repo.lease(tenant, wo.wo)
    assert lease is not None and lease.status == "RELEASED"
    # A cancel without a reason code does not pass the contract: the publisher refuses it, and sent around the
    # publisher it is dead-lettered with the slice's contract code.
    raw = events[3].model_dump(mode="json")
    raw["payload"].pop("reason_code")
    raw["event_id"] = str(uuid.uuid4())
    value = json.dumps(raw).encode()
    with pytest.raises(ContractViolation) as info:
        Decoder(topics.max_event_bytes).decode(value)
    assert info.value.reason_code == ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED
    await send_raw(topics, [RawRecord("work_order_ledger", events[3].kafka_key, value, "")])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({"OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED": 1})


async def test_only_selene_os_may_publish_work_order_events(
    topics: Settings, operator_db: asyncpg.Connection, reader_db: asyncpg.Connection, run_id: str
) -> None:
    """Seed 002: the work-order capabilities allow SELENE_OS_ONLY. Another engine's appends and cancels, on a
    work order of Selene OS's or a new one, are dead-lettered with OS_WORK_ORDER_CALLER_NOT_ALLOWED, reach no
    table of the slice nor the audit ledger, and do not hold Selene OS's own events behind them."""
    tenant = f"t-{run_id}"
    wo = WorkOrder(tenant, f"wo-{run_id}")
    foreign = WorkOrder(tenant, wo.wo, wo.corr)
    foreign.engine = "PH1.NLP"
    stranger = WorkOrder(tenant, f"wo-stranger-{run_id}")
    stranger.engine = "SELENE_OS_CORE_TABLES"  # the storage engine's name is not a caller either
    theirs = [
        foreign(FieldsSetEvent, "hijack-fields", fields={"party_size": 99}),
        foreign(WorkOrderCanceledEvent, "hijack-cancel", reason_code="HIJACKED"),
        stranger.create("u-9"),
    ]
    ours = [wo.create(), wo(FieldsSetEvent, fields={"party_size": 2})]
    await publish(topics, [ours[0], *theirs, ours[1]])
    stats = await drain(topics)
    assert stats.result.appended == 2
    assert stats.result.dead_lettered == Counter({"OS_WORK_ORDER_CALLER_NOT_ALLOWED": 3})
    dead = await dead_letters(operator_db, topics)
    # As a set: the stranger's work order hashes to a partition of its own (partition order is not send order).
    assert {(d["event_uuid"], d["reason_code"], d["status"], d["blocks"]) for d in dead} == {
        (e.event_id, "OS_WORK_ORDER_CALLER_NOT_ALLOWED", "REJECTED", False) for e in theirs
    }
    repo = WorkOrderReader(reader_db)
    assert [(e.event_type, e.engine_id) for e in await repo.ledger(tenant, wo.wo)] == [
        ("WORK_ORDER_CREATED", "SELENE_OS"),
        ("FIELDS_SET", "SELENE_OS"),
    ]
    current = await repo.current(tenant, wo.wo)
    assert current is not None and (current.status, current.fields_json) == ("DRAFT", {"party_size": 2})
    assert await repo.current(tenant, stranger.wo) is None
    for table in WO_TABLES:
        rows = await operator_db.fetchval(
            f"SELECT count(*) FROM {table} WHERE tenant_id = $1 AND work_order_id = $2", tenant, stranger.wo
        )
        assert rows == 0, table
    assert (
        await operator_db.fetchval(
            "SELECT count(*) FROM os_core.work_order_ledger WHERE tenant_id = $1 AND engine_id <> 'SELENE_OS'", tenant
        )
        == 0
    )
    assert [r["event_type"] for r in await audit_rows(operator_db, tenant)] == [
        "WORK_ORDER_CREATED",
        "WORK_ORDER_FIELDS_SET",
    ]


async def test_audit_emitted_once_per_append_also_after_redelivery_and_redrive(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    wo = WorkOrder(tenant, f"wo-{run_id}")
    events = [
        wo.create(),
        wo(FieldsSetEvent, fields={"party_size": 3}),
        wo(WorkOrderCanceledEvent, "cancel-1", reason_code="USER_CANCELED"),
        wo(WorkOrderCanceledEvent, "cancel-2", reason_code="USER_CANCELED"),  # refused: no audit row
    ]
    await publish(topics, events)
    assert (await drain(topics)).result.emitted == 3
    rows = await audit_rows(operator_db, tenant)
    assert [r["event_type"] for r in rows] == ["WORK_ORDER_CREATED", "WORK_ORDER_FIELDS_SET", "WORK_ORDER_CANCELED"]
    ledger = await operator_db.fetch(
        "SELECT * FROM os_core.work_order_ledger WHERE tenant_id = $1 ORDER BY work_order_event_id", tenant
    )
    for audit, source in zip(rows, ledger, strict=True):
        assert audit["event_uuid"] == uuid.uuid5(source["event_uuid"], "PH1.J")
        assert (audit["tenant_id"], audit["correlation_id"], audit["turn_id"]) == (
            source["tenant_id"],
            source["correlation_id"],
            source["turn_id"],
        )
        assert audit["payload"]["source_event_id"] == str(source["event_uuid"])
        assert audit["payload"]["idempotency_key"] == source["idempotency_key"]
        assert audit["payload"]["work_order_id"] == wo.wo
        assert audit["source_topic"] == source["source_topic"] and audit["source_offset"] == source["source_offset"]
    cancel = rows[-1]
    assert (cancel["reason_code"], cancel["payload"]["capability"], cancel["payload"]["status"]) == (
        "USER_CANCELED",
        "WORKORDER_CANCEL",
        "CANCELED",
    )
    assert rows[0]["reason_code"] == "OS_WORK_ORDER_LEDGER_APPEND"

    # Re-delivery: the records published again, and the whole topic read again by a writer of another group
    # (as after a lost offset): everything is a duplicate, nothing is emitted twice.
    await publish(topics, events[:3])
    again = await drain(topics)
    assert (again.result.deduplicated, again.result.emitted) == (3, 0)
    other_group = await drain(replace(topics, consumer_group=f"{topics.consumer_group}-again"))
    assert other_group.result.appended == 0 and other_group.result.emitted == 0
    assert len(await audit_rows(operator_db, tenant)) == 3

    # Re-drive: a work order held behind a bad record emits when re-driven, and only once.
    held = WorkOrder(tenant, f"wo-held-{run_id}")
    key = f"{tenant}/{held.wo}"
    await send_raw(topics, [RawRecord("work_order_ledger", key.encode(), b"{broken", "EVENT_UNDECODABLE")])
    await publish(topics, [held.create(), held(FieldsSetEvent, fields={"x": 1})])
    stats = await drain(topics)
    assert stats.result.dead_lettered == Counter({"EVENT_UNDECODABLE": 1, "HELD_BEHIND_DEAD_LETTER": 2})
    assert await audit_rows(operator_db, tenant, held.wo) == []
    topic = WORK_ORDER_LEDGER.topic(topics.topic_prefix)
    writer = await connect(topics.database_url)
    try:
        bad_id = await operator_db.fetchval(
            "SELECT dead_letter_id FROM selene_ops.dead_letters WHERE aggregate_key = $1 AND status = 'OPEN'", key
        )
        assert await deadletters.discard(writer, bad_id, "garbage from a test")
        pipeline = Pipeline(topics)
        assert (await deadletters.redrive(writer, pipeline, topic, key)).redriven == 2
        assert (await deadletters.redrive(writer, pipeline, topic, key)).redriven == 0
    finally:
        await writer.close()
    assert [r["event_type"] for r in await audit_rows(operator_db, tenant, held.wo)] == [
        "WORK_ORDER_CREATED",
        "WORK_ORDER_FIELDS_SET",
    ]


async def test_list_pending_most_recent_first_within_the_window(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    now = datetime.now(UTC)
    orders: dict[str, tuple[timedelta, str, str]] = {  # name -> (age, status, requester)
        "old-draft": (timedelta(days=10), "DRAFT", "u-1"),
        "draft": (timedelta(hours=3), "DRAFT", "u-1"),
        "clarify": (timedelta(hours=2), "CLARIFY", "u-1"),
        "confirm": (timedelta(hours=1), "CONFIRM", "u-1"),
        "executing": (timedelta(minutes=30), "EXECUTING", "u-1"),
        "other-user": (timedelta(minutes=10), "DRAFT", "u-2"),
    }
    events: list[LedgerEvent] = []
    for name, (age, status, user) in orders.items():
        w = WorkOrder(tenant, f"{name}-{run_id}", start=now - age - timedelta(seconds=5))
        events.append(w.create(user))
        if status != "DRAFT":
            events.append(w(StatusChangedEvent, to_status=status))
    await publish(topics, events)
    assert (await drain(topics)).result.appended == len(events)
    repo = WorkOrderReader(reader_db)

    async def pending(**options: Any) -> list[str]:
        found = await repo.list_pending(tenant, "u-1", now=now, **options)
        return [p.work_order_id.removesuffix(f"-{run_id}") for p in found]

    assert await pending(recency_window=timedelta(days=1)) == ["confirm", "clarify", "draft"]
    assert await pending(recency_window=timedelta(days=30)) == ["confirm", "clarify", "draft", "old-draft"]
    assert await pending(recency_window=timedelta(days=1), top_n=2) == ["confirm", "clarify"]
    assert await pending(recency_window=timedelta(days=30), statuses={"DRAFT"}) == ["draft", "old-draft"]
    assert await pending(recency_window=timedelta(minutes=90)) == ["confirm"]
    for bad in ({"EXECUTING"}, set()):
        with pytest.raises(ContractViolation) as info:
            await repo.list_pending(tenant, "u-1", statuses=bad)
        assert info.value.reason_code == ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED


async def test_repositories_append_and_cancel_capabilities(
    topics: Settings, reader_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"t-{run_id}"
    wo = WorkOrder(tenant, f"wo-{run_id}")
    stop = asyncio.Event()
    writer = asyncio.create_task(LedgerWriter(topics).run(stop=stop))
    try:
        async with Publisher(topics) as publisher:
            writes = WorkOrderWriter(LedgerWrites(publisher, reader_db, timeout=60))
            create = wo.create(fields={"party_size": 2})
            assert isinstance(create, WorkOrderLedgerEventInput)
            created = await writes.append(create)
            fields = wo(FieldsSetEvent, fields={"time": "19:00"})
            assert isinstance(fields, WorkOrderLedgerEventInput)
            written = await writes.append(fields)
            assert written.outcome == "APPENDED" and written.event_id > created.event_id
            assert written.reason_code is None
            # A retry (new event id, same key and content): the original row, with seed 002's replay code.
            retry = wo(FieldsSetEvent, fields.idempotency_key, fields={"time": "19:00"})
            assert isinstance(retry, WorkOrderLedgerEventInput)
            replayed = await writes.append(retry)
            assert (replayed.event_id, replayed.event_uuid, replayed.outcome, replayed.reason_code) == (
                written.event_id,
                fields.event_id,
                "IDEMPOTENCY_REPLAY",
                ReasonCode.OS_WORK_ORDER_IDEMPOTENCY_REPLAY,
            )
            # A prompt the rules suppress comes back refused, with its reason.
            prompt = wo(PromptAskedEvent, field_key="time", prompt_dedupe_key="ask-time")
            assert isinstance(prompt, WorkOrderLedgerEventInput)
            with pytest.raises(WriteRefused) as refused:
                await writes.append(prompt)
            assert refused.value.reason_code == ReasonCode.OS_WORK_ORDER_PROMPT_SUPPRESSED
            # WORKORDER_CANCEL returns (work_order_id, CANCELED, last_event_id) once written; a retry with the
            # same key is the same cancel; another cancel is refused; an unknown work order is not published.
            canceled = await writes.cancel(tenant, wo.wo, "USER_CANCELED", "cancel-1", turn_id="turn-9")
            assert (canceled.work_order_id, canceled.status) == (wo.wo, "CANCELED")
            assert canceled.last_event_id > written.event_id
            assert await writes.cancel(tenant, wo.wo, "USER_CANCELED", "cancel-1", turn_id="turn-10") == canceled
            with pytest.raises(WriteRefused) as twice:
                await writes.cancel(tenant, wo.wo, "USER_CANCELED", "cancel-2", turn_id="turn-12")
            assert twice.value.reason_code == ReasonCode.OS_WORK_ORDER_CANCEL_INVALID_STATE
            with pytest.raises(SeleneError) as unknown:
                await writes.cancel(tenant, "no-such-work-order", "USER_CANCELED", "cancel-3", turn_id="turn-13")
            assert unknown.value.reason_code == ReasonCode.OS_WORK_ORDER_NOT_FOUND
            with pytest.raises(SeleneError) as other_tenant:
                await writes.cancel(f"other-{tenant}", wo.wo, "USER_CANCELED", "cancel-4", turn_id="turn-14")
            assert other_tenant.value.reason_code == ReasonCode.OS_WORK_ORDER_NOT_FOUND
    finally:
        stop.set()
        await writer
    repo = WorkOrderReader(reader_db)
    current = await repo.current(tenant, wo.wo)
    assert current is not None
    assert (current.status, current.status_reason_code, current.last_event_id) == (
        "CANCELED",
        "USER_CANCELED",
        canceled.last_event_id,
    )
    assert current.fields_json == {"party_size": 2, "time": "19:00"}
    events = await repo.ledger(tenant, wo.wo)
    assert [(e.work_order_event_id, e.event_type) for e in events] == [
        (created.event_id, "WORK_ORDER_CREATED"),
        (written.event_id, "FIELDS_SET"),
        (canceled.last_event_id, "WORK_ORDER_CANCELED"),
    ]
    assert events[-1].turn_id == "turn-9" and events[-1].correlation_id == wo.corr
    assert await repo.ledger(tenant, wo.wo, after_event_id=written.event_id) == events[2:]


async def test_rebuild_and_replay_equal_live_after_work_order_workload(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    w = build(tenants=2, users_per_tenant=2, events=60, bad=False, run_id=run_id, work_orders=4)
    tenants = sorted({e.tenant_id for e in w.good})
    await publish(topics, w.foundation)
    await drain(topics)
    # Some refusals in the mix too: they must not leave traces a rebuild would not reproduce.
    spam = [
        e.model_copy(update={"event_id": uuid.uuid4(), "idempotency_key": f"again-{i}"})
        for i, e in enumerate(w.events)
        if e.event_type in ("PROMPT_ASKED", "WORK_ORDER_CANCELED")
    ]
    await publish(topics, w.events + spam)
    stats = await drain(topics)
    assert stats.result.appended == len(w.events)
    assert set(stats.result.dead_lettered) == {
        "OS_WORK_ORDER_PROMPT_SUPPRESSED",  # the pending ones know the answer
        "OS_WORK_ORDER_TERMINAL_STATE",  # the others are done or canceled
        "OS_WORK_ORDER_CANCEL_INVALID_STATE",
    }
    assert stats.result.dead_total == len(spam)
    wo_events = sum(e.ledger == "work_order_ledger" for e in w.events)
    assert stats.result.emitted == wo_events
    audit_before = await operator_db.fetchval(
        "SELECT count(*) FROM os_core.audit_events WHERE tenant_id = ANY($1)", tenants
    )
    assert await rebuild_equals_live(topics, tenants) == []
    for tenant in tenants:  # replay from the topics too: the refusals are skipped, nothing is emitted
        replayed = await Replayer(topics, tenant=tenant).run(verify=True)
        assert replayed.equal, (replayed.stats.unaccounted, [c for c in replayed.comparisons if not c.equal])
        assert replayed.stats.dead_letters_skipped >= 1
    assert (
        await operator_db.fetchval("SELECT count(*) FROM os_core.audit_events WHERE tenant_id = ANY($1)", tenants)
        == audit_before
    )
    n = await operator_db.fetchval(
        "SELECT count(*) FROM os_core.work_orders_current WHERE tenant_id = ANY($1)", tenants
    )
    assert n == 2 * 4
