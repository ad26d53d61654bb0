"""Reads of SELENE_OS_CORE_TABLES (seed 002): OS_WORK_ORDER_CURRENT_READ, OS_WORK_ORDER_LEDGER_READ,
WORKORDER_LIST_PENDING, and OS_WORK_ORDER_CURRENT_REBUILD.

Every read names its tenant and runs in a read-only transaction scoped to that tenant alone (see
``consumers.repositories``), so row-level security, not the query text, keeps it inside the tenant: there is
no cross-tenant read path. The writes (OS_WORK_ORDER_LEDGER_APPEND, WORKORDER_CANCEL) are in
``producers/work_orders.py``: they go through Kafka and the ledger writer like every other append.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar

import asyncpg

from consumers.rebuild import Rebuilder, RebuildResult
from consumers.repositories import one_tenant
from contracts.reasons import ContractViolation, ReasonCode
from contracts.settings import Settings
from contracts.work_orders import PENDING_STATUSES

MAX_TOP_N = 100
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class WorkOrderCurrentRecord:
    """A row of ``os_core.work_orders_current``, continuity fields included (seed 002)."""

    work_order_id: str
    tenant_id: str
    correlation_id: str
    requester_user_id: str
    intent_type: str
    status: str
    status_reason_code: str | None
    state_version: int
    fields_json: dict[str, Any]
    prefilled_json: dict[str, Any]
    asked_fields_json: dict[str, Any]
    resolved_fields_json: dict[str, Any]
    prompt_dedupe_keys_json: dict[str, Any]
    external_approval_pending: bool
    external_approval_request_id: str | None
    external_approval_target_user_id: str | None
    external_approval_expires_at: datetime | None
    external_approval_wait_notice_at: datetime | None
    external_approval_outcome: str | None
    created_at: datetime
    updated_at: datetime
    last_event_id: int


@dataclass(frozen=True, slots=True)
class WorkOrderLedgerRecord:
    """A row of ``os_core.work_order_ledger``."""

    work_order_event_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    work_order_id: str
    engine_id: str
    event_type: str
    schema_version: int
    correlation_id: str
    turn_id: str | None
    idempotency_key: str | None
    reason_code: str | None
    occurred_at: datetime
    recorded_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class PendingWorkOrderRecord:
    """A pending work order as a continuity resume offer needs it."""

    work_order_id: str
    tenant_id: str
    requester_user_id: str
    correlation_id: str
    intent_type: str
    status: str
    asked_fields_json: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    last_event_id: int


@dataclass(frozen=True, slots=True)
class StepAttemptRecord:
    """A row of ``os_core.work_order_step_attempts``."""

    work_order_id: str
    step_id: str
    attempt_no: int
    tenant_id: str
    status: str
    lease_id: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome_reason_code: str | None
    last_event_id: int


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """A row of ``os_core.work_order_leases``."""

    work_order_id: str
    tenant_id: str
    lease_id: str
    holder_id: str
    status: str
    acquired_at: datetime
    expires_at: datetime
    released_at: datetime | None
    last_event_id: int


def _columns(record: type) -> str:
    return ", ".join(f.name for f in fields(record))


SELECT_CURRENT = f"""
SELECT {_columns(WorkOrderCurrentRecord)} FROM os_core.work_orders_current
WHERE tenant_id = $1 AND work_order_id = $2
"""
SELECT_CURRENT_BY_CORRELATION = f"""
SELECT {_columns(WorkOrderCurrentRecord)} FROM os_core.work_orders_current
WHERE tenant_id = $1 AND correlation_id = $2
"""
SELECT_LEDGER = f"""
SELECT {_columns(WorkOrderLedgerRecord)} FROM os_core.work_order_ledger
WHERE tenant_id = $1 AND work_order_id = $2 AND work_order_event_id > $3
ORDER BY work_order_event_id LIMIT $4
"""
# Most recent first, ties broken by id so that the order is total (deterministic), within the recency window
# measured from $5 (the caller's "now", or the transaction's).
SELECT_PENDING = f"""
SELECT {_columns(PendingWorkOrderRecord)} FROM os_core.work_orders_current
WHERE tenant_id = $1 AND requester_user_id = $2 AND status = ANY($3::text[])
  AND updated_at >= coalesce($5::timestamptz, now()) - $4::interval
