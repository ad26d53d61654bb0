"""Tamper evidence: a SHA-256 hash chain through every ledger, one chain per (ledger, topic, partition).

    row_hash(n) = SHA-256(row_hash(n-1) || canonical(row n)),   row_hash(0) = 32 zero bytes

Why per partition: a partition has one writer at a time (fenced offsets), so its chain is one sequence,
computed by the writer inside the batch transaction that appends the rows; the chain head row in
``selene_ops.ledger_chains`` is locked for the append, which also serialises a re-drive with the writer.
``canonical`` covers every stored column except ``payload`` (covered by ``content_sha256``, which the
verifier recomputes from the stored payload), with its chain position, so a changed, deleted, inserted or
reordered row breaks the chain where it happened.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

GENESIS = bytes(32)
UNCHAINED = ("payload", "chain_seq", "row_hash")

ENSURE_CHAINS = """
INSERT INTO selene_ops.ledger_chains (ledger_table, source_topic, source_partition, seq, head_hash)
SELECT $1, u.topic, u.part, 0, $4 FROM unnest($2::text[], $3::int[]) AS u(topic, part)
ON CONFLICT DO NOTHING
"""
LOCK_CHAINS = """
SELECT c.source_topic, c.source_partition, c.seq, c.head_hash FROM selene_ops.ledger_chains c
JOIN unnest($2::text[], $3::int[]) AS u(topic, part) ON c.source_topic = u.topic AND c.source_partition = u.part
WHERE c.ledger_table = $1
ORDER BY c.source_topic, c.source_partition
FOR UPDATE OF c
"""
ADVANCE_CHAINS = """
UPDATE selene_ops.ledger_chains c SET seq = u.seq, head_hash = u.head, updated_at = now()
FROM unnest($2::text[], $3::int[], $4::bigint[], $5::bytea[]) AS u(topic, part, seq, head)
WHERE c.ledger_table = $1 AND c.source_topic = u.topic AND c.source_partition = u.part
"""


def _norm(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def row_digest(table: str, seq: int, values: Mapping[str, Any], columns: Iterable[str]) -> bytes:
    """The canonical bytes of a row at chain position ``seq``."""
    doc = [table, seq, [[c, _norm(values[c])] for c in columns if c not in UNCHAINED]]
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def link(previous: bytes, digest: bytes) -> bytes:
    return hashlib.sha256(previous + digest).digest()


async def stamp(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    """Give ``rows`` (value dicts about to be inserted, in append order) their chain positions and hashes,
    and advance the chain heads; in the caller's transaction."""
    chains: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for values in rows:
        chains.setdefault((values["source_topic"], values["source_partition"]), []).append(values)
    keys = sorted(chains)
    topics, parts = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(ENSURE_CHAINS, table, topics, parts, GENESIS)
    heads = {
        (r["source_topic"], r["source_partition"]): (r["seq"], bytes(r["head_hash"]))
        for r in await conn.fetch(LOCK_CHAINS, table, topics, parts)
    }
    new_seq, new_head = [], []
    for key in keys:
        seq, head = heads[key]
        for values in chains[key]:
            seq += 1
            head = link(head, row_digest(table, seq, values, columns))
            values["chain_seq"] = seq
            values["row_hash"] = head
        new_seq.append(seq)
        new_head.append(head)
    await conn.execute(ADVANCE_CHAINS, table, topics, parts, new_seq, new_head)
