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
    """One markdown row per seed 000 row: a declared slice, or a row a slice carries (``also``), in order."""
    out: list[tuple[int, str]] = []
    for s in sorted(REGISTRY.slices, key=lambda s: (s.seed_row, s.name)):
        owned = [c.spec.table for c in s.ledgers]
        current = [t.name for p in wiring(s.name).projections for t in p.writes]
        on = sorted({m.spec.table for m in s.events} - set(owned))
        tables = ", ".join(f"`{t}`" for t in [*owned, *current])
        if on:
            tables += (" and " if tables else "") + "rows on " + ", ".join(f"`{t}`" for t in on)
        out.append((s.seed_row, _row(s.seed_row, s.engines, s.name, s.kind, tables, s.acceptance, s.doc)))
        for r in s.also:  # another seed row carried on this slice's tables
            on_tables = ", ".join(f"`{t}`" for t in r.tables) + " (in the `" + s.name + "` slice)"
            out.append((r.row, _row(r.row, r.engines, s.name, s.kind, on_tables, r.acceptance, r.doc)))
    return [row for _, row in sorted(out, key=lambda x: x[0])]


def _row(seed_row: int, engines: tuple[str, ...], name: str, kind: str, tables: str, acceptance: str, doc: str) -> str:
    return (
        f"| {seed_row} | {', '.join(engines)} | `{name}` | {KINDS[kind]} | {tables} | "
        f"{acceptance}-01..04 | [{doc.rsplit('/', 1)[-1]}]({doc}) |"
    )


def table() -> str:
    return "\n".join((*HEADER, *rows()))
