"""PH1.ACCESS.001 + PH2.ACCESS.002 (seed 000 row 10): per-user access instances, their overrides, and the
gate's decisions.

- An access instance (one per tenant and user: role template, access mode R<W<A<X, verification, device
  trust, lifecycle) is upserted by PH2.ACCESS.002 as an ``ACCESS_INSTANCE_UPSERT_COMMIT`` audit row (as PH1.F's
  identities are); ``os_core.access_instances`` is its projection. Another slice (PH1.ONB) creates one by
  publishing ``access_instance_upsert(...)``.
- An override (a one-shot, temporary or permanent grant, or a revocation) is a row of the append-only
  ``os_core.access_overrides`` ledger; it names the instance's user, so the writer can hold the instance id to
  the event's tenant without a look-up across topics.
- PH1.ACCESS.001 only reads (``consumers.repositories.access``); its decisions are ``ACCESS_DECISION`` audit
  rows.

Ids derive from their keys, as upstream's do: ``accinst_<hash(tenant:user)>`` and
``accessovr_<hash(tenant:instance:key)>`` (SHA-256, first 32 hex digits). The rules JSON Schema cannot state
(derived ids, a required key, the status at write, the window, one ACTIVE grant per scope) are the writer's
(``consumers.projections.access``). Aggregates: an instance's upserts follow its user; its overrides, the
instance.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, StringConstraints

from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.envelope import (
    IDENT_PATTERN,
    Ident,
    LedgerEvent,
    LedgerSpec,
    Payload,
    ReasonText,
    define_event,
    new_event,
)
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

ACCESS_OVERRIDES = LedgerSpec(
    name="access_overrides",
    table="os_core.access_overrides",
    id_column="access_override_event_id",
    idempotency_scope=("tenant_id", "access_instance_id", "idempotency_key"),
    contract_invalid=ReasonCode.ACCESS_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.ACCESS_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.ACCESS_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.ACCESS_APPEND_ONLY_VIOLATION,
)
GATE_ENGINE, WRITE_ENGINE = "PH1.ACCESS.001", "PH2.ACCESS.002"

AccessMode = Literal["R", "W", "A", "X"]
MODE_RANK: dict[str, int] = {"R": 0, "W": 1, "A": 2, "X": 3}
DeviceTrust = Literal["DTL1", "DTL2", "DTL3", "DTL4"]
Decision = Literal["ALLOW", "DENY", "ESCALATE"]
GateReason = Literal[
    "ACCESS_ALLOWED",  # 0x41430001
    "ACCESS_DENIED",  # 0x41430002
    "ACCESS_ESCALATE_REQUIRED",  # 0x41430003
    "ACCESS_INSTANCE_MISSING",  # 0x41430004
    "ACCESS_SCOPE_MISMATCH",  # 0x41430005
    "ACCESS_AP_REQUIRED",  # 0x41430006
    "ACCESS_SENSITIVE_DENY",  # 0x41430008
    "ACCESS_DEVICE_UNTRUSTED",  # 0x41430009
]
InstanceId = Annotated[str, StringConstraints(pattern=r"^accinst_[0-9a-f]{32}$")]
OverrideId = Annotated[str, StringConstraints(pattern=r"^accessovr_[0-9a-f]{32}$")]
Token96 = Annotated[str, StringConstraints(min_length=1, max_length=96, pattern=IDENT_PATTERN)]
Token128 = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=IDENT_PATTERN)]
# A flat JSON object (scopes, permissions): bounded so that its text stays within the sheet's 4096 characters.
JsonKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
JsonScalar = Token128 | bool | Annotated[int, Field(ge=-(2**53), le=2**53)]
JsonObject = Annotated[dict[JsonKey, JsonScalar], Field(min_length=1, max_length=8)]


def _derived(prefix: str, *parts: str) -> str:
    return f"{prefix}_{hashlib.sha256(':'.join(parts).encode()).hexdigest()[:32]}"


def access_instance_id(tenant_id: str, user_id: str) -> str:
    return _derived("accinst", tenant_id, user_id)


def override_id(tenant_id: str, instance_id: str, idempotency_key: str) -> str:
    return _derived("accessovr", tenant_id, instance_id, idempotency_key)


class AccessInstanceUpsert(AuditPayload):
    """PH2.ACCESS.002: the user's access instance, created or replaced (``created_at`` is kept)."""

    user_id: Ident
    access_instance_id: InstanceId
    role_template_id: Token96
    effective_access_mode: AccessMode
    baseline_permissions_json: JsonObject
    identity_verified: bool
    verification_level: Literal["NONE", "PASSCODE_TIME", "BIOMETRIC", "STEP_UP"]
    device_trust_level: DeviceTrust
    lifecycle_state: Literal["RESTRICTED", "ACTIVE", "SUSPENDED"]
    policy_snapshot_ref: Token128


class AccessDecisionMade(AuditPayload):
    """PH1.ACCESS.001: the gate's answer to one request (``reason_code`` is one of the gate's codes)."""

    reason_code: GateReason
    user_id: Ident
    access_instance_id: InstanceId
    requested_action: Token96
    access_decision: Decision
    effective_access_mode: AccessMode


