"""Writes of PH2.ACCESS.002: an access instance upsert and the override commits, each awaited until the writer
appended it (or the original of its key), or raising ``WriteRefused`` with the writer's reason.

The ids derive here as the writer checks them, and the override's status is the one at write (``REVOKED``
for a revocation, ``EXPIRED`` for a window already over, else ``ACTIVE``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from contracts.access import (
    WRITE_ENGINE,
    AccessPermGrantEvent,
    AccessRevokeEvent,
    AccessTempGrantEvent,
    access_instance_id,
    access_instance_upsert,
    override_id,
)
from contracts.envelope import new_event
from contracts.slice import ExampleContext
from producers.ledger_writes import LedgerWrites, Written

_EVENT_OF_TYPE = {
    "ONE_SHOT": AccessTempGrantEvent,
    "TEMPORARY": AccessTempGrantEvent,
    "PERMANENT": AccessPermGrantEvent,
    "REVOKE": AccessRevokeEvent,
}


class AccessWriter:
    """Typed appends of PH2.ACCESS.002."""

    def __init__(self, writes: LedgerWrites) -> None:
        self.writes = writes

    async def upsert_instance(self, tenant_id: str, user_id: str, idempotency_key: str, **instance: Any) -> Written:
        """Create or replace ``user_id``'s instance (the fields of ``AccessInstanceUpsert`` beyond the ids)."""
        ctx = ExampleContext(tenant_id, user_id, "", "", 0, datetime.now(UTC))
        event = access_instance_upsert(ctx, idempotency_key, **instance)
        return await self.writes.write(event, (event.correlation_id, idempotency_key))

    async def override(
        self,
        override_type: str,
        *,
        tenant_id: str,
        user_id: str,
        scope: dict[str, Any],
        approved_by_user_id: str,
        approved_via_simulation_id: str,
        idempotency_key: str,
        starts_at: datetime,
        expires_at: datetime | None = None,
        reason_code: str = "ACCESS_OVERRIDE_APPROVED",
    ) -> Written:
        """Append an override of ``user_id``'s instance (``REVOKE`` for a revocation)."""
        now = datetime.now(UTC)
        instance = access_instance_id(tenant_id, user_id)
        expired = expires_at is not None and expires_at <= now
        status = "REVOKED" if override_type == "REVOKE" else "EXPIRED" if expired else "ACTIVE"
        event = new_event(
            _EVENT_OF_TYPE[override_type],
            tenant_id=tenant_id,
            engine_id=WRITE_ENGINE,
            correlation_id=f"access-override-{instance}",
            idempotency_key=idempotency_key,
            occurred_at=now,
            payload={
                "override_id": override_id(tenant_id, instance, idempotency_key),
                "access_instance_id": instance,
                "user_id": user_id,
                "override_type": override_type,
                "scope_json": scope,
                "status": status,
                "approved_by_user_id": approved_by_user_id,
                "approved_via_simulation_id": approved_via_simulation_id,
                "reason_code": reason_code,
                "starts_at": starts_at,
                "expires_at": expires_at,
            },
        )
        return await self.writes.write(event, (instance, idempotency_key))
