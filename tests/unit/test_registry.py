"""The slice registry: built from declarations only, checked, ordered, and the one source of what derives
from it (topics, ledger tables, projections, reason-code policy)."""

from __future__ import annotations

import dataclasses
import pkgutil
import subprocess
import sys

import pytest

from consumers.projections import LEDGER_TABLES, PROJECTIONS, WIRING
from contracts.audit import SLICE as AUDIT
from contracts.audit import AuditPayload
from contracts.engine_capability_maps import SLICE as ECM
from contracts.envelope import LedgerSpec, define_event
from contracts.foundation import SLICE as FOUNDATION
from contracts.reasons import CORE_REASONS, ReasonCode, policy
from contracts.registry import REGISTRY, Registry, RegistryError, discover, registry
from contracts.slice import LedgerColumns, SliceContract


def test_the_registry_holds_every_declared_slice_in_dependency_order() -> None:
    names = [s.name for s in REGISTRY.slices]
    first = ["audit", "foundation", "work_orders", "simulation_catalog", "engine_capability_maps", "persona"]
    # The others (waves 1 and 2) fall in between by seed row, ordered by the rule checked below.
    assert [n for n in names if n in first] == first
    for i, s in enumerate(REGISTRY.slices):
        assert set(s.requires) <= set(names[:i]), s.name
    assert registry() is REGISTRY  # one object


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        REGISTRY.ledgers["x"] = REGISTRY.ledgers["audit_events"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        REGISTRY.slices = ()  # type: ignore[misc]


def test_defining_an_event_registers_nothing() -> None:
    """Import side effects are gone: a model defined outside any declaration is in no registry."""
    before = dict(REGISTRY.event_types)

    class Stray(AuditPayload):
        note: str

    model = define_event(AUDIT.ledgers[0].spec, "STRAY_EVENT", Stray)
    assert dict(registry().event_types) == before
    assert Registry.of(discover()).event_types.keys() == before.keys()
    # ... and a registry built with a declaration naming it has it.
    extra = dataclasses.replace(AUDIT, events=(*AUDIT.events, model))
    assert "audit_events|STRAY_EVENT" in Registry.of([extra]).event_types


def test_a_partial_registry_can_be_built() -> None:
    reg = Registry.of([AUDIT])
    assert list(reg.ledgers) == ["audit_events"]
    with pytest.raises(RegistryError, match="requires undeclared"):
        Registry.of([FOUNDATION])


def test_conflicting_declarations_are_refused() -> None:
    with pytest.raises(RegistryError, match="declared twice"):
        Registry.of([AUDIT, AUDIT])
    twin = dataclasses.replace(AUDIT, name="audit_twin", events=())
    with pytest.raises(RegistryError, match="declared by two slices"):
        Registry.of([AUDIT, twin])
    thief = dataclasses.replace(
        ECM,
        reasons=(*ECM.reasons, ReasonCode.PH1_J_AUDIT_APPEND_ONLY_VIOLATION),
    )
    with pytest.raises(RegistryError, match="claimed by audit"):
        Registry.of([AUDIT, thief])
    core = dataclasses.replace(ECM, reasons=(*ECM.reasons, ReasonCode.IDEMPOTENCY_CONFLICT))
    with pytest.raises(RegistryError, match="the pipeline"):
        Registry.of([core])
    loop_a = dataclasses.replace(ECM, requires=("audit",))
    loop_b = dataclasses.replace(AUDIT, requires=("engine_capability_maps",))
    with pytest.raises(RegistryError, match="require each other"):
        Registry.of([loop_a, loop_b])


def test_an_event_on_an_undeclared_ledger_is_refused() -> None:
    other = LedgerSpec(
        name="nowhere",
        table="os_core.nowhere",
        id_column="id",
        idempotency_scope=("tenant_id",),
        contract_invalid=ReasonCode.EVENT_SCHEMA_INVALID,
        tenant_violation=ReasonCode.EVENT_TENANT_MISMATCH,
        duplicate=ReasonCode.IDEMPOTENCY_REPLAY,
        append_only_violation=ReasonCode.PH1_J_AUDIT_APPEND_ONLY_VIOLATION,
    )

    class P(AuditPayload):
        pass

    stray = dataclasses.replace(ECM, events=(define_event(other, "X", P),))
    with pytest.raises(RegistryError, match="undeclared ledger nowhere"):
        Registry.of([stray])


def test_declarations_check_themselves() -> None:
    with pytest.raises(ValueError, match="does not own"):
        dataclasses.replace(ECM, non_blocking=frozenset({ReasonCode.OS_WORK_ORDER_LEASE_CONFLICT}))
    with pytest.raises(ValueError, match="owns no ledger"):
        SliceContract(
            name="x",
            engines=("X",),
            kind="audit_backed",
            seed_row=99,
            doc="d",
            acceptance="AT-X-DB",
            ledgers=(LedgerColumns(AUDIT.ledgers[0].spec, AuditPayload),),
        )
    with pytest.raises(ValueError, match="declares its current table"):
        dataclasses.replace(ECM, current=())


def test_a_slice_owns_the_codes_its_ledgers_and_current_tables_name() -> None:
    """A ledger's four codes and a current table's conflict code are the slice's without being listed again;
    its duplicate code leaves the aggregate unblocked unless the slice says it blocks."""
    spec = ECM.ledgers[0].spec
    assert ECM.reasons == ()  # the declaration lists none of them
    implied = {spec.contract_invalid, spec.tenant_violation, spec.duplicate, spec.append_only_violation}
    assert set(ECM.owned_reasons) == {*implied, ReasonCode.ECM_VERSION_ROUTE_CONFLICT}
    reg = Registry.of([ECM])
    assert not reg.policy(ReasonCode.ECM_IDEMPOTENCY_REPLAY).blocks_aggregate
    assert reg.policy(ReasonCode.ECM_TENANT_SCOPE_VIOLATION).blocks_aggregate
    strict = dataclasses.replace(ECM, blocking=frozenset({ReasonCode.ECM_IDEMPOTENCY_REPLAY}))
    assert Registry.of([strict]).policy(ReasonCode.ECM_IDEMPOTENCY_REPLAY).blocks_aggregate
    # Codes that are the pipeline's (the audit ledger's duplicate) stay the pipeline's.
    assert ReasonCode.IDEMPOTENCY_REPLAY not in AUDIT.owned_reasons
    # Saying a code twice is refused: it is declared once.
    with pytest.raises(ValueError, match=r"names .* already"):
        dataclasses.replace(ECM, reasons=(ReasonCode.ECM_APPEND_ONLY_VIOLATION,))
    with pytest.raises(ValueError, match="non-blocking already"):
        dataclasses.replace(ECM, non_blocking=frozenset({ReasonCode.ECM_IDEMPOTENCY_REPLAY}))
    # Two slices whose ledgers name one code are refused by the registry, as two listing it are.
    twin_spec = dataclasses.replace(spec, name="ecm_twin", table="os_process.ecm_twin")
    twin = dataclasses.replace(ECM, name="ecm_twin", ledgers=(dataclasses.replace(ECM.ledgers[0], spec=twin_spec),))
    with pytest.raises(RegistryError, match="claimed by ecm_twin and engine_capability_maps"):
        Registry.of([ECM, dataclasses.replace(twin, events=())])


def test_every_reason_code_has_one_owner() -> None:
    """A code is the pipeline's or exactly one slice's; a new slice's codes come with its declaration."""
    owned = [c for s in REGISTRY.slices for c in s.owned_reasons]
    assert len(owned) == len(set(owned))
    assert set(ReasonCode) == CORE_REASONS | set(owned), set(ReasonCode) - CORE_REASONS - set(owned)


def test_blocking_policy_comes_from_the_owning_slice() -> None:
    assert not policy(ReasonCode.ECM_VERSION_ROUTE_CONFLICT).blocks_aggregate  # ECM's declaration
    assert policy(ReasonCode.ECM_CONTRACT_VALIDATION_FAILED).blocks_aggregate
    assert not policy(ReasonCode.REFERENCE_UNKNOWN).blocks_aggregate  # the pipeline's
    assert policy(ReasonCode.CONCURRENT_APPEND).retriable
    without = Registry.of([AUDIT])  # a registry without ECM's declaration has no word on its codes
    assert without.policy(ReasonCode.ECM_VERSION_ROUTE_CONFLICT).blocks_aggregate


def test_what_the_consumers_run_derives_from_the_registry() -> None:
    assert [w.contract for w in WIRING] == list(REGISTRY.slices)
    assert set(LEDGER_TABLES) == set(REGISTRY.ledgers)
    assert {t.spec for t in LEDGER_TABLES.values()} == set(REGISTRY.ledgers.values())
    for p in PROJECTIONS:
        assert p.ledgers <= set(REGISTRY.ledgers), type(p).__name__
    # The engine capability maps slice has no module of its own in consumers/: its declaration is all.
    ecm = next(w for w in WIRING if w.contract is ECM)
    assert [type(p).__name__ for p in ecm.projections] == ["LatestPerKeyProjection"]
    assert [t.name for p in ecm.projections for t in p.writes] == ["os_process.engine_capability_maps_current"]


def test_every_contracts_module_imports_first_in_a_fresh_interpreter() -> None:
    """Building the registry imports every contracts module: one that imported the registry at its top
    would meet a half-initialised module (a worker process importing ``consumers.decode_workers`` first
    failed that way)."""
    import contracts

    names = sorted(i.name for i in pkgutil.iter_modules(contracts.__path__))
    code = "import importlib, sys; importlib.import_module(sys.argv[1])"
    failed = {
        n: r.stderr[-300:]
        for n in [*names, "consumers.decode_workers", "consumers.ledger"]
        if (
            r := subprocess.run(
                [sys.executable, "-c", code, n if "." in n else f"contracts.{n}"], capture_output=True, text=True
            )
        ).returncode
    }
    assert failed == {}