class AccessOverrideInput(Payload):
    """A row of ``access_overrides`` (``created_at``/``updated_at`` are the envelope's ``occurred_at``).
    ``user_id`` is the instance's user (payload only, not a column)."""

    override_id: OverrideId
    access_instance_id: InstanceId
    user_id: Ident
    override_type: Literal["ONE_SHOT", "TEMPORARY", "PERMANENT", "REVOKE"]
    scope_json: JsonObject
    status: Literal["ACTIVE", "EXPIRED", "REVOKED"]
    approved_by_user_id: Ident
    approved_via_simulation_id: Token96
    reason_code: ReasonText
    starts_at: AwareDatetime
    expires_at: AwareDatetime | None = None

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"access:{self.access_instance_id}"


class AccessTempGrant(AccessOverrideInput):
    override_type: Literal["ONE_SHOT", "TEMPORARY"]
    status: Literal["ACTIVE", "EXPIRED"]


class AccessPermGrant(AccessOverrideInput):
    override_type: Literal["PERMANENT"] = "PERMANENT"
    status: Literal["ACTIVE", "EXPIRED"]


class AccessRevoke(AccessOverrideInput):
    override_type: Literal["REVOKE"] = "REVOKE"
    status: Literal["REVOKED"] = "REVOKED"


AccessInstanceUpsertEvent = define_event(AUDIT_EVENTS, "ACCESS_INSTANCE_UPSERT_COMMIT", AccessInstanceUpsert)
AccessDecisionEvent = define_event(AUDIT_EVENTS, "ACCESS_DECISION", AccessDecisionMade)
AccessTempGrantEvent = define_event(ACCESS_OVERRIDES, "ACCESS_OVERRIDE_TEMP_GRANT_COMMIT", AccessTempGrant)
AccessPermGrantEvent = define_event(ACCESS_OVERRIDES, "ACCESS_OVERRIDE_PERM_GRANT_COMMIT", AccessPermGrant)
AccessRevokeEvent = define_event(ACCESS_OVERRIDES, "ACCESS_OVERRIDE_REVOKE_COMMIT", AccessRevoke)


def access_instance_upsert(ctx: ExampleContext, idempotency_key: str | None = None, **instance: object) -> LedgerEvent:
    """The upsert of ``ctx.user_id``'s instance in ``ctx.tenant_id`` (``instance``: the fields to set)."""
    return new_event(
        AccessInstanceUpsertEvent,
        tenant_id=ctx.tenant_id,
        engine_id=WRITE_ENGINE,
        idempotency_key=idempotency_key,
        correlation_id=f"access-{ctx.user_id}-{ctx.n}",
        occurred_at=ctx.at,
        payload={
            "reason_code": "ACCESS_INSTANCE_UPSERT",
            "user_id": ctx.user_id,
            "access_instance_id": access_instance_id(ctx.tenant_id, ctx.user_id),
            **instance,
        },
    )


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """An employee's instance (W), a day's grant of A on one action, and the gate allowing that action."""
    instance = access_instance_id(ctx.tenant_id, ctx.user_id)
    key, action = f"grant-{ctx.n}", f"payroll_approve_{ctx.n}"
    common = {"tenant_id": ctx.tenant_id, "correlation_id": f"access-{ctx.user_id}-{ctx.n}", "occurred_at": ctx.at}
    return [
        access_instance_upsert(
            ctx,
            role_template_id="role:employee",
            effective_access_mode="W",
            baseline_permissions_json={"payroll": "view", "financial_auth": True},
            identity_verified=True,
            verification_level="BIOMETRIC",
            device_trust_level="DTL3",
            lifecycle_state="ACTIVE",
            policy_snapshot_ref="policy:v1",
        ),
        new_event(
            AccessTempGrantEvent,
            engine_id=WRITE_ENGINE,
            idempotency_key=key,
            payload={
                "override_id": override_id(ctx.tenant_id, instance, key),
                "access_instance_id": instance,
                "user_id": ctx.user_id,
                "override_type": "TEMPORARY",
                "scope_json": {"action": action, "grant_mode": "A"},
                "status": "ACTIVE",
                "approved_by_user_id": ctx.user_id,
                "approved_via_simulation_id": "ACCESS_SIM_TEMP_GRANT",
                "reason_code": "ACCESS_OVERRIDE_APPROVED",
                "starts_at": ctx.at,
                "expires_at": ctx.at + timedelta(days=1),
            },
            **common,
        ),
        new_event(
            AccessDecisionEvent,
            engine_id=GATE_ENGINE,
            payload={
                "reason_code": "ACCESS_ALLOWED",
                "user_id": ctx.user_id,
                "access_instance_id": instance,
                "requested_action": action,
                "access_decision": "ALLOW",
                "effective_access_mode": "A",
            },
            **common,
        ),
    ]


SLICE = SliceContract(
    name="access",
    engines=(GATE_ENGINE, WRITE_ENGINE),
    kind="custom",
    seed_row=10,
    doc="docs/DB_WIRING/PH1_ACCESS_001_PH2_ACCESS_002.md",
    acceptance="AT-ACCESS-DB",
    ledgers=(LedgerColumns(ACCESS_OVERRIDES, AccessOverrideInput, exclude=("user_id",)),),
    events=(
        AccessInstanceUpsertEvent,
        AccessDecisionEvent,
        AccessTempGrantEvent,
        AccessPermGrantEvent,
        AccessRevokeEvent,
    ),
    reasons=(ReasonCode.ACCESS_OVERRIDE_SCOPE_CONFLICT,),
    # A duplicate changes nothing; a grant refused for its scope leaves the ACTIVE one standing, and later
    # overrides of the instance do not depend on it.
    non_blocking=frozenset({ReasonCode.ACCESS_OVERRIDE_SCOPE_CONFLICT}),
    requires=("audit", "foundation"),
    examples=examples,
)
