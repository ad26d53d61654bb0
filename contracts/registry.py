"""The slice registry: one immutable object built from every slice's declaration.

Each module of the ``contracts`` package may declare ``SLICE = SliceContract(...)``; ``registry()`` imports
the package's modules, collects those declarations, checks them against each other and orders them (by
``requires``, then by seed 000 row). Nothing is registered as an import side effect: a module that is never
collected changes nothing, and ``Registry.of`` builds a registry from any set of declarations (the tests
build partial ones). Adding a slice adds a module; no list here or elsewhere is edited.

Because building the registry imports every ``contracts`` module, no ``contracts`` module imports this one
at its top: it would be imported half-initialised by the discovery (``registry()`` is called inside the
functions that need it). Modules outside the package use ``REGISTRY``, ``LEDGERS`` and ``EVENT_TYPES``.
``tests/unit/test_registry.py`` imports each module first, in a fresh interpreter, to hold that.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

import contracts
from contracts.envelope import EventType, LedgerSpec
from contracts.reasons import CORE_NON_BLOCKING, CORE_REASONS, ReasonCode, ReasonPolicy, core_policy
from contracts.slice import SliceContract


class RegistryError(ValueError):
    """Two declarations disagree (a ledger, event type, table or reason code claimed twice; an unknown
    requirement; a cycle)."""


@dataclass(frozen=True)
class Registry:
    """Every slice, its ledgers and event types, and the reason codes' policy, read-only."""

    slices: tuple[SliceContract, ...]
    ledgers: Mapping[str, LedgerSpec]
    event_types: Mapping[str, EventType]
    """By tag (``<ledger>|<EVENT_TYPE>``)."""
    owner: Mapping[str, str]
    """Ledger name -> the slice that owns it."""
    non_blocking: frozenset[ReasonCode]

    @classmethod
    def of(cls, declared: Iterable[SliceContract]) -> Registry:
        ordered = _order(list(declared))
        ledgers: dict[str, LedgerSpec] = {}
        owner: dict[str, str] = {}
        tables: dict[str, str] = {}
        for s in ordered:
            for cols in s.ledgers:
                spec = cols.spec
                for claimed, what in ((ledgers, spec.name), (tables, spec.table)):
                    if what in claimed:
                        raise RegistryError(f"{what} is declared by two slices ({owner.get(spec.name)}, {s.name})")
                ledgers[spec.name] = spec
                tables[spec.table] = s.name
                owner[spec.name] = s.name
        event_types: dict[str, EventType] = {}
        for s in ordered:
            for model in s.events:
                entry = EventType.of(model)
                if entry.spec.name not in ledgers or ledgers[entry.spec.name] is not entry.spec:
                    raise RegistryError(
                        f"slice {s.name}: event {entry.name} targets undeclared ledger {entry.spec.name}"
                    )
                if entry.tag in event_types:
                    raise RegistryError(f"event type {entry.tag} is declared twice (slice {s.name})")
                event_types[entry.tag] = entry
        reason_owner: dict[ReasonCode, str] = {}
        for s in ordered:
            for code in s.owned_reasons:
                if code in CORE_REASONS or code in reason_owner:
                    raise RegistryError(
                        f"reason {code} is claimed by {reason_owner.get(code, 'the pipeline')} and {s.name}"
                    )
                reason_owner[code] = s.name
        non_blocking = frozenset(CORE_NON_BLOCKING).union(*(s.non_blocking_reasons for s in ordered))
        return cls(
            slices=tuple(ordered),
            ledgers=MappingProxyType(ledgers),
            event_types=MappingProxyType(event_types),
            owner=MappingProxyType(owner),
            non_blocking=non_blocking,
        )

    def slice(self, name: str) -> SliceContract:
        return next(s for s in self.slices if s.name == name)

    def policy(self, code: ReasonCode) -> ReasonPolicy:
        """The writer's policy for ``code``: blocking unless the pipeline or the owning slice says not."""
        return ReasonPolicy(blocks_aggregate=code not in self.non_blocking, retriable=core_policy(code).retriable)


def _order(declared: list[SliceContract]) -> list[SliceContract]:
    """``requires`` first (a topological order), ties by seed 000 row, then name: deterministic."""
    by_name: dict[str, SliceContract] = {}
    for s in declared:
        if s.name in by_name:
            raise RegistryError(f"slice {s.name} is declared twice")
        by_name[s.name] = s
    for s in declared:
        missing = [r for r in s.requires if r not in by_name]
        if missing:
            raise RegistryError(f"slice {s.name} requires undeclared slices {missing}")
    done: list[SliceContract] = []
    placed: set[str] = set()
    while len(done) < len(declared):
        ready = [s for s in declared if s.name not in placed and set(s.requires) <= placed]
        if not ready:
            raise RegistryError(f"slices require each other: {sorted(set(by_name) - placed)}")
        first = min(ready, key=lambda s: (s.seed_row, s.name))
        done.append(first)
        placed.add(first.name)
    return done


def discover() -> list[SliceContract]:
    """Every ``SLICE`` declared by a module of the ``contracts`` package."""
    found: list[SliceContract] = []
    for info in sorted(pkgutil.iter_modules(contracts.__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "registry":
            continue
        declared = getattr(importlib.import_module(f"contracts.{info.name}"), "SLICE", None)
        if isinstance(declared, SliceContract):
            found.append(declared)
    return found


@functools.cache
def registry() -> Registry:
    """The registry of every declared slice (built on first use, then the same object)."""
    return Registry.of(discover())


#: The registry and its two maps, for modules outside ``contracts`` (inside it, call ``registry()`` when
#: needed: the package's modules are imported while this one is built).
REGISTRY = registry()
LEDGERS = REGISTRY.ledgers
EVENT_TYPES = REGISTRY.event_types
