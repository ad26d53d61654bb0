"""The checker of the fault drills, after Jepsen's Kafka checker and Kafka's hard-bounce tests: every
acknowledged event is in its ledger exactly once, in its aggregate's order, and the counts add up."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg

from contracts.registry import LEDGERS


@dataclass(frozen=True)
class Ack:
    """Kafka acknowledged this event at (partition, offset)."""

    event_id: str
    tenant: str
    aggregate: str
    ledger: str
    partition: int
    offset: int


@dataclass
class Report:
    acked: int = 0
    in_ledgers: int = 0
    #: acknowledged events that are not in a ledger but in the dead letters, with a verdict (refused)
    dead_lettered: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    inversions: list[str] = field(default_factory=list)
    recoveries: list[float] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.inversions)

    def summary(self) -> str:
        rec = sorted(self.recoveries)
        times = (
            f"recovery p50 {statistics.median(rec):.2f}s p99 {rec[min(len(rec) - 1, int(len(rec) * 0.99))]:.2f}s "
            f"max {rec[-1]:.2f}s over {len(rec)} faults"
            if rec
            else "no recovery measured"
        )
        return (
            f"acked {self.acked}, in ledgers {self.in_ledgers}, dead-lettered {self.dead_lettered}, lost "
            f"{len(self.lost)}, duplicated "
            f"{len(self.duplicated)}, unexpected {len(self.unexpected)}, order inversions {len(self.inversions)}; "
            f"{times}"
        )


async def check(
    operator: asyncpg.Connection,
    acks: list[Ack],
    tenants: list[str],
    may_exist: set[str] | None = None,
    refused: set[str] | None = None,
) -> Report:
    """Compare the acknowledgements with the ledgers' rows of ``tenants``.

    ``may_exist``: event ids sent but never acknowledged (e.g. the broker died): they may or may not be in
    a ledger, but never twice. ``refused``: event ids in the dead letters (a workload that expects refusals):
    an acknowledged event there and in no ledger is accounted for, not lost.
    """
    report = Report(acked=len(acks))
    rows_by_event: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for spec in LEDGERS.values():
        rows = await operator.fetch(
            f"SELECT event_uuid::text AS id, {spec.id_column} AS lid FROM {spec.table} WHERE tenant_id = ANY($1)",
            tenants,
        )
        for r in rows:
            rows_by_event[r["id"]].append((spec.name, r["lid"]))
    report.in_ledgers = sum(len(v) for v in rows_by_event.values())
    acked_ids = {a.event_id for a in acks}
    for event_id, found in rows_by_event.items():
        if len(found) > 1:
            report.duplicated.append(event_id)
        if event_id not in acked_ids and event_id not in (may_exist or set()):
            report.unexpected.append(event_id)
    by_aggregate: dict[tuple[str, str, str], list[Ack]] = defaultdict(list)
    for a in acks:
        if a.event_id not in rows_by_event and a.event_id in (refused or set()):
            report.dead_lettered += 1
        elif a.event_id not in rows_by_event:
            report.lost.append(a.event_id)
        else:
            by_aggregate[(a.ledger, a.tenant, a.aggregate)].append(a)
    for key, items in by_aggregate.items():
        items.sort(key=lambda a: (a.partition, a.offset))
        ledger_ids = [rows_by_event[a.event_id][0][1] for a in items]
        if ledger_ids != sorted(ledger_ids):
            report.inversions.append(f"{key}: ledger ids {ledger_ids[:10]} not in Kafka order")
    return report


#: Rows that break a rule of global keys: each names one tenant (and a device one user) for good, and every
#: row that refers to the key is in that tenant. Counted over the rows of ``$1`` (the drill's tenants).
CROSS_TENANT_ROWS = {
    "device of a user of another tenant": """
        SELECT count(*) FROM os_core.devices d JOIN os_core.identities i USING (user_id)
        WHERE d.tenant_id <> i.tenant_id AND d.tenant_id = ANY($1)""",
    "session off its device's tenant or user": """
        SELECT count(*) FROM os_core.sessions s JOIN os_core.devices d USING (device_id)
        WHERE (s.tenant_id, s.user_id) IS DISTINCT FROM (d.tenant_id, d.user_id) AND s.tenant_id = ANY($1)""",
    "identity upsert appended in a tenant that does not hold the user": """
        SELECT count(*) FROM os_core.audit_events a JOIN os_core.identities i USING (user_id)
        WHERE a.event_type = 'IDENTITY_UPSERTED' AND a.tenant_id <> i.tenant_id AND a.tenant_id = ANY($1)""",
    "device registration appended for another tenant or user than the device's": """
        SELECT count(*) FROM os_core.audit_events a JOIN os_core.devices d USING (device_id)
        WHERE a.event_type = 'DEVICE_REGISTERED' AND (a.tenant_id, a.user_id) IS DISTINCT FROM (d.tenant_id, d.user_id)
          AND a.tenant_id = ANY($1)""",
    "audit row naming another tenant's user or device": """
        SELECT count(*) FROM os_core.audit_events a
        LEFT JOIN os_core.identities i ON i.user_id = a.user_id LEFT JOIN os_core.devices d ON d.device_id = a.device_id
        WHERE (a.tenant_id <> i.tenant_id OR a.tenant_id <> d.tenant_id) AND a.tenant_id = ANY($1)""",
    "conversation turn naming another tenant's user, device or session": """
        SELECT count(*) FROM conversation.conversation_ledger c
        LEFT JOIN os_core.identities i ON i.user_id = c.user_id LEFT JOIN os_core.devices d ON d.device_id = c.device_id
        LEFT JOIN os_core.sessions s ON s.session_id = c.session_id
        WHERE (c.tenant_id <> i.tenant_id OR c.tenant_id <> d.tenant_id OR c.tenant_id <> s.tenant_id)
          AND c.tenant_id = ANY($1)""",
    "work-order ledger row of another tenant's work order": """
        SELECT count(*) FROM os_core.work_order_ledger l JOIN os_core.work_orders_current w USING (work_order_id)
        WHERE l.tenant_id <> w.tenant_id AND l.tenant_id = ANY($1)""",
    "work order without its creation in its own tenant": """
        SELECT count(*) FROM os_core.work_orders_current w WHERE w.tenant_id = ANY($1) AND NOT EXISTS (
          SELECT 1 FROM os_core.work_order_ledger l WHERE l.work_order_id = w.work_order_id
            AND l.tenant_id = w.tenant_id AND l.event_type = 'WORK_ORDER_CREATED')""",
    "step attempt or lease of another tenant's work order": """
        SELECT (SELECT count(*) FROM os_core.work_order_step_attempts x JOIN os_core.work_orders_current w
                  USING (work_order_id) WHERE x.tenant_id <> w.tenant_id AND x.tenant_id = ANY($1))
             + (SELECT count(*) FROM os_core.work_order_leases x JOIN os_core.work_orders_current w
                  USING (work_order_id) WHERE x.tenant_id <> w.tenant_id AND x.tenant_id = ANY($1))""",
}


async def cross_tenant_rows(operator: asyncpg.Connection, tenants: list[str]) -> dict[str, int]:
    """How many rows break each rule of ``CROSS_TENANT_ROWS`` (all zero on a healthy system)."""
    return {rule: int(await operator.fetchval(query, tenants)) for rule, query in CROSS_TENANT_ROWS.items()}
