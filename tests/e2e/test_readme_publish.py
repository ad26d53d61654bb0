"""The README's Python publishing example, run as a script: its code block is read from README.md, its one
tenant literal swapped for a tenant of this run (the database is shared across runs, and the example's
idempotency key would make a second run's event a duplicate), and run in a fresh interpreter with the test's
Kafka and topic prefix in the environment. The writer then appends the event it printed."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import asyncpg
import pytest

from contracts.settings import Settings
from tests.e2e.helpers import drain

pytestmark = pytest.mark.e2e

README = Path(__file__).resolve().parents[2] / "README.md"


def publishing_example() -> str:
    text = README.read_text()
    section = text[text.index("### From Python") : text.index("### From other languages")]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "no ```python block in the README's publishing section"
    return match.group(1)


async def test_readme_publishing_example_lands_in_the_audit_ledger(
    topics: Settings, operator_db: asyncpg.Connection, run_id: str
) -> None:
    tenant = f"readme-{run_id}"
    code = publishing_example()
    assert code.count('tenant_id="acme"') == 1
    code = code.replace('tenant_id="acme"', f'tenant_id="{tenant}"')
    env = {
        **os.environ,
        "SELENE_KAFKA_BOOTSTRAP_SERVERS": topics.kafka_bootstrap_servers,
        "SELENE_TOPIC_PREFIX": topics.topic_prefix,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()[-4000:]
    match = re.fullmatch(r"published (\S+) to (\S+)\[(\d+)\]@(\d+)\n", out.decode())
    assert match, out.decode()
    event_id, topic, partition, offset = match.groups()
    assert topic == f"{topics.topic_prefix}os_core.audit_events"

    stats = await drain(topics)
    assert (stats.result.appended, stats.result.dead_total) == (1, 0)
    row = await operator_db.fetchrow(
        "SELECT event_uuid::text AS id, source_partition, source_offset, reason_code FROM os_core.audit_events "
        "WHERE tenant_id = $1",
        tenant,
    )
    assert row is not None
    assert dict(row) == {
        "id": event_id,
        "source_partition": int(partition),
        "source_offset": int(offset),
        "reason_code": "INTENT_PARSED",
    }
