"""The slices' ledger tables and projections, registered in one place.

Adding an engine slice means adding its module here (ledger tables and projections); the writer, the
replay and the rebuild find everything through ``LEDGER_TABLES`` and ``PROJECTIONS``.
"""

from __future__ import annotations

import contracts.registry  # noqa: F401 - every slice's contracts, before the decoder is built
from consumers.ledger import LedgerTable
from consumers.projections.audit import AUDIT_TABLE
from consumers.projections.base import Projection
from consumers.projections.engine_capability_maps import ENGINE_CAPABILITY_MAPS_TABLE, EngineCapabilityMapProjection
from consumers.projections.foundation import CONVERSATION_TABLE, FoundationProjection, ReferenceGuard
from consumers.projections.work_orders import WORK_ORDER_TABLE, WorkOrderAuditEmitter, WorkOrderProjection

LEDGER_TABLES: dict[str, LedgerTable] = {
    t.spec.name: t for t in (AUDIT_TABLE, CONVERSATION_TABLE, WORK_ORDER_TABLE, ENGINE_CAPABILITY_MAPS_TABLE)
}

# Order matters within a ledger: a projection that creates rows runs before guards that reference them.
PROJECTIONS: tuple[Projection, ...] = (
    FoundationProjection(),
    ReferenceGuard(),
    WorkOrderProjection(),
    WorkOrderAuditEmitter(),
    EngineCapabilityMapProjection(),
)
