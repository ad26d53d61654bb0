"""The exported JSON Schemas give the writer's verdict, checked with a JSON Schema validator (``jsonschema``).

``selene-ledger schema export`` is what an engine in another language validates with. Each sample here (good
events, the bad-input classes of ``tests/unit/fuzzcases.py`` that are about the value, documents drawn from
the exported schemas themselves and then broken, and hand-written edge cases) is validated against the
export (``events.schema.json``, which references every event schema by its ``$id``) and decoded by the
writer's ``Decoder``: both must say the same, valid or not. Where they cannot agree, the sample must fall
under one of ``KNOWN_EXCEPTIONS`` (each also listed in docs/WIRE_FORMAT.md), and each exception is shown by
a sample of its own, so the list cannot outlive the gap it names.

One adapter: JSON Schema's ``pattern`` is ECMA-262, where ``$`` matches only at the end; Python's ``re``
(which ``jsonschema`` uses) also matches before a final newline. Patterns are given to ``jsonschema`` with
their final ``$`` as ``\\Z``, the ECMA meaning (a JavaScript or Java validator needs no such step).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator, Draft202012Validator
from referencing import Registry, Resource

from cli.main import main
from contracts.codec import Decoder
from contracts.envelope import EventType
from contracts.reasons import ContractViolation
from contracts.registry import EVENT_TYPES, LEDGERS
from contracts.schema_export import (
    DEFAULT_BASE_URI,
    KAFKA_BINDING_VERSION,
    SCHEMA_DIALECT,
    export,
    key_rule,
    schema_path,
)
from contracts.slice import ExampleContext
from producers.topics import LEDGER_TOPIC_CONFIG
from tests.unit.fuzzcases import BAD_CLASSES, bad_cases, good_events, json_values

DECODER = Decoder(65536)
ENTRIES = sorted(EVENT_TYPES.values(), key=lambda e: e.tag)


# -- the export, loaded as another language's validator would see it ---------------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("schemas")
    export(directory, topic_config=LEDGER_TOPIC_CONFIG, version="0.1.0")
    return directory


def _ecma_dollar(node: Any) -> Any:
    """The schema with each pattern's final ``$`` as ``\\Z`` (module docstring)."""

    def fix(pattern: str) -> str:
        return pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith("\\$") else pattern

    if isinstance(node, list):
        return [_ecma_dollar(x) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "pattern" and isinstance(value, str):
            out[key] = fix(value)
        elif key == "patternProperties":
            out[key] = {fix(k): _ecma_dollar(v) for k, v in value.items()}
        else:
            out[key] = _ecma_dollar(value)
    return out


@dataclass(frozen=True)
class Export:
    union: Draft202012Validator
    by_tag: dict[str, dict[str, Any]]  # each event type's schema as written
    asyncapi: dict[str, Any]


@pytest.fixture(scope="module")
def schemas(exported: Path) -> Export:
    resources = []
    by_tag = {}
    for entry in ENTRIES:
        doc = json.loads((exported / schema_path(entry)).read_text())
        by_tag[entry.tag] = doc
        resources.append((doc["$id"], Resource.from_contents(_ecma_dollar(doc))))
    registry: Registry[Any] = Registry().with_resources(resources)
    union = json.loads((exported / "events.schema.json").read_text())
    Draft202012Validator.check_schema(union)
    validator = Draft202012Validator(union, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)
    return Export(validator, by_tag, json.loads((exported / "asyncapi.json").read_text()))


def schema_verdict(schemas: Export, doc: Any) -> bool:
    return bool(schemas.union.is_valid(doc))


def writer_verdict(raw: bytes) -> bool:
    try:
        DECODER.decode(raw)
    except ContractViolation:
        return False
    return True


# -- where the two cannot agree ------------------------------------------------------------------------------


def _strings(doc: Any) -> Iterator[tuple[str, str]]:
    """(key, string) for every string in ``doc``, object keys included (key ``""`` for those)."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield "", k
            if isinstance(v, str):
                yield k, v
            else:
                yield from _strings(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _strings(v) if not isinstance(v, str) else iter([("", v)])


def _numbers(doc: Any) -> Iterator[float]:
    if isinstance(doc, dict):
        for v in doc.values():
            yield from _numbers(v)
    elif isinstance(doc, list):
        for v in doc:
            yield from _numbers(v)
    elif isinstance(doc, float):
        yield doc


_SURROGATE = re.compile("[\ud800-\udfff]")
_CANONICAL_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RFC3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_TIME_FIELDS = ("occurred_at", "expires_at")


@dataclass(frozen=True)
class KnownGap:
    """A class of documents on which the schema and the writer may differ, and which way."""

    name: str
    applies: Callable[[Any], bool]
    schema_accepts: bool  # True: the schema accepts what the writer refuses (the direction engines must know)
    example: dict[str, Any]  # fields that, put into a valid event, show the gap


KNOWN_EXCEPTIONS = (
    # JSON Schema's "integer" is a number with no fraction, so 1.0 is one; the writer wants the literal 1.
    KnownGap(
        "integral float where an integer belongs",
        lambda doc: any(x == int(x) for x in _numbers(doc)),
        schema_accepts=True,
        example={"schema_version": 1.0},
    ),
    # JSON escapes of lone UTF-16 surrogates ("\ud800") make a JSON string no UTF-8 text can hold.
    KnownGap(
        "lone surrogate in a string",
        lambda doc: any(_SURROGATE.search(s) for _, s in _strings(doc)),
        schema_accepts=True,
        example={"correlation_id": "c-\ud800"},
    ),
    # The writer also reads other spellings of a UUID (no hyphens, braces, urn:uuid:); the schema promises
    # only the canonical one.
    KnownGap(
        "UUID not in its hyphenated form",
        lambda doc: (
            isinstance(doc, dict)
            and isinstance(doc.get("event_id"), str)
            and not _CANONICAL_UUID.match(doc["event_id"])
        ),
        schema_accepts=False,
        example={"event_id": uuid.uuid4().hex},
    ),
    # The writer also reads times RFC 3339 does not have (a space for the T, +0100, no seconds, unix
    # seconds as text); the schema promises only RFC 3339 with an offset.
    KnownGap(
        "date-time outside RFC 3339",
        lambda doc: any(k in _TIME_FIELDS and not _RFC3339.match(s) for k, s in _strings(doc)),
        schema_accepts=False,
        example={"occurred_at": "2026-01-02 03:04:05+0100"},
    ),
    # JSON Schema cannot compare two fields: a process blueprint's confirmation steps are at most its steps.
    KnownGap(
        "more confirmation steps than ordered steps",
        lambda doc: (
            isinstance(doc, dict)
            and doc.get("ledger") == "process_blueprints"
            and isinstance(p := doc.get("payload"), dict)
            and isinstance(p.get("confirmation_step_count"), int)
            and isinstance(p.get("ordered_step_count"), int)
            and p["confirmation_step_count"] > p["ordered_step_count"]
        ),
        schema_accepts=True,
        example={
            "ledger": "process_blueprints",
            "event_type": "PROCESS_BLUEPRINT_RECORDED",
            "payload": {
                "process_id": "p",
                "blueprint_version": 1,
                "intent_type": "i",
                "status": "DRAFT",
                "ordered_step_count": 1,
                "confirmation_step_count": 2,
                "simulation_requirements_hash": "h",
                "reason_code": "R",
            },
        },
    ),
)


def _exceptions_for(doc: Any) -> list[KnownGap]:
    return [e for e in KNOWN_EXCEPTIONS if e.applies(doc)]


def assert_same_verdict(schemas: Export, doc: Any, raw: bytes | None = None) -> bool:
    """Schema and writer agree on ``doc``, or ``doc`` falls under a known exception in its direction."""
    raw = json.dumps(doc).encode() if raw is None else raw
    by_schema, by_writer = schema_verdict(schemas, doc), writer_verdict(raw)
    if by_schema != by_writer:
        allowed = [e.name for e in _exceptions_for(doc) if e.schema_accepts == by_schema]
        assert allowed, (
            f"schema says {'valid' if by_schema else 'invalid'}, writer says "
            f"{'valid' if by_writer else 'invalid'}, and no known exception covers it: {raw[:600]!r}"
        )
    return by_writer


# -- samples ---------------------------------------------------------------------------------------------------


def _doc(raw: bytes) -> Any:
    return json.loads(raw)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(event=good_events())
def test_good_events_are_valid_by_the_schema_and_their_key_matches(schemas: Export, event: Any) -> None:
    doc = json.loads(event.model_dump_json())
    assert schema_verdict(schemas, doc)
    assert writer_verdict(event.model_dump_json().encode())
    _assert_key(schemas, event.ledger, event.event_type, event.kafka_key)


# The bad-input classes that are about the Kafka record, not the JSON document: a schema of the value cannot
# see them. WIRE_FORMAT.md states each rule (key, tenant header, topic, sizes); the writer dead-letters them.
RECORD_CLASSES = {
    "tombstone": "no value at all",
    "not_utf8": "the value is not UTF-8 text",
    "truncated": "the value is not JSON",
    "raw_control_byte_in_value": "the value is not JSON",
    "oversize_value": "over 64 KiB (max_event_bytes)",
    "oversize_payload": "canonical payload over the ledger's 16 KiB bound",
    "wrong_tenant_in_key": "key",
    "no_key": "key",
    "wrong_aggregate_in_key": "key",
    "control_in_key": "key",
    "wrong_tenant_in_header": "selene-tenant header",
    "wrong_topic": "topic",
}
VALUE_CLASSES = tuple(k for k in BAD_CLASSES if k not in RECORD_CLASSES)


def test_every_bad_input_class_is_either_checked_here_or_named_as_a_record_rule() -> None:
    assert set(RECORD_CLASSES) <= set(BAD_CLASSES)
    assert set(VALUE_CLASSES) == {
        "missing_field", "unknown_field", "wrong_type", "bad_tenant_pattern", "unknown_ledger", "ledger_not_a_name",
        "unknown_type", "registered_type_bad_payload", "missing_tenant", "nul_in_text", "control_in_identifier",
    }  # fmt: skip


@pytest.mark.parametrize("kind", VALUE_CLASSES)
@settings(max_examples=25, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_bad_input_classes_are_refused_by_the_schema_too(schemas: Export, kind: str, data: st.DataObject) -> None:
    case = data.draw(bad_cases(kind))
    assert case.value is not None
    assert not assert_same_verdict(schemas, _doc(case.value), case.value)


# -- documents drawn from the exported schemas ------------------------------------------------------------------


def _from_schema(node: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values for the subset of JSON Schema pydantic writes (what a generator in another language would
    produce from the export), ignoring ``if``/``then``: those documents are then judged, not assumed valid."""
    if "$ref" in node:
        return _from_schema(defs[node["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in node:
        return st.one_of([_from_schema(n, defs) for n in node["anyOf"]])
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    kind = node.get("type")
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "integer":
        return st.integers(node.get("minimum", -(2**31)), node.get("maximum", 2**31))
    if kind == "number":  # finite floats (PH1.W's metrics)
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "string":
        if node.get("format") == "uuid":
            return st.uuids().map(str)
        if node.get("format") == "date-time":
            return st.datetimes(timezones=st.timezones()).filter(lambda d: d.year > 0).map(lambda d: d.isoformat())
        low, high = node.get("minLength", 0), node.get("maxLength", 40)
        text = st.from_regex(node["pattern"], fullmatch=True) if "pattern" in node else st.text(max_size=high)
        return text.filter(lambda s: low <= len(s) <= high and not _SURROGATE.search(s))
    if kind == "object" and "properties" in node:
        required = set(node.get("required", ()))
        fields = {k: _from_schema(v, defs) for k, v in node["properties"].items()}
        return st.fixed_dictionaries(
            {k: v for k, v in fields.items() if k in required},
            optional={k: v for k, v in fields.items() if k not in required},
        )
    if kind == "object" and "patternProperties" not in node:  # a map keyed by a literal's values
        names, value_schema = st.sampled_from(node["propertyNames"]["enum"]), node["additionalProperties"]
        return st.dictionaries(names, _from_schema(value_schema, defs), max_size=3)
    if kind == "object":
        (pattern, value_schema), *_ = node["patternProperties"].items()
        names = st.from_regex(pattern, fullmatch=True).filter(
            lambda s: len(s) <= node.get("propertyNames", {}).get("maxLength", 64) and not _SURROGATE.search(s)
        )
        return st.dictionaries(
            names, _from_schema(value_schema, defs), min_size=node.get("minProperties", 0), max_size=3
        )
    raise AssertionError(f"schema node this generator does not know: {node}")


@st.composite
def drawn_documents(draw: st.DrawFn, schemas: Export) -> tuple[EventType, dict[str, Any]]:
    entry = draw(st.sampled_from(ENTRIES))
    schema = schemas.by_tag[entry.tag]
    doc: dict[str, Any] = draw(_from_schema(schema, schema.get("$defs", {})))
    return entry, doc


def _mutations(draw: Callable[[st.SearchStrategy[Any]], Any], doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` broken in one place, at the envelope or in the payload: a field dropped, one added, or a value
    replaced by any JSON value."""
    target = doc if draw(st.booleans()) or not isinstance(doc.get("payload"), dict) else doc["payload"]
    how = draw(st.sampled_from(("drop", "add", "replace")))
    if how == "drop" and target:
        target.pop(draw(st.sampled_from(sorted(target))))
    elif how == "add":
        target[draw(st.text(max_size=12).filter(lambda s: not _SURROGATE.search(s)))] = draw(json_values)
    elif target:
        target[draw(st.sampled_from(sorted(target)))] = draw(json_values)
    return doc


def test_drawn_documents_and_their_mutations_get_the_same_verdict(schemas: Export) -> None:
    seen = {"valid": 0, "invalid": 0}

    @settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow], deadline=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        entry, doc = data.draw(drawn_documents(schemas))
        valid = assert_same_verdict(schemas, doc)
        if valid:
            event = DECODER.decode(json.dumps(doc).encode())
            _assert_key(schemas, entry.spec.name, entry.name, event.kafka_key)
        broken = _mutations(data.draw, json.loads(json.dumps(doc)))
        assert_same_verdict(schemas, broken)
        seen["valid" if valid else "invalid"] += 1

    check()
    assert seen["valid"] > 50, seen  # the generator mostly makes valid events: the key check ran


# -- hand-written edges, and each known exception shown ---------------------------------------------------------


def _valid_doc() -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "tenant_id": "t1",
        "engine_id": "SELENE_OS",
        "ledger": "work_order_ledger",
        "event_type": "STATUS_CHANGED",
        "schema_version": 1,
        "correlation_id": "c1",
        "turn_id": "turn-1",
        "occurred_at": "2026-01-02T03:04:05Z",
        "payload": {"work_order_id": "w1", "to_status": "CLARIFY"},
    }


EDGES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    # (name, envelope fields, payload fields, the writer's verdict)
    ("cancel by status with a reason", {}, {"to_status": "CANCELED", "reason_code": "USER_CANCELED"}, True),
    ("cancel by status without a reason", {}, {"to_status": "CANCELED"}, False),
    ("cancel by status with a null reason", {}, {"to_status": "CANCELED", "reason_code": None}, False),
    ("another status without a reason", {}, {"to_status": "EXECUTING"}, True),
    ("schema_version 2 (not registered)", {"schema_version": 2}, {}, False),
    ("schema_version as text", {"schema_version": "1"}, {}, False),
    ("schema_version true", {"schema_version": True}, {}, False),
    ("occurred_at without an offset", {"occurred_at": "2026-01-02T03:04:05"}, {}, False),
    ("occurred_at with an offset", {"occurred_at": "2026-01-02T03:04:05+05:30"}, {}, True),
    ("occurred_at in lower case", {"occurred_at": "2026-01-02t03:04:05z"}, {}, True),
    ("occurred_at with nanoseconds", {"occurred_at": "2026-01-02T03:04:05.123456789Z"}, {}, True),
    ("occurred_at a leap second", {"occurred_at": "2026-12-31T23:59:60Z"}, {}, False),
    ("occurred_at a date only", {"occurred_at": "2026-01-02"}, {}, False),
    ("occurred_at year 0", {"occurred_at": "0000-01-01T00:00:00Z"}, {}, False),
    ("occurred_at unix seconds as a number", {"occurred_at": 1767323045}, {}, False),
    ("identifier ending in a newline", {"correlation_id": "c1\n"}, {}, False),
    ("tenant ending in a newline", {"tenant_id": "t1\n"}, {}, False),
    ("event id upper case", {"event_id": str(uuid.uuid4()).upper()}, {}, True),
]


@pytest.mark.parametrize(("name", "envelope", "payload", "expected"), EDGES, ids=[e[0] for e in EDGES])
def test_edges(schemas: Export, name: str, envelope: dict[str, Any], payload: dict[str, Any], expected: bool) -> None:
    doc = _valid_doc()
    doc.update(envelope)
    doc["payload"].update(payload)
    assert assert_same_verdict(schemas, doc) is expected


def test_work_order_fields_refuse_keys_outside_their_pattern(schemas: Export) -> None:
    doc = _valid_doc() | {"event_type": "FIELDS_SET", "payload": {"work_order_id": "w1", "fields": {"Bad Key": 1}}}
    assert not schema_verdict(schemas, doc)
    assert not writer_verdict(json.dumps(doc).encode())


@pytest.mark.parametrize("exception", KNOWN_EXCEPTIONS, ids=[e.name for e in KNOWN_EXCEPTIONS])
def test_each_known_exception_is_real(schemas: Export, exception: KnownGap) -> None:
    """The gap exists (the list is not stale), in the direction it says, and the rest of the sample is valid."""
    doc = _valid_doc()
    assert schema_verdict(schemas, doc)
    assert writer_verdict(json.dumps(doc).encode())
    doc.update(exception.example)
    assert exception.applies(doc)
    assert schema_verdict(schemas, doc) is exception.schema_accepts
    assert writer_verdict(json.dumps(doc).encode()) is not exception.schema_accepts


# -- the documents themselves ------------------------------------------------------------------------------------


def test_every_schema_has_dialect_and_absolute_id(exported: Path) -> None:
    ids = set()
    for entry in ENTRIES:
        doc = json.loads((exported / schema_path(entry)).read_text())
        Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == SCHEMA_DIALECT
        assert doc["$id"] == f"{DEFAULT_BASE_URI}{entry.spec.name}/{entry.name}.schema.json"
        assert re.match(r"^[a-z][a-z0-9+.-]*://", doc["$id"])  # absolute
        ids.add(doc["$id"])
    assert len(ids) == len(ENTRIES)
    index = json.loads((exported / "index.json").read_text())
    assert {(i["ledger"], i["event_type"]) for i in index} == {(e.spec.name, e.name) for e in ENTRIES}


def _resolve(document: dict[str, Any], pointer: str) -> Any:
    node: Any = document
    for part in pointer.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_asyncapi_document(schemas: Export, exported: Path) -> None:
    doc = schemas.asyncapi
    assert doc["asyncapi"] == "3.0.0"
    assert {c["address"] for c in doc["channels"].values()} == {s.topic("selene.") for s in LEDGERS.values()}
    name = re.compile(r"^[a-zA-Z0-9.\-_]+$")  # AsyncAPI's pattern for component and channel ids
    assert all(name.match(k) for k in (*doc["channels"], *doc["operations"], *doc["components"]["messages"]))
    messages = 0
    for channel_id, channel in doc["channels"].items():
        spec = LEDGERS[channel_id]
        kafka = channel["bindings"]["kafka"]
        assert kafka["topic"] == channel["address"]
        assert kafka["bindingVersion"] == KAFKA_BINDING_VERSION
        assert kafka["topicConfiguration"]["retention.ms"] == -1
        for event_type, ref in channel["messages"].items():
            message = _resolve(doc, ref["$ref"])
            entry = EVENT_TYPES[f"{spec.name}|{event_type}"]
            payload = json.loads((exported / message["payload"]["$ref"]).read_text())
            assert payload == schemas.by_tag[entry.tag]
            assert message["bindings"]["kafka"]["key"] == key_rule(entry).schema()
            assert set(message["headers"]["properties"]) >= {"selene-tenant"}
            messages += 1
    assert messages == len(ENTRIES)
    for operation in doc["operations"].values():
        assert operation["action"] in ("send", "receive")
        channel = _resolve(doc, operation["channel"]["$ref"])
        for ref in operation["messages"]:
            assert ref["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            assert _resolve(doc, ref["$ref"]) in channel["messages"].values()


ASYNCAPI_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures" / "asyncapi" / "asyncapi-3.0.0.schema.json"


def test_asyncapi_document_is_valid_asyncapi_3(schemas: Export) -> None:
    """Against the AsyncAPI Initiative's own JSON Schema of 3.0.0 documents (tests/fixtures/asyncapi/), which
    also checks the Kafka bindings; and a broken copy is refused, so the check is not vacuous."""
    meta = json.loads(ASYNCAPI_SCHEMA.read_text())
    validator = Draft7Validator(meta)
    assert [e.message for e in validator.iter_errors(schemas.asyncapi)] == []
    broken = json.loads(json.dumps(schemas.asyncapi))
    next(iter(broken["channels"].values()))["bindings"]["kafka"]["partitions"] = "three"
    assert not validator.is_valid(broken)


def test_cli_exports_with_the_settings_topics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SELENE_TOPIC_PREFIX", "engines.")
    monkeypatch.setenv("SELENE_TOPIC_PARTITIONS", "12")
    assert main(["schema", "export", str(tmp_path), "--base-uri", "https://schemas.example.org/selene"]) == 0
    doc = json.loads((tmp_path / "asyncapi.json").read_text())
    assert {c["address"] for c in doc["channels"].values()} == {s.topic("engines.") for s in LEDGERS.values()}
    assert {c["bindings"]["kafka"]["partitions"] for c in doc["channels"].values()} == {12}
    audit = json.loads((tmp_path / "audit_events" / "AUDIT_RECORDED.schema.json").read_text())
    assert audit["$id"] == "https://schemas.example.org/selene/audit_events/AUDIT_RECORDED.schema.json"


def _assert_key(schemas: Export, ledger: str, event_type: str, key: bytes) -> None:
    channel = schemas.asyncapi["channels"][ledger]
    message = _resolve(schemas.asyncapi, channel["messages"][event_type]["$ref"])
    key_schema = message["bindings"]["kafka"]["key"]
    assert Draft202012Validator(_ecma_dollar(key_schema)).is_valid(key.decode()), (key, key_schema["pattern"])


def test_key_schemas_refuse_a_wrong_aggregate(schemas: Export) -> None:
    ecm = EVENT_TYPES["engine_capability_maps|CAPABILITY_MAP_PUBLISHED"]
    pattern = _ecma_dollar(key_rule(ecm).schema())
    assert Draft202012Validator(pattern).is_valid("t1/ecm:PH1.X:CAP")
    assert not Draft202012Validator(pattern).is_valid("t1/corr-1")
    assert not Draft202012Validator(pattern).is_valid("t1/ecm:PH1.X:CAP\n")


def _turn(**payload: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "tenant_id": "t1",
        "engine_id": "PH1.F",
        "ledger": "conversation_ledger",
        "event_type": "CONVERSATION_TURN_RECORDED",
        "schema_version": 1,
        "correlation_id": "c1",
        "turn_id": "turn-1",
        "occurred_at": "2026-01-02T03:04:05Z",
        "payload": {"speaker": "USER", "source": "TEXT", "text": "hello", "user_id": "u1", **payload},
    }


@pytest.mark.parametrize(
    ("payload", "valid"),
    [
        ({}, True),
        ({"tombstone_reason_code": "USER_ASKED"}, False),  # only a TOMBSTONE row names a reason (drawn once)
        ({"tombstone_of_conversation_turn_id": 7}, False),
        ({"speaker": "SELENE", "source": "TOMBSTONE", "text": "[REDACTED]"}, False),  # names no turn
        (
            {
                "speaker": "SELENE",
                "source": "TOMBSTONE",
                "text": "[REDACTED]",
                "tombstone_of_conversation_turn_id": 7,
                "tombstone_reason_code": "USER_ASKED",
            },
            True,
        ),
        (
            {
                "source": "TOMBSTONE",
                "text": "[REDACTED]",
                "tombstone_of_conversation_turn_id": 7,
                "tombstone_reason_code": "USER_ASKED",
            },
            False,  # the user's
        ),
    ],
)
def test_the_tombstone_rules_are_in_the_schema(schemas: Export, payload: dict[str, Any], valid: bool) -> None:
    doc = _turn(**payload)
    assert writer_verdict(json.dumps(doc).encode()) is valid
    assert schema_verdict(schemas, doc) is valid


def test_ph1_k_kind_rules_are_in_the_schema(schemas: Export) -> None:
    """PH1.K's ``event_kind`` decides which fields an event needs and which it may not carry (the writer's
    ``_fields_of_its_kind``); the schema says the same (a drawn ``STREAM_REFS`` without its ids was accepted by
    the schema and refused by the writer before)."""
    from contracts.ph1_k import FIELDS, KIND_FIELDS, SLICE

    ctx = ExampleContext("t1", "u1", "d1", "s1", 1, datetime(2026, 1, 2, tzinfo=UTC))
    assert SLICE.examples is not None
    docs = [json.loads(e.model_dump_json()) for e in SLICE.examples(ctx)]
    assert docs
    for doc in docs:
        assert assert_same_verdict(schemas, doc)
        kind = doc["payload"]["event_kind"]
        required, optional = FIELDS[kind]
        for field in required:
            for broken in ({k: v for k, v in doc["payload"].items() if k != field}, {**doc["payload"], field: None}):
                assert not assert_same_verdict(schemas, {**doc, "payload": broken}), (kind, field)
                assert not schema_verdict(schemas, {**doc, "payload": broken}), (kind, field)
        other = next(f for f in KIND_FIELDS if f not in (*required, *optional))
        sample = next(d["payload"][other] for d in docs if d["payload"].get(other) is not None)
        stray = {**doc, "payload": {**doc["payload"], other: sample}}
        assert not schema_verdict(schemas, stray) and not writer_verdict(json.dumps(stray).encode()), (kind, other)
    drawn = {**docs[0], "payload": {"device_id": "0", "event_kind": "STREAM_REFS"}}
    assert not schema_verdict(schemas, drawn) and not writer_verdict(json.dumps(drawn).encode())
