"""The artifacts ledger's two rules beyond idempotency (docs/DB_WIRING/ARTIFACTS_LEDGER_TABLES.md).

Upstream checks, after the idempotency key, that no other row holds the same (scope, type, version): a
second one is a ``DuplicateKey`` error. The writer's dedupe knows only the idempotency scope, and the
ledger's insert skips any row a unique index refuses (which the writer would take for a race and retry), so
the rule is decided here, before the append: ``artifact_versions`` holds one row per recorded version, and
an event for a version already there is refused with ``ART_DUPLICATE_KEY`` (the first row stands). The same
table is the read model "which versions of an artifact exist, with which status", rebuildable from the
ledger. No generic kind says "refuse a second event for a key", hence a reducer by hand.

A ``TENANT`` scope must name the event's own tenant (upstream isolated tenants by that scope alone):
``ART_SCOPE_TENANT_MISMATCH``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from consumers.projections.base import Projection, Rejection, RowRef, RowView
from consumers.tables import Row, TableSpec
from contracts.artifacts_ledger import ARTIFACTS_LEDGER, ArtifactEventInput
from contracts.envelope import LedgerEvent
from contracts.reasons import ReasonCode

ARTIFACT_VERSIONS = TableSpec(
    "os_process.artifact_versions",
    columns=(
        ("tenant_id", "text"),
        ("scope_type", "text"),
        ("scope_id", "text"),
        ("artifact_type", "text"),
        ("artifact_version", "integer"),
        ("status", "text"),
        ("package_hash", "text"),
        ("updated_at", "timestamptz"),
        ("source_event_id", "bigint"),
    ),
    key=("tenant_id", "scope_type", "scope_id", "artifact_type", "artifact_version"),
)


def reduce_version(current: Row | None, event: LedgerEvent) -> Row:
    """The version's row for ``event``, or ``Rejection``. Pure; ``source_event_id`` holds the event's uuid,
    which the caller maps to the ledger id."""
    p = event.payload
    assert isinstance(p, ArtifactEventInput)
    if p.scope_type == "TENANT" and p.scope_id != event.tenant_id:
        raise Rejection(
            ReasonCode.ART_SCOPE_TENANT_MISMATCH,
            f"a TENANT-scope artifact of tenant {event.tenant_id} names tenant {p.scope_id}",
        )
    if current is not None:
        raise Rejection(
            ReasonCode.ART_DUPLICATE_KEY,
            f"{p.scope_type}/{p.scope_id} {p.artifact_type} version {p.artifact_version} is recorded already "
            "(rollback or deprecation is a new version)",
        )
    return {
        "tenant_id": event.tenant_id,
        "scope_type": p.scope_type,
        "scope_id": p.scope_id,
        "artifact_type": p.artifact_type,
        "artifact_version": p.artifact_version,
        "status": p.status,
        "package_hash": p.package_hash,
        "updated_at": event.occurred_at,
        "source_event_id": event.event_id,
    }


class ArtifactVersions(Projection):
    """One row per recorded (scope, type, version); a second event for one is refused."""

    name = "artifact_versions"
    writes = (ARTIFACT_VERSIONS,)
    ledgers = frozenset({ARTIFACTS_LEDGER.name})
    event_ref_columns = ("source_event_id",)

    def _key(self, event: LedgerEvent) -> tuple[Any, ...]:
        p = event.payload
        assert isinstance(p, ArtifactEventInput)
        return (event.tenant_id, p.scope_type, p.scope_id, p.artifact_type, p.artifact_version)

    def reads(self, event: LedgerEvent) -> Iterable[RowRef]:
        yield ARTIFACT_VERSIONS, self._key(event)

    def apply(self, view: RowView, event: LedgerEvent) -> None:
        view.put(ARTIFACT_VERSIONS, reduce_version(view.get(ARTIFACT_VERSIONS, self._key(event)), event))


PROJECTIONS = (ArtifactVersions(),)
