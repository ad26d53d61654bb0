"""Every slice's ledger tables and projections, derived from the slice registry.

A slice's ledger tables always come from its declaration (``contracts.slice.LedgerColumns``), and its
generic current tables too (``LatestPerKey``); a slice with hand-written reducers adds a module
``consumers/projections/<slice name>.py`` that defines ``PROJECTIONS``. The writer, the replay and the
rebuild find everything through ``LEDGER_TABLES`` and ``PROJECTIONS``, in the registry's slice order (a
slice's projections run after those of the slices it ``requires``), so adding a slice edits nothing here.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

from consumers.ledger import LedgerTable
from consumers.projections.base import Projection
from consumers.projections.kinds import generic_projections, ledger_table
from contracts.registry import Registry, registry
from contracts.slice import SliceContract


@dataclass(frozen=True)
class SliceWiring:
    """What the writer runs for one slice: its ledgers' row mappings and its projections, in order."""

    contract: SliceContract
    tables: tuple[LedgerTable, ...]
    projections: tuple[Projection, ...]


def wire(contract: SliceContract) -> SliceWiring:
    """The slice's tables and projections: hand-written ones (``consumers.projections.<name>.PROJECTIONS``)
    first, then those its declaration implies."""
    own: tuple[Projection, ...] = ()
    module_name = f"{__name__}.{contract.name}"
    if importlib.util.find_spec(module_name) is not None:
        own = tuple(getattr(importlib.import_module(module_name), "PROJECTIONS", ()))
    tables = tuple(ledger_table(cols) for cols in contract.ledgers)
    return SliceWiring(contract, tables, (*own, *generic_projections(contract)))


def wire_all(reg: Registry) -> tuple[SliceWiring, ...]:
    return tuple(wire(s) for s in reg.slices)


WIRING: tuple[SliceWiring, ...] = wire_all(registry())
LEDGER_TABLES: dict[str, LedgerTable] = {t.spec.name: t for w in WIRING for t in w.tables}
PROJECTIONS: tuple[Projection, ...] = tuple(p for w in WIRING for p in w.projections)


def wiring(name: str) -> SliceWiring:
    """One slice's wiring by its name."""
    return next(w for w in WIRING if w.contract.name == name)
