"""Reads of PH1.FEEDBACK (its audit rows by correlation and turn, see ``audit_decisions``) and of the packs
PH1.LEARN and PH1.KNOW recorded on the artifacts ledger, told apart by ``created_by`` as upstream reads them.
Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

from dataclasses import fields
from typing import ClassVar

import asyncpg

from consumers.repositories import one_tenant
from consumers.repositories.artifacts_ledger import ArtifactRecord
from consumers.repositories.audit_decisions import DecisionReader
from contracts.envelope import LedgerEvent
from contracts.learn_feedback_know import FEEDBACK, FeedbackEvent, FeedbackEventCommit

SELECT_PACKS = f"""
SELECT {", ".join(f.name for f in fields(ArtifactRecord))} FROM os_process.artifacts_ledger
WHERE tenant_id = $1 AND created_by = $2 AND scope_type = $3 AND scope_id = $4 AND artifact_type = $5
ORDER BY artifact_id
"""


class FeedbackReader(DecisionReader[FeedbackEventCommit]):
    """Typed reads of one tenant's PH1.FEEDBACK rows."""

    engine: ClassVar[str] = FEEDBACK
    events: ClassVar[tuple[type[LedgerEvent], ...]] = (FeedbackEvent,)


class PackReader:
    """One tenant's artifacts of one engine (``PH1.LEARN`` or ``PH1.KNOW``), scope and type, in append order."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def packs(
        self, tenant_id: str, created_by: str, scope_type: str, scope_id: str, artifact_type: str
    ) -> list[ArtifactRecord]:
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_PACKS, tenant_id, created_by, scope_type, scope_id, artifact_type)
        return [ArtifactRecord(**dict(r)) for r in rows]
