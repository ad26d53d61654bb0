"""JSON Schema for every contract and an AsyncAPI 3.0 document of the topics, so that engines in other
languages can validate and generate producers without reading this project's Python.

``export`` writes, under one directory:

- ``<ledger>/<EVENT_TYPE>.schema.json``: the event's JSON Schema (draft 2020-12, ``$schema`` and an absolute
  ``$id``), from the same pydantic model the writer's decoder validates with;
- ``events.schema.json``: any ledger event (``oneOf`` the above, by ``$id``);
- ``asyncapi.json``: channels = topics, messages = event types (payload: the schema file; headers; the Kafka
  key's schema as the message's Kafka binding), Kafka bindings of each topic;
- ``index.json``: ledger, event type, table, schema file, key rule, one entry per event type.

What JSON Schema cannot say (the key's aggregate, sizes, header agreement, integral floats) is in
docs/WIRE_FORMAT.md; tests/unit/test_schema_export.py validates samples against this export with
``jsonschema`` and compares each verdict with the writer's decoder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.access import AccessOverrideInput
from contracts.artifacts_ledger import ArtifactEventInput
from contracts.audit import AuditPayload
from contracts.capreq import CapreqEventInput
from contracts.codec import (
    HEADER_EVENT_ID,
    HEADER_EVENT_TYPE,
    HEADER_LEDGER,
    HEADER_SCHEMA_VERSION,
    HEADER_TENANT,
)
from contracts.engine_capability_maps import EngineCapabilityMapEventInput
from contracts.envelope import IDENT_PATTERN, TENANT_PATTERN, EventType, LedgerSpec, Payload
from contracts.link import DeliveryProof, DraftWrite
from contracts.pbs import ProcessBlueprintEventInput
from contracts.ph1_k import AudioRuntimeEvent
from contracts.ph1_m import MemoryEventInput
from contracts.position import PositionEventInput, TenantCompanyUpserted
from contracts.simulation_catalog import SimulationCatalogEventInput
from contracts.work_orders import WorkOrderPayload

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: ``.invalid`` is reserved (RFC 2606): the ids name the schemas without promising a server that hosts them.
#: A deployment that publishes the files passes its own base (``schema export --base-uri``).
DEFAULT_BASE_URI = "https://selene-ledger.invalid/schemas/"
KAFKA_BINDING_VERSION = "0.5.0"
#: What a date-time field (``occurred_at``, ``expires_at``) must end with: ``Z`` or a numeric offset. The
#: writer refuses a time without one (a naive time is ambiguous across engines' time zones); ``format:
#: date-time`` alone is an annotation most validators do not enforce.
OFFSET_PATTERN = r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"


def _inner(pattern: str) -> str:
    """A ``^...$`` pattern without its anchors, to be embedded in a larger one."""
    return pattern.removeprefix("^").removesuffix("$")


_TENANT = _inner(TENANT_PATTERN)
_IDENT = "[^\\s\\x00-\\x1f\\x7f-\\x9f]{1,128}"
assert _inner(IDENT_PATTERN).removesuffix("+") == _IDENT.removesuffix("{1,128}")  # same class as Ident


@dataclass(frozen=True)
class KeyRule:
    """How an event type's Kafka key is made: ``<tenant_id>/<aggregate>``, the aggregate per ``rule``."""

    rule: str
    aggregate_pattern: str

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "description": f"UTF-8 text `<tenant_id>/<aggregate>`, the aggregate being {self.rule}. The "
            "writer dead-letters a record whose key is not exactly the one its event gives.",
            "pattern": f"^{_TENANT}/{self.aggregate_pattern}$",
        }


