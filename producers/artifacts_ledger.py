"""Writes of the artifacts ledger and the tool cache (seed 000 row 7).

``ArtifactWriter.append`` publishes an artifact version and returns its ledger id (the original's on an
idempotency replay or conflict, as upstream). ``ToolCacheWriter.upsert`` writes the cache directly: the cache
is non-authoritative and mutable (same key: payload and expiry replaced, ``cache_id`` kept), so it is no
ledger and does not go through Kafka.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

import asyncpg
from pydantic import AwareDatetime, StringConstraints, ValidationError

from contracts.artifacts_ledger import ArtifactEventInput
from contracts.envelope import IDENT_PATTERN, LedgerEvent, StrictModel, TenantId, contract_violation
from contracts.reasons import ContractViolation, ReasonCode
from producers.ledger_writes import LedgerWrites, Written
from sql.tenant_scope import scoped

UPSERT_TOOL_CACHE = """
INSERT INTO os_core.tool_cache (tenant_id, tool_name, query_hash, locale, result_payload, expires_at)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
ON CONFLICT (tenant_id, tool_name, query_hash, locale)
DO UPDATE SET result_payload = EXCLUDED.result_payload, expires_at = EXCLUDED.expires_at
RETURNING cache_id
"""


def _token(max_length: int) -> StringConstraints:
    return StringConstraints(min_length=1, max_length=max_length, pattern=IDENT_PATTERN)


class ToolCacheEntry(StrictModel):
    """What one upsert writes, with upstream's bounds (the payload: a non-blank string of at most 8192)."""

    tenant_id: TenantId
    tool_name: Annotated[str, _token(64)]
    query_hash: Annotated[str, _token(128)]
    locale: Annotated[str, _token(32)]
    result_payload: Annotated[str, StringConstraints(min_length=1, max_length=8192, pattern=r"^[^\x00]*\S[^\x00]*$")]
    expires_at: AwareDatetime


class ArtifactWriter:
    """Typed appends to ``os_process.artifacts_ledger``."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def append(self, event: LedgerEvent) -> Written:
        """Publish an ``ARTIFACT_RECORDED`` event and wait until the writer appended it (or its original)."""
        p = event.payload
        if not isinstance(p, ArtifactEventInput):
            raise ContractViolation(
                f"{event.event_type} is not an artifact event", ReasonCode.ART_CONTRACT_VALIDATION_FAILED
            )
        scope = (p.scope_type, p.scope_id, p.artifact_type, p.artifact_version, event.idempotency_key)
        return await self.writes.write(event, scope)


class ToolCacheWriter:
    """Upserts into one tenant's tool cache, on a writer-role connection not in a transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def upsert(
        self, tenant_id: str, tool_name: str, query_hash: str, locale: str, result_payload: str, expires_at: datetime
    ) -> int:
        """Write the entry (replacing payload and expiry of the same key) and return its ``cache_id``."""
        try:
            entry = ToolCacheEntry(
                tenant_id=tenant_id,
                tool_name=tool_name,
                query_hash=query_hash,
                locale=locale,
                result_payload=result_payload,
                expires_at=expires_at,
            )
        except ValidationError as exc:
            raise contract_violation(ReasonCode.ART_CONTRACT_VALIDATION_FAILED, exc) from exc
        async with scoped(self.conn, entry.tenant_id) as conn:
            cache_id: int = await conn.fetchval(
                UPSERT_TOOL_CACHE,
                entry.tenant_id,
                entry.tool_name,
                entry.query_hash,
                entry.locale,
                json.dumps(entry.result_payload),
                entry.expires_at,
            )
        return cache_id
