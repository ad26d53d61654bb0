"""``selene-ledger verify``: recompute every hash chain, name the first broken link, check the heads.

A chain proves the rows it covers were not changed, removed, inserted or reordered since they were written;
it cannot by itself prove that its *tail* was not cut off together with its head row. That is what the
exported digest is for: store it outside the database (it is small, and signed with HMAC-SHA256 when
``SELENE_DIGEST_KEY`` is set), and a later ``verify --against`` finds a chain that is now shorter than the
digest says, or whose hash at the digest's position differs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from consumers.chain import GENESIS, canonical_json, link, row_digest
from consumers.ledger import LedgerTable

CHAINS = "SELECT ledger_table, source_topic, source_partition, seq, head_hash FROM selene_ops.ledger_chains"
CHAIN_KEYS = "SELECT DISTINCT source_topic, source_partition FROM {table} WHERE chain_seq IS NOT NULL"
UNCHAINED = "SELECT count(*) FROM {table} WHERE chain_seq IS NULL"
CHAIN_ROWS = """
SELECT {id} AS ledger_id, {cols}, chain_seq, row_hash FROM {table}
WHERE source_topic = $1 AND source_partition = $2 AND chain_seq > $3 ORDER BY chain_seq LIMIT $4
"""
ChainKey = tuple[str, str, int]


@dataclass
class VerifyReport:
    rows: int = 0
    chains: dict[ChainKey, tuple[int, bytes]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def digest(self, key: bytes | None = None) -> dict[str, Any]:
        """The heads, as a document to keep outside the database."""
        body = {
            "generated_at": datetime.now(UTC).isoformat(),
            "chains": [
                {"ledger_table": t, "topic": top, "partition": p, "seq": seq, "head": head.hex()}
                for (t, top, p), (seq, head) in sorted(self.chains.items())
            ],
        }
        if key:
            body["hmac_sha256"] = _sign(body, key)
        return body


def _sign(body: dict[str, Any], key: bytes) -> str:
    unsigned = {k: v for k, v in body.items() if k != "hmac_sha256"}
    return hmac.new(key, json.dumps(unsigned, sort_keys=True).encode(), hashlib.sha256).hexdigest()


def digest_key() -> bytes | None:
    value = os.environ.get("SELENE_DIGEST_KEY")
    return value.encode() if value else None


def load_digest(path: Path, key: bytes | None) -> dict[ChainKey, tuple[int, str]]:
    body = json.loads(path.read_text())
    if key is not None and not hmac.compare_digest(body.get("hmac_sha256", ""), _sign(body, key)):
        raise ValueError(f"{path}: the digest's signature does not match (altered, or another key)")
    return {(c["ledger_table"], c["topic"], c["partition"]): (c["seq"], c["head"]) for c in body["chains"]}


def _content_sha256(event_type: str, payload: Any) -> bytes:
    """What the writer stored in ``content_sha256``, recomputed from the stored payload."""
    value = json.loads(payload) if isinstance(payload, str) else payload
    body = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{event_type}\n{body}".encode()).digest()


async def verify(
    conn: asyncpg.Connection,
    tables: dict[str, LedgerTable],
    against: dict[ChainKey, tuple[int, str]] | None = None,
    page: int = 5000,
    topic_prefix: str | None = None,
) -> VerifyReport:
    """Check every chain of every ledger in ``tables`` (run as the operator role, which reads all tenants)."""
    report = VerifyReport()
    heads = {
        (r["ledger_table"], r["source_topic"], r["source_partition"]): (r["seq"], bytes(r["head_hash"]))
        for r in await conn.fetch(CHAINS)
    }
    for table in tables.values():
        name = table.spec.table
        cols = [c for c, _ in table.columns]
        jsonb = [c for c, t in table.columns if t == "jsonb" and c != "payload"]
        unchained = await conn.fetchval(UNCHAINED.format(table=name)) if topic_prefix is None else 0
        if unchained:
            report.problems.append(f"{name}: {unchained} rows carry no chain link")
        keys = {(t, p) for (tt, t, p) in heads if tt == name}
        keys |= {(r["source_topic"], r["source_partition"]) for r in await conn.fetch(CHAIN_KEYS.format(table=name))}
        query = CHAIN_ROWS.format(id=table.spec.id_column, cols=", ".join(cols), table=name)
        if topic_prefix is not None:
            keys = {k for k in keys if k[0].startswith(topic_prefix)}
        for topic, part in sorted(keys):
            key = (name, topic, part)
            seq, head, last_id, broken = 0, GENESIS, 0, False
            wanted = against.get(key) if against else None
            at_wanted: bytes | None = GENESIS if wanted and wanted[0] == 0 else None
            while not broken:
                rows = await conn.fetch(query, topic, part, seq, page)
                if not rows:
                    break
                for r in rows:
                    where = f"{name} chain {topic}[{part}] at seq {seq + 1} (ledger id {r['ledger_id']})"
                    if r["chain_seq"] != seq + 1:
                        report.problems.append(f"{where}: found seq {r['chain_seq']}: a row was removed or inserted")
                        broken = True
                        break
                    values = dict(r)
                    if _content_sha256(values["event_type"], values["payload"]) != bytes(values["content_sha256"]):
                        report.problems.append(f"{where}: the payload does not match its content hash")
                        broken = True
                        break
                    for c in jsonb:  # stored jsonb, digested in the writer's canonical text
                        if isinstance(v := values[c], str):
                            values[c] = canonical_json(json.loads(v))
                        elif v is not None:  # a connection with a jsonb codec hands it over decoded
                            values[c] = canonical_json(v)
                    seq += 1
                    head = link(head, row_digest(name, seq, values, cols))
                    if head != bytes(r["row_hash"]):
                        report.problems.append(f"{where}: broken link: the row was changed, inserted or moved")
                        broken = True
                        break
                    if r["ledger_id"] <= last_id:
                        report.problems.append(f"{where}: ledger ids go backwards along the chain (reordered)")
                        broken = True
                        break
                    last_id = r["ledger_id"]
                    report.rows += 1
                    if wanted and seq == wanted[0]:
                        at_wanted = head
            report.chains[key] = (seq, head)
            if broken:
                continue
            stored = heads.get(key)
            if stored is None or stored != (seq, head):
                report.problems.append(
                    f"{name} chain {topic}[{part}]: the chain ends at seq {seq} but its head row says "
                    f"{stored[0] if stored else 'nothing'}: rows were removed from the tail or written "
                    "around the writer"
                )
            if wanted:
                if seq < wanted[0]:
                    report.problems.append(
                        f"{name} chain {topic}[{part}]: ends at seq {seq}, the digest has seq {wanted[0]}: "
                        "tail truncated"
                    )
                elif at_wanted is None or at_wanted.hex() != wanted[1]:
                    report.problems.append(
                        f"{name} chain {topic}[{part}]: differs from the digest at seq {wanted[0]}: history rewritten"
                    )
    if against:
        for key, (dseq, _) in against.items():
            if topic_prefix is not None and not key[1].startswith(topic_prefix):
                continue
            if key not in report.chains and dseq > 0:
                report.problems.append(f"{key[0]} chain {key[1]}[{key[2]}]: in the digest (seq {dseq}) but gone")
    return report