# One rule per ``Payload.aggregate_id`` implementation; a slice with a new one must say it here (export
# refuses an event type whose rule it does not know).
_ECM_ENGINE = "[A-Z0-9][A-Z0-9_.]{0,63}"
_ECM_CAPABILITY = "[A-Z][A-Z0-9_.]{0,95}"
KEY_RULES: dict[Callable[..., str], KeyRule] = {
    Payload.aggregate_id: KeyRule("the envelope's `correlation_id`", _IDENT),
    AuditPayload.aggregate_id: KeyRule(
        "`user:<payload.user_id>` when the payload names a user, else the envelope's `correlation_id`",
        f"(user:)?{_IDENT}",
    ),
    WorkOrderPayload.aggregate_id: KeyRule("`payload.work_order_id`", _IDENT),
    EngineCapabilityMapEventInput.aggregate_id: KeyRule(
        "`ecm:<payload.engine_id>:<payload.capability_id>`", f"ecm:{_ECM_ENGINE}:{_ECM_CAPABILITY}"
    ),
    SimulationCatalogEventInput.aggregate_id: KeyRule("`simcat:<payload.simulation_id>`", f"simcat:{_IDENT}"),
    ProcessBlueprintEventInput.aggregate_id: KeyRule("`pbs:<payload.intent_type>`", f"pbs:{_IDENT}"),
    ArtifactEventInput.aggregate_id: KeyRule(
        "`art:<payload.scope_type>:<payload.scope_id>:<payload.artifact_type>`",
        f"art:(TENANT|USER|DEVICE):{_IDENT}:[A-Z_]{{1,32}}",
    ),
    CapreqEventInput.aggregate_id: KeyRule("`capreq:<payload.capreq_id>`", f"capreq:{_IDENT}"),
    PositionEventInput.aggregate_id: KeyRule("`position:<payload.position_id>`", f"position:{_IDENT}"),
    TenantCompanyUpserted.aggregate_id: KeyRule("`company:<payload.company_id>`", f"company:{_IDENT}"),
    AccessOverrideInput.aggregate_id: KeyRule("`access:<payload.access_instance_id>`", "access:accinst_[0-9a-f]{32}"),
    AudioRuntimeEvent.aggregate_id: KeyRule("`audio:<payload.device_id>`", f"audio:{_IDENT}"),
    MemoryEventInput.aggregate_id: KeyRule(
        "`memory:<payload.user_id>:<payload.memory_key>`", f"memory:{_IDENT}:[^\\x00]{{1,128}}"
    ),
    DraftWrite.aggregate_id: KeyRule("`draft:<payload.draft_id>`", f"draft:{_IDENT}"),
    DeliveryProof.aggregate_id: KeyRule("`draft:<payload.draft_id>`", f"draft:{_IDENT}"),
}


def key_rule(entry: EventType) -> KeyRule:
    rule = KEY_RULES.get(entry.payload.aggregate_id)
    if rule is None:
        raise LookupError(f"{entry.tag}: no key rule for {entry.payload.__qualname__}.aggregate_id")
    return rule


def schema_path(entry: EventType) -> str:
    return f"{entry.spec.name}/{entry.name}.schema.json"


def _tighten(node: Any) -> None:
    """Say in the schema what pydantic's JSON Schema leaves loose, in place, everywhere in ``node``.

    - A dict with constrained keys comes out as ``patternProperties`` alone, which lets any other key
      through; the model refuses such keys, so ``additionalProperties: false`` is added.
    - ``format: date-time`` gets a ``pattern`` requiring the offset (``OFFSET_PATTERN``).
    """
    if isinstance(node, list):
        for item in node:
            _tighten(item)
        return
    if not isinstance(node, dict):
        return
    if "patternProperties" in node and "additionalProperties" not in node and "properties" not in node:
        node["additionalProperties"] = False
    if node.get("format") == "date-time" and "pattern" not in node:
        node["pattern"] = OFFSET_PATTERN
        node["description"] = (
            "RFC 3339 date-time with seconds and an offset (`Z` or `+hh:mm`); the writer refuses a time "
            "without an offset."
        )
    for value in node.values():
        _tighten(value)


def event_schema(entry: EventType, base_uri: str = DEFAULT_BASE_URI) -> dict[str, Any]:
    """The JSON Schema of one (ledger, event type): pydantic's, tightened, with ``$schema`` and ``$id``."""
    schema = entry.model.model_json_schema(mode="validation")
    _tighten(schema)
    schema["$schema"] = SCHEMA_DIALECT
    schema["$id"] = base_uri + schema_path(entry)
    schema["description"] = (
        f"`{entry.name}` on the `{entry.spec.name}` ledger (table `{entry.spec.table}`). Kafka key: "
        f"`<tenant_id>/<aggregate>`, the aggregate being {key_rule(entry).rule}. Canonical payload at most "
        f"{entry.spec.max_payload_bytes} bytes; see docs/WIRE_FORMAT.md."
    )
    return schema


def _headers_schema(entry: EventType) -> dict[str, Any]:
    return {
        "type": "object",
        "description": "Kafka record headers (UTF-8 values). Only `selene-tenant` is checked: when present it "
        "must equal the event's `tenant_id`. The others are for routing and tooling; the writer reads the value.",
        "properties": {
            HEADER_TENANT: {"type": "string", "pattern": TENANT_PATTERN, "description": "= tenant_id"},
            HEADER_LEDGER: {"type": "string", "const": entry.spec.name},
            HEADER_EVENT_TYPE: {"type": "string", "const": entry.name},
            HEADER_SCHEMA_VERSION: {"type": "string", "pattern": "^[0-9]+$", "description": "= schema_version"},
            HEADER_EVENT_ID: {"type": "string", "format": "uuid", "description": "= event_id"},
        },
    }


def _channel_id(spec: LedgerSpec) -> str:
    return spec.name


def _message_id(entry: EventType) -> str:
    return f"{entry.spec.name}.{entry.name}"


