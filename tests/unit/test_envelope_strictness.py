"""Envelope fields that Python's equalities would let through: the decoder must refuse them as the contract's
violations, never coerce them."""

from __future__ import annotations

import json

import pytest

from cli.workload import build
from contracts.codec import Decoder, encode
from contracts.envelope import LedgerEvent
from contracts.reasons import ContractViolation


def good_event() -> LedgerEvent:
    return build(tenants=1, users_per_tenant=1, events=1, bad=False, run_id="strict").events[0]


@pytest.mark.parametrize("version", [True, False, 1.0, "1"])
def test_schema_version_must_be_an_integer(version: object) -> None:
    event = good_event()
    doc = json.loads(encode(event).value)
    doc["schema_version"] = version
    with pytest.raises(ContractViolation) as refused:
        Decoder(1 << 20).decode(json.dumps(doc).encode())
    assert refused.value.reason_code == event.spec.contract_invalid
    assert "schema_version" in refused.value.detail


def test_schema_version_one_is_accepted() -> None:
    event = good_event()
    assert Decoder(1 << 20).decode(encode(event).value) == event
