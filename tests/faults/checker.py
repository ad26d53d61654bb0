"""The checker of the fault drills, after Jepsen's Kafka checker and Kafka's hard-bounce tests: every
acknowledged event is in its ledger exactly once, in its aggregate's order, and the counts add up."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field

import asyncpg

from contracts.envelope import LEDGERS


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
            f"acked {self.acked}, in ledgers {self.in_ledgers}, lost {len(self.lost)}, duplicated "
            f"{len(self.duplicated)}, unexpected {len(self.unexpected)}, order inversions {len(self.inversions)}; "
            f"{times}"
        )


async def check(
    operator: asyncpg.Connection, acks: list[Ack], tenants: list[str], may_exist: set[str] | None = None
) -> Report:
    """Compare the acknowledgements with the ledgers' rows of ``tenants``.

    ``may_exist``: event ids sent but never acknowledged (e.g. the broker died): they may or may not be in
    a ledger, but never twice.
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
    for event_id, rows in rows_by_event.items():
        if len(rows) > 1:
            report.duplicated.append(event_id)
        if event_id not in acked_ids and event_id not in (may_exist or set()):
            report.unexpected.append(event_id)
    by_aggregate: dict[tuple[str, str, str], list[Ack]] = defaultdict(list)
    for a in acks:
        if a.event_id not in rows_by_event:
            report.lost.append(a.event_id)
        else:
            by_aggregate[(a.ledger, a.tenant, a.aggregate)].append(a)
    for key, items in by_aggregate.items():
        items.sort(key=lambda a: (a.partition, a.offset))
        ledger_ids = [rows_by_event[a.event_id][0][1] for a in items]
        if ledger_ids != sorted(ledger_ids):
            report.inversions.append(f"{key}: ledger ids {ledger_ids[:10]} not in Kafka order")
    return report
