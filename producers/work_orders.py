"""Writes of SELENE_OS_CORE_TABLES (seed 002): OS_WORK_ORDER_LEDGER_APPEND and WORKORDER_CANCEL.

Both publish a validated work-order event and wait for the ledger writer's verdict (``LedgerWrites``): the
ledger id of the row that stands for the event, or the refusal's reason code (``WriteRefused``: a suppressed
prompt, a cancel of a terminal work order, ...). Dedupe is the ledger's: (tenant, work order, idempotency
key), so a retried append or cancel with the same key returns the original row and writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from contracts.envelope import new_event
from contracts.reasons import ContractViolation, ReasonCode, SeleneError
from contracts.work_orders import WorkOrderCanceledEvent, WorkOrderLedgerEventInput
from producers.ledger_writes import LedgerWrites, Written
from sql.tenant_scope import set_scope

# The thread a work order is bound to, for the envelope of a cancel (read as the reader role, one tenant).
SELECT_CORRELATION = """
SELECT correlation_id FROM os_core.work_orders_current WHERE tenant_id = $1 AND work_order_id = $2
"""


@dataclass(frozen=True)
class Canceled:
    """WORKORDER_CANCEL's output: the work order, its status, and the ledger id of the cancel event."""

    work_order_id: str
    status: Literal["CANCELED"]
    last_event_id: int


class WorkOrderWriter:
    """Typed appends to ``os_core.work_order_ledger``."""

    def __init__(self, writes: LedgerWrites, *, engine_id: str = "SELENE_OS") -> None:
        self.writes = writes
        self.engine_id = engine_id

    async def append(self, event: WorkOrderLedgerEventInput) -> Written:
        """OS_WORK_ORDER_LEDGER_APPEND: publish ``event`` and return the ledger row standing for it
        (``Written.event_id`` is the ``work_order_event_id``; the original row's on an idempotency replay)."""
        if not isinstance(event, WorkOrderLedgerEventInput):
            raise ContractViolation(
                f"{event.event_type} is not a work-order event", ReasonCode.OS_WORK_ORDER_CONTRACT_VALIDATION_FAILED
            )
        return await self.writes.write(event, (event.payload.work_order_id, event.idempotency_key))

    async def cancel(
        self,
        tenant_id: str,
        work_order_id: str,
        reason_code: str,
        idempotency_key: str,
        *,
        turn_id: str,
        occurred_at: datetime | None = None,
    ) -> Canceled:
        """WORKORDER_CANCEL: append ``WORK_ORDER_CANCELED`` on the work order's own thread and return once it is
        written. Raises ``WriteRefused`` (``OS_WORK_ORDER_CANCEL_INVALID_STATE``) if the work order is already
        terminal, and ``SeleneError`` if it does not exist or the key was used for another event. ``turn_id`` is
        required: seeds 001 and 002 list it among the audit correlation keys of a cancel."""
        correlation_id = await self._correlation(tenant_id, work_order_id)
        event = new_event(
            WorkOrderCanceledEvent,
            tenant_id=tenant_id,
            engine_id=self.engine_id,
            correlation_id=correlation_id,
            turn_id=turn_id,
            idempotency_key=idempotency_key,
            occurred_at=occurred_at or datetime.now(UTC),
            payload={"work_order_id": work_order_id, "reason_code": reason_code},
        )
        assert isinstance(event, WorkOrderLedgerEventInput)
        written = await self.append(event)
        if written.outcome == "IDEMPOTENCY_CONFLICT":
            raise SeleneError(
                f"idempotency key {idempotency_key!r} of work order {work_order_id} was used for another event",
                ReasonCode.IDEMPOTENCY_CONFLICT,
            )
        return Canceled(work_order_id, "CANCELED", written.event_id)

    async def _correlation(self, tenant_id: str, work_order_id: str) -> str:
        """Checked before publishing: a cancel of an unknown work order would only become a dead letter."""
        reader = self.writes.reader
        async with reader.transaction(readonly=True):
            await set_scope(reader, tenant_id)
            correlation: str | None = await reader.fetchval(SELECT_CORRELATION, tenant_id, work_order_id)
        if correlation is None:
            raise SeleneError(
                f"no work order {work_order_id} in tenant {tenant_id}", ReasonCode.OS_WORK_ORDER_NOT_FOUND
            )
        return correlation