def asyncapi(
    prefix: str,
    partitions: int,
    replicas: int,
    bootstrap: str,
    max_event_bytes: int,
    topic_config: dict[str, str],
    version: str,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the ledger topics (payloads referenced from the schema files beside it)."""
    from contracts.registry import registry  # lazily: the registry imports every contracts module

    entries = sorted(registry().event_types.values(), key=lambda e: e.tag)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    # The binding's typed fields from the topic configuration the topics command creates (given by the
    # caller: it lives with the producers' topic administration, which contracts/ may not import).
    config: dict[str, Any] = {
        name: ([value] if name == "cleanup.policy" else int(value))
        for name, value in topic_config.items()
        if name in ("cleanup.policy", "retention.ms", "retention.bytes", "max.message.bytes")
    }
    for spec in sorted(registry().ledgers.values(), key=lambda s: s.name):
        mine = [e for e in entries if e.spec is spec]
        channel = _channel_id(spec)
        channels[channel] = {
            "address": spec.topic(prefix),
            "title": spec.name,
            "description": f"Events appended to `{spec.table}`. One topic per ledger; the key keeps each "
            f"aggregate on one partition, in order (murmur2 partitioner: see docs/WIRE_FORMAT.md).",
            "messages": {e.name: {"$ref": f"#/components/messages/{_message_id(e)}"} for e in mine},
            "bindings": {
                "kafka": {
                    "topic": spec.topic(prefix),
                    "partitions": partitions,
                    "replicas": replicas,
                    **({"topicConfiguration": config} if config else {}),
                    "bindingVersion": KAFKA_BINDING_VERSION,
                }
            },
        }
        refs = [{"$ref": f"#/channels/{channel}/messages/{e.name}"} for e in mine]
        operations[f"publish.{spec.name}"] = {
            "action": "send",
            "title": f"An engine publishes to {spec.name}",
            "description": "Idempotent producer (or transactions), acks=all, murmur2 partitioner on the key.",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": refs,
        }
        operations[f"append.{spec.name}"] = {
            "action": "receive",
            "title": f"The ledger writer appends {spec.name}",
            "description": "Reads with isolation.level=read_committed: aborted transactions never land.",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": refs,
            "bindings": {"kafka": {"groupId": {"type": "string"}, "bindingVersion": KAFKA_BINDING_VERSION}},
        }
        for e in mine:
            messages[_message_id(e)] = {
                "name": e.name,
                "title": f"{spec.name} {e.name}",
                "summary": (e.payload.__doc__ or e.name).strip().splitlines()[0],
                "contentType": "application/json",
                "headers": _headers_schema(e),
                "payload": {"$ref": f"./{schema_path(e)}"},
                "bindings": {"kafka": {"key": key_rule(e).schema(), "bindingVersion": KAFKA_BINDING_VERSION}},
            }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Selene Ledger events",
            "version": version,
            "description": "The topics Selene engines publish ledger events to, and the events' contracts. "
            f"A record value is one JSON envelope, at most {max_event_bytes} bytes; the rules JSON Schema "
            "cannot say are in docs/WIRE_FORMAT.md.",
        },
        "defaultContentType": "application/json",
        "servers": {"kafka": {"host": bootstrap, "protocol": "kafka", "description": "Kafka bootstrap servers"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def export(
    directory: Path,
    *,
    prefix: str = "selene.",
    partitions: int = 3,
    replicas: int = 1,
    bootstrap: str = "127.0.0.1:19092",
    max_event_bytes: int = 65536,
    topic_config: dict[str, str] | None = None,
    base_uri: str = DEFAULT_BASE_URI,
    version: str = "1",
) -> list[Path]:
    """Write the schemas, ``events.schema.json``, ``asyncapi.json`` and ``index.json`` (module docstring)."""
    if not base_uri.endswith("/"):
        base_uri += "/"
    from contracts.registry import registry  # lazily: the registry imports every contracts module

    written: list[Path] = []
    index = []
    entries = sorted(registry().event_types.values(), key=lambda e: e.tag)
    for entry in entries:
        target = directory / schema_path(entry)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(event_schema(entry, base_uri), indent=2, sort_keys=True) + "\n")
        written.append(target)
        index.append(
            {
                "ledger": entry.spec.name,
                "event_type": entry.name,
                "table": entry.spec.table,
                "topic": entry.spec.topic(prefix),
                "schema": schema_path(entry),
                "key": key_rule(entry).rule,
                "max_payload_bytes": entry.spec.max_payload_bytes,
            }
        )
    union = {
        "$schema": SCHEMA_DIALECT,
        "$id": base_uri + "events.schema.json",
        "title": "Any Selene ledger event",
        "description": "Exactly one of the event schemas: chosen by `ledger` and `event_type`.",
        "oneOf": [{"$ref": base_uri + schema_path(e)} for e in entries],
    }
    _write(directory / "events.schema.json", union, written)
    document = asyncapi(prefix, partitions, replicas, bootstrap, max_event_bytes, topic_config or {}, version)
    _write(directory / "asyncapi.json", document, written)
    _write(directory / "index.json", index, written)
    return written


def _write(path: Path, document: Any, written: list[Path]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    written.append(path)
