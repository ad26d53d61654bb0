"""Writes of PH1.C (seed 000 row 13): publish a transcript commit and get its rows' ids.

Upstream appends a commit's rows in one store call. Here each row is an event of its own ledger's topic, and
Kafka orders nothing across topics, so the gate gives the commit its order instead: the audit rows first,
whose user, device and session the writer checks before appending (PH1.F's reference guard); only when both
stand is the conversation row published. A refused commit raises ``WriteRefused`` and writes no transcript
row. A repeat of the commit (same correlation and caller key) returns the original rows' ids and writes
nothing; other content under the key is an ``IDEMPOTENCY_CONFLICT`` for the rows that differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.envelope import LedgerEvent
from contracts.ph1_c import C_ENGINE, SLICE
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


@dataclass(frozen=True)
class TranscriptCommitted:
    """The rows standing for a commit: its two audit rows and, for transcript_ok, its conversation row."""

    audit: tuple[Written, ...]
    conversation: Written | None

    @property
    def conversation_turn_id(self) -> int | None:
        return self.conversation.event_id if self.conversation else None


class TranscriptGate:
    """Typed appends of PH1.C commits (``contracts.ph1_c.transcript_ok`` / ``transcript_reject``)."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def commit(self, events: list[LedgerEvent]) -> TranscriptCommitted:
        """Publish a commit's events, audit rows first, and wait until the writer appended them (or their
        originals)."""
        if not events or any(type(e) not in SLICE.events or e.engine_id != C_ENGINE for e in events):
            raise ContractViolation("not a PH1.C commit", ReasonCode.EVENT_SCHEMA_INVALID)
        audit = [e for e in events if e.ledger == "audit_events"]
        rest = [e for e in events if e.ledger != "audit_events"]
        for event in audit:
            await self.writes.publisher.publish(event)
        written = tuple([await self.writes.await_written(e, (e.correlation_id, e.idempotency_key)) for e in audit])
        conversation = None
        for event in rest:
            conversation = await self.writes.write(event, (event.correlation_id, event.idempotency_key))
        return TranscriptCommitted(written, conversation)