ORDER BY updated_at DESC, work_order_id DESC
LIMIT $6
"""
SELECT_STEP_ATTEMPTS = f"""
SELECT {_columns(StepAttemptRecord)} FROM os_core.work_order_step_attempts
WHERE tenant_id = $1 AND work_order_id = $2 ORDER BY step_id, attempt_no
"""
SELECT_LEASE = f"""
SELECT {_columns(LeaseRecord)} FROM os_core.work_order_leases WHERE tenant_id = $1 AND work_order_id = $2
"""


def _record(cls: type[R], row: asyncpg.Record) -> R:
    """A record from a row; jsonb as Python values even on a connection without the project's codec."""
    values = dict(row)
    for name, value in values.items():
        if (name.endswith("_json") or name == "payload") and isinstance(value, str):
            values[name] = json.loads(value)
    return cls(**values)


class WorkOrderReader:
    """Typed, tenant-scoped reads of the work-order tables on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def current(self, tenant_id: str, work_order_id: str) -> WorkOrderCurrentRecord | None:
        """OS_WORK_ORDER_CURRENT_READ: the work order's current state, or None if the tenant has none."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CURRENT, tenant_id, work_order_id)
        return _record(WorkOrderCurrentRecord, row) if row is not None else None

    async def current_by_correlation(self, tenant_id: str, correlation_id: str) -> WorkOrderCurrentRecord | None:
        """The work order bound to a thread (seed 001's lookup by (tenant_id, correlation_id))."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CURRENT_BY_CORRELATION, tenant_id, correlation_id)
        return _record(WorkOrderCurrentRecord, row) if row is not None else None

    async def ledger(
        self, tenant_id: str, work_order_id: str, *, after_event_id: int = 0, limit: int = 1000
    ) -> list[WorkOrderLedgerRecord]:
        """OS_WORK_ORDER_LEDGER_READ: the work order's events in append order, a page after ``after_event_id``."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_LEDGER, tenant_id, work_order_id, after_event_id, limit)
        return [_record(WorkOrderLedgerRecord, r) for r in rows]

    async def list_pending(
        self,
        tenant_id: str,
        requester_user_id: str,
        *,
        statuses: Iterable[str] = PENDING_STATUSES,
        recency_window: timedelta = timedelta(days=7),
        top_n: int = 5,
        now: datetime | None = None,
    ) -> list[PendingWorkOrderRecord]:
        """WORKORDER_LIST_PENDING: the requester's work orders in ``statuses`` (a subset of DRAFT, CLARIFY,
        CONFIRM) updated within ``recency_window`` of ``now``, most recent first, at most ``top_n``."""
        wanted = sorted(set(statuses))
        if not wanted or not set(wanted) <= PENDING_STATUSES:
            raise ContractViolation(
                f"status_set {wanted} must be a non-empty subset of {sorted(PENDING_STATUSES)}",
                ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED,
            )
        if not 1 <= top_n <= MAX_TOP_N or recency_window <= timedelta(0):
            raise ContractViolation(
                f"top_n must be 1..{MAX_TOP_N} and the recency window positive",
                ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED,
            )
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_PENDING, tenant_id, requester_user_id, wanted, recency_window, now, top_n)
        return [_record(PendingWorkOrderRecord, r) for r in rows]

    async def step_attempts(self, tenant_id: str, work_order_id: str) -> list[StepAttemptRecord]:
        """The work order's step attempts, by step and attempt number."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_STEP_ATTEMPTS, tenant_id, work_order_id)
        return [_record(StepAttemptRecord, r) for r in rows]

    async def lease(self, tenant_id: str, work_order_id: str) -> LeaseRecord | None:
        """The work order's lease (held or last released), or None."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_LEASE, tenant_id, work_order_id)
        return _record(LeaseRecord, row) if row is not None else None


async def rebuild_current(settings: Settings, tenant_id: str, *, apply: bool = False) -> RebuildResult:
    """OS_WORK_ORDER_CURRENT_REBUILD: rebuild one tenant's projections from its ledgers into the shadow tables
    and compare them with live (``result.equal``); with ``apply``, swap the rebuilt rows in. This is the
    project's one rebuild (``consumers.rebuild``), so the work-order tables are rebuilt with every other
    projection of the tenant; a rebuild emits no audit rows (they are in the audit ledger already)."""
    return await Rebuilder(settings, tenant=tenant_id).run(verify=True, apply=apply)
