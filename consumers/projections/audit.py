"""PH1.J: how audit events become rows of ``os_core.audit_events``.

The audit ledger has no projection of its own; other slices project from it (PH1.F identities) or guard
it (references to users, devices and sessions).
"""

from __future__ import annotations

from consumers.ledger import LedgerTable
from contracts.audit import AUDIT_EVENTS, AuditPayload
from contracts.envelope import LedgerEvent


def _audit(e: LedgerEvent) -> AuditPayload:
    assert isinstance(e.payload, AuditPayload)
    return e.payload


AUDIT_TABLE = LedgerTable(
    AUDIT_EVENTS,
    extra=(
        ("reason_code", "text", lambda e: _audit(e).reason_code),
        ("user_id", "text", lambda e: _audit(e).user_id),
        ("device_id", "text", lambda e: _audit(e).device_id),
        ("session_id", "text", lambda e: _audit(e).session_id),
    ),
)
