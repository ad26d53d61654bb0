"""Slice declarations: everything the pipeline needs to know about one engine slice, stated once.

A slice (one row of seed 000: PH1.F, PH1.J, PH1.PERSONA, engine capability maps, ...) declares in its
contract module, as ``SLICE = SliceContract(...)``:
- the ledgers it owns, with the rule that turns payload fields into the ledger's columns (``LedgerColumns``);
- its event types (the models ``define_event`` built), on its own ledgers or on another slice's (an
  audit-backed engine writes typed rows on ``os_core.audit_events``);
- its current projections when they follow a generic rule (``LatestPerKey``); a slice with a real state
  machine (work orders) writes its reducer by hand in ``consumers/projections/<name>.py`` instead;
- the reason codes it owns beyond those its ledgers and current tables name (which are its own without
  being listed), and which of them leave the aggregate unblocked (its ledgers' duplicate codes always do);
- its doc and the prefix of its acceptance test ids.

Declarations are plain frozen data: importing a slice registers nothing anywhere. ``contracts.registry``
collects every module's ``SLICE`` into one immutable registry, and topics, ledger tables, projections,
reason-code policy, schema export and the tests' rows all derive from that registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from contracts.envelope import LedgerEvent, LedgerSpec, Payload, new_event
from contracts.reasons import CORE_REASONS, ReasonCode

#: ``ledger_current``: a ledger and a current table, latest version per key wins (engine capability maps);
#: ``audit_backed``: typed rows on another slice's ledger and no table of its own (PH1.PERSONA);
#: ``ledger_only``: a ledger and no projection; ``custom``: hand-written reducers (work orders, PH1.F).
SliceKind = Literal["ledger_current", "audit_backed", "ledger_only", "custom"]


@dataclass(frozen=True)
class LedgerColumns:
    """A ledger the slice owns, and how its own columns derive from the payload.

    Every field of ``payload`` (the base model every event type of the ledger extends) becomes a column of
    the same name and of the type its annotation implies, in field order, unless listed in ``exclude``
    (kept only in the payload JSON) or renamed by ``renamed_fields``. ``optional`` names fields that only
    some event types have: the column is NULL for the others. ``renamed_envelope`` stores an envelope
    column under another name, for when a seed's key gives the envelope column's name to a payload field
    (engine capability maps key ``engine_id`` on the mapped engine; the publisher becomes
    ``publisher_engine_id``).
    """

    spec: LedgerSpec
    payload: type[Payload]
    exclude: tuple[str, ...] = ()
    renamed_fields: tuple[tuple[str, str], ...] = ()
    renamed_envelope: tuple[tuple[str, str], ...] = ()
    optional: tuple[tuple[str, str], ...] = ()
    """(field, PostgreSQL type) of fields only some event types carry."""
    generated: tuple[str, ...] = ()
    """Fields whose columns PostgreSQL generates from the stored payload (``GENERATED ALWAYS AS``): added to a
    ledger that already held chained rows, they are not inserted and not in the chain's row digest (the
    payload's content hash covers them), so older rows keep verifying; their values are computed here too,
    for the dedupe keys."""

    def fields(self) -> tuple[str, ...]:
        """The payload fields stored as columns, in order."""
        return tuple(f for f in self.payload.model_fields if f not in self.exclude and f not in self.generated)

    def column(self, field_name: str) -> str:
        return dict(self.renamed_fields).get(field_name, field_name)


@dataclass(frozen=True)
class LatestPerKey:
    """A current table in which, per key, the latest version wins.

    The row follows the highest ``version`` seen for its key (``tenant_id`` plus ``key``, payload fields);
    within that version the latest event wins; an event of an older version is recorded in the ledger and
    leaves the row as it is. Fields in ``immutable_within_version`` may not change within one version: an
    event that changes them is refused with ``conflict`` (the row stands). The row holds ``tenant_id``, the
    payload's stored fields, the payload class constants named in ``derived`` (e.g. the status an event
    type sets), ``publisher_engine_id``, ``updated_at`` (the event's ``occurred_at``) and
    ``source_event_id``. Fields in ``omit`` stay in the ledger only (the spec does not project them).
    """

    table: str
    key: tuple[str, ...]
    version: str
    immutable_within_version: tuple[str, ...] = ()
    omit: tuple[str, ...] = ()
    conflict: ReasonCode | None = None
    derived: tuple[tuple[str, str], ...] = ()
    """(payload class constant, PostgreSQL type) stored as columns after the key and version."""


@dataclass(frozen=True)
class ExampleContext:
    """Where a slice's example events go: a tenant and one of its users, whose identity, device and session
    exist already (the demo's users; the acceptance suite onboards a fresh one), ``n`` to keep the ids of
    several examples apart, and a time to stamp them with."""

    tenant_id: str
    user_id: str
    device_id: str
    session_id: str
    n: int
    at: datetime

    def events(
        self, engine_id: str, correlation_id: str, *items: tuple[type[LedgerEvent], dict[str, Any]]
    ) -> list[LedgerEvent]:
        """One example's events, ``(event type, payload)`` each, published by ``engine_id`` under one
        correlation and stamped with this context's tenant and time: what every ``examples`` would repeat."""
        stamp = {"tenant_id": self.tenant_id, "engine_id": engine_id, "correlation_id": correlation_id}
        return [new_event(model, occurred_at=self.at, payload=payload, **stamp) for model, payload in items]


@dataclass(frozen=True)
class SeedRow:
    """Another row of seed 000 that a slice carries on its own tables (PH1.L's session lifecycle lives in the
    foundation slice, which owns ``os_core.sessions``: one reducer per table), with its own doc and ids."""

    row: int
    engines: tuple[str, ...]
    tables: tuple[str, ...]
    acceptance: str
    doc: str


@dataclass(frozen=True)
class SliceContract:
    """One engine slice, declared once. ``name`` is the file name the slice's modules share across layers:
    ``contracts/<name>.py``, ``consumers/projections/<name>.py`` (only for hand-written reducers),
    ``consumers/repositories/<name>.py``, ``tests/*/test_<name>.py``."""

    name: str
    engines: tuple[str, ...]
    kind: SliceKind
    seed_row: int
    """Its row in seed 000: the tie-break of the registry's order after ``requires``."""
    doc: str = ""
    """Its doc; an audit-backed slice's defaults to ``docs/DB_WIRING/<engine, . as _>.md``."""
    acceptance: str = ""
    """Prefix of its acceptance test ids, e.g. ``AT-ECM-DB`` for AT-ECM-DB-01..04; an audit-backed slice's
    defaults to ``AT-<engine after PH1.>-DB``."""
    ledgers: tuple[LedgerColumns, ...] = ()
    events: tuple[type[LedgerEvent], ...] = ()
    current: tuple[LatestPerKey, ...] = ()
    reasons: tuple[ReasonCode, ...] = ()
    """Reason codes this slice owns besides those its ledgers and current tables name (``owned_reasons``)."""
    non_blocking: frozenset[ReasonCode] = field(default_factory=frozenset)
    """Codes (its own) after which later events of the aggregate still apply (see ``contracts.reasons``),
    besides its ledgers' duplicate codes, which are non-blocking unless listed in ``blocking``."""
    blocking: frozenset[ReasonCode] = field(default_factory=frozenset)
    """Duplicate codes of its ledgers that block the aggregate after all."""
    requires: tuple[str, ...] = ()
    """Slices whose projections must run before this one's (and whose ledgers it writes on); an audit-backed
    slice's default to ``audit`` (its ledger) and ``foundation`` (the guard of its rows' user and device)."""
    examples: Callable[[ExampleContext], list[LedgerEvent]] | None = None
    """Valid events of this slice for one user (one independent piece of its work, distinct per ``n``): the
    demo's and the benchmark's workloads and the shared acceptance suite take them from here."""
    also: tuple[SeedRow, ...] = ()
    """Other seed rows this slice carries (the README's table gives each its row)."""

    def __post_init__(self) -> None:
        owned = {c.spec.name for c in self.ledgers}
        if self.kind in ("ledger_current", "ledger_only") and not owned:
            raise ValueError(f"slice {self.name}: a {self.kind} slice owns a ledger")
        if self.kind == "ledger_current" and not self.current:
            raise ValueError(f"slice {self.name}: a ledger_current slice declares its current table")
        if self.kind == "audit_backed" and owned:
            raise ValueError(f"slice {self.name}: an audit-backed slice owns no ledger")
        if restated := set(self.reasons) & set(self._implied_reasons()):
            raise ValueError(f"slice {self.name}: its declaration names {sorted(restated)} already")
        if stray := self.non_blocking - set(self.owned_reasons):
            raise ValueError(f"slice {self.name}: non-blocking codes it does not own: {sorted(stray)}")
        if odd := self.blocking - self._duplicates():
            raise ValueError(f"slice {self.name}: blocking codes that are none of its duplicate codes: {sorted(odd)}")
        if twice := self.non_blocking & self._duplicates():
            raise ValueError(f"slice {self.name}: duplicate codes {sorted(twice)} are non-blocking already")
        if self.kind == "audit_backed":  # what every engine of rows 13-19 would otherwise repeat
            engine = self.engines[0]
            object.__setattr__(self, "doc", self.doc or f"docs/DB_WIRING/{engine.replace('.', '_')}.md")
            object.__setattr__(self, "acceptance", self.acceptance or f"AT-{engine.split('.', 1)[-1]}-DB")
            object.__setattr__(self, "requires", self.requires or ("audit", "foundation"))
        if not self.doc or not self.acceptance:
            raise ValueError(f"slice {self.name}: name its doc and the prefix of its acceptance test ids")

    def _implied_reasons(self) -> tuple[ReasonCode, ...]:
        """Its ledgers' four codes and its current tables' conflict codes, those not the pipeline's."""
        specs = [c.spec for c in self.ledgers]
        codes = [
            c for s in specs for c in (s.contract_invalid, s.tenant_violation, s.duplicate, s.append_only_violation)
        ]
        codes += [c.conflict for c in self.current if c.conflict is not None]
        return tuple(dict.fromkeys(c for c in codes if c not in CORE_REASONS))

    def _duplicates(self) -> frozenset[ReasonCode]:
        return frozenset(c.spec.duplicate for c in self.ledgers) - CORE_REASONS

    @property
    def owned_reasons(self) -> tuple[ReasonCode, ...]:
        """Every code this slice owns: what its declaration implies (``_implied_reasons``), then ``reasons``."""
        return (*self._implied_reasons(), *self.reasons)

    @property
    def non_blocking_reasons(self) -> frozenset[ReasonCode]:
        """Its codes that leave the aggregate unblocked: ``non_blocking`` and its ledgers' duplicate codes."""
        return self.non_blocking | (self._duplicates() - self.blocking)
