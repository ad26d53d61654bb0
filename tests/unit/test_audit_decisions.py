"""The rules seed 000 rows 13-19 share (contracts/audit_decisions.py), held for each of the seven engines on
its declared examples, without I/O: the envelope pins the engine and requires the turn and the idempotency
key, every decision names its user and device, the severity is the decision's own, values are non-blank."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import TypeAdapter

from contracts.audit_decisions import Text64
from contracts.envelope import LedgerEvent, new_event
from contracts.reasons import ContractViolation
from contracts.registry import REGISTRY
from contracts.slice import ExampleContext

SLICES = ["ph1_c", "ph1_nlp", "ph1_d", "ph1_x", "ph1_write", "ph1_tts", "ph1_e"]


def examples(name: str) -> list[LedgerEvent]:
    declared = REGISTRY.slice(name).examples
    assert declared is not None
    return declared(ExampleContext("t", "u", "d", "s", 0, datetime.now(UTC)))


def changed(event: LedgerEvent, payload: dict[str, Any] | None = None, **envelope: Any) -> LedgerEvent:
    fields = event.model_dump(exclude={"event_id"})
    fields["payload"] = {**fields["payload"], **(payload or {})}
    return new_event(type(event), **{**fields, **envelope})


@pytest.mark.parametrize("name", SLICES)
def test_every_example_is_valid_and_its_envelope_pinned(name: str) -> None:
    contract = REGISTRY.slice(name)
    assert contract.kind == "audit_backed" and contract.engines == (f"PH1.{name[4:].upper()}",)
    for event in examples(name):
        assert type(event) in contract.events
        assert changed(event).model_dump(exclude={"event_id"}) == event.model_dump(exclude={"event_id"})
        for envelope in ({"engine_id": "PH1.J"}, {"turn_id": None}, {"idempotency_key": None}):
            with pytest.raises(ContractViolation):
                changed(event, **envelope)
        for payload in ({"user_id": None}, {"device_id": None}, {"unknown_key": "x"}):
            with pytest.raises(ContractViolation):
                changed(event, payload)
        if event.ledger != "audit_events":
            continue  # PH1.C's transcript row: a conversation row, without severity
        severity = event.payload.model_dump()["severity"]
        assert severity in ("INFO", "WARN", "ERROR")
        for other in {"INFO", "WARN", "ERROR"} - {severity}:
            with pytest.raises(ContractViolation):
                changed(event, {"severity": other})


@pytest.mark.parametrize("value", ["", " ", "\t\n", "\u00a0", "\u3000 \ufeff", "ok\x00"])
def test_blank_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="validation error"):
        TypeAdapter(Text64).validate_python(value)


@pytest.mark.parametrize("value", ["x", " x ", "ja-JP 東京", "x" * 64])
def test_non_blank_values_within_the_bound_pass(value: str) -> None:
    assert TypeAdapter(Text64).validate_python(value) == value
