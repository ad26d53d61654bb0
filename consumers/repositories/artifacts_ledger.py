"""Reads of the artifacts ledger and the tool cache (seed 000 row 7): an artifact's versions in append order,
the versions recorded (with their status), and a tool-cache look-up that hits only before expiry.
Tenant-scoped, see ``consumers.repositories``."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import asyncpg

from consumers.repositories import one_tenant


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A row of the ``artifacts_ledger``."""

    artifact_id: int
    event_uuid: uuid.UUID
    tenant_id: str
    engine_id: str
    scope_type: str
    scope_id: str
    artifact_type: str
    artifact_version: int
    package_hash: str
    payload_ref: str
    created_by: str
    provenance_ref: str
    status: str
    correlation_id: str
    idempotency_key: str | None
    occurred_at: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class CachedToolResult:
    """A live row of ``os_core.tool_cache``."""

    cache_id: int
    tenant_id: str
    tool_name: str
    query_hash: str
    locale: str
    result_payload: str
    expires_at: datetime


_ARTIFACT_COLUMNS = ", ".join(f.name for f in fields(ArtifactRecord))
_CACHE_COLUMNS = ", ".join(f.name for f in fields(CachedToolResult))

SELECT_ARTIFACTS = f"""
SELECT {_ARTIFACT_COLUMNS} FROM os_process.artifacts_ledger
WHERE tenant_id = $1 AND scope_type = $2 AND scope_id = $3 AND artifact_type = $4 AND artifact_id > $5
ORDER BY artifact_id LIMIT $6
"""
SELECT_LATEST_ACTIVE = f"""
SELECT {_ARTIFACT_COLUMNS} FROM os_process.artifacts_ledger
WHERE tenant_id = $1 AND scope_type = $2 AND scope_id = $3 AND artifact_type = $4 AND status = 'ACTIVE'
ORDER BY artifact_version DESC LIMIT 1
"""
SELECT_CACHE_HIT = f"""
SELECT {_CACHE_COLUMNS} FROM os_core.tool_cache
WHERE tenant_id = $1 AND tool_name = $2 AND query_hash = $3 AND locale = $4 AND expires_at > $5
"""


class ArtifactReader:
    """Typed reads of one tenant's artifacts, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def versions(
        self,
        tenant_id: str,
        scope_type: str,
        scope_id: str,
        artifact_type: str,
        *,
        after_artifact_id: int = 0,
        limit: int = 1000,
    ) -> list[ArtifactRecord]:
        """The artifact's ledger rows in append order, a page after ``after_artifact_id`` (keyset)."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(
                SELECT_ARTIFACTS, tenant_id, scope_type, scope_id, artifact_type, after_artifact_id, limit
            )
        return [ArtifactRecord(**dict(r)) for r in rows]

    async def latest_active(
        self, tenant_id: str, scope_type: str, scope_id: str, artifact_type: str
    ) -> ArtifactRecord | None:
        """The highest version recorded ``ACTIVE`` (a later ROLLED_BACK version hands back to it), or None."""
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_LATEST_ACTIVE, tenant_id, scope_type, scope_id, artifact_type)
        return ArtifactRecord(**dict(row)) if row is not None else None


class ToolCacheReader:
    """Tool-cache look-ups of one tenant, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def lookup(
        self, tenant_id: str, tool_name: str, query_hash: str, locale: str, *, now: datetime | None = None
    ) -> CachedToolResult | None:
        """The cached result, only while ``expires_at > now``; at or after expiry it is a miss (None)."""
        at = now or datetime.now(UTC)
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_CACHE_HIT, tenant_id, tool_name, query_hash, locale, at)
        if row is None:
            return None
        return CachedToolResult(**{**dict(row), "result_payload": json.loads(row["result_payload"])})
