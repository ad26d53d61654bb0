"""Publish an event and wait for the ledger writer's verdict: the write side of the typed repositories.

The writer decides asynchronously (it consumes Kafka), so a write repository publishes, then reads the ledger
as the reader role, scoped to the event's tenant, until a row stands for the event: its own row, or, on an
idempotency replay or conflict, the original row of the same scoped key (the seeds' "returns the original
event id; no-op"). If the writer dead-lettered the event instead, the dead letter's reason code is raised.
Polling (a few queries per write, backing off) keeps the writer untouched; it needs no notification path.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import asyncpg

from contracts.codec import content_sha256
from contracts.envelope import LedgerEvent, LedgerSpec
from contracts.reasons import ContractViolation, ReasonCode, RetriableError, SeleneError
from producers.publisher import Publisher
from sql.tenant_scope import set_scope

# Formatted once per ledger with the registry's table, id column and idempotency scope (never with input).
SELECT_STANDING_ROW = """
SELECT {id_column} AS ledger_id, event_uuid, content_sha256 FROM {table}
WHERE tenant_id = $1 AND (event_uuid = $2 OR ({scope}) = ({params}))
ORDER BY event_uuid = $2 DESC LIMIT 1
"""
SELECT_DEAD_LETTER = """
SELECT reason_code, status, error_detail FROM selene_ops.dead_letters
WHERE tenant_id = $1 AND event_uuid = $2 AND status <> 'REDRIVEN'
ORDER BY dead_letter_id DESC LIMIT 1
"""

Outcome = Literal["APPENDED", "IDEMPOTENCY_REPLAY", "IDEMPOTENCY_CONFLICT"]


@dataclass(frozen=True)
class Written:
    """The ledger row that stands for a published event."""

    event_id: int  # the ledger's monotonic id (the original row's on a replay or conflict)
    event_uuid: uuid.UUID  # that row's envelope event id
    outcome: Outcome
    #: the seeds' code for a replay or conflict: the ledger's own replay code on a replay (seed 002's
    #: ``OS_WORK_ORDER_IDEMPOTENCY_REPLAY`` for work orders), ``IDEMPOTENCY_CONFLICT``; None when appended.
    reason_code: ReasonCode | None = None


class WriteRefused(SeleneError):
    """The writer dead-lettered the event; ``reason_code`` is the dead letter's and ``status`` its status."""

    def __init__(self, message: str, reason_code: ReasonCode, status: str) -> None:
        super().__init__(message, reason_code)
        self.status = status


class LedgerWrites:
    """Publishes events and awaits their ledger rows; one instance per publisher and reader connection."""

    def __init__(self, publisher: Publisher, reader: asyncpg.Connection, *, timeout: float = 30.0) -> None:
        self.publisher = publisher
        self.reader = reader
        self.timeout = timeout

    async def write(self, event: LedgerEvent, scope: Sequence[Any], columns: Sequence[str] = ()) -> Written:
        """Publish ``event`` and return its ledger row. ``scope`` holds the values of the ledger's idempotency
        scope after the tenant (e.g. correlation id and idempotency key), or of ``columns`` when given (the
        ledger's preferred scope after the tenant)."""
        await self.publisher.publish(event)
        return await self.await_written(event, scope, columns)

    async def await_written(self, event: LedgerEvent, scope: Sequence[Any], columns: Sequence[str] = ()) -> Written:
        """Wait for the writer's verdict on an already published event (e.g. again after a timeout)."""
        spec = event.spec
        columns = tuple(columns) or spec.idempotency_scope[1:]
        if len(scope) != len(columns):
            raise ValueError(f"{spec.name} scope is {columns}, got {len(scope)} values")
        sql = SELECT_STANDING_ROW.format(
            id_column=spec.id_column,
            table=spec.table,
            scope=", ".join(columns),
            params=", ".join(f"${i}" for i in range(3, 3 + len(columns))),
        )
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            async with self.reader.transaction(readonly=True):
                await set_scope(self.reader, event.tenant_id)
                row = await self.reader.fetchrow(sql, event.tenant_id, event.event_id, *scope)
                dead = None if row else await self.reader.fetchrow(SELECT_DEAD_LETTER, event.tenant_id, event.event_id)
            if row is not None:
                outcome = _outcome(event, row)
                return Written(row["ledger_id"], row["event_uuid"], outcome, _OUTCOME_REASONS[outcome](event))
            if dead is not None:
                raise WriteRefused(dead["error_detail"], _reason(dead["reason_code"]), dead["status"])
            if time.monotonic() >= deadline:
                raise RetriableError(
                    f"event {event.event_id} was published but not written within {self.timeout:.0f}s "
                    "(is the ledger writer running?); await it again",
                    ReasonCode.LEDGER_WRITE_UNCONFIRMED,
                )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.5)


class LedgerAppends:
    """Typed appends to one ledger, for any slice: the idempotency scope's values are read from the event
    itself, so a slice needs no writer module of its own."""

    def __init__(self, writes: LedgerWrites, spec: LedgerSpec) -> None:
        self.writes = writes
        self.spec = spec

    def scope(self, event: LedgerEvent) -> tuple[Any, ...]:
        """The values of the ledger's idempotency scope after the tenant: each column is the payload field of
        its name if the payload has one (a ledger's columns are its payload's fields), else the envelope's.
        An event of another ledger is refused with this ledger's ``contract_invalid`` code."""
        if event.spec != self.spec:
            raise ContractViolation(
                f"{event.event_type} is an event of {event.spec.name}, not of {self.spec.name}",
                self.spec.contract_invalid,
            )
        fields = type(event.payload).model_fields
        return tuple(
            getattr(event.payload if column in fields else event, column) for column in self.spec.idempotency_scope[1:]
        )

    async def append(self, event: LedgerEvent) -> Written:
        """Publish ``event`` and wait until the writer appended it (or the original of its scoped key)."""
        return await self.writes.write(event, self.scope(event))


def _outcome(event: LedgerEvent, row: asyncpg.Record) -> Outcome:
    if bytes(row["content_sha256"]) != content_sha256(event):
        return "IDEMPOTENCY_CONFLICT"
    return "APPENDED" if row["event_uuid"] == event.event_id else "IDEMPOTENCY_REPLAY"


_OUTCOME_REASONS: dict[Outcome, Callable[[LedgerEvent], ReasonCode | None]] = {
    "APPENDED": lambda _: None,
    "IDEMPOTENCY_REPLAY": lambda event: event.spec.duplicate,
    "IDEMPOTENCY_CONFLICT": lambda _: ReasonCode.IDEMPOTENCY_CONFLICT,
}


def _reason(code: str) -> ReasonCode:
    try:
        return ReasonCode(code)
    except ValueError:  # a code from a newer writer than this producer
        return ReasonCode.EVENT_SCHEMA_INVALID
