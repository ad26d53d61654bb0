"""Reads of PH1.ACCESS.001 / PH2.ACCESS.002, and the gate (PH1.ACCESS.001 only reads: ``decide`` is pure, and
its caller records the decision as an ``ACCESS_DECISION`` audit row). Tenant-scoped, see
``consumers.repositories``."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg

from consumers.repositories import one_tenant
from contracts.access import MODE_RANK


@dataclass(frozen=True, slots=True)
class AccessInstance:
    """A row of ``access_instances``."""

    access_instance_id: str
    tenant_id: str
    user_id: str
    role_template_id: str
    effective_access_mode: str
    baseline_permissions_json: dict[str, Any]
    identity_verified: bool
    verification_level: str
    device_trust_level: str
    lifecycle_state: str
    policy_snapshot_ref: str
    created_at: datetime
    updated_at: datetime
    idempotency_key: str | None


@dataclass(frozen=True, slots=True)
class AccessOverride:
    """A row of the ``access_overrides`` ledger (``occurred_at`` is upstream's ``created_at``)."""

    access_override_event_id: int
    override_id: str
    access_instance_id: str
    tenant_id: str
    event_type: str
    override_type: str
    scope_json: dict[str, Any]
    status: str
    approved_by_user_id: str
    approved_via_simulation_id: str
    reason_code: str
    starts_at: datetime
    expires_at: datetime | None
    idempotency_key: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class GateDecision:
    decision: str  # ALLOW, DENY or ESCALATE
    reason_code: str
    effective_access_mode: str | None


def _json(row: asyncpg.Record, column: str) -> dict[str, Any]:
    """jsonb as Python values, also on a connection without the project's codec."""
    values = dict(row)
    if isinstance(values[column], str):
        values[column] = json.loads(values[column])
    return values


SELECT_INSTANCE = f"""
SELECT {", ".join(f.name for f in fields(AccessInstance))} FROM os_core.access_instances
WHERE tenant_id = $1 AND access_instance_id = $2
"""
SELECT_OVERRIDES = f"""
SELECT {", ".join(f.name for f in fields(AccessOverride))} FROM os_core.access_overrides
WHERE tenant_id = $1 AND access_instance_id = $2 ORDER BY access_override_event_id
"""
# ACTIVE at write, started and not expired at $3 (the sheet's instance/status/window index).
SELECT_GRANTED_MODES = """
SELECT scope_json->>'grant_mode' AS mode FROM os_core.access_overrides
WHERE access_instance_id = $2 AND status = 'ACTIVE' AND starts_at <= $3 AND (expires_at IS NULL OR expires_at > $3)
  AND tenant_id = $1 AND scope_json ? 'grant_mode'
"""


def decide(
    instance: AccessInstance | None, granted: list[str], *, user_id: str, mode: str, sensitive: bool = False
) -> GateDecision:
    """The sheet's decision order; ``granted``: the grant modes of the instance's live overrides."""
    if instance is None:
        return GateDecision("DENY", "ACCESS_INSTANCE_MISSING", None)
    effective = max([instance.effective_access_mode, *granted], key=MODE_RANK.__getitem__)
    if instance.user_id != user_id:
        return GateDecision("DENY", "ACCESS_SCOPE_MISMATCH", effective)
    if instance.lifecycle_state == "SUSPENDED":
        return GateDecision("DENY", "ACCESS_DENIED", effective)
    if instance.lifecycle_state == "RESTRICTED" or not instance.identity_verified:
        return GateDecision("ESCALATE", "ACCESS_ESCALATE_REQUIRED", effective)
    if sensitive and instance.baseline_permissions_json.get("financial_auth") is not True:
        return GateDecision("DENY", "ACCESS_SENSITIVE_DENY", effective)
    if instance.device_trust_level in ("DTL1", "DTL2") and MODE_RANK[mode] >= MODE_RANK["A"]:
        return GateDecision("ESCALATE", "ACCESS_DEVICE_UNTRUSTED", effective)
    if MODE_RANK[mode] <= MODE_RANK[effective]:
        return GateDecision("ALLOW", "ACCESS_ALLOWED", effective)
    return GateDecision("ESCALATE", "ACCESS_AP_REQUIRED", effective)


class AccessReader:
    """Typed reads of one tenant's access instances and overrides, on a reader-role connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def instance(self, tenant_id: str, access_instance_id: str) -> AccessInstance | None:
        async with one_tenant(self.conn, tenant_id) as conn:
            row = await conn.fetchrow(SELECT_INSTANCE, tenant_id, access_instance_id)
        return AccessInstance(**_json(row, "baseline_permissions_json")) if row is not None else None

    async def overrides(self, tenant_id: str, access_instance_id: str) -> list[AccessOverride]:
        """The instance's override rows in append order."""
        async with one_tenant(self.conn, tenant_id) as conn:
            rows = await conn.fetch(SELECT_OVERRIDES, tenant_id, access_instance_id)
        return [AccessOverride(**_json(r, "scope_json")) for r in rows]


async def gate(
    reader: AccessReader,
    tenant_id: str,
    access_instance_id: str,
    *,
    user_id: str,
    mode: str,
    at: datetime,
    sensitive: bool = False,
) -> GateDecision:
    """PH1.ACCESS.001's decision for ``user_id`` asking for ``mode`` at ``at``, on ``reader``; writes nothing."""
    async with one_tenant(reader.conn, tenant_id) as conn:
        granted = [r["mode"] for r in await conn.fetch(SELECT_GRANTED_MODES, tenant_id, access_instance_id, at)]
    instance = await reader.instance(tenant_id, access_instance_id)
    valid = [g for g in granted if g in MODE_RANK]
    return decide(instance, valid, user_id=user_id, mode=mode, sensitive=sensitive)
