"""``selene-ledger slices``: the table of engine slices, derived from the slice registry (README.md holds a
copy that tests/unit/test_slices_table.py compares with this output)."""

from __future__ import annotations

from consumers.projections import wiring
from contracts.registry import REGISTRY

KINDS = {
    "ledger_current": "ledger + current",
    "audit_backed": "audit-backed",
    "ledger_only": "ledger only",
    "custom": "hand-written reducer",
}
HEADER = (
    "| seed row | engine | slice | kind | tables | acceptance tests | doc |",
    "| --- | --- | --- | --- | --- | --- | --- |",
)


def rows() -> list[str]:
    """One markdown row per declared slice, in seed 000 order."""
    out = []
    for s in sorted(REGISTRY.slices, key=lambda s: (s.seed_row, s.name)):
        owned = [c.spec.table for c in s.ledgers]
        current = [t.name for p in wiring(s.name).projections for t in p.writes]
        on = sorted({m.spec.table for m in s.events} - set(owned))
        tables = ", ".join(f"`{t}`" for t in [*owned, *current])
        if on:
            tables += (" and " if tables else "") + "rows on " + ", ".join(f"`{t}`" for t in on)
        out.append(
            f"| {s.seed_row} | {', '.join(s.engines)} | `{s.name}` | {KINDS[s.kind]} | {tables} | "
            f"{s.acceptance}-01..04 | [{s.doc.rsplit('/', 1)[-1]}]({s.doc}) |"
        )
    return out


def table() -> str:
    return "\n".join((*HEADER, *rows()))
