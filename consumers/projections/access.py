"""PH2.ACCESS.002: ``access_instances`` from ``ACCESS_INSTANCE_UPSERT_COMMIT`` audit rows, and the rules of the
``access_overrides`` ledger, decided before the append (docs/DB_WIRING/PH1_ACCESS_001_PH2_ACCESS_002.md).

An instance upsert replaces the user's row (``created_at`` kept); a repeat of the key the row was written
with leaves it unchanged (upstream's (tenant, user, key) dedupe). Its id must be the tenant's instance of
the user (``ACCESS_TENANT_SCOPE_VIOLATION``).

An override is appended only when (in this order): its instance id is the tenant's instance of the user it
names (``ACCESS_TENANT_SCOPE_VIOLATION``: an override cannot reach another tenant's instance); it has an
idempotency key, its ``override_id`` derives from it, its window ends after it starts, its status is the one
at write (``REVOKE`` -> ``REVOKED``, else ``EXPIRED`` when ``expires_at <= occurred_at``, else ``ACTIVE``) and a
``grant_mode`` in its scope is R, W, A or X (``ACCESS_CONTRACT_VALIDATION_FAILED``); and, unless it is a
revocation, no ACTIVE override of the instance holds the same scope (an ACTIVE one: any; an EXPIRED one: one
whose window overlaps), ``ACCESS_OVERRIDE_SCOPE_CONFLICT``. The ledger's unique index on ACTIVE scopes says
the same, but an insert it refused would read as a concurrent append: the writer decides first, on
``access_active_scopes`` (one row per ACTIVE scope, rebuildable from the ledger).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.access import (
    ACCESS_OVERRIDES,
    MODE_RANK,
    AccessInstanceUpsert,
    AccessOverrideInput,
    access_instance_id,
    override_id,
)
from contracts.envelope import LedgerEvent
from contracts.reasons import ReasonCode

INSTANCE_FIELDS = (
    "user_id",
    "role_template_id",
    "effective_access_mode",
    "baseline_permissions_json",
    "identity_verified",
    "verification_level",
    "device_trust_level",
    "lifecycle_state",
    "policy_snapshot_ref",
)
ACCESS_INSTANCES = TableSpec(
    "os_core.access_instances",
    columns=(
        ("access_instance_id", "text"),
        ("tenant_id", "text"),
        *(
            (c, {"identity_verified": "boolean", "baseline_permissions_json": "jsonb"}.get(c, "text"))
            for c in INSTANCE_FIELDS
        ),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("idempotency_key", "text"),
    ),
    key=("access_instance_id",),
)
ACTIVE_SCOPES = TableSpec(
    "os_core.access_active_scopes",
    columns=(
        ("tenant_id", "text"),
        ("access_instance_id", "text"),
        ("scope_hash", "text"),
        ("override_id", "text"),
        ("starts_at", "timestamptz"),
        ("expires_at", "timestamptz"),
        ("source_event_id", "bigint"),
    ),
    key=("tenant_id", "access_instance_id", "scope_hash"),
)


def scope_hash(scope: dict[str, Any]) -> str:
    """Equal for scopes jsonb holds equal (flat objects of strings, booleans and integers)."""
    return hashlib.sha256(json.dumps(scope, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _owned(tenant: str, user: str, instance: str) -> None:
    if instance != access_instance_id(tenant, user):
        raise Rejection(
            ReasonCode.ACCESS_TENANT_SCOPE_VIOLATION, f"{instance} is not the instance of user {user} in {tenant}"
        )


def decide_override(active: Row | None, event: LedgerEvent) -> None:
    """Raise ``Rejection`` unless the override ``event`` may be appended next to the ACTIVE row of its scope."""
    p = event.payload
    assert isinstance(p, AccessOverrideInput)
    _owned(event.tenant_id, p.user_id, p.access_instance_id)
    expired = p.expires_at is not None and p.expires_at <= event.occurred_at
    status = "REVOKED" if p.override_type == "REVOKE" else "EXPIRED" if expired else "ACTIVE"
    key = event.idempotency_key
    wrong = [
        "no idempotency key" if key is None else "",
        "override_id is not derived from the tenant, instance and key"
        if key and p.override_id != override_id(event.tenant_id, p.access_instance_id, key)
        else "",
        "expires_at is not after starts_at" if p.expires_at is not None and p.expires_at <= p.starts_at else "",
        f"status {p.status} where the override is {status} at write" if p.status != status else "",
        "grant_mode is not R, W, A or X" if p.scope_json.get("grant_mode", "R") not in MODE_RANK else "",
    ]
    if problems := [w for w in wrong if w]:
        raise Rejection(ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED, "; ".join(problems))
    if active is None or status == "REVOKED":
        return
    end = active["expires_at"]
    overlaps = (end is None or p.starts_at < end) and (p.expires_at is None or active["starts_at"] < p.expires_at)
    if status == "ACTIVE" or overlaps:
        raise Rejection(
            ReasonCode.ACCESS_OVERRIDE_SCOPE_CONFLICT,
            f"override {active['override_id']} of {p.access_instance_id} is ACTIVE on the same scope",
        )


class AccessInstances(Projection):
    """access_instances <- ACCESS_INSTANCE_UPSERT_COMMIT on the audit ledger: one row per (tenant, user)."""

    name = "access_instances"
    writes = (ACCESS_INSTANCES,)
    ledgers = frozenset({"audit_events"})
    event_ref_columns = ()

    def handles(self, event: LedgerEvent) -> bool:
        return isinstance(event.payload, AccessInstanceUpsert)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        assert isinstance(event.payload, AccessInstanceUpsert)
        yield ACCESS_INSTANCES, (event.payload.access_instance_id,)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p, at = event.payload, event.occurred_at
        assert isinstance(p, AccessInstanceUpsert)
        _owned(event.tenant_id, p.user_id, p.access_instance_id)
        old = view.get(ACCESS_INSTANCES, (p.access_instance_id,))
        if old is not None and event.idempotency_key is not None and old["idempotency_key"] == event.idempotency_key:
            return
        row = {c: getattr(p, c) for c in INSTANCE_FIELDS}
        created, updated = (old["created_at"], max(at, old["updated_at"])) if old else (at, at)
        view.put(
            ACCESS_INSTANCES,
            {"access_instance_id": p.access_instance_id, "tenant_id": event.tenant_id, **row}
            | {"created_at": created, "updated_at": updated, "idempotency_key": event.idempotency_key},
        )


class AccessActiveScopes(Projection):
    """access_active_scopes <- access_overrides: the ACTIVE override of each (instance, scope)."""

    name = "access_active_scopes"
    writes = (ACTIVE_SCOPES,)
    ledgers = frozenset({ACCESS_OVERRIDES.name})
    event_ref_columns = ("source_event_id",)

    def _key(self, event: LedgerEvent) -> tuple[str, str, str]:
        p = event.payload
        assert isinstance(p, AccessOverrideInput)
        return (event.tenant_id, p.access_instance_id, scope_hash(p.scope_json))

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield ACTIVE_SCOPES, self._key(event)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        p, key = event.payload, self._key(event)
        assert isinstance(p, AccessOverrideInput)
        decide_override(view.get(ACTIVE_SCOPES, key), event)
        if p.status == "ACTIVE":
            view.put(
                ACTIVE_SCOPES,
                dict(zip(ACTIVE_SCOPES.key, key, strict=True))
                | {"override_id": p.override_id, "starts_at": p.starts_at, "expires_at": p.expires_at}
                | {"source_event_id": event.event_id},
            )


PROJECTIONS: tuple[Projection, ...] = (AccessInstances(), AccessActiveScopes())
