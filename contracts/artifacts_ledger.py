"""Artifacts ledger (seed 000 row 7): versioned packs (wake, STT, TTS) for a tenant, a user or a device.

An event of ``os_process.artifacts_ledger`` records one version of one artifact of one scope: where its
package is (``payload_ref``, a reference, never the content), its hash, who built it and from what, and its
status. Rollback or deprecation is a new version with the new status, never a change of a row.

Upstream has no ``tenant_id`` on this table (a scope ``TENANT``/``<tenant id>`` stood for it); here every row
has the envelope's tenant and row-level security, and a ``TENANT`` scope must name the event's own tenant.
Two rules beyond idempotency, both hand-written (``consumers/projections/artifacts_ledger.py``): a
(scope, type, version) is recorded once (``ART_DUPLICATE_KEY``), and a ``TENANT`` scope is the event's
tenant (``ART_SCOPE_TENANT_MISMATCH``).

Aggregate = (scope, artifact type): every version of one artifact is on one partition, in order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from contracts.envelope import IDENT_PATTERN, LedgerEvent, LedgerSpec, Payload, define_event, new_event
from contracts.reasons import ReasonCode
from contracts.slice import ExampleContext, LedgerColumns, SliceContract

ARTIFACTS_LEDGER = LedgerSpec(
    name="artifacts_ledger",
    table="os_process.artifacts_ledger",
    id_column="artifact_id",
    idempotency_scope=("tenant_id", "scope_type", "scope_id", "artifact_type", "artifact_version", "idempotency_key"),
    contract_invalid=ReasonCode.ART_CONTRACT_VALIDATION_FAILED,
    tenant_violation=ReasonCode.ART_TENANT_SCOPE_VIOLATION,
    duplicate=ReasonCode.ART_IDEMPOTENCY_REPLAY,
    append_only_violation=ReasonCode.ART_APPEND_ONLY_VIOLATION,
)


def _token(max_length: int) -> StringConstraints:
    """Upstream's "non-blank, at most N": here one identifier token (no whitespace, no control character)."""
    return StringConstraints(min_length=1, max_length=max_length, pattern=IDENT_PATTERN)


ScopeType = Literal["TENANT", "USER", "DEVICE"]
ArtifactType = Literal[
    "WAKE_PACK",
    "STT_VOCAB_PACK",
    "STT_ROUTING_POLICY_PACK",
    "STT_ADAPTATION_PROFILE",
    "TTS_PRONUNCIATION_PACK",
    "TTS_ROUTING_POLICY_PACK",
]
ArtifactStatus = Literal["ACTIVE", "ROLLED_BACK", "DEPRECATED"]


class ArtifactEventInput(Payload):
    """One version of one artifact of one scope."""

    scope_type: ScopeType
    scope_id: Annotated[str, _token(128)]
    artifact_type: ArtifactType
    artifact_version: Annotated[int, Field(ge=1, le=2**31 - 1)]
    package_hash: Annotated[str, _token(128)]
    payload_ref: Annotated[str, _token(256)]
    created_by: Annotated[str, _token(96)]
    provenance_ref: Annotated[str, _token(128)]
    status: ArtifactStatus

    def aggregate_id(self, event: LedgerEvent) -> str:
        return f"art:{self.scope_type}:{self.scope_id}:{self.artifact_type}"


ArtifactRecordedEvent = define_event(ARTIFACTS_LEDGER, "ARTIFACT_RECORDED", ArtifactEventInput)


def examples(ctx: ExampleContext) -> list[LedgerEvent]:
    """PH1.LEARN builds a user's STT vocabulary pack, then a next version (two versions per ``n``)."""
    common = {"tenant_id": ctx.tenant_id, "engine_id": "PH1.LEARN", "correlation_id": f"art-{ctx.user_id}-{ctx.n}"}
    pack = {
        "scope_type": "USER",
        "scope_id": ctx.user_id,
        "artifact_type": "STT_VOCAB_PACK",
        "created_by": "PH1.LEARN",
        "status": "ACTIVE",
    }
    return [
        new_event(
            ArtifactRecordedEvent,
            occurred_at=ctx.at,
            payload={
                **pack,
                "artifact_version": 2 * ctx.n + v,
                "package_hash": f"sha256:pack-{ctx.n}-{v}",
                "payload_ref": f"artifacts://stt/{ctx.user_id}/{2 * ctx.n + v}",
                "provenance_ref": f"learn-run-{ctx.n}-{v}",
            },
            **common,
        )
        for v in (1, 2)
    ]


SLICE = SliceContract(
    name="artifacts_ledger",
    engines=("ARTIFACTS_LEDGER_TABLES",),
    kind="custom",
    seed_row=7,
    doc="docs/DB_WIRING/ARTIFACTS_LEDGER_TABLES.md",
    acceptance="AT-ART-DB",
    ledgers=(LedgerColumns(ARTIFACTS_LEDGER, ArtifactEventInput),),
    events=(ArtifactRecordedEvent,),
    reasons=(
        ReasonCode.ART_DUPLICATE_KEY,
        ReasonCode.ART_SCOPE_TENANT_MISMATCH,
    ),
    # A duplicate version leaves the first row standing and the artifact consistent: later versions apply.
    non_blocking=frozenset({ReasonCode.ART_DUPLICATE_KEY}),
    examples=examples,
)
