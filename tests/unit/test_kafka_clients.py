"""Kafka client options live in contracts/kafka_clients.py alone: no module of the product or the benchmark
spells out the options every client must share (isolation level, idempotence, acks, bootstrap servers and
transport), so a change there reaches the writer, replay, status, the publisher and the benchmark alike."""

from __future__ import annotations

import ast
from pathlib import Path

from contracts.kafka_clients import producer_options, reader_options, transport_options, writer_fetch_options
from contracts.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SHARED = {"isolation_level", "enable_idempotence", "acks", "bootstrap_servers", "enable_auto_commit"}


def spelled_out(path: Path) -> list[str]:
    """Keyword arguments and dict keys naming a shared option."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.keyword) and node.arg in SHARED:
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.arg}=")
        elif isinstance(node, ast.Dict):
            found += [
                f"{path.relative_to(ROOT)}:{k.lineno} {k.value!r}"
                for k in node.keys
                if isinstance(k, ast.Constant) and k.value in SHARED
            ]
    return found


def test_no_module_spells_out_the_shared_options() -> None:
    own = ROOT / "contracts" / "kafka_clients.py"
    files = [p for pkg in ("consumers", "producers", "bench", "cli", "contracts") for p in (ROOT / pkg).rglob("*.py")]
    assert [hit for p in files if p != own for hit in spelled_out(p)] == []
    assert spelled_out(own)  # the check sees them where they are


def test_readers_read_committed_and_producers_are_idempotent() -> None:
    s = Settings.from_env({})
    assert reader_options(s)["isolation_level"] == "read_committed"
    assert reader_options(s, group_id="g")["enable_auto_commit"] is False
    p = producer_options(s)
    assert (p["enable_idempotence"], p["acks"]) == (True, "all")
    assert transport_options(s)["bootstrap_servers"] == s.kafka_bootstrap_servers
    assert writer_fetch_options(s)["max_poll_records"] == s.batch_max_records
