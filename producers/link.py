"""Writes of PH1.LINK: publish a LINK commit and get its ledger id, or why it was refused.

A dedupe hit (same tenant, scope and key) returns the original commit's id and appends nothing, as upstream's
runtime returns the first result (a repeated generate: the same link, ``was_new`` false); a refused commit
raises ``WriteRefused`` with the writer's reason (``LINK_REFUSE_NOT_FOUND``, ``LINK_REFUSE_INVALID``,
``LINK_TENANT_SCOPE_VIOLATION``). A delivery's proof is appended by the writer with the commit.
"""

from __future__ import annotations

from contracts.envelope import LedgerEvent
from contracts.link import DraftWrite
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written


class LinkWriter:
    """Typed appends of LINK (and PH1.ONB's) commits to ``os_core.onboarding_draft_write_dedupe``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def append(self, event: LedgerEvent) -> Written:
        """Publish a ``LINK_*`` or ``ONB_*`` commit and wait until the writer appended it (or its original)."""
        p = event.payload
        if not isinstance(p, DraftWrite):
            raise ContractViolation(
                f"{event.event_type} is not a LINK or ONB commit", ReasonCode.LINK_CONTRACT_VALIDATION_FAILED
            )
        return await self.writes.write(event, (p.scope_type, p.scope_id, event.idempotency_key))
