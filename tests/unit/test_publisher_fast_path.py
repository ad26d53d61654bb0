"""The publisher's fast path: which events take it, and that it sends what the writer's round trip sends.

An event skips the decode round trip only when pydantic validated that very object from Python values
(``contracts.envelope.validated``) and its model's shape round trips (``producers.round_trip``). Everything
else (``model_construct``, ``model_copy``, copies, unvalidated payloads inside a validated envelope,
subclasses) takes the round trip; a validated event whose dict fields were mutated in
place is re-checked. Each time the verdict is ``validate_strict``'s. No I/O.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import gc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

import contracts.envelope as envelope
from cli.workload import build
from contracts.audit import AuditRecorded, AuditRecordedEvent
from contracts.codec import Decoder, encode
from contracts.envelope import LedgerEvent, new_event, validated
from contracts.foundation import ConversationTurn, ConversationTurnEvent
from contracts.persona import PersonaProfileCommitEvent
from contracts.reasons import ReasonCode
from contracts.registry import EVENT_TYPES
from contracts.settings import Settings
from contracts.work_orders import FieldsSetEvent
from producers.publisher import Publisher
from producers.round_trip import schema_types
from tests.unit.fuzzcases import attribute_values, good_events
from tests.unit.test_engine_capability_maps import ecm
from tests.unit.test_persona import commit
from tests.unit.test_publisher_validate import assert_same

SETTINGS = Settings(topic_prefix="pubfast.")


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Counting(Publisher):
    """Counts the events that took the round trip."""

    round_trips = 0

    def validate_round_trip(self, event: LedgerEvent) -> tuple[str, bytes, bytes, list[tuple[str, bytes]]]:
        self.round_trips += 1
        return super().validate_round_trip(event)


@pytest.fixture(scope="module")
def publisher() -> Counting:
    async def make() -> Counting:
        p = Counting(SETTINGS)
        await p.stop()  # never started: validation needs no broker
        return p

    return asyncio.run(make())


def took_round_trip(publisher: Counting, event: LedgerEvent) -> bool:
    before = publisher.round_trips
    assert_same(publisher, event)  # validate (counted) against validate_strict (not counted)
    return publisher.round_trips > before


def audit(**attributes: Any) -> LedgerEvent:
    return new_event(
        AuditRecordedEvent,
        tenant_id="t1",
        engine_id="PH1.NLP",
        correlation_id="c-1",
        occurred_at=datetime(2025, 1, 1, tzinfo=UTC),
        payload={"reason_code": "R", "summary": "s", "attributes": attributes},
    )


def test_every_registered_model_has_a_fast_path(publisher: Counting) -> None:
    """A contract change that pushes a model off the fast path (a float, an alias, ...) shows up here."""
    assert set(publisher._fast) == {e.model for e in EVENT_TYPES.values()}


@fuzz(200)
@given(event=good_events())
def test_validated_events_take_the_fast_path_and_send_the_writers_record(
    publisher: Counting, event: LedgerEvent
) -> None:
    assert validated(event)
    assert not took_round_trip(publisher, event)


def _every_kind_of_event() -> list[LedgerEvent]:
    workload = build(tenants=2, users_per_tenant=2, events=300, bad=False, work_orders=3, slice_examples=1)
    events = list(workload.good)
    events += [ecm(status, 1) for status in ("PUBLISHED", "ACTIVE", "DEPRECATED")]
    events.append(PersonaProfileCommitEvent.model_validate(commit(), strict=False))
    return events


def test_every_kind_of_event_takes_the_fast_path_with_the_writers_record(publisher: Counting) -> None:
    """The generator's mix (conversation, audit, foundation, work orders) and every slice's examples."""
    events = _every_kind_of_event()
    kinds = {type(e) for e in events}
    assert len(kinds) >= len(EVENT_TYPES) // 2, sorted(k.__name__ for k in kinds)
    for event in events:
        assert validated(event), type(event)
        assert not took_round_trip(publisher, event), type(event)


def _unvalidated_variants(event: LedgerEvent) -> Iterator[tuple[str, LedgerEvent]]:
    yield "model_construct", type(event).model_construct(**dict(event))
    yield "model_copy", event.model_copy()
    yield "model_copy(update)", event.model_copy(update={"correlation_id": "other"})
    yield "copy", copy.copy(event)
    yield "deepcopy", copy.deepcopy(event)


@fuzz(100)
@given(event=good_events())
def test_unvalidated_copies_take_the_round_trip(publisher: Counting, event: LedgerEvent) -> None:
    for how, other in _unvalidated_variants(event):
        assert not validated(other), how
        assert took_round_trip(publisher, other), how


@fuzz(100)
@given(event=good_events())
def test_events_validated_from_json_take_the_fast_path(publisher: Counting, event: LedgerEvent) -> None:
    for decoded in (
        Decoder(SETTINGS.max_event_bytes).decode(encode(event).value),
        type(event).model_validate_json(encode(event).value),
    ):
        assert validated(decoded)
        assert not took_round_trip(publisher, decoded)


def test_a_validated_envelope_around_an_unvalidated_payload_takes_the_round_trip(publisher: Counting) -> None:
    """pydantic keeps a payload instance as it is: the envelope is not vouched for unless its payload is."""
    good = audit()
    bad_payload = AuditRecorded.model_construct(reason_code="not a reason code", summary="s", attributes={})
    event = AuditRecordedEvent.model_validate({**dict(good), "payload": bad_payload})
    assert event.payload is bad_payload and not validated(event)
    assert took_round_trip(publisher, event)
    with pytest.raises(Exception, match="reason_code"):
        publisher.validate(event)


def test_a_payload_subclass_takes_the_round_trip(publisher: Counting) -> None:
    class Elsewhere(AuditRecorded):
        def aggregate_id(self, event: LedgerEvent) -> str:
            return "elsewhere"

    payload = Elsewhere(reason_code="R", summary="s")
    event = AuditRecordedEvent.model_validate({**dict(audit()), "payload": payload})
    assert validated(payload) and not validated(event)
    assert took_round_trip(publisher, event)
    with pytest.raises(Exception) as refused:
        publisher.validate(event)
    assert getattr(refused.value, "reason_code", None) == ReasonCode.EVENT_KEY_MISMATCH


def test_an_unregistered_envelope_subclass_takes_the_round_trip(publisher: Counting) -> None:
    sub: Any = type("Sub", (AuditRecordedEvent,), {"__module__": __name__})
    event = sub.model_validate(dict(audit()))
    assert not validated(event)
    assert took_round_trip(publisher, event)


def _event(model: Any, engine_id: str, payload: Any) -> Any:
    """An event of ``model`` for tenant t1, correlation c-1, built through validation (``new_event``)."""
    return new_event(
        model,
        tenant_id="t1",
        engine_id=engine_id,
        correlation_id="c-1",
        turn_id="turn-1",  # required of work-order events, accepted by every other
        occurred_at=datetime(2025, 1, 1, tzinfo=UTC),
        payload=payload,
    )


def test_a_validated_payload_built_first_then_wrapped_takes_the_fast_path(publisher: Counting) -> None:
    payload = ConversationTurn(speaker="USER", source="TEXT", text="hi")
    event = _event(ConversationTurnEvent, "PH1.C", payload)
    assert event.payload is payload and validated(event)
    assert not took_round_trip(publisher, event)


class _Color(enum.IntEnum):
    RED = 1


class _Word(enum.StrEnum):
    HELLO = "hello"


mutations = st.one_of(
    st.tuples(st.just("set"), st.text(max_size=70), attribute_values),
    st.tuples(st.just("set"), st.just("k"), st.sampled_from([1.0, float("nan"), _Color.RED, _Word.HELLO, [1], b"x"])),
    st.tuples(st.just("fill"), st.integers(min_value=30, max_value=34), st.none()),
    st.tuples(st.just("clear"), st.none(), st.none()),
)


def _mutate(target: dict[Any, Any], how: str, a: Any, b: Any) -> None:
    if how == "set":
        target[a] = b
    elif how == "fill":
        target.update({f"k{i}": i for i in range(a)})
    else:
        target.clear()


@fuzz(300)
# Names without U+0000, which the contract refuses (the event would not build); ``mutations`` may add one.
@given(
    attributes=st.dictionaries(st.text(max_size=8).filter(lambda k: "\x00" not in k), attribute_values, max_size=4),
    change=mutations,
)
def test_dict_fields_mutated_in_place_are_rechecked(
    publisher: Counting, attributes: dict[str, Any], change: tuple[str, Any, Any]
) -> None:
    """``frozen=True`` does not reach into a dict field: what the event holds now is what is checked."""
    event = audit(**{k[:64]: v for k, v in attributes.items()})
    _mutate(event.payload.attributes, *change)  # type: ignore[attr-defined]
    assert_same(publisher, event)


def test_a_dict_field_emptied_below_its_minimum_is_refused(publisher: Counting) -> None:
    event = _event(FieldsSetEvent, "SELENE_OS", {"work_order_id": "wo-1", "fields": {"amount": "12"}})
    assert not took_round_trip(publisher, event)
    event.payload.fields.clear()
    assert took_round_trip(publisher, event)
    with pytest.raises(Exception) as refused:
        publisher.validate(event)
    assert getattr(refused.value, "reason_code", None) == FieldsSetEvent.spec.contract_invalid


@fuzz(200)
@given(
    offset=st.integers(min_value=-(24 * 3600 - 1) * 10**6, max_value=(24 * 3600 - 1) * 10**6),
    when=st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
)
def test_any_aware_datetime_same_verdict(publisher: Counting, offset: int, when: datetime) -> None:
    """Offsets with seconds are written without them: the writer still accepts the event."""
    zone = timezone(timedelta(microseconds=offset))
    event = audit().model_copy()  # not validated: rebuilt below from Python values
    event = AuditRecordedEvent.model_validate({**event.model_dump(), "occurred_at": when.replace(tzinfo=zone)})
    assert validated(event)
    assert_same(publisher, event)


def test_the_mark_table_does_not_grow_with_dead_events(monkeypatch: pytest.MonkeyPatch) -> None:
    # The sweep point is twice the table after the last sweep: many live events earlier in the same process (the
    # whole suite runs in one) raise it, and the bound below is for a table swept from the start.
    monkeypatch.setattr(envelope, "_SWEEP_AT", [4096])
    for _ in range(3 * 4096):
        audit()
    gc.collect()
    audit()
    live = sum(1 for ref in envelope._VALIDATED.values() if ref() is not None)
    assert len(envelope._VALIDATED) <= max(2 * 4096, 4 * live)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True)


def test_shapes_that_do_not_round_trip_are_refused() -> None:
    """JSON that the decoder would refuse or read back differently keeps a model on the round trip."""

    class Floaty(_Strict):
        x: float  # inf and NaN are written as null

    class Aliased(_Strict):
        x: int = Field(alias="y")

    class Computed(_Strict):
        x: int

        @computed_field  # type: ignore[prop-decorator]
        @property
        def doubled(self) -> int:
            return 2 * self.x

    class Plain(_Strict):
        x: int

        @field_validator("x", mode="plain")
        @classmethod
        def anything(cls, value: Any) -> Any:
            return value

    class Listy(_Strict):
        x: list[int]

    class Fine(_Strict):
        x: int
        y: dict[str, str | None]
        z: float = Field(allow_inf_nan=False, ge=-1.5)  # finite: its shortest repr reads back the same

    for model in (Floaty, Aliased, Computed, Plain, Listy):
        assert schema_types(model.__pydantic_core_schema__) is None, model
    assert schema_types(Fine.__pydantic_core_schema__) is not None
