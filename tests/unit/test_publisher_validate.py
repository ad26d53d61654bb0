"""``Publisher.validate`` (the fast path) against ``Publisher.validate_strict`` (the writer's round trip, step
for step): over good events, over every bad-input class the writer knows made into event *instances*
(``model_construct`` and ``model_copy(update=...)`` skip pydantic, so an instance proves nothing), and over
payload sizes around the ledger's bound. Same verdict each time: the same record, or the same exception with
the same reason code and detail. No I/O: validation needs no broker.
"""

from __future__ import annotations

import asyncio
import json
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from contracts.audit import AuditRecordedEvent
from contracts.codec import (
    CANONICAL_BYTES_PER_JSON_BYTE,
    canonical_payload,
    encode,
)
from contracts.envelope import LedgerEvent, event_tag, new_event
from contracts.foundation import ConversationTurnEvent
from contracts.reasons import ReasonCode, SeleneError
from contracts.registry import EVENT_TYPES
from contracts.settings import Settings
from producers.publisher import Publisher
from tests.unit.fuzzcases import BAD_CLASSES, attribute_values, bad_cases, good_events

SETTINGS = Settings(topic_prefix="pubval.")

# Bad-input classes that are about the Kafka record rather than the event: an instance cannot carry them
# (validate derives key, headers and topic from the event), or they are bytes no event encodes to.
RECORD_ONLY = {
    "tombstone",
    "not_utf8",
    "truncated",
    "oversize_value",
    "wrong_tenant_in_key",
    "wrong_tenant_in_header",
    "no_key",
    "wrong_aggregate_in_key",
    "wrong_topic",
    "control_in_key",
    "raw_control_byte_in_value",
}
INSTANCE_CLASSES = tuple(k for k in BAD_CLASSES if k not in RECORD_ONLY)


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def publisher() -> Publisher:
    async def make() -> Publisher:
        p = Publisher(SETTINGS)
        await p.stop()  # never started: validation needs no broker, and a closed producer warns of nothing
        return p

    return asyncio.run(make())


Verdict = tuple[Any, ...]


def verdict(check: Callable[[LedgerEvent], object], event: LedgerEvent) -> Verdict:
    # A model_construct'd field of the wrong type makes pydantic warn while serialising; in production that
    # is a warning, and both paths serialise with the same ``encode``.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ("sent", check(event))
        except SeleneError as exc:
            return ("refused", exc.reason_code, exc.detail)
        except Exception as exc:
            return ("raised", type(exc), str(exc))


def assert_same(publisher: Publisher, event: LedgerEvent) -> Verdict:
    strict = verdict(publisher.validate_strict, event)
    assert verdict(publisher.validate, event) == strict
    return strict


def unchecked(event: LedgerEvent, **changes: Any) -> LedgerEvent:
    """``event`` with fields replaced by whatever was given, validated by no one."""
    return type(event).model_construct(**{**dict(event), **changes})


def from_doc(model: type[LedgerEvent], doc: dict[str, Any]) -> LedgerEvent:
    """An instance of ``model`` holding a JSON document's raw values: what a confused engine might build."""
    return model.model_construct(**doc)


# --- good events ------------------------------------------------------------------------------------------


@fuzz(300)
@given(event=good_events())
def test_good_events_same_record(publisher: Publisher, event: LedgerEvent) -> None:
    strict = assert_same(publisher, event)
    assert strict[0] == "sent"


# --- bad-input classes, as instances ----------------------------------------------------------------------


@fuzz(400)
@given(case=st.sampled_from(INSTANCE_CLASSES).flatmap(lambda kind: bad_cases(kind)))
def test_each_bad_class_as_an_instance_same_verdict(publisher: Publisher, case: Any) -> None:
    assert case.event is not None
    doc = json.loads(case.value)
    # Under the class it was made from, and under the class its (ledger, event type) names, if any.
    models = {type(case.event)}
    named = EVENT_TYPES.get(event_tag(doc.get("ledger"), doc.get("event_type")))
    if named is not None:
        models.add(named.model)
    for model in models:
        assert_same(publisher, from_doc(model, doc))


@fuzz(200)
@given(event=good_events(), other=st.sampled_from(sorted(EVENT_TYPES)))
def test_an_event_dressed_as_another_type_same_verdict(publisher: Publisher, event: LedgerEvent, other: str) -> None:
    """Another model's class around this event's fields (or this class around another's ledger and type):
    the JSON names one model, the class another, and the topic follows the class."""
    entry = EVENT_TYPES[other]
    assert_same(publisher, entry.model.model_construct(**dict(event)))
    assert_same(publisher, unchecked(event, ledger=entry.spec.name, event_type=entry.name))


def _bad_field_values() -> Iterator[tuple[str, object]]:
    yield from [
        ("tenant_id", "has space"),
        ("tenant_id", "a/b"),
        ("tenant_id", ""),
        ("tenant_id", None),
        ("tenant_id", "x" * 65),
        ("engine_id", "lower.case"),
        ("event_id", "not-a-uuid"),
        ("event_id", str(uuid.uuid4())),  # a UUID's text: the JSON is the same, both accept it
        ("event_id", 12),
        ("schema_version", 2),
        ("schema_version", "1"),
        ("correlation_id", "has space"),
        ("correlation_id", ""),
        ("correlation_id", "c" * 129),
        ("idempotency_key", ""),
        ("turn_id", "a b"),
        ("occurred_at", datetime(2024, 1, 1)),  # naive: AwareDatetime refuses it on the way back
        ("occurred_at", "2024-01-01T00:00:00Z"),
        ("occurred_at", "yesterday"),
        ("ledger", "no_such_ledger"),
        ("ledger", ["a"]),
        ("event_type", "NO_SUCH_TYPE"),
        ("payload", {}),
        ("payload", None),
        ("payload", {"not_a_field": 1}),
    ]


