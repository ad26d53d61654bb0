"""docs/WIRE_FORMAT.md says what the code does: its tables of topics, keys, headers, sizes and reason codes are
read here and compared with the registry, the key rules the export writes, the codec and the reason policy.
A new event type, key rule, header or reason code fails here until the document names it."""

from __future__ import annotations

import re
from pathlib import Path

from contracts.codec import HEADER_EVENT_ID, HEADER_EVENT_TYPE, HEADER_LEDGER, HEADER_SCHEMA_VERSION, HEADER_TENANT
from contracts.reasons import ReasonCode, policy
from contracts.registry import EVENT_TYPES, LEDGERS
from contracts.schema_export import key_rule
from contracts.settings import Settings
from producers.topics import LEDGER_TOPIC_CONFIG

DOC = (Path(__file__).resolve().parents[2] / "docs" / "WIRE_FORMAT.md").read_text()


def _table(header: str) -> list[list[str]]:
    """The rows of the table whose header line starts with ``header``, as lists of stripped cells."""
    start = DOC.index(header)
    rows = []
    for line in DOC[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows


def _code(cell: str) -> str:
    return cell.strip("`")


def test_topics_table() -> None:
    rows = {_code(r[0]): (_code(r[1]), _code(r[2])) for r in _table("| ledger (`ledger` field) |")}
    assert rows == {name: (spec.topic("selene."), spec.table) for name, spec in LEDGERS.items()}


def test_key_rules_table_lists_every_event_type_under_its_rule() -> None:
    documented: dict[str, set[str]] = {}
    for rule, cell in _table("| aggregate (after `<tenant_id>/`) |"):
        ledger = None
        names = set()
        for part in re.split(r";\s*", cell):
            ledger_text, _, types = part.partition(":")
            ledger = _code(ledger_text.strip())
            names |= {f"{ledger}|{t}" for t in re.findall(r"`([A-Z0-9_]+)`", types)}
        documented[rule] = names
    expected: dict[str, set[str]] = {}
    for entry in EVENT_TYPES.values():
        expected.setdefault(key_rule(entry).rule, set()).add(entry.tag)
    assert documented == expected


def test_headers_table() -> None:
    names = set()
    for row in _table("| header | value |"):
        names |= set(re.findall(r"`(selene-[a-z-]+)`", row[0]))
    assert names == {HEADER_TENANT, HEADER_LEDGER, HEADER_EVENT_TYPE, HEADER_SCHEMA_VERSION, HEADER_EVENT_ID}


def test_size_limits() -> None:
    assert Settings().max_event_bytes == 65536
    assert "at most **65,536 bytes** (`SELENE_MAX_EVENT_BYTES`)" in DOC
    assert {spec.max_payload_bytes for spec in LEDGERS.values()} == {16384}
    assert "at most **16,384 bytes**" in DOC
    assert f"records up to {int(LEDGER_TOPIC_CONFIG['max.message.bytes']):,} bytes" in DOC


def test_reason_codes_table_covers_every_code_with_its_policy() -> None:
    rows = {_code(r[0]): (r[2], r[3]) for r in _table("| code | meaning | holds the aggregate | retried |")}
    assert set(rows) == {c.value for c in ReasonCode}
    for code in ReasonCode:
        p = policy(code)
        assert rows[code.value] == ("yes" if p.blocks_aggregate else "no", "yes" if p.retriable else "no"), code