@fuzz(100)
@given(event=good_events())
def test_each_bad_field_value_same_verdict(publisher: Publisher, event: LedgerEvent) -> None:
    refused = 0
    for field, value in _bad_field_values():
        refused += assert_same(publisher, unchecked(event, **{field: value}))[0] == "refused"
        refused += assert_same(publisher, event.model_copy(update={field: value}))[0] == "refused"
    # The test exercises refusals: the rest are two values whose JSON is valid, and five that ``encode`` cannot
    # even serialise (an AttributeError from both paths, as before).
    assert refused >= 2 * 18


@fuzz(150)
@given(event=good_events(), field=st.sampled_from(("tenant_id", "correlation_id", "payload")), value=attribute_values)
def test_arbitrary_field_values_same_verdict(
    publisher: Publisher, event: LedgerEvent, field: str, value: object
) -> None:
    assert_same(publisher, unchecked(event, **{field: value}))


def test_missing_fields_same_verdict(publisher: Publisher) -> None:
    """A ``model_construct`` without a required field has no attribute at all: both paths fail alike."""
    event = new_event(
        AuditRecordedEvent,
        tenant_id="t1",
        engine_id="PH1.NLP",
        correlation_id="c-1",
        occurred_at=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
        payload={"reason_code": "R", "summary": "s", "attributes": {}},
    )
    fields = dict(event)
    for name in fields:
        assert_same(publisher, AuditRecordedEvent.model_construct(**{k: v for k, v in fields.items() if k != name}))


@fuzz(150)
@given(event=good_events(), value=attribute_values | st.text(max_size=300) | st.lists(attribute_values, max_size=2))
def test_unchecked_payloads_same_verdict(publisher: Publisher, event: LedgerEvent, value: object) -> None:
    """A payload model built without validation inside a validated envelope, each field in turn."""
    payload_model = type(event.payload)
    payload = dict(event.payload)
    for name in payload:
        assert_same(publisher, unchecked(event, payload=payload_model.model_construct(**{**payload, name: value})))


# --- the payload's size bound -----------------------------------------------------------------------------


def _turn(text: str, note: str = "") -> LedgerEvent:
    """A turn whose metadata note (unbounded, unlike the text) can take the payload past its bound."""
    return new_event(
        ConversationTurnEvent,
        tenant_id="t1",
        engine_id="PH1.C",
        correlation_id=f"c-{uuid.uuid4().hex}",
        occurred_at=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
        payload={"speaker": "USER", "source": "TEXT", "text": text, "metadata": {"note": note}},
    )


@pytest.mark.parametrize("char", ["a", "\x7f", "\x01", "é", "€", "😀", '"'])
def test_payload_sizes_around_the_bound_same_verdict(publisher: Publisher, char: str) -> None:
    bound = ConversationTurnEvent.spec.max_payload_bytes
    overhead = len(canonical_payload(_turn("")).encode())
    per_char = len(json.dumps(char)) - 2
    edge = (bound - overhead) // per_char
    verdicts = set()
    for n in {0, 1, edge // 6 - 1, edge // 6, edge // 6 + 1, edge - 1, edge, edge + 1, edge + 2}:
        strict = assert_same(publisher, _turn(char * min(n, 100), char * max(n - 100, 0)))
        verdicts.add(strict[0] if strict[0] == "sent" else strict[1])
    assert verdicts == {"sent", ReasonCode.EVENT_OVERSIZE}


# Every character the contract's free text takes: all but U+0000 (and surrogates), control characters included.
any_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=40)


@fuzz(300)
@given(attributes=st.dictionaries(any_text, st.none() | st.booleans() | st.integers() | any_text, max_size=6))
def test_payload_bound_holds_for_any_text(publisher: Publisher, attributes: dict[str, Any]) -> None:
    """What ``payload_surely_within_bound`` rests on: six canonical bytes at most per byte of pydantic's
    JSON, whatever the characters (control, DEL, any plane)."""
    event = new_event(
        AuditRecordedEvent,
        tenant_id="t1",
        engine_id="PH1.NLP",
        correlation_id="c-1",
        occurred_at=datetime.fromisoformat("2025-01-01T00:00:00+00:00"),
        payload={"reason_code": "R", "summary": "".join(attributes)[:256], "attributes": attributes},
    )
    pydantic_json = event.payload.__pydantic_serializer__.to_json(event.payload)
    assert len(canonical_payload(event).encode()) <= CANONICAL_BYTES_PER_JSON_BYTE * len(pydantic_json)
    assert_same(publisher, event)


class _Numbers(BaseModel):
    """No payload has floats today; the bound must hold if one ever does."""

    x: float
    n: int
    s: str


@fuzz(300)
@given(x=st.floats(), n=st.integers(), s=any_text)
def test_payload_bound_holds_for_numbers(x: float, n: int, s: str) -> None:
    m = _Numbers(x=x, n=n, s=s)
    canonical = json.dumps(m.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    assert len(canonical.encode()) <= CANONICAL_BYTES_PER_JSON_BYTE * len(m.model_dump_json())


def test_the_fast_path_sends_the_same_bytes(publisher: Publisher) -> None:
    event = _turn("hello")
    topic, key, value, headers = publisher.validate(event)
    enc = encode(event)
    assert (topic, key, value, headers) == (
        ConversationTurnEvent.spec.topic("pubval."),
        enc.key,
        enc.value,
        enc.headers,
    )
